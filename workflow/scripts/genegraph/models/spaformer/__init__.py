"""SpaFormer: spatial imputation with a bi-level masked transformer over the cells of a section (spec §4;
Wen 2024, chapter 4; reference code wehos/CellT).

Modules: ``settings`` (dataclasses over ``workflow/schemas/config/imputation.schema.yaml``), ``holdout``
(the evaluation mask), ``data`` (normalisation, sections, spatial graphs), ``positional`` (PEs),
``masking`` (bi-level masking), ``model``, ``train``, ``baselines`` (raw, knn_smooth), ``run`` (entry
points).

Entry points: :func:`prepare` (gene selection, the hold-out, the masked input), :func:`impute` (one method on
the masked input) and :func:`impute_adata` (impute a whole dataset for use); the scored benchmark is in
:mod:`genegraph.evaluate.imputation`. Gene selection (``genes.top_n``) runs on
the full counts before the hold-out, as the reference's gene filtering does.

Note on small data: ``train.patience`` counts epochs and an epoch is one step per training section, so with
one to four sections (spot-level ST data) the default patience of 10 is 10-30 optimiser steps, and training
can stop on the early plateau where the model predicts per-gene means. For such data raise ``patience`` and
``min_epochs`` (e.g. 100); CosMx runs with tens of FOVs per dataset do not need it.

Deviations from the reference:

* Validation: the reference validates on the last FOV, which it also trains on, with a new random mask at
  each epoch (and prints the test RMSE on the held-out entries every epoch). Here the last section is held
  back from training when there are two or more sections, with one fixed seeded mask, and the RMSE is taken
  on the dropped entries; with one section a random 10 % of all entries is hidden for validation instead.
  The best state is chosen among epochs >= 10 only; the test hold-out is never looked at during training.
* Conditional PE (the dissertation's default, absent from the public code) is one PyG ``GATConv`` layer on
  the embedded expression over the spatial graph, added to the token.
* The reference embeds ``norm0(dropout(emb(x) + pe))``; here LayerNorm comes before dropout, as the spec
  writes it. Its FFN has a second GELU after the output projection; here the FFN is Linear-GELU-Linear.
* The reference's validation and the training step pick the masked cells as int(theta n); here at least one.
  If drop-node would remove every masked cell of a step, no cell is dropped at that step.
* The 2-D sinusoid uses a square grid (100 x 100) rather than the reference's 110 x 100 lookup table.
* scVI, DCA and MAGIC (baselines of Table 4.2) are not installed; the baselines are raw and knn_smooth.
* The VAE and ZINB decoder variants of the reference framework are not implemented (the ablation of
  Fig. 4.5 found the masked AE with the MLP decoder best).
"""

from .data import SpatialInput, spatial_input
from .holdout import HeldOut, hold_out, mask_adata, read_heldout
from .run import METHODS, Imputation, check_counts, impute, impute_adata, prepare
from .settings import ImputationSettings, imputation_settings

__all__ = [
    "METHODS",
    "HeldOut",
    "Imputation",
    "ImputationSettings",
    "SpatialInput",
    "check_counts",
    "hold_out",
    "mask_adata",
    "read_heldout",
    "imputation_settings",
    "impute",
    "impute_adata",
    "prepare",
    "spatial_input",
]
