"""CellPLM downstream tasks (spec §5.3): each function returns what the pipeline scores.

* zero-shot cell embedding: :func:`embed_cells` → (n, d_z) latent means;
* denoising: :func:`denoising_split` (DeepImpute hold-out) then :func:`denoise_cellplm` (fine-tuned, or
  zero-shot with ``fine_tune=False``) → log-normalised predictions at the held-out entries; baselines in
  :mod:`.baselines`; scores with :func:`genegraph.evaluate.denoising.denoising_metrics`;
* cell-type annotation: :func:`annotation_split` then :func:`annotate_cellplm` → a label per cell;
* spatial imputation: :func:`impute_spatial` → (n, g) log1p(proportion × 250) from a masked count matrix,
  the form of SpaFormer's methods, so both are scored by the same code.

"Pre-trained" means passing a model from :func:`.pretrain.pretrain`; "from scratch" means passing
:func:`fresh_model` (same architecture and vocabulary, new weights) with the same fine-tuning budget. Task
functions fine-tune a copy: the model passed in is never changed.

Deviations: fine-tuning uses no drop-node and no sentence cap (the reference caps at 70,000 cells; the
option ``cells_per_step`` splits sentences into chunks for more optimizer steps on small budgets); the
plateau factor 0.5 is ours (unrecorded). For spatial imputation the reference fine-tunes an imputation head
with a scRNA-seq reference; here the NB decoder is fine-tuned on the masked spatial counts alone (the SpaFormer
protocol has no reference data).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ...errors import DataError
from .baselines import highly_variable
from .finetune import AnnotationHead, DenoisingHead, fine_tune
from .masking import entry_keep, mask_entries
from .model import CellPLM, build_model
from .objective import reconstruction_loss
from .sentences import (
    Covariates,
    Sentence,
    concat_cells,
    dataset_sentences,
    dense_counts,
    sentence_input,
    subset_sentence,
)
from .settings import (
    AnnotationSettings,
    DenoisingSettings,
    ImputationSettings,
    ModelSettings,
)
from .vocab import GeneVocabulary, count_matrix, measured_genes

# --- shared ----------------------------------------------------------------------------------------------


def fresh_model(settings: ModelSettings, vocab: GeneVocabulary, seed: int = 0) -> CellPLM:
    """An untrained model for the "from scratch" arm (no decoder covariates: every cell uses the mean row)."""
    return build_model(settings, vocab, Covariates((), ()), seed)


def restrict_to_vocabulary(adata: ad.AnnData, vocab: GeneVocabulary) -> ad.AnnData:
    """A copy of ``adata`` keeping the genes in ``vocab`` (what a model can read and predict)."""
    cols, _ = measured_genes(adata.var_names, vocab)
    return adata[:, cols].copy()


def _all_sentences(model: CellPLM, adata: ad.AnnData, dataset: str | None, batch_key: str | None,
                   spatial_key: str | None, layer: str | None = None) -> list[Sentence]:
    cols, _ = measured_genes(adata.var_names, model.vocab)
    if len(cols) != adata.n_vars:
        raise DataError(f"{adata.n_vars - len(cols)} of {adata.n_vars} genes are not in the model's vocabulary; "
                        "call restrict_to_vocabulary first")
    return dataset_sentences(dataset or "", adata, model.vocab, model.covariates, batch_key, spatial_key, layer)


def _observed(adata: ad.AnnData, counts: sp.spmatrix, batch_key: str | None, spatial_key: str | None) -> ad.AnnData:
    """An AnnData with ``counts`` as X and the batch labels / coordinates of ``adata``."""
    out = ad.AnnData(sp.csr_matrix(counts, dtype=np.float32), obs=pd.DataFrame(index=adata.obs_names.copy()),
                     var=pd.DataFrame(index=adata.var_names.copy()))
    if batch_key is not None and batch_key in adata.obs:
        out.obs[batch_key] = adata.obs[batch_key].to_numpy()
    if spatial_key is not None and spatial_key in adata.obsm:
        out.obsm[spatial_key] = np.asarray(adata.obsm[spatial_key])
    return out


def _row_lookup(sentences: Sequence[Sentence], n_obs: int) -> tuple[np.ndarray, np.ndarray]:
    """For every source row: its sentence and its position in that sentence."""
    which, pos = np.full(n_obs, -1), np.full(n_obs, -1)
    for i, s in enumerate(sentences):
        which[s.cells], pos[s.cells] = i, np.arange(s.n_cells)
    return which, pos


def _steps(sentences: Sequence[Sentence], cells_per_step: int, rng: np.random.Generator) -> Iterator[Sentence]:
    """The training units of one epoch: sentences in random order, each whole (``cells_per_step`` 0) or split
    into random chunks of at most ``cells_per_step`` cells."""
    for i in rng.permutation(len(sentences)):
        s = sentences[i]
        if cells_per_step <= 0 or s.n_cells <= cells_per_step:
            yield s
            continue
        for part in np.array_split(rng.permutation(s.n_cells), -(-s.n_cells // cells_per_step)):
            yield subset_sentence(s, np.sort(part))


def _masked_input(sentence: Sentence, cell_rate: float, gene_rate: float, rng: np.random.Generator,
                  device: torch.device):
    n, m = sentence.counts.shape
    _, mask = mask_entries(n, m, cell_rate, gene_rate, rng)
    keep = entry_keep(sentence.counts.indptr, sentence.counts.indices, mask)
    return sentence_input(sentence, device, keep=keep), torch.from_numpy(mask).to(device)


def _lognorm_dense(counts: torch.Tensor, target_sum: float) -> torch.Tensor:
    return torch.log1p(counts / counts.sum(1, keepdim=True).clamp_min(1.0) * target_sum)


def _nb_lognorm(model: CellPLM, sentence: Sentence, device: torch.device, target_sum: float) -> torch.Tensor:
    """(n, m) log1p(NB mean proportion × target_sum) of an unmasked eval pass."""
    out = model(sentence_input(sentence, device))
    return torch.log1p(out.mean / out.mean.sum(1, keepdim=True) * target_sum)


# --- zero-shot embedding ----------------------------------------------------------------------------------


@torch.no_grad()
def embed_cells(model: CellPLM, adata: ad.AnnData, dataset: str | None = None, batch_key: str | None = "batch",
                spatial_key: str | None = "spatial", layer: str | None = None,
                device: torch.device | str = "cpu") -> np.ndarray:
    """(n, latent_dim) float32 cell embeddings (GMVAE means with the hard cluster), cells in ``adata`` order.

    Each batch of ``obs[batch_key]`` (or the whole dataset) is one sentence; genes outside the vocabulary are
    ignored. Puts ``model`` in eval mode."""
    device = torch.device(device)
    model.eval().to(device)
    sentences = dataset_sentences(dataset or "", adata, model.vocab, model.covariates, batch_key, spatial_key, layer)
    values = [model.latent(model.encode(sentence_input(s, device))).z.cpu().numpy() for s in sentences]
    return concat_cells(sentences, adata.n_obs, values)


# --- denoising -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOut:
    """Held-out entries: ``rows``, ``cols`` (int64) and their ``counts``."""

    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class DenoisingSplit:
    """``observed`` (n × g CSR counts without the held-out entries), ``library`` (n,) sizes before hold-out,
    the ``test`` and ``val`` entries."""

    observed: sp.csr_matrix
    library: np.ndarray
    test: HeldOut
    val: HeldOut

    def truth(self, entries: HeldOut, target_sum: float) -> np.ndarray:
        """log1p(count / library × target_sum) at ``entries`` (the scale every method is scored on)."""
        return np.log1p(entries.counts / self.library[entries.rows] * target_sum)


def denoising_split(counts: sp.spmatrix, settings: DenoisingSettings, seed: int) -> DenoisingSplit:
    """DeepImpute hold-out: in each cell with ≥ ``min_genes`` non-zero genes, draw round(f · nnz) non-zero
    entries for the test and round(f_val · nnz) for validation, without replacement, with probability
    ∝ exp(−count / exp_scale) (low counts are likelier to drop out), then remove them from the input."""
    x = sp.csr_matrix(counts, dtype=np.float64)
    x.sort_indices()
    rng = np.random.default_rng(seed)
    test_idx, val_idx = [], []
    for i in range(x.shape[0]):
        lo, hi = x.indptr[i], x.indptr[i + 1]
        nnz = hi - lo
        if nnz < settings.min_genes:
            continue
        n_test = int(np.floor(settings.holdout_fraction * nnz + 0.5))
        n_val = int(np.floor(settings.val_fraction * nnz + 0.5))
        w = np.exp(-x.data[lo:hi] / settings.exp_scale)
        pick = rng.choice(nnz, size=n_test + n_val, replace=False, p=w / w.sum()) + lo
        test_idx.append(pick[:n_test])
        val_idx.append(pick[n_test:])
    if not test_idx:
        raise DataError(f"denoising: no cell has {settings.min_genes} or more expressed genes")
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))

    def entries(idx: list[np.ndarray]) -> HeldOut:
        k = np.sort(np.concatenate(idx))
        return HeldOut(rows[k].astype(np.int64), x.indices[k].astype(np.int64), x.data[k].copy())

    test, val = entries(test_idx), entries(val_idx)
    obs = x.copy()
    obs.data[np.concatenate(test_idx + val_idx)] = 0
    obs.eliminate_zeros()
    return DenoisingSplit(observed=obs.astype(np.float32), library=np.asarray(x.sum(axis=1)).ravel(), test=test,
                          val=val)


@dataclass
class DenoisingPrediction:
    """Log-normalised predictions at the test and validation entries; the fine-tuning history (None zero-shot)."""

    test: np.ndarray
    val: np.ndarray
    history: pd.DataFrame | None


def denoise_cellplm(model: CellPLM, adata: ad.AnnData, split: DenoisingSplit, settings: DenoisingSettings,
                    fine_tune_model: bool = True, device: torch.device | str = "cpu", seed: int = 0,
                    dataset: str | None = None, batch_key: str | None = "batch",
                    spatial_key: str | None = "spatial") -> DenoisingPrediction:
    """CellPLM denoising of ``split`` (made from ``adata``'s counts; every gene must be in the vocabulary).

    ``fine_tune_model`` False is zero-shot: the NB decoder's means of the observed input. Otherwise a copy of
    ``model`` is fine-tuned on the observed counts with ``settings.head`` ("mse": a new denoising head, the
    reference's recipe; "nb": the pre-training objective) and early stopping on the validation entries."""
    device = torch.device(device)
    model = copy.deepcopy(model).to(device)
    sentences = _all_sentences(model, _observed(adata, split.observed, batch_key, spatial_key), dataset, batch_key,
                               spatial_key)
    which, pos = _row_lookup(sentences, adata.n_obs)
    ts = settings.target_sum
    head = None
    if fine_tune_model and settings.head == "mse":
        s = model.settings
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = DenoisingHead(s.latent_dim, s.decoder_hidden, len(model.vocab), s.dropout).to(device)

    def predict(entries: HeldOut) -> np.ndarray:
        out = np.zeros(len(entries.rows))
        for i, s in enumerate(sentences):
            sel = np.flatnonzero(which[entries.rows] == i)
            if not sel.size:
                continue
            if head is None:
                pred = _nb_lognorm(model, s, device, ts)
            else:
                pred = head(model(sentence_input(s, device)).latent.z, torch.as_tensor(s.genes, device=device))
            out[sel] = pred[torch.as_tensor(pos[entries.rows[sel]]), torch.as_tensor(entries.cols[sel])].cpu().numpy()
        return out

    val_truth = split.truth(split.val, ts)

    def validate() -> float:
        return float(np.sqrt(np.mean((predict(split.val) - val_truth) ** 2))) if val_truth.size else 0.0

    def epoch_losses(rng: np.random.Generator) -> Iterator[torch.Tensor]:
        for s in _steps(sentences, settings.cells_per_step, rng):
            inp, mask = _masked_input(s, settings.mask_cell_rate, settings.mask_gene_rate, rng, device)
            out = model(inp)
            counts = dense_counts(s.counts, device)
            if head is None:
                recon, _ = reconstruction_loss(counts, out.mean, out.disp, mask, dae=True)
                yield recon + out.latent.loss
            else:
                pred, y, m = head(out.latent.z, inp.genes), _lognorm_dense(counts, ts), mask.float()
                yield F.mse_loss(pred * m, y * m) + F.mse_loss(pred, y)

    history = None
    if fine_tune_model:
        trainable = torch.nn.ModuleList([model] + ([head] if head is not None else []))
        history = fine_tune(trainable, epoch_losses, validate, epochs=settings.epochs, lr=settings.lr,
                            weight_decay=settings.weight_decay, warmup_epochs=settings.warmup_epochs,
                            lr_patience=settings.lr_patience, patience=settings.patience, seed=seed, device=device,
                            what="denoising")
    model.eval()
    with torch.no_grad():
        return DenoisingPrediction(test=predict(split.test), val=predict(split.val), history=history)


# --- annotation ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotationSplit:
    """Row positions of the training, validation and test cells."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def annotation_split(labels: Sequence[str], test_fraction: float, val_fraction: float, seed: int) -> AnnotationSplit:
    """Stratified, seeded split: per label, round(test_fraction · n) cells to test, then round(val_fraction ·
    rest) to validation, the others to training (a label with one cell stays in training)."""
    y = np.asarray([str(v) for v in labels])
    if y.size == 0:
        raise DataError("annotation: no labelled cells")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in sorted(set(y)):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = int(np.floor(test_fraction * len(idx) + 0.5)) if len(idx) > 1 else 0
        rest = idx[n_test:]
        n_val = int(np.floor(val_fraction * len(rest) + 0.5)) if len(rest) > 1 else 0
        parts["test"].append(idx[:n_test])
        parts["val"].append(rest[:n_val])
        parts["train"].append(rest[n_val:])
    out = {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}
    if not out["val"].size:
        raise DataError("annotation: the validation split is empty (too few cells per label)")
    return AnnotationSplit(**out)


@dataclass
class AnnotationPrediction:
    """Predicted label of every cell (in ``adata`` order) and the fine-tuning history."""

    labels: np.ndarray
    history: pd.DataFrame


def annotate_cellplm(model: CellPLM, adata: ad.AnnData, labels: Sequence[str], split: AnnotationSplit,
                     settings: AnnotationSettings, device: torch.device | str = "cpu", seed: int = 0,
                     dataset: str | None = None, batch_key: str | None = "batch",
                     spatial_key: str | None = "spatial") -> AnnotationPrediction:
    """Fine-tune a copy of ``model`` with an :class:`~.finetune.AnnotationHead` on the training cells'
    labels (cross-entropy; early stopping on the validation cells' cross-entropy) and label every cell.

    Input genes: the ``settings.n_top_genes`` most variable vocabulary genes of ``adata``. Every cell is
    encoded in its sentence (attention sees unlabelled cells too, as in the reference), the loss uses only
    the training cells."""
    device = torch.device(device)
    y = np.asarray([str(v) for v in labels])
    if y.size != adata.n_obs:
        raise DataError(f"annotation: {y.size} labels for {adata.n_obs} cells")
    classes = np.asarray(sorted(set(y[split.train])))
    code = {c: i for i, c in enumerate(classes)}
    target = torch.as_tensor([code.get(v, -100) for v in y], device=device)
    model = copy.deepcopy(model).to(device)
    sub = restrict_to_vocabulary(adata, model.vocab)
    sub = sub[:, highly_variable(count_matrix(sub), settings.n_top_genes)].copy()
    sentences = _all_sentences(model, sub, dataset, batch_key, spatial_key)
    s = model.settings
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = AnnotationHead(s.hidden, s.latent_dim, len(classes), settings.dropout).to(device)
    train_mask = np.zeros(adata.n_obs, dtype=bool)
    train_mask[split.train] = True

    def logits(sentence: Sentence) -> torch.Tensor:
        return head(model.encode(sentence_input(sentence, device)))

    def epoch_losses(rng: np.random.Generator) -> Iterator[torch.Tensor]:
        for s in _steps(sentences, settings.cells_per_step, rng):
            sel = torch.as_tensor(np.flatnonzero(train_mask[s.cells]), device=device)
            if sel.numel():
                yield F.cross_entropy(logits(s)[sel], target[torch.as_tensor(s.cells, device=device)][sel])

    def validate() -> float:
        out = torch.as_tensor(concat_cells(sentences, adata.n_obs, [logits(x).cpu().numpy() for x in sentences]))
        val = torch.as_tensor(split.val)
        return float(F.cross_entropy(out[val], target.cpu()[val], ignore_index=-100))

    history = fine_tune(torch.nn.ModuleList([model, head]), epoch_losses, validate, epochs=settings.epochs,
                        lr=settings.lr, weight_decay=settings.weight_decay, warmup_epochs=0,
                        lr_patience=settings.lr_patience, patience=settings.patience, seed=seed, device=device,
                        what="annotation")
    with torch.no_grad():
        scores = concat_cells(sentences, adata.n_obs, [logits(x).cpu().numpy() for x in sentences])
    return AnnotationPrediction(labels=classes[scores.argmax(1)], history=history)


# --- spatial imputation -----------------------------------------------------------------------------------


def _uniform_entries(shape: tuple[int, int], fraction: float, rng: np.random.Generator,
                     chunk_entries: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the entries of an n × g matrix each drawn with probability ``fraction`` (zeros
    included), generated in row chunks so that no n × g array is allocated."""
    n, g = shape
    step = max(1, chunk_entries // max(g, 1))
    rows, cols = [], []
    for start in range(0, n, step):
        r, c = np.nonzero(rng.random((min(step, n - start), g)) < fraction)
        rows.append(r + start)
        cols.append(c)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


@dataclass
class ImputationPrediction:
    """(n, g) float32 log1p(predicted proportion × target_sum) and the fine-tuning history (None zero-shot)."""

    values: np.ndarray
    history: pd.DataFrame | None


def impute_spatial(model: CellPLM, counts: sp.spmatrix, genes: Sequence[str], settings: ImputationSettings,
                   coords: np.ndarray | None = None, batches: Sequence[str] | None = None,
                   fine_tune_model: bool = True, device: torch.device | str = "cpu",
                   seed: int = 0) -> ImputationPrediction:
    """Impute a masked spatial count matrix (SpaFormer protocol: held-out entries are zeros in ``counts``).

    ``counts``: n × g raw counts with the evaluation mask applied; ``genes``: g names (all in the model's
    vocabulary); ``coords``: n × 2 positions (used by the 2-D PE); ``batches``: FOV / section of each cell
    (one sentence each). A copy of ``model`` is fine-tuned with the NB objective (masking ``mask_cell_rate``
    × ``mask_gene_rate``) with early stopping on ``val_fraction`` of the entries (zeros included) hidden from
    its input; the returned values come from the full masked matrix, as log1p(μ / Σμ × target_sum)."""
    device = torch.device(device)
    x = sp.csr_matrix(counts, dtype=np.float32)
    if x.shape[1] != len(genes):
        raise DataError(f"imputation: {x.shape[1]} columns but {len(genes)} gene names")
    adata = ad.AnnData(x, var=pd.DataFrame(index=[str(g) for g in genes]))
    adata.obs_names = [str(i) for i in range(x.shape[0])]
    if batches is not None:
        adata.obs["batch"] = [str(b) for b in batches]
    if coords is not None:
        adata.obsm["spatial"] = np.asarray(coords, dtype=np.float64)
    model = copy.deepcopy(model).to(device)
    full = _all_sentences(model, adata, None, "batch", "spatial")
    ts = settings.target_sum
    history = None
    if fine_tune_model:
        vr, vc = _uniform_entries(x.shape, settings.val_fraction, np.random.default_rng(seed))
        hidden = sp.csr_matrix((np.ones(len(vr), dtype=np.float32), (vr, vc)), shape=x.shape)
        train_x = (x - x.multiply(hidden)).tocsr()
        train_x.eliminate_zeros()
        train = _all_sentences(model, _observed(adata, train_x, "batch", "spatial"), None, "batch", "spatial")
        lib = np.asarray(x.sum(axis=1)).ravel()
        truth = np.log1p(np.asarray(x[vr, vc]).ravel() / np.maximum(lib[vr], 1.0) * ts)
        which, pos = _row_lookup(train, x.shape[0])

        def validate() -> float:
            pred = np.zeros(len(vr))
            for i, s in enumerate(train):
                sel = np.flatnonzero(which[vr] == i)
                values = _nb_lognorm(model, s, device, ts)
                pred[sel] = values[torch.as_tensor(pos[vr[sel]]), torch.as_tensor(vc[sel])].cpu().numpy()
            return float(np.sqrt(np.mean((pred - truth) ** 2))) if truth.size else 0.0

        def epoch_losses(rng: np.random.Generator) -> Iterator[torch.Tensor]:
            for s in _steps(train, settings.cells_per_step, rng):
                inp, mask = _masked_input(s, settings.mask_cell_rate, settings.mask_gene_rate, rng, device)
                out = model(inp)
                recon, _ = reconstruction_loss(dense_counts(s.counts, device), out.mean, out.disp, mask, True)
                yield recon + out.latent.loss

        history = fine_tune(model, epoch_losses, validate, epochs=settings.epochs, lr=settings.lr,
                            weight_decay=settings.weight_decay, warmup_epochs=settings.warmup_epochs,
                            lr_patience=settings.lr_patience, patience=settings.patience, seed=seed, device=device,
                            what="imputation")
    model.eval()
    with torch.no_grad():
        values = [_nb_lognorm(model, s, device, ts).cpu().numpy().astype(np.float32) for s in full]
    return ImputationPrediction(values=concat_cells(full, x.shape[0], values), history=history)


def impute_spatial_input(model: CellPLM, inp, genes: Sequence[str], settings: ImputationSettings,
                         fine_tune_model: bool = True, device: torch.device | str = "cpu",
                         seed: int = 0) -> ImputationPrediction:
    """:func:`impute_spatial` on the SpaFormer stage's masked input (``genegraph.models.spaformer.data.SpatialInput``:
    ``counts``, ``sections``, ``section_names``, ``positions``; read by attribute), so CellPLM's ``values`` and
    SpaFormer's ``Imputation.expression`` are scored by the same ``genegraph.evaluate.imputation`` code."""
    batches = np.empty(inp.counts.shape[0], dtype=object)
    for name, cells in zip(inp.section_names, inp.sections):
        batches[cells] = str(name)
    if any(b is None for b in batches):
        raise DataError("imputation: the sections of the spatial input do not cover every cell")
    return impute_spatial(model, inp.counts, genes, settings, coords=np.asarray(inp.positions),
                          batches=batches.tolist(), fine_tune_model=fine_tune_model, device=device, seed=seed)
