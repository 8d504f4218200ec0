"""The fixed-shape decode step (`audiogen.lm.decode_cuda`), compiled on CPU, against the module path.

On CUDA the same step is compiled with CUDA graphs (`mode="reduce-overhead"`); this machine has no
GPU, so what runs here is the graph itself: one graph for every position, through the ring buffer's
wrap and far into the rotary range, with conditioning, and in bf16.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from audiogen.generation.options import SamplingConfig
from audiogen.generation.token_loop import generate_tokens
from audiogen.lm.decode_cuda import StaticDecoder
from audiogen.lm.model import LM, LMConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny() -> LM:
    torch.manual_seed(0)
    return LM(LMConfig(num_codebooks=3, codebook_size=16, dim=32, num_layers=2, num_heads=4, context=6,
                       cond_features=3)).eval()


def decode_all(model: LM, *, compile_decode: bool | None, fast: bool = True, start: int = 0,
               before=None) -> torch.Tensor:
    """Logits `[B, K, S - 2, V]` of a 3-step prefill and 17 decode steps (the window is 6: it wraps)."""
    g = torch.Generator().manual_seed(1)
    B, S = 2, 20
    tokens = torch.randint(0, 17, (B, 3, S), generator=g)  # SPECIAL (16) allowed
    rows = model.condition_rows(torch.rand(B, S, 3, generator=g).round(), S)
    drop = torch.tensor([False, True])  # the second item takes the null condition, as in guidance
    model.compile_decode, model.fast_decode = compile_decode, fast
    model.clear_cache()
    model.setup_cache(B)
    if before is not None:
        before(model)
    out = [model.prefill(tokens[:, :, :3], rows[:, :3], drop_cond=drop, start_position=start)]
    for p in range(3, S):
        out.append(model.decode_step(tokens[:, :, p : p + 1], rows[:, p : p + 1], drop_cond=drop,
                                     position=start + p))
    return torch.stack(out, dim=2).float()


def test_compiled_step_matches_module_path() -> None:
    model = tiny()
    ref = decode_all(model, compile_decode=False, fast=False)
    graphs = counters["stats"]["unique_graphs"]
    fast = decode_all(model, compile_decode=True)
    assert isinstance(model._decoder, StaticDecoder) and model._decoder.path == "compiled"
    assert counters["stats"]["unique_graphs"] == graphs + 1  # one graph for all 17 positions
    assert (fast - ref).abs().max() < 1e-5 * ref.abs().max()
    # far into the rotary range (float64 angles in the graph too): the same graph
    far = decode_all(model, compile_decode=True, start=50_000)
    far_ref = decode_all(model, compile_decode=False, fast=False, start=50_000)
    assert (far - far_ref).abs().max() < 1e-5 * far_ref.abs().max()
    assert counters["stats"]["unique_graphs"] == graphs + 1
    # bf16 weights (float32 cache on CPU): as close to fp32 as the module path's bf16
    model.to(torch.bfloat16)
    err_fast = (decode_all(model, compile_decode=True) - ref).norm() / ref.norm()
    err_plain = (decode_all(model, compile_decode=False, fast=False) - ref).norm() / ref.norm()
    assert err_fast < 0.03 and err_fast < 1.5 * err_plain + 0.005, (err_fast, err_plain)


def test_uncompiled_static_step_and_the_fallback() -> None:
    """A compiler failure warns and switches to the same step uncompiled, which is equal too."""
    model = tiny()
    ref = decode_all(model, compile_decode=False, fast=False)

    def break_compiler(model: LM) -> None:
        def broken(*args):
            raise RuntimeError("no compiler here")

        model._decoder.fn = broken

    with pytest.warns(UserWarning, match="compiling the decode step failed.*no compiler here"):
        out = decode_all(model, compile_decode=True, before=break_compiler)
    assert model._decoder.path == "static"
    assert (out - ref).abs().max() < 1e-5 * ref.abs().max()


def test_generation_with_the_compiled_step() -> None:
    """generate_tokens (prefill, guidance batch, sampling) gives the same tokens through the compiled step."""
    model = tiny()
    cond = torch.rand(1, 30, 3, generator=torch.Generator().manual_seed(2)).round()
    sampling = SamplingConfig(temperature=1.0, top_k=8, guidance=2.0, seed=3)
    model.compile_decode, model.fast_decode = False, False
    plain = generate_tokens(model, num_frames=30, batch_size=2, cond=cond, sampling=sampling)
    model.compile_decode, model.fast_decode = True, True
    compiled = generate_tokens(model, num_frames=30, batch_size=2, cond=cond, sampling=sampling)
    assert model._decoder.path == "compiled"
    assert torch.equal(plain, compiled)
