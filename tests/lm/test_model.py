"""The LM: causality, sliding window, KV-cached decoding == full forward, bf16, checkpoints, learning."""

from __future__ import annotations

import pytest
import torch

from audiogen.errors import AudiogenError
from audiogen.lm.decode_cpu import int8_available, quantize_int8
from audiogen.lm.model import LM, LMConfig
from audiogen.lm.rotary import rotary
from audiogen.runtime import onednn_packable

# Tiny models run fastest on one thread, and a busy shared machine cannot stall them (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> LM:
    base = dict(num_codebooks=3, codebook_size=16, dim=32, num_layers=2, num_heads=4, context=6,
                cond_features=0, cond_lookahead=2)
    base.update(overrides)
    torch.manual_seed(0)
    return LM(LMConfig(**base)).eval()


def random_inputs(model: LM, B: int, S: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    c = model.config
    tokens = torch.randint(0, c.codebook_size + 1, (B, c.num_codebooks, S), generator=g)  # SPECIAL allowed
    cond = torch.rand(B, S, c.cond_features, generator=g).round() if c.cond_features else None
    return tokens, cond


def test_forward_shape_and_config_errors() -> None:
    model = tiny()
    tokens, _ = random_inputs(model, 2, 5)
    assert model(tokens).shape == (2, 3, 5, 16)
    for bad in (dict(dim=30), dict(context=0), dict(pattern="zigzag"), dict(cond_dropout=1.0), dict(codebook_size=1)):
        with pytest.raises(AudiogenError):
            LMConfig(**bad).validate()
    with pytest.raises(ValueError):  # conditioning given to an unconditional model is a bug
        model(tokens, torch.zeros(2, 5, 4))


@pytest.mark.parametrize("context", [4, 64])  # banded (S > W) and plain causal attention
def test_causal_and_windowed(context: int) -> None:
    model = tiny(context=context, cond_features=2, cond_lookahead=1)
    tokens, cond = random_inputs(model, 2, 16)
    base = model(tokens, cond)
    changed = tokens.clone()
    changed[:, :, 9:] = (changed[:, :, 9:] + 1) % 17
    out = model(changed, cond)
    assert torch.allclose(out[:, :, :9], base[:, :, :9], atol=1e-6)
    assert not torch.allclose(out[:, :, 9:], base[:, :, 9:])
    # conditioning row r reaches position r - lookahead (lookahead) but no earlier position
    cond2 = cond.clone()
    cond2[:, 9] = 1 - cond2[:, 9]
    out = model(tokens, cond2)
    assert torch.allclose(out[:, :, :8], base[:, :, :8], atol=1e-6)
    assert not torch.allclose(out[:, :, 8], base[:, :, 8])
    # the window: a token influences at most num_layers * (W - 1) positions after itself
    changed = tokens.clone()
    changed[:, :, 1] = (changed[:, :, 1] + 1) % 17
    out = model(changed, cond)
    reach = 1 + model.config.num_layers * (context - 1)
    if reach < 16:
        assert torch.allclose(out[:, :, reach + 1 :], base[:, :, reach + 1 :], atol=1e-6)
    assert not torch.allclose(out[:, :, 1 : min(reach + 1, 16)], base[:, :, 1 : min(reach + 1, 16)])


@pytest.mark.parametrize("cond_features", [0, 3])
@pytest.mark.parametrize("prompt", [1, 4, 15])  # prompts shorter and longer than the window (6)
def test_cached_decoding_equals_forward(cond_features: int, prompt: int) -> None:
    """Prefill + one decode_step per position through the ring buffer, far past the window."""
    model = tiny(cond_features=cond_features)
    B, S = 2, 27
    tokens, cond = random_inputs(model, B, S, seed=prompt)
    drop = torch.tensor([False, True]) if cond_features else None
    full = model(tokens, cond, drop_cond=drop)
    rows = model.condition_rows(cond, S) if cond_features else None
    model.setup_cache(B)
    out = [model.prefill(tokens[:, :, :prompt], None if rows is None else rows[:, :prompt], drop_cond=drop)]
    for p in range(prompt, S):
        row = None if rows is None else rows[:, p : p + 1]
        out.append(model.decode_step(tokens[:, :, p : p + 1], row, drop_cond=drop, position=p))
    stepped = torch.stack(out, dim=2)
    assert stepped.shape == (B, 3, S - prompt + 1, 16)
    assert torch.allclose(stepped, full[:, :, prompt - 1 :], atol=1e-5, rtol=1e-4)


def test_chunked_prefill_continues_the_cache() -> None:
    model = tiny(cond_features=3)
    tokens, cond = random_inputs(model, 1, 20)
    full = model(tokens, cond)
    rows = model.condition_rows(cond, 20)
    model.setup_cache(1)
    first = model.prefill(tokens[:, :, :9], rows[:, :9])
    second = model.prefill(tokens[:, :, 9:], rows[:, 9:], start_position=9)
    assert torch.allclose(first, full[:, :, 8], atol=1e-5)
    assert torch.allclose(second, full[:, :, 19], atol=1e-5)


def test_rotary_exact_at_large_positions() -> None:
    """Attention scores depend only on relative position, even 50,000 steps in (float64 angles)."""
    model = tiny(dim=64, num_heads=1)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 8, 64, generator=g).unbind(0)  # [B, P, Dh]

    def scores(start: int) -> torch.Tensor:
        cos, sin = model._rope(start, 8, q.device)
        return rotary(q, cos, sin) @ rotary(k, cos, sin).transpose(1, 2)

    near, far = scores(0), scores(50_000)
    assert torch.allclose(far, near, atol=2e-5 * near.abs().max())


