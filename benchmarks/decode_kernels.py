"""Which kernels the CPU decode step uses, and why: the measurements behind `PackedDecoder`'s choices.

    .venv/bin/python benchmarks/decode_kernels.py          # about 1 minute on 2 cores

1. The products of one reference-size step (d 512, 8 layers, 4 x 1024 heads; 33 products) at a
   few batch sizes: oneDNN packs on the process's threads, the same with the heads' output width
   padded from 4096 to 4112, and XNNPACK's packs on one thread.
2. Whole generations (`generate_tokens`, fp32 reference size) at batch 1-16 with the decoder
   `PackedDecoder` picks (XNNPACK on one thread up to `XNNPACK_MAX_BATCH`) against oneDNN only.
3. How much of a batch-1 step the products take (the rest: attention, norms, small operators).
"""

from __future__ import annotations

import time
from functools import partial

import torch

from audiogen.evaluation.bench import REFERENCE, ours_decode
from audiogen.lm.decode_cpu import _xnnpack_linear
from audiogen.lm.model import LM


def best_seconds(fn, repeat: int = 5, inner: int = 10) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def products(threads: int) -> None:
    c = REFERENCE
    shapes = [(3 * c.dim, c.dim), (c.dim, c.dim), (2 * c.hidden_dim, c.dim), (c.dim, c.hidden_dim)] * c.num_layers
    heads = (c.num_codebooks * c.codebook_size, c.dim)
    torch.manual_seed(0)
    weights = [torch.randn(n, k) * 0.02 for n, k in shapes]
    head, padded_head = torch.randn(*heads) * 0.02, torch.randn(heads[0] + 16, heads[1]) * 0.02
    megabytes = (sum(n * k for n, k in shapes) + heads[0] * heads[1]) * 4 / 1e6
    print(f"products of one reference step ({megabytes:.0f} MB of fp32 weights), ms per step")
    print(f"{'batch':>5}  {'oneDNN':>8}  {'oneDNN, heads padded':>20}  {'heads alone':>11}  {'padded alone':>12}"
          f"  {'XNNPACK 1 thread':>16}")
    for batch in (1, 2, 4, 16, 64):
        torch.set_num_threads(threads)
        xs = {k: torch.randn(batch, k) for k in {k for _, k in shapes} | {heads[1]}}
        packs = [torch.ops.mkldnn._reorder_linear_weight(w, batch) for w in weights]
        head_pack = torch.ops.mkldnn._reorder_linear_weight(head, batch)
        padded_pack = torch.ops.mkldnn._reorder_linear_weight(padded_head, batch)

        def onednn(extra, xs=xs, packs=packs):
            for w, p in zip(weights, packs):
                torch.ops.mkldnn._linear_pointwise(xs[w.shape[1]], p, None, "none", [], "")
            torch.ops.mkldnn._linear_pointwise(xs[heads[1]], extra, None, "none", [], "")

        def alone(pack, x=xs[heads[1]]):
            torch.ops.mkldnn._linear_pointwise(x, pack, None, "none", [], "")

        plain = best_seconds(partial(onednn, head_pack))
        padded = best_seconds(partial(onednn, padded_pack))
        head_alone = best_seconds(partial(alone, head_pack))
        padded_alone = best_seconds(partial(alone, padded_pack))
        torch.set_num_threads(1)
        xnn = [(w.shape[1], torch.ops.prepacked.linear_clamp_prepack(w, None)) for w in weights + [head]]

        def xnnpack(xs=xs, xnn=xnn):
            for k, p in xnn:
                torch.ops.prepacked.linear_clamp_run(xs[k], p)

        one = best_seconds(xnnpack)
        print(f"{batch:>5}  {plain * 1e3:>8.2f}  {padded * 1e3:>20.2f}  {head_alone * 1e3:>11.2f}  "
              f"{padded_alone * 1e3:>12.2f}  {one * 1e3:>16.2f}")
    torch.set_num_threads(threads)


def generations(threads: int) -> None:
    torch.manual_seed(0)
    model = LM(REFERENCE).eval()
    device = torch.device("cpu")
    print(f"\ngenerate_tokens, fp32 reference size, steps/s ({threads} threads in the process)")
    print(f"{'batch':>5}  {'as shipped':>10}  {'kernel':>8}  {'oneDNN only':>11}")
    for batch in (1, 2, 4, 8, 16):
        model.clear_cache()
        shipped = ours_decode(model, batch, 100, device)
        kind = model._decoder.kind if model._decoder is not None else "modules"
        model.decode_kernels = "onednn"
        model.clear_cache()
        onednn = ours_decode(model, batch, 100, device)
        model.decode_kernels = None
        print(f"{batch:>5}  {shipped:>10.1f}  {kind:>8}  {onednn:>11.1f}")


@torch.inference_mode()
def step_split() -> None:
    """How much of a batch-1 fp32 step (as shipped: XNNPACK, one thread) its 33 products take."""
    torch.manual_seed(0)
    model = LM(REFERENCE).eval()
    torch.set_num_threads(1)
    model.setup_cache(1)
    tokens = torch.randint(0, REFERENCE.codebook_size, (1, REFERENCE.num_codebooks, 1))
    model.prefill(tokens)
    decoder = model._decoder
    inputs = {k: torch.randn(1, k) for k in (REFERENCE.dim, REFERENCE.hidden_dim)}
    ins = [REFERENCE.dim, REFERENCE.dim, REFERENCE.dim, REFERENCE.hidden_dim]
    packs = [(k, p) for layer in decoder.layers for k, p in zip(ins, layer)] + [(REFERENCE.dim, decoder.heads)]

    def products_only():
        for k, p in packs:
            _xnnpack_linear(inputs[k], p)

    def steps(n: int = 50):
        for position in range(1, n + 1):
            model.decode_step(tokens, position=position)

    products_ms = best_seconds(products_only, repeat=3) * 1e3
    step_ms = best_seconds(steps, repeat=3, inner=1) / 50 * 1e3
    print(f"\nbatch-1 fp32 decode step ({decoder.kind}, 1 thread): {step_ms:.2f} ms, of which its products "
          f"alone {products_ms:.2f} ms ({100 * products_ms / step_ms:.0f} %)")


if __name__ == "__main__":
    threads = torch.get_num_threads()
    products(threads)
    generations(threads)
    step_split()
