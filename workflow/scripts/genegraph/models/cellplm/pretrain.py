"""Pre-training one CellPLM across datasets, resumable from checkpoints (spec §5.2).

Each epoch visits every sentence (a dataset, or one batch of it) once in a seeded random order and takes one
AdamW step on it: cap at ``max_cells`` cells, drop-node, bi-level mask, NB reconstruction (+ masked-entry
term) + GMVAE terms. All randomness comes from one numpy Generator (order, cells, masks) and torch's global
generator (initialisation, dropout, Gumbel and Gaussian noise) seeded inside a forked RNG scope, so the
caller's RNG state is untouched and a run repeats bit for bit on CPU.

Checkpoints (model, optimizer, both RNG states, loss history) are written every ``checkpoint_every`` epochs
and after the last, atomically (temporary file + rename) as ``epoch_<E>.ckpt``; the two newest are kept.
Each file starts with a header holding the payload's length and SHA-256, so a truncated or corrupted file is
detected: it is skipped with a WARNING and the previous checkpoint (or a fresh start) is used instead. A
checkpoint written for other data or settings is skipped the same way.

Deviations: the authors' pre-training code is unreleased (CellPLM#2); this loop (one AdamW step per sentence,
sentences in a seeded random order, no validation sentences, no learning-rate schedule, single process) is
ours, built from the released config (lr 2e-4, weight decay 1e-8, 200 epochs, max 4000 cells).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from ...errors import DataError, for_dataset
from .masking import bilevel_mask, entry_keep, keep_cells
from .model import CellPLM, _atomic_bytes, build_model
from .objective import reconstruction_loss
from .sentences import (
    Sentence,
    build_covariates,
    dataset_sentences,
    dense_counts,
    sentence_input,
)
from .settings import CellPLMSettings, MaskSettings
from .vocab import GeneVocabulary

log = logging.getLogger(__name__)

MAGIC = b"GENEGRAPH-CELLPLM-CHECKPOINT-1\n"
LOSS_COLUMNS = ("loss", "nb", "nb_masked", "gauss", "cluster")
_CKPT = re.compile(r"^epoch_(\d+)\.ckpt$")


class CorruptCheckpoint(DataError):
    """A checkpoint file that is truncated, altered or unreadable."""


@dataclass
class PretrainResult:
    """The trained model (eval mode), per-epoch mean losses and seconds, and where training resumed from."""

    model: CellPLM
    history: pd.DataFrame
    resumed_from_epoch: int
    train_seconds: float


# --- checkpoint files ----------------------------------------------------------------------------------


def write_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically, behind a length+SHA-256 header."""
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    payload = buf.getvalue()
    header = MAGIC + f"{len(payload):020d} {hashlib.sha256(payload).hexdigest()}\n".encode()
    _atomic_bytes(Path(path), header + payload)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state in a file of :func:`write_checkpoint`; :class:`CorruptCheckpoint` when it fails any check."""
    raw = Path(path).read_bytes()
    if not raw.startswith(MAGIC):
        raise CorruptCheckpoint(f"{path}: not a CellPLM checkpoint (bad header)")
    head_end = raw.find(b"\n", len(MAGIC))
    try:
        length_s, digest = raw[len(MAGIC):head_end].decode().split(" ")
        length = int(length_s)
    except ValueError:
        raise CorruptCheckpoint(f"{path}: unreadable checkpoint header") from None
    payload = raw[head_end + 1:]
    if len(payload) != length:
        raise CorruptCheckpoint(f"{path}: truncated ({len(payload)} of {length} payload bytes)")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptCheckpoint(f"{path}: checksum mismatch (the file was altered or partly written)")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise CorruptCheckpoint(f"{path}: unreadable payload ({err})") from None


def checkpoint_files(directory: str | Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the checkpoints in ``directory``, newest first."""
    d = Path(directory)
    found = [(int(m.group(1)), p) for p in d.glob("epoch_*.ckpt") if (m := _CKPT.match(p.name))] if d.is_dir() else []
    return sorted(found, reverse=True)


def latest_valid_checkpoint(directory: str | Path, fingerprint: str) -> dict[str, Any] | None:
    """The newest readable checkpoint written for ``fingerprint``; each one skipped is logged as a WARNING."""
    files = checkpoint_files(directory)
    for _, path in files:
        try:
            state = read_checkpoint(path)
        except (CorruptCheckpoint, OSError) as err:
            log.warning("skipping checkpoint %s: %s", path, err)
            continue
        if state.get("fingerprint") != fingerprint:
            log.warning("skipping checkpoint %s: written for other data or settings", path)
            continue
        return state
    if files:
        log.warning("no usable checkpoint in %s: starting over", directory)
    return None


def _prune(directory: Path, keep: int = 2) -> None:
    for _, path in checkpoint_files(directory)[keep:]:
        path.unlink(missing_ok=True)


# --- one masked step -----------------------------------------------------------------------------------