def test_bf16_inference_close_to_fp32() -> None:
    model = tiny(cond_features=3, dim=64)
    tokens, cond = random_inputs(model, 2, 12)
    ref = model(tokens, cond)
    half = tiny(cond_features=3, dim=64).to(torch.bfloat16)
    out = half(tokens, cond)
    assert out.dtype == torch.bfloat16
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.03, rel
    rows = half.condition_rows(cond, 12)
    half.setup_cache(2)
    last = half.prefill(tokens[:, :, :7], rows[:, :7])
    for p in range(7, 12):
        last = half.decode_step(tokens[:, :, p : p + 1], rows[:, p : p + 1], position=p)
    assert (last.float() - ref[:, :, -1]).norm() / ref[:, :, -1].norm() < 0.05


def test_save_load_identity(tmp_path) -> None:
    model = tiny(cond_features=3)
    tokens, cond = random_inputs(model, 2, 9)
    model.save(tmp_path / "lm", extra={"codec": {"name": "tiny"}, "frame_rate": 75.0})
    loaded = LM.load(tmp_path / "lm")
    assert loaded.config == model.config
    assert loaded.meta["codec"] == {"name": "tiny"} and loaded.meta["frame_rate"] == 75.0
    assert torch.equal(loaded(tokens, cond), model(tokens, cond))
    with pytest.raises(AudiogenError):
        LM.load(tmp_path / "missing")


def test_loss_masks_holes_and_invalid_frames() -> None:
    model = tiny()
    codes = torch.randint(0, 16, (2, 3, 10))
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[1, 6:] = False
    with torch.no_grad():
        loss, per_codebook = model.loss(codes, valid=valid)
    assert loss.shape == () and per_codebook.shape == (3,)
    assert 2.0 < loss.item() < 3.5  # about log(16) for a fresh model
    changed = codes.clone()
    changed[1, :, 6:] = (changed[1, :, 6:] + 5) % 16  # frames past the end do not matter
    assert torch.equal(model.loss(changed, valid=valid)[0], loss)
    assert not torch.equal(model.loss(changed)[0], model.loss(codes)[0])


def _train(model: LM, batches, steps: int, lr: float = 1e-2) -> float:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        codes, cond = batches()
        loss, _ = model.loss(codes, cond)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


def test_overfits_a_short_sequence() -> None:
    torch.manual_seed(0)
    model = tiny(dim=64, context=32)
    codes = torch.randint(0, 16, (1, 3, 24))
    final = _train(model, lambda: (codes, None), steps=100)
    assert final < 0.5, final  # from log(16) = 2.77 nats


