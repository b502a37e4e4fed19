"""Rule modules: Leiden gene modules of the MuSe-GNN embeddings (first seed), their hallmark
over-representation, and a UMAP layout of the embeddings for the report."""

import anndata as ad
import pandas as pd

from genegraph.clustering import knn_graph, umap_coordinates
from genegraph.gene_sets import read_gmt
from genegraph.io import write_tsv
from genegraph.logs import rule_context
from genegraph.modules import ModulesConfig, module_analysis

smk = snakemake  # noqa: F821 (injected by Snakemake)
with rule_context(smk.log[0]) as log:
    cfg = ModulesConfig.from_dict(smk.params.cfg)
    emb = ad.read_h5ad(smk.input.embeddings)
    modules, enrichment, table = module_analysis(emb, read_gmt(smk.input.gmt), cfg)
    layout = umap_coordinates(knn_graph(emb.X, cfg.clustering.n_neighbors, cfg.clustering.random_state),
                              cfg.clustering.random_state)
    cols = [c for c in ("dataset", "gene", "share_key", "modality", "tissue", "in_all_datasets") if c in emb.obs]
    rows = pd.DataFrame({**{c: emb.obs[c].to_numpy() for c in cols}, "module": modules,
                         "umap_1": layout[:, 0], "umap_2": layout[:, 1]})
    write_tsv(rows, smk.output.rows)
    write_tsv(enrichment, smk.output.enrichment)
    write_tsv(table, smk.output.table)
    log.info("%d modules over %d rows; %d enriched for a hallmark set", len(table), len(rows),
             int((table["n_enriched"] > 0).sum()))
