"""Graphs built from the data: gene co-expression graphs, prior-knowledge edge types, cell graphs."""