def test_learns_from_conditioning() -> None:
    """Targets are a function of random binary features: learnable only through the conditioning."""
    torch.manual_seed(0)
    model = tiny(num_codebooks=2, dim=64, context=32, cond_features=4, cond_dropout=0.0)
    g = torch.Generator().manual_seed(1)
    bits = 2 ** torch.arange(4)

    def batch():
        cond = torch.randint(0, 2, (8, 24, 4), generator=g).float()
        value = (cond * bits).sum(-1).long()  # [B, T] in 0..15, fresh every step
        return torch.stack([value, (3 * value + 1) % 16], dim=1), cond

    final = _train(model, batch, steps=120)
    assert final < 0.5, final
    codes, cond = batch()
    with torch.no_grad():
        with_cond = float(model.loss(codes, cond)[0])
        without = float(model.loss(codes, None)[0])  # the null condition
    assert with_cond < 0.5 and without > 2.0, (with_cond, without)


def _decode_all(model: LM, tokens: torch.Tensor, rows, drop, prompt: int, start: int = 0) -> torch.Tensor:
    """Prefill `prompt` positions from `start`, then one decode_step per position: logits `[B, K, n, V]`.

    From `start > 0` the cache starts fresh (zeros), so the prefill sees the same history every time."""
    B, _, S = tokens.shape
    if start:
        model.clear_cache()
    model.setup_cache(B)
    out = [model.prefill(tokens[:, :, :prompt], None if rows is None else rows[:, :prompt], drop_cond=drop,
                         start_position=start)]
    for p in range(prompt, S):
        row = None if rows is None else rows[:, p : p + 1]
        out.append(model.decode_step(tokens[:, :, p : p + 1], row, drop_cond=drop, position=start + p))
    return torch.stack(out, dim=2).float()


needs_packing = pytest.mark.skipif(not onednn_packable(torch.bfloat16, torch.device("cpu")),
                                   reason="no oneDNN bf16 on this CPU: decode_step takes the module path")


@needs_packing
@pytest.mark.parametrize(("B", "start"), [(2, 0), (2, 50_000), (1, 0)])  # rotary stays exact far in
def test_packed_decode_matches_module_path(B: int, start: int) -> None:
    """The prepacked CPU decode step (`PackedDecoder`) against the module path, through the ring
    buffer and with conditioning, guidance-style dropped rows and a bf16 model (batch 1 in bf16:
    PyTorch's mat-vec kernel with oneDNN switched off for the step, and back on after it)."""
    model = tiny(cond_features=3, dim=64, num_heads=4)
    S = 20
    tokens, cond = random_inputs(model, B, S, seed=5)
    rows, drop = model.condition_rows(cond, S), torch.tensor([False, True])[:B]
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        model.to(dtype)
        for fast in (True, False):
            model.fast_decode = fast
            results[dtype, fast] = _decode_all(model, tokens, rows, drop, prompt=3, start=start)
            assert (model._decoder is not None) == fast
            assert torch.backends.mkldnn.enabled
            if fast:  # (one thread: fp32 at batch <= 8 takes XNNPACK's products)
                bf16 = dtype == torch.bfloat16
                assert model._decoder.kind == ("xnnpack" if not bf16 else "native" if B == 1 else "onednn")
    model.to(torch.float32)
    ref = results[torch.float32, False]
    # fp32: the same function up to rounding (folded norm gains, oneDNN's summation order)
    assert (results[torch.float32, True] - ref).abs().max() < 1e-5 * ref.abs().max()
    # bf16: as close to fp32 as the module path's bf16 is
    err_fast = (results[torch.bfloat16, True] - ref).norm() / ref.norm()
    err_plain = (results[torch.bfloat16, False] - ref).norm() / ref.norm()
    assert err_fast < 0.03 and err_fast < 1.5 * err_plain + 0.005, (err_fast, err_plain)


