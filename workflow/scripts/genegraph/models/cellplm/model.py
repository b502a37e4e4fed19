"""CellPLM: cells are tokens (spec §5). Embedder → linear-attention encoder over the cells of a sample →
LayerNorm → Gaussian-mixture VAE latent → batch-aware NB decoder; saving and loading a trained model.

Encoder: ``layers`` pre-norm transformer layers of :mod:`genegraph.models.layers.attention` (flow attention by
default, as the released Flowformer encoder; FFN ``ffn_multiplier`` × hidden with GELU; dropout).

Deviations: the encoder layers are the project's shared implementation (LayerNorm pre-norm, no q/k/v bias),
not a copy of the released Flowformer layer; at the released sizes the model has 72.1 M parameters with the
released 12,596 batch and 484 dataset embeddings, against 82.4 M reported for the checkpoint (the spec does
not describe where the released layers hold the other ~10 M).
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import DataError
from ..layers.attention import LinearTransformerEncoder
from .decoder import NBDecoder
from .embedder import CellEmbedder
from .latent import GaussianMixtureLatent, LatentOutput
from .sentences import Covariates, SentenceInput
from .settings import ModelSettings
from .vocab import GeneVocabulary

FORMAT = "genegraph-cellplm-1"


@dataclass
class ModelOutput:
    """One forward pass: encoder states ``h`` (n, hidden), the latent, NB ``mean`` (n, m) and ``disp`` (m,)."""

    h: torch.Tensor
    latent: LatentOutput
    mean: torch.Tensor
    disp: torch.Tensor


class CellPLM(nn.Module):
    """The model over a gene vocabulary, with decoder embeddings for the ``covariates`` seen in pre-training."""

    def __init__(self, settings: ModelSettings, vocab: GeneVocabulary, covariates: Covariates):
        super().__init__()
        s = settings
        self.settings, self.vocab, self.covariates = settings, vocab, covariates
        self.embedder = CellEmbedder(len(vocab), s.hidden, s.dropout, s.norm, s.norm_groups,
                                     s.positional_encoding, s.pe_grid, s.gene_init_std)
        self.encoder = LinearTransformerEncoder(s.hidden, s.layers, s.heads, s.ffn_multiplier * s.hidden,
                                                kind=s.attention, dropout=s.dropout, norm_first=True)
        self.pre_latent_norm = nn.LayerNorm(s.hidden)
        self.latent = GaussianMixtureLatent(s.hidden, s.latent_dim, s.clusters, s.free_bits, s.gauss_weight,
                                            s.cluster_weight, s.temperature)
        self.decoder = NBDecoder(s.latent_dim, s.decoder_hidden, s.decoder_layers, s.nb_hidden, len(vocab),
                                 len(covariates.batches), len(covariates.datasets), s.dropout, s.norm, s.norm_groups)

    def encode(self, inp: SentenceInput) -> torch.Tensor:
        """(n, hidden) normalised encoder states of the sentence's cells (attention runs across them)."""
        return self.pre_latent_norm(self.encoder(self.embedder(inp)))

    def forward(self, inp: SentenceInput) -> ModelOutput:
        h = self.encode(inp)
        lat = self.latent(h)
        mean, disp = self.decoder(lat.z, inp.genes, inp.batch, inp.dataset)
        return ModelOutput(h=h, latent=lat, mean=mean, disp=disp)


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(settings: ModelSettings, vocab: GeneVocabulary, covariates: Covariates | None = None,
                seed: int = 0) -> CellPLM:
    """A freshly initialised model; parameters drawn from a generator seeded with ``seed`` (global RNG untouched)."""
    covariates = covariates if covariates is not None else Covariates((), ())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CellPLM(settings, vocab, covariates)


def _atomic_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_state(model: CellPLM) -> dict[str, Any]:
    """Everything needed to rebuild ``model``: settings, vocabulary, covariates and CPU weights."""
    return {"format": FORMAT, "settings": asdict(model.settings), "genes": list(model.vocab.genes),
            "datasets": list(model.covariates.datasets), "batches": list(model.covariates.batches),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def model_from_state(state: dict[str, Any], device: torch.device | str = "cpu") -> CellPLM:
    """The model stored by :func:`model_state`, in eval mode on ``device``."""
    if state.get("format") != FORMAT:
        raise DataError(f"not a genegraph CellPLM model (format {state.get('format')!r}, expected {FORMAT!r})")
    model = CellPLM(ModelSettings(**state["settings"]), GeneVocabulary(tuple(state["genes"])),
                    Covariates(tuple(state["datasets"]), tuple(state["batches"])))
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()


def save_model(model: CellPLM, path: str | Path) -> None:
    """Write ``model`` to ``path`` atomically (temporary file + rename)."""
    buf = io.BytesIO()
    torch.save(model_state(model), buf)
    _atomic_bytes(Path(path), buf.getvalue())


def load_model(path: str | Path, device: torch.device | str = "cpu") -> CellPLM:
    """A model written by :func:`save_model` (weights only: no code is unpickled), in eval mode."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable CellPLM model file ({err})") from None
    return model_from_state(state, device)
