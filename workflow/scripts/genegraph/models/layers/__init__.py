"""Layers shared by several models: sparse message passing and linear attention."""
