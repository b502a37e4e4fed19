"""scMoGNN (Wen et al.; DANCE ``ScMoGCN``): protein prediction from RNA on a cell-feature graph with hallmark
gene-gene edges (:mod:`.train`), plus its modality-matching (:mod:`.matching`) and joint-embedding
(:mod:`.joint_embedding`) variants. Spec: ``shared/specs/dissertation_models.md`` §2."""

from .graph import CellFeatureGraph, batch_statistics, build_graph, pathway_edges
from .joint_embedding import (
    JointEmbeddingResult,
    JointEmbeddingSettings,
    cell_cycle_scores,
    train_embed,
)
from .matching import MatchingResult, MatchingSettings, train_match
from .model import ScMoGNN, ScMoGNNSettings
from .train import ScMoGNNResult, train_predict

__all__ = [
    "CellFeatureGraph", "JointEmbeddingResult", "JointEmbeddingSettings", "MatchingResult", "MatchingSettings",
    "ScMoGNN", "ScMoGNNResult", "ScMoGNNSettings", "batch_statistics", "build_graph", "cell_cycle_scores",
    "pathway_edges", "train_embed", "train_match", "train_predict",
]
