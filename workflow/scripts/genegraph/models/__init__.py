"""MuSe-GNN: model (:mod:`.musegnn`), losses (:mod:`.losses`), gene correspondences between graphs
(:mod:`.pairs`) and the training stage (:mod:`.train`, entry point :func:`train_musegnn`)."""

from .train import TrainConfig, train_musegnn

__all__ = ["TrainConfig", "train_musegnn"]
