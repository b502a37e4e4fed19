"""Training and inference of SpaFormer on a :class:`~.data.SpatialInput`.

One AdamW step per training section per epoch (sections in a seeded random order), bi-level masking at
every step, gradient-norm clipping, optional cosine learning-rate decay. Validation (``train.validation``):

* ``section`` (default with two or more sections): the last section is held back from training; a fixed,
  seeded bi-level mask (no drop-node) is drawn on it once, and the validation RMSE is the error on its
  dropped entries (on all genes of its masked cells when gamma = 0), the model in eval mode;
* ``entries`` (default with one section): a seeded ``validation_fraction`` of all entries of every section
  (zeros included) is hidden -- zero in the training input and left out of the loss -- and the validation
  RMSE is the error on them, the model in eval mode on the input with them hidden;
* ``none``: train ``max_epochs`` epochs.

The best state by validation RMSE among epochs >= ``min_epochs`` is kept; training stops ``patience``
epochs after it. Inference runs every section unmasked in eval mode.

Determinism: model initialisation and dropout use torch's global generator seeded with ``seed`` inside
``torch.random.fork_rng`` (the caller's RNG state is untouched); masks, section order and Laplacian sign
flips use explicit CPU generators.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ...errors import DataError
from .data import SpatialInput
from .masking import bilevel_mask
from .model import SpaFormer
from .positional import Context, laplacian_eigvecs, sinusoid_encoding
from .settings import ImputationSettings, MaskingSettings, ModelSettings, TrainSettings

log = logging.getLogger(__name__)

#: Offset between the training seed and the seed of the validation draws.
VALIDATION_SEED_OFFSET = 1_000_003


@dataclass
class Section:
    """One section on the device: ``index`` (n_s,) global cell ids; ``values`` (n_s, g) sparse COO
    normalised expression; ``ctx`` its positional inputs; ``hidden`` (n_s, g) bool validation entries
    hidden from training, or None."""

    index: np.ndarray
    values: Tensor
    ctx: Context
    hidden: Tensor | None = None

    def dense(self) -> Tensor:
        return self.values.to_dense()


@dataclass
class Fitted:
    """A trained model and its record: ``history`` one dict per epoch (epoch, loss, val_rmse, seconds)."""

    model: SpaFormer
    sections: list[Section]
    history: list[dict]
    best_epoch: int
    validation: str
    seconds: float

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _sparse_tensor(x: sp.csr_matrix, device: torch.device) -> Tensor:
    coo = sp.coo_matrix(x, dtype=np.float32)
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data), coo.shape, is_coalesced=True,
                                   check_invariants=False).to(device)


def make_sections(inp: SpatialInput, s: ModelSettings, device: torch.device) -> list[Section]:
    """The sections of ``inp`` as device tensors with the positional inputs the PE ``s.pe`` needs."""
    out = []
    for idx, adj in zip(inp.sections, inp.graphs):
        coo = sp.triu(adj, 1).tocoo()
        edges = np.hstack([np.vstack([coo.row, coo.col]), np.vstack([coo.col, coo.row])]).astype(np.int64)
        sinus = eig = None
        if s.pe == "sinusoid":
            sinus = torch.from_numpy(sinusoid_encoding(inp.positions[idx], s.hidden, s.sinusoid_grid)).to(device)
        if s.pe == "lap":
            eig = torch.from_numpy(laplacian_eigvecs(adj, s.lap_k)).to(device)
        ctx = Context(len(idx), sinus, eig, torch.from_numpy(edges).to(device))
        out.append(Section(idx, _sparse_tensor(inp.normalised[idx], device), ctx))
    return out


def _validation_mode(requested: str, n_sections: int) -> str:
    if requested == "auto":
        return "section" if n_sections >= 2 else "entries"
    if requested == "section" and n_sections < 2:
        raise DataError("train.validation is 'section' but the dataset has a single section")
    return requested


def _rmse(sq_sum: float, count: int) -> float:
    return math.sqrt(sq_sum / max(count, 1))


def fit(inp: SpatialInput, settings: ImputationSettings, seed: int, device: torch.device) -> Fitted:
    """Train SpaFormer (encoder ``settings.model.encoder``) on ``inp``."""
    ms, mk, tr = settings.model, settings.masking, settings.train
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _fit(inp, ms, mk, tr, seed, device)


def _fit(inp: SpatialInput, ms: ModelSettings, mk: MaskingSettings, tr: TrainSettings, seed: int,
         device: torch.device) -> Fitted:
    start = time.perf_counter()
    sections = make_sections(inp, ms, device)
    model = SpaFormer(inp.shape[1], ms, seed).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tr.lr, weight_decay=tr.weight_decay)
    sched = None
    if tr.cosine_schedule:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: (1 + math.cos(e * math.pi / tr.max_epochs)) / 2)
    gen = torch.Generator().manual_seed(seed)
    vgen = torch.Generator().manual_seed(seed + VALIDATION_SEED_OFFSET)
    mode = _validation_mode(tr.validation, len(sections))
    train_secs, validate = sections, None
    if mode == "section":
        train_secs, val = sections[:-1], sections[-1]
        vx = val.dense()
        vmask = bilevel_mask(vx, mk.cell_rate, mk.feature_rate, 0.0, vgen)
        ventries = vmask.dropped if mk.feature_rate > 0 else vmask.masked[:, None].expand_as(vx)

        def validate() -> float:
            recon, _ = model(vmask.x, val.ctx)
            err = (recon - vx)[ventries]
            return _rmse(float(err.pow(2).sum()), err.numel())
    elif mode == "entries":
        for sec in sections:
            sec.hidden = (torch.rand(len(sec.index), inp.shape[1], generator=vgen) < tr.validation_fraction).to(device)

        def validate() -> float:
            sq, count = 0.0, 0
            for sec in sections:
                x = sec.dense()
                recon, _ = model(x.masked_fill(sec.hidden, 0), sec.ctx)
                err = (recon - x)[sec.hidden]
                sq, count = sq + float(err.pow(2).sum()), count + err.numel()
            return _rmse(sq, count)

    history: list[dict] = []
    best, best_epoch, best_state = math.inf, -1, None
    for epoch in range(tr.max_epochs):
        model.train()
        losses = []
        for i in torch.randperm(len(train_secs), generator=gen).tolist():
            losses.append(_train_step(model, opt, train_secs[i], ms, mk, tr.grad_clip, gen, device))
        if sched is not None:
            sched.step()
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - start}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                record["val_rmse"] = validate()
            if epoch >= tr.min_epochs and record["val_rmse"] < best:
                best, best_epoch = record["val_rmse"], epoch
                best_state = copy.deepcopy(model.state_dict())
        history.append(record)
        if epoch % tr.log_every == 0 or epoch == tr.max_epochs - 1:
            log.info("epoch %d loss %.4f val_rmse %s %.1f s", epoch, record["loss"],
                     f"{record['val_rmse']:.4f}" if "val_rmse" in record else "-", record["seconds"])
        if best_state is not None and epoch - best_epoch >= tr.patience:
            log.info("early stop at epoch %d (best %d, val_rmse %.4f)", epoch, best_epoch, best)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return Fitted(model, sections, history, best_epoch, mode, time.perf_counter() - start)


def _train_step(model: SpaFormer, opt: torch.optim.Optimizer, sec: Section, ms: ModelSettings, mk: MaskingSettings,
                clip: float, gen: torch.Generator, device: torch.device) -> float:
    x = sec.dense()
    if sec.hidden is not None:
        x = x.masked_fill(sec.hidden, 0)
    step = bilevel_mask(x, mk.cell_rate, mk.feature_rate, mk.drop_node_rate, gen)
    signs = None
    if ms.pe == "lap":
        signs = (torch.randint(0, 2, (ms.lap_k,), generator=gen) * 2 - 1).to(device=device, dtype=x.dtype)
    recon, _ = model(step.x, sec.ctx.subset(step.keep), signs)
    target = x[step.keep]
    sel = step.dropped if mk.loss_on == "masked_entries" else step.masked[:, None].expand_as(target)
    if sec.hidden is not None:
        sel = sel & ~sec.hidden[step.keep]
    loss = (recon - target).pow(2)[sel].mean()
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return float(loss.detach())


@torch.no_grad()
def predict(fitted: Fitted, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(expression (n, g) float32 log-normalised reconstruction, z (n, latent) float32) of every section,
    unmasked, the model in eval mode."""
    model = fitted.model.eval()
    expr = np.zeros(shape, dtype=np.float32)
    z_all = None
    for sec in fitted.sections:
        recon, z = model(sec.dense(), sec.ctx)
        expr[sec.index] = recon.cpu().numpy()
        if z_all is None:
            z_all = np.zeros((shape[0], z.shape[1]), dtype=np.float32)
        z_all[sec.index] = z.cpu().numpy()
    return expr, z_all
