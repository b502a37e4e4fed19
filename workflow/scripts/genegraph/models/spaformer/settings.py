"""Settings of spatial imputation: the config section ``imputation`` (its schema fragment
``workflow/schemas/config/imputation.schema.yaml`` holds the defaults, types and descriptions) without
``evaluation``, which :mod:`genegraph.evaluate.imputation` reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...config import settings
from ...errors import DataError


@dataclass(frozen=True)
class HoldOutSettings:
    fraction: float
    seed: int


@dataclass(frozen=True)
class NormaliseSettings:
    scale: float


@dataclass(frozen=True)
class GeneSettings:
    top_n: int
    rank_by: str


@dataclass(frozen=True)
class SpatialSettings:
    section_key: str
    graph: str
    radius: float
    k: int


@dataclass(frozen=True)
class ModelSettings:
    encoder: str
    pe: str
    hidden: int
    latent: int
    layers: int
    heads: int
    ffn: int
    dropout: float
    n_features: int
    redraw_interval: int
    lap_k: int
    sinusoid_grid: int
    cond_heads: int

    def validate(self) -> None:
        if self.encoder != "mlp" and self.hidden % self.heads:
            raise DataError(f"model.hidden ({self.hidden}) must be divisible by model.heads ({self.heads})")
        if self.pe == "sinusoid" and self.hidden % 4:
            raise DataError(f"model.hidden ({self.hidden}) must be divisible by 4 for the sinusoid encoding")
        if self.pe == "cond" and self.hidden % self.cond_heads:
            raise DataError(f"model.hidden ({self.hidden}) must be divisible by model.cond_heads ({self.cond_heads})")


@dataclass(frozen=True)
class MaskingSettings:
    cell_rate: float
    feature_rate: float
    drop_node_rate: float
    loss_on: str

    def validate(self) -> None:
        if self.loss_on == "masked_entries" and self.feature_rate == 0:
            raise DataError("masking.loss_on is masked_entries but masking.feature_rate is 0: nothing to learn from")


@dataclass(frozen=True)
class TrainSettings:
    lr: float
    weight_decay: float
    grad_clip: float
    max_epochs: int
    patience: int
    min_epochs: int
    validation: str
    validation_fraction: float
    cosine_schedule: bool
    log_every: int


@dataclass(frozen=True)
class KnnSmoothSettings:
    k: int
    include_self: bool


@dataclass(frozen=True)
class ImputationSettings:
    mask: HoldOutSettings
    normalise: NormaliseSettings
    genes: GeneSettings
    spatial: SpatialSettings
    model: ModelSettings
    masking: MaskingSettings
    train: TrainSettings
    knn_smooth: KnnSmoothSettings


#: Keys of the config section ``imputation`` that :class:`ImputationSettings` does not carry.
RUN_KEYS = ("device", "threads", "evaluation")


def imputation_settings(values: Mapping[str, Any] | None = None) -> ImputationSettings:
    """Settings from (part of) the config section ``imputation``, over the schema's defaults; its
    ``evaluation`` part, if given, is left to :func:`genegraph.evaluate.imputation.evaluation_settings`."""
    values = {k: v for k, v in (values or {}).items() if k not in RUN_KEYS}
    return settings(ImputationSettings, "imputation", values, omit=RUN_KEYS)