def masked_loss(model: CellPLM, sentence: Sentence, mask: MaskSettings, dae: bool, rng: np.random.Generator,
                device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one corrupted pass over ``sentence`` (cap, drop-node, bi-level mask); parts as floats."""
    cells = keep_cells(sentence.n_cells, mask.max_cells, mask.drop_cell_rate, rng)
    counts = sentence.counts[cells]
    _, entry_mask = bilevel_mask(len(cells), counts.shape[1], mask.cell_rate, mask.beta_rate, mask.beta_a,
                                 mask.beta_b, mask.max_gene_rate, mask.gene_rate, rng)
    inp = sentence_input(sentence, device, cells, entry_keep(counts.indptr, counts.indices, entry_mask), counts)
    out = model(inp)
    recon, parts = reconstruction_loss(dense_counts(counts, device), out.mean, out.disp,
                                       torch.from_numpy(entry_mask).to(device), dae)
    loss = recon + out.latent.loss
    parts.update(loss=float(loss.detach()), gauss=float(out.latent.gauss_term.detach()),
                 cluster=float(out.latent.cluster_term.detach()))
    return loss, parts


# --- pre-training --------------------------------------------------------------------------------------


def _fingerprint(settings: CellPLMSettings, vocab: GeneVocabulary, sentences: list[Sentence]) -> str:
    h = hashlib.sha256()
    pre = {k: v for k, v in asdict(settings.pretrain).items() if k not in ("epochs", "checkpoint_every", "log_every")}
    h.update(json.dumps([asdict(settings.model), asdict(settings.masking), pre], sort_keys=True).encode())
    h.update("\n".join(vocab.genes).encode())
    for s in sentences:
        h.update(f"{s.name}|{s.counts.shape}|{s.dataset}|{s.batch}".encode())
        for arr in (s.counts.indptr, s.counts.indices, s.counts.data, s.genes):
            h.update(np.ascontiguousarray(arr).tobytes())
        if s.coords is not None:
            h.update(np.ascontiguousarray(s.coords).tobytes())
    return h.hexdigest()


def _torch_rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_torch_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def pretrain(datasets: Mapping[str, ad.AnnData], vocab: GeneVocabulary, settings: CellPLMSettings,
             device: torch.device | str = "cpu", checkpoint_dir: str | Path | None = None,
             batch_key: str | None = "batch", spatial_key: str | None = "spatial",
             layer: str | None = None) -> PretrainResult:
    """Pre-train one CellPLM on every dataset of ``datasets`` (id → AnnData of raw counts, cells × genes, with
    optional ``obs[batch_key]`` and ``obsm[spatial_key]``) over the gene vocabulary ``vocab``.

    With ``checkpoint_dir`` the run resumes from the newest valid checkpoint there and writes new ones; a
    resumed run ends with exactly the weights of an uninterrupted one."""
    device = torch.device(device)
    if not datasets:
        raise DataError("pre-training needs at least one dataset")
    covariates = build_covariates(datasets, batch_key)
    sentences: list[Sentence] = []
    for name, adata in datasets.items():
        with for_dataset(name):
            sentences += dataset_sentences(name, adata, vocab, covariates, batch_key, spatial_key, layer)
    p = settings.pretrain
    fingerprint = _fingerprint(settings, vocab, sentences)
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    log.info("pre-training CellPLM: %d datasets, %d sentences, %d cells, %d genes in the vocabulary",
             len(datasets), len(sentences), sum(s.n_cells for s in sentences), len(vocab))
    model = build_model(settings.model, vocab, covariates, seed=p.seed).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    rng = np.random.default_rng(p.seed)
    cuda = [device.index or 0] if device.type == "cuda" else []
    history: list[dict[str, float]] = []
    start, elapsed = 0, 0.0
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(p.seed)
        state = latest_valid_checkpoint(ckdir, fingerprint) if ckdir is not None else None
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            rng.bit_generator.state = json.loads(state["numpy_rng"])
            _set_torch_rng_state(state["torch_rng"], device)
            history, start, elapsed = json.loads(state["history"]), int(state["epoch"]), float(state["seconds"])
            log.info("resuming pre-training after epoch %d (%s)", start, ckdir)
        t0 = time.perf_counter()
        for epoch in range(start + 1, p.epochs + 1):
            model.train()
            sums = dict.fromkeys(LOSS_COLUMNS, 0.0)
            for i in rng.permutation(len(sentences)):
                optimizer.zero_grad(set_to_none=True)
                loss, parts = masked_loss(model, sentences[i], settings.masking, p.dae, rng, device)
                if not torch.isfinite(loss):
                    raise DataError(f"pre-training diverged at epoch {epoch} on {sentences[i].name} (loss {loss})")
                loss.backward()
                optimizer.step()
                for k in LOSS_COLUMNS:
                    sums[k] += parts[k] / len(sentences)
            seconds = elapsed + time.perf_counter() - t0
            history.append({"epoch": epoch, **sums, "seconds": seconds})
            if epoch % p.log_every == 0 or epoch == p.epochs:
                log.info("epoch %d: loss %.4f (nb %.4f, masked %.4f, gauss %.3f, cluster %.3f), %.1f s",
                         epoch, sums["loss"], sums["nb"], sums["nb_masked"], sums["gauss"], sums["cluster"], seconds)
            if ckdir is not None and (epoch % p.checkpoint_every == 0 or epoch == p.epochs):
                write_checkpoint(ckdir / f"epoch_{epoch:06d}.ckpt", {
                    "fingerprint": fingerprint, "epoch": epoch, "seconds": seconds,
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": _torch_rng_state(device),
                    "history": json.dumps(history)})
                _prune(ckdir)
        train_s = time.perf_counter() - t0
    model.eval()
    return PretrainResult(model=model, history=pd.DataFrame(history, columns=["epoch", *LOSS_COLUMNS, "seconds"]),
                          resumed_from_epoch=start, train_seconds=train_s)
