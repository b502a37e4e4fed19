"""CellPLM: parameter count, seconds per pre-training epoch and embedding throughput (cells/s), against a
plain softmax-attention transformer of the same size in the same process.

Sizes scale with ``--scale`` (1 = the released configuration: hidden 1024, 4 layers, 8 heads, d_z 512, decoder
1024, vocabulary 19,374, 4,000-cell sentences; 82,402,543 parameters reported for the released checkpoint).
Widths, vocabulary and cells are multiplied by ``--scale``; layers and heads stay. The data are synthetic NB
counts (:func:`genegraph.models.cellplm.simulate.simulate_counts`): ``--sentences`` samples, each measuring a
random 75 % of the vocabulary. An epoch is the real pre-training step (cap, drop-node, bi-level mask, NB +
GMVAE loss, AdamW) on every sentence. Embedding throughput encodes one sentence of ``--infer-cells`` cells in
eval mode (embedder + encoder + latent, as ``embed_cells``) with flow attention and with exact softmax
attention ("the transformer a user would otherwise pick"); quadratic memory may make the latter fail (OOM).

    python bench/cellplm.py                                  # CPU, 1/8 scale, < 2 min
    python bench/cellplm.py --scale 1 --device cuda --epochs 3 --infer-cells 48000
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from genegraph.device import torch_job  # noqa: E402
from genegraph.models.cellplm.model import build_model, parameter_count  # noqa: E402
from genegraph.models.cellplm.pretrain import masked_loss  # noqa: E402
from genegraph.models.cellplm.sentences import Covariates, dataset_sentences, sentence_input  # noqa: E402
from genegraph.models.cellplm.settings import cellplm_settings  # noqa: E402
from genegraph.models.cellplm.simulate import simulate_counts  # noqa: E402
from genegraph.models.cellplm.vocab import GeneVocabulary  # noqa: E402

RELEASED_PARAMETERS = 82_402_543
RELEASED_VOCAB = 19_374


def sizes(scale: float) -> dict:
    def w(v: int) -> int:  # widths stay multiples of 8 (heads, norm groups, the 2-D PE)
        return max(8, round(v * scale / 8) * 8)

    return {"hidden": w(1024), "layers": 4, "heads": 8, "latent_dim": w(512), "decoder_hidden": w(1024),
            "nb_hidden": w(128), "clusters": 16, "vocab": max(16, int(RELEASED_VOCAB * scale)),
            "cells": max(16, int(4000 * scale))}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_sentences(n_sentences: int, cells: int, vocab: GeneVocabulary, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    m = max(8, int(0.75 * len(vocab)))
    for k in range(n_sentences):
        a = simulate_counts(cells, m, n_types=5, seed=seed + k, library=2000.0)
        a.var_names = list(np.asarray(vocab.genes)[np.sort(rng.choice(len(vocab), m, replace=False))])
        out += dataset_sentences(f"s{k}", a, vocab, Covariates(("d",), ("d/b",)), batch_key=None)
    return out


def embed_throughput(model, sentence, device: torch.device, repeats: int) -> float:
    """Cells per second of eval-mode embedding (embedder + encoder + latent) of one sentence."""
    model.eval()
    with torch.no_grad():
        inp = sentence_input(sentence, device)
        model.latent(model.encode(inp))  # warm-up
        sync(device)
        t = time.perf_counter()
        for _ in range(repeats):
            model.latent(model.encode(inp))
        sync(device)
    return repeats * sentence.n_cells / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.125)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    ap.add_argument("--sentences", type=int, default=4)
    ap.add_argument("--infer-cells", type=int, nargs="+", default=None,
                    help="cells of the embedding sentence(s) (default 2 and 8 x the training sentence)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch_job(args.threads)  # as the pipeline's training jobs: threads, denormals flushed
    device = torch.device(args.device)
    z = sizes(args.scale)
    vocab = GeneVocabulary(tuple(f"G{j}" for j in range(z["vocab"])))
    model_keys = {k: z[k] for k in ("hidden", "layers", "heads", "latent_dim", "decoder_hidden", "nb_hidden",
                                    "clusters")}
    settings = cellplm_settings({"model": model_keys, "masking": {"max_cells": z["cells"]}})

    full = cellplm_settings()
    released = build_model(full.model, GeneVocabulary(tuple(f"G{j}" for j in range(RELEASED_VOCAB))),
                           Covariates(tuple(f"d{i}" for i in range(484)), tuple(f"b{i}" for i in range(12_596))))
    n_released = parameter_count(released)
    print(f"released size: {n_released:,} parameters (hidden 1024, 4 layers, d_z 512, vocabulary {RELEASED_VOCAB:,}, "
          f"12,596 batch and 484 dataset embeddings); reported for the checkpoint: {RELEASED_PARAMETERS:,} "
          f"(ratio {n_released / RELEASED_PARAMETERS:.3f})")
    del released

    print(f"benchmark size (scale {args.scale}): {z}, device {device}")
    sentences = synthetic_sentences(args.sentences, z["cells"], vocab, seed=0)
    model = build_model(settings.model, vocab, Covariates(("d",), ("d/b",)), seed=0).to(device)
    print(f"parameters: {parameter_count(model):,}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.pretrain.lr)
    rng = np.random.default_rng(0)
    times = []
    for epoch in range(args.epochs + 1):
        model.train()
        sync(device)
        t = time.perf_counter()
        for s in sentences:
            optimizer.zero_grad(set_to_none=True)
            loss, _ = masked_loss(model, s, settings.masking, True, rng, device)
            loss.backward()
            optimizer.step()
        sync(device)
        if epoch:
            times.append(time.perf_counter() - t)
    print(f"pre-training: {np.mean(times):.3f} s per epoch ({args.sentences} sentences x {z['cells']} cells, "
          f"mean of {args.epochs}; last loss {float(loss.detach()):.1f})")

    soft_settings = cellplm_settings({"model": {**model_keys, "attention": "softmax"}})
    soft = build_model(soft_settings.model, vocab, Covariates(("d",), ("d/b",)), seed=0).to(device)
    soft.load_state_dict(model.state_dict())
    for n_infer in args.infer_cells or [2 * z["cells"], 8 * z["cells"]]:
        big = synthetic_sentences(1, n_infer, vocab, seed=99)[0]
        flow = embed_throughput(model, big, device, args.repeats)
        line = f"embedding {n_infer} cells in one sentence: flow attention {flow:,.0f} cells/s"
        try:
            dense = embed_throughput(soft, big, device, args.repeats)
            print(f"{line}; softmax attention (same weights) {dense:,.0f} cells/s; flow / softmax {flow / dense:.2f}x")
        except (RuntimeError, MemoryError) as err:
            print(f"{line}; softmax attention failed ({type(err).__name__}: {str(err)[:80]})")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if device.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
