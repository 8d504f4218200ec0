"""Which kernels the CPU decode step uses, and why: the measurements behind `PackedDecoder`'s choices.

    .venv/bin/python benchmarks/decode_kernels.py          # about 1 minute on 2 cores

1. The products of one reference-size step (d 512, 8 layers, 4 x 1024 heads; 33 products) at a
   few batch sizes: oneDNN packs on the process's threads, the same with the heads' output width
   padded from 4096 to 4112, and XNNPACK's packs on one thread.
2. Whole generations (`generate_tokens`, fp32 reference size) at batch 1-16 with the decoder
   `PackedDecoder` picks (XNNPACK on one thread up to `XNNPACK_MAX_BATCH`) against oneDNN only.
"""

from __future__ import annotations

import time
from functools import partial

import torch

from audiogen import model as lm_module
from audiogen.bench import REFERENCE, ours_decode
from audiogen.model import LM


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
    limit = lm_module.XNNPACK_MAX_BATCH
    print(f"\ngenerate_tokens, fp32 reference size, steps/s ({threads} threads in the process)")
    print(f"{'batch':>5}  {'as shipped':>10}  {'kernel':>8}  {'oneDNN only':>11}")
    for batch in (1, 2, 4, 8, 16):
        model.clear_cache()
        shipped = ours_decode(model, batch, 100, device)
        kind = model._decoder.kind if model._decoder is not None else "modules"
        lm_module.XNNPACK_MAX_BATCH = 0
        model.clear_cache()
        onednn = ours_decode(model, batch, 100, device)
        lm_module.XNNPACK_MAX_BATCH = limit
        print(f"{batch:>5}  {shipped:>10.1f}  {kind:>8}  {onednn:>11.1f}")


if __name__ == "__main__":
    threads = torch.get_num_threads()
    products(threads)
    generations(threads)
