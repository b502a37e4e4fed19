"""CellPLM (Wen 2024, chapter 5; spec dissertation_models.md §5): a cell language model whose tokens are the
cells of one sample, built and pre-trained from scratch (the released weights and pre-training code are not
available), and its downstream tasks.

Modules: :mod:`.settings` (dataclasses over ``workflow/schemas/config/cellplm.schema.yaml``), :mod:`.vocab`
(gene vocabulary, measured genes), :mod:`.sentences` (datasets → sentences → tensors), :mod:`.embedder`,
:mod:`.latent` (GMVAE), :mod:`.decoder` (batch-aware NB), :mod:`.objective` (NB loss), :mod:`.masking`,
:mod:`.model` (the model, save/load), :mod:`.pretrain` (resumable pre-training), :mod:`.finetune` (heads,
fine-tuning loop), :mod:`.tasks` (denoising, annotation, embedding, spatial imputation), :mod:`.baselines`,
:mod:`.simulate` (synthetic counts).

Deviations from the reference, each documented in its module: the 2-D PE is on by default (the released code
zeroes it; ``positional_encoding: none`` reproduces that); inference takes the hard cluster without Gumbel
noise (deterministic embeddings); unknown decoder covariates use the mean embedding row (the reference sums
the rows); fine-tuning uses no drop-node or sentence cap; spatial imputation fine-tunes the NB decoder on the
masked spatial counts alone (no scRNA-seq reference).
"""

from .model import CellPLM, build_model, load_model, parameter_count, save_model
from .pretrain import PretrainResult, pretrain
from .settings import CellPLMSettings, cellplm_settings
from .tasks import (
    annotate_cellplm,
    annotation_split,
    denoise_cellplm,
    denoising_split,
    embed_cells,
    fresh_model,
    impute_spatial,
    impute_spatial_input,
    restrict_to_vocabulary,
)
from .vocab import GeneVocabulary, build_vocabulary, read_vocabulary

__all__ = [
    "CellPLM", "CellPLMSettings", "GeneVocabulary", "PretrainResult", "annotate_cellplm", "annotation_split",
    "build_model", "build_vocabulary", "cellplm_settings", "denoise_cellplm", "denoising_split", "embed_cells",
    "fresh_model", "impute_spatial", "impute_spatial_input", "load_model", "parameter_count", "pretrain",
    "read_vocabulary", "restrict_to_vocabulary", "save_model",
]
