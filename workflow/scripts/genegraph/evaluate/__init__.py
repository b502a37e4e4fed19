"""Evaluation of each task: one module per task, shared cell-level metrics in cell_embedding."""
