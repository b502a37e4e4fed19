"""Baseline gene embeddings (spec §3.5), all in the train stage's embeddings layout: PCA per dataset
(:mod:`.pca`), GAE / VGAE (:mod:`.gnn`), MAE / WSMAE (:mod:`.autoencoders`) and a Gene2vec-style skip-gram
(:mod:`.skipgram`). Entry point: :func:`run_baseline`."""

from genegraph.models.baselines.pca import pca_embeddings
from genegraph.models.baselines.run import METHODS, BaselineSettings, baseline_settings, run_baseline

__all__ = ["METHODS", "BaselineSettings", "baseline_settings", "pca_embeddings", "run_baseline"]