@needs_packing
@pytest.mark.skipif(not int8_available(), reason="no _weight_int8pack_mm in this PyTorch")
@pytest.mark.parametrize("B", [1, 4])
def test_int8_decode_is_the_module_path_up_to_quantisation(B: int) -> None:
    """`decode_kernels = "int8"`: weight-only int8 products (per-row scales) in the same step, through the
    ring buffer with conditioning and dropped rows: within a bf16 model's distance of fp32, never picked
    on its own, and the quantiser's rows are the weights to half a step."""
    model = tiny(cond_features=3, dim=64, num_heads=4)
    S = 20
    tokens, cond = random_inputs(model, B, S, seed=5)
    rows, drop = model.condition_rows(cond, S), torch.tensor([False, True, False, True])[:B]
    ref = _decode_all(model, tokens, rows, drop, prompt=3)
    assert model._decoder.kind != "int8"
    model.decode_kernels = "int8"
    int8 = _decode_all(model, tokens, rows, drop, prompt=3)
    assert model._decoder.kind == "int8"
    err = (int8 - ref).norm() / ref.norm()
    assert 0 < err < 0.03, err  # it does quantise, and by little
    weight = model.blocks[0].mlp.down.weight
    q, scales = quantize_int8(weight)
    assert q.dtype == torch.int8 and 126 <= q.abs().max() <= 127
    assert ((q.float() * scales.float()[:, None] - weight).abs() <= scales.float()[:, None] * 0.5001).all()


@needs_packing
def test_padded_products_match_module_path() -> None:
    """fp32 oneDNN packs whose output width is a multiple of 1024 get zero rows of padding at batch
    4-64 (oneDNN runs them 3x slower otherwise); the sliced outputs equal the module path's."""
    model = tiny(num_codebooks=4, codebook_size=256, dim=192, num_heads=4, context=8)
    assert model.config.num_codebooks * model.config.codebook_size == 2 * model.config.hidden_dim == 1024
    tokens, _ = random_inputs(model, 16, 14, seed=3)
    fast = _decode_all(model, tokens, None, None, prompt=2)
    assert model._decoder.kind == "onednn"
    assert model._decoder.padded == 1 + model.config.num_layers  # heads, and gate_up of each layer
    model.fast_decode = False
    plain = _decode_all(model, tokens, None, None, prompt=2)
    assert fast.shape == plain.shape == (16, 4, 13, 256)  # the prompt's last position and 12 steps
    assert (fast - plain).abs().max() < 1e-5 * plain.abs().max()


@needs_packing
def test_packed_decode_follows_weight_changes() -> None:
    """Packs are rebuilt when weights change in place (training, load_state_dict) or move (.to())."""
    import copy

    model = tiny()
    tokens, _ = random_inputs(model, 1, 8)
    before = _decode_all(model, tokens, None, None, prompt=2)
    packs = model._decoder
    with torch.no_grad():
        model.blocks[0].mlp.down.weight.mul_(3.0)
        model.heads.weight.add_(0.01)
    after = _decode_all(model, tokens, None, None, prompt=2)
    assert model._decoder is not packs  # repacked
    model.fast_decode = False
    plain = _decode_all(model, tokens, None, None, prompt=2)
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.allclose(after, plain, atol=1e-5)
    clone = copy.deepcopy(model)  # oneDNN packs cannot be copied: the copy repacks
    clone.fast_decode = True
    assert torch.allclose(_decode_all(clone, tokens, None, None, prompt=2), plain, atol=1e-5)
    clone.clear_cache()
    assert clone._decoder is None and clone.caches is None


@pytest.mark.parametrize("change", [{"dim": 48}, {"num_layers": 3}])
def test_weights_that_do_not_fit_the_config_are_one_line(tmp_path, change) -> None:
    """A config.json edited after the save (other shapes, or other tensor names): an AudiogenError, not a
    60-line size-mismatch traceback (the codec and composer loaders share the same check)."""
    import json

    LM(LMConfig(num_codebooks=2, codebook_size=16, dim=32, num_layers=2, num_heads=2, context=8)).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["config"].update(change)
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(AudiogenError, match="weights do not match config.json") as caught:
        LM.load(tmp_path / "m")
    assert "\n" not in str(caught.value)
