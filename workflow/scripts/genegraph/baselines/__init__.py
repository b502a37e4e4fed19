"""Baseline gene embeddings (spec §3.5), all in the train stage's embeddings layout: PCA per dataset
(:mod:`.pca`), GAE / VGAE (:mod:`.gnn`), MAE / WSMAE (:mod:`.autoencoders`) and a Gene2vec-style skip-gram
(:mod:`.skipgram`). Entry point: :func:`run_baseline`."""

from .pca import pca_embeddings
from .run import METHODS, BaselineConfig, run_baseline

__all__ = ["METHODS", "BaselineConfig", "pca_embeddings", "run_baseline"]
