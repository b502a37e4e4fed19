"""Settings of CellPLM: one frozen dataclass per group of ``workflow/schemas/config/cellplm.schema.yaml``.

Build them with :func:`cellplm_settings` (schema defaults + overrides, validated); the dataclasses carry no
defaults of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ...config import SCHEMA_DIR, from_schema, load_schema
from ...errors import DataError

#: The schema fragment holding every default, type and description.
SCHEMA = SCHEMA_DIR / "config" / "cellplm.schema.yaml"


@dataclass(frozen=True)
class ModelSettings:
    """Architecture sizes (spec §5.2)."""

    hidden: int
    layers: int
    heads: int
    attention: str
    ffn_multiplier: int
    dropout: float
    norm: str
    norm_groups: int
    latent_dim: int
    clusters: int
    free_bits: float
    gauss_weight: float
    cluster_weight: float
    temperature: float
    decoder_hidden: int
    decoder_layers: int
    nb_hidden: int
    positional_encoding: str
    pe_grid: int
    gene_init_std: float

    def validate(self) -> None:
        if self.hidden % self.heads:
            raise DataError(f"cellplm.model: heads ({self.heads}) must divide hidden ({self.hidden})")
        if self.norm == "groupnorm":
            for key in ("hidden", "decoder_hidden"):
                if getattr(self, key) % self.norm_groups:
                    raise DataError(f"cellplm.model: norm_groups ({self.norm_groups}) must divide {key} "
                                    f"({getattr(self, key)})")
        if self.positional_encoding == "sin2d" and self.hidden % 4:
            raise DataError(f"cellplm.model: the 2-D sinusoidal PE needs hidden divisible by 4 (got {self.hidden})")


@dataclass(frozen=True)
class MaskSettings:
    """Pre-training corruption: masked cells, per-cell gene-mask rates, dropped cells, sentence cap (spec §5.2)."""

    cell_rate: float
    beta_rate: bool
    beta_a: float
    beta_b: float
    max_gene_rate: float
    gene_rate: float
    drop_cell_rate: float
    max_cells: int


@dataclass(frozen=True)
class PretrainSettings:
    """Pre-training loop."""

    epochs: int
    lr: float
    weight_decay: float
    dae: bool
    seed: int
    checkpoint_every: int
    log_every: int


@dataclass(frozen=True)
class DenoisingSettings:
    """Denoising protocol (DeepImpute hold-out) and fine-tuning."""

    holdout_fraction: float
    val_fraction: float
    min_genes: int
    exp_scale: float
    target_sum: float
    head: str
    cells_per_step: int
    mask_cell_rate: float
    mask_gene_rate: float
    epochs: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    lr_patience: int
    patience: int
    knn_neighbors: int
    knn_pcs: int

    def validate(self) -> None:
        if self.holdout_fraction + self.val_fraction >= 1:
            raise DataError("cellplm.denoising: holdout_fraction + val_fraction must be below 1")


@dataclass(frozen=True)
class AnnotationSettings:
    """Cell-type annotation split, head fine-tuning and baselines."""

    test_fraction: float
    val_fraction: float
    n_top_genes: int
    cells_per_step: int
    dropout: float
    epochs: int
    lr: float
    weight_decay: float
    lr_patience: int
    patience: int
    pca_components: int
    logistic_c: float


@dataclass(frozen=True)
class ImputationSettings:
    """Spatial-imputation fine-tuning on a masked count matrix."""

    target_sum: float
    cells_per_step: int
    mask_cell_rate: float
    mask_gene_rate: float
    val_fraction: float
    epochs: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    lr_patience: int
    patience: int


@dataclass(frozen=True)
class CellPLMSettings:
    """All CellPLM settings (the ``cellplm`` config section)."""

    model: ModelSettings
    masking: MaskSettings
    pretrain: PretrainSettings
    denoising: DenoisingSettings
    annotation: AnnotationSettings
    imputation: ImputationSettings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Keys of the config section that the rules pass apart (they must not rerun every job when changed).
RUN_KEYS = ("device", "threads", "seeds", "heldout", "tasks")


def cellplm_settings(values: Mapping[str, Any] | None = None) -> CellPLMSettings:
    """:class:`CellPLMSettings` from ``values`` (the config section, possibly partial, run keys ignored) over the
    schema defaults."""
    schema = load_schema(SCHEMA)
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in RUN_KEYS}
    values = {k: v for k, v in (values or {}).items() if k not in RUN_KEYS}
    return from_schema(CellPLMSettings, schema, values, where="cellplm")
