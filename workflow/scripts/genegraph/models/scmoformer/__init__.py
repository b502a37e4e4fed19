"""scMoFormer (spec dissertation_models.md §3): RNA → protein prediction on a heterogeneous cell–gene–protein
graph with STRING priors. ADT names → genes (:mod:`.proteins`), the four relations (:mod:`.relations`),
features and positional encodings (:mod:`.encodings`), the network (:mod:`.model`) and training
(:mod:`.train`, entry points :func:`prepare_graph` and :func:`train_scmoformer`)."""

from .proteins import match_adt_names, normalise_adt_name, protein_genes, read_adt_table
from .relations import Relations, build_relations
from .train import (
    METHODS,
    PreparedGraph,
    ScMoFormerResult,
    ScMoFormerSettings,
    load_settings,
    prepare_graph,
    train_scmoformer,
)

__all__ = [
    "METHODS", "PreparedGraph", "Relations", "ScMoFormerResult", "ScMoFormerSettings", "build_relations",
    "load_settings", "match_adt_names", "normalise_adt_name", "prepare_graph", "protein_genes", "read_adt_table",
    "train_scmoformer",
]
