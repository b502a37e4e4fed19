"""The neighbour graph equals scanpy's exact UMAP graph, also above scanpy's 4096-row switch."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scanpy as sc

from genegraph.evaluate.gene_embedding.clustering import knn_graph


def test_equals_scanpy_exact_neighbours():
    x = np.random.default_rng(0).normal(size=(800, 16)).astype(np.float32)
    ours = knn_graph(x, 15, 0)
    ref = ad.AnnData(X=x.copy())
    sc.pp.neighbors(ref, n_neighbors=15, use_rep="X", random_state=0)
    assert abs(ours.obsp["distances"] - ref.obsp["distances"]).max() < 1e-6
    assert abs(ours.obsp["connectivities"] - ref.obsp["connectivities"]).max() < 1e-6


def test_large_inputs_and_duplicate_rows():
    x = np.random.default_rng(1).normal(size=(5000, 8)).astype(np.float32)
    x[1] = x[0]  # exact duplicates: each still has itself first, at distance 0
    graph = knn_graph(x, 15, 0)
    conn = graph.obsp["connectivities"]
    assert conn.shape == (5000, 5000) and abs(conn - conn.T).max() < 1e-6
    assert conn[0, 1] > 0  # duplicates are each other's neighbours
    assert np.diff(graph.obsp["distances"].indptr).max() == 14
