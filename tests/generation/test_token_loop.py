"""Token generation: agreement with a naive full-forward loop, guidance, seeds, prompts, long runs."""

from __future__ import annotations

import pytest
import torch

from audiogen.errors import AudiogenError
from audiogen.generation.options import SamplingConfig
from audiogen.generation.sampling import guide, sample, top_p_filter
from audiogen.generation.token_loop import generate_tokens
from audiogen.lm.model import LM, LMConfig
from audiogen.lm.patterns import shift_right

K, V, F = 3, 16, 4


# Tiny models run fastest on one thread, and a busy shared machine cannot stall them (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(cond_features: int = F, context: int = 8) -> LM:
    torch.manual_seed(0)
    config = LMConfig(num_codebooks=K, codebook_size=V, dim=32, num_layers=2, num_heads=4, context=context,
                      cond_features=cond_features)
    return LM(config).eval()


def midi(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(B, T, F, generator=torch.Generator().manual_seed(seed)).round()


@torch.no_grad()
def reference(model: LM, num_frames: int, prompt: torch.Tensor, cond: torch.Tensor | None, guidance: float,
              negative: torch.Tensor | None = None):
    """Greedy decoding by re-running the full forward pass for every step (no cache). With `negative`, the
    guidance's second row is the same sequence with the negative frames in place of the prompt's."""
    pattern, special = model.pattern, model.config.special
    B, _, Tp = prompt.shape
    frames = torch.zeros(B, K, num_frames, dtype=torch.long)
    frames[:, :, :Tp] = prompt
    steps = pattern.apply(frames, fill=special)
    if negative is not None:
        frames[:, :, :Tp] = negative
    other = pattern.apply(frames, fill=special)
    real = pattern.real_mask(num_frames)
    known = pattern.apply(torch.arange(num_frames).expand(1, K, -1) < Tp, fill=False)[0]
    for s in range(steps.shape[2]):
        inputs = shift_right(steps[:, :, : s + 1], special)
        logits = model(inputs, cond)[:, :, -1]
        if guidance != 1:
            second = shift_right(other[:, :, : s + 1], special)
            logits = guide(logits, model(second, None)[:, :, -1], guidance)
        tokens = logits.argmax(dim=-1)
        for k in range(K):
            if real[k, s] and not known[k, s]:
                steps[:, k, s] = other[:, k, s] = tokens[:, k]
    return pattern.invert(steps)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
@pytest.mark.parametrize("prompt_frames", [0, 5])
def test_matches_full_forward_loop_past_the_window(guidance: float, prompt_frames: int) -> None:
    """Cached, ring-buffered generation of 20 frames (context 8) equals the naive loop; scale 1 is
    plain conditional decoding, other scales combine a 2B batch with the null condition."""
    model = tiny()
    B, T = 2, 20
    prompt = torch.randint(0, V, (B, K, prompt_frames), generator=torch.Generator().manual_seed(3))
    cond = midi(B, T + 4)
    out = generate_tokens(model, num_frames=T, batch_size=B, prompt=prompt, cond=cond,
                          sampling=SamplingConfig(temperature=0.0, guidance=guidance))
    assert out.shape == (B, K, T) and out.dtype == torch.long
    assert torch.equal(out, reference(model, T, prompt, cond, guidance))


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_negative_prompt_matches_full_forward_loop(guidance: float) -> None:
    """Guidance toward a prompt against a negative prompt (continuation's, against silence): the cached,
    ring-buffered loop equals the naive one whose second row starts from the negative frames; scale 1
    is the prompt alone, bit for bit; the prompt comes back unchanged."""
    model = tiny(cond_features=0)
    B, T, Tp = 2, 20, 5
    gen = torch.Generator().manual_seed(3)
    prompt = torch.randint(0, V, (B, K, Tp), generator=gen)
    negative = torch.randint(0, V, (1, K, Tp), generator=gen)
    greedy = SamplingConfig(temperature=0.0, guidance=guidance)
    out = generate_tokens(model, num_frames=T, batch_size=B, prompt=prompt, negative_prompt=negative, sampling=greedy)
    assert torch.equal(out, reference(model, T, prompt, None, guidance, negative.expand(B, -1, -1)))
    assert torch.equal(out[:, :, :Tp], prompt)
    plain = generate_tokens(model, num_frames=T, batch_size=B, prompt=prompt, sampling=greedy)
    assert torch.equal(out, plain) == (guidance == 1.0)


def test_negative_prompt_user_errors() -> None:
    model = tiny()
    prompt = torch.zeros(1, K, 4, dtype=torch.long)
    for kwargs in ({"negative_prompt": prompt}, {"prompt": prompt, "negative_prompt": prompt[:, :, :3]},
                   {"prompt": prompt, "negative_prompt": prompt, "cond": midi(1, 10)}):
        with pytest.raises(AudiogenError, match="negative_prompt"):
            generate_tokens(model, num_frames=8, **kwargs)


def test_guidance_changes_the_output() -> None:
    model = tiny()
    cond = midi(1, 12)
    plain = generate_tokens(model, num_frames=12, cond=cond, sampling=SamplingConfig(guidance=1.0, seed=1))
    guided = generate_tokens(model, num_frames=12, cond=cond, sampling=SamplingConfig(guidance=5.0, seed=1))
    assert not torch.equal(plain, guided)
    c, u = torch.randn(2, 5, V).unbind(0)
    assert torch.equal(guide(c, u, 1.0), c)  # scale 1 is the conditional logits, bit for bit
    assert torch.allclose(guide(c, u, 3.0), u + 3.0 * (c - u), atol=1e-6)


def test_seed_determinism() -> None:
    model = tiny(cond_features=0)
    run = lambda seed: generate_tokens(model, num_frames=15, batch_size=3, sampling=SamplingConfig(seed=seed))  # noqa: E731
    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # items of a batch differ
    assert a.min() >= 0 and a.max() < V


def test_prompt_comes_back_unchanged() -> None:
    model = tiny()
    prompt = torch.randint(0, V, (1, K, 6), generator=torch.Generator().manual_seed(5))
    out = generate_tokens(model, num_frames=14, batch_size=2, prompt=prompt, cond=midi(1, 14),
                          sampling=SamplingConfig(seed=2))
    assert out.shape == (2, K, 14)
    assert torch.equal(out[:, :, :6], prompt.expand(2, -1, -1))
    full = generate_tokens(model, num_frames=6, prompt=prompt)  # nothing to sample
    assert torch.equal(full, prompt)


def test_long_generation_past_context() -> None:
    model = tiny(cond_features=0, context=4)
    out = generate_tokens(model, num_frames=60, batch_size=2, sampling=SamplingConfig(top_k=5, seed=4))
    assert out.shape == (2, K, 60)
    assert out.min() >= 0 and out.max() < V


def test_top_k_one_is_greedy() -> None:
    model = tiny()
    cond = midi(2, 10)
    greedy = generate_tokens(model, num_frames=10, batch_size=2, cond=cond,
                             sampling=SamplingConfig(temperature=0.0, seed=0))
    top1 = generate_tokens(model, num_frames=10, batch_size=2, cond=cond,
                           sampling=SamplingConfig(temperature=1.5, top_k=1, seed=9))
    assert torch.equal(greedy, top1)


def test_logits_hook_steers_sampling() -> None:
    model = tiny(cond_features=0)
    seen = []

    def force_seven(step: int, logits: torch.Tensor) -> torch.Tensor:
        seen.append(step)
        assert logits.shape == (1, K, V)
        biased = torch.full_like(logits, -1e9)
        biased[..., 7] = 0
        return biased

    prompt = torch.zeros(1, K, 2, dtype=torch.long)
    out = generate_tokens(model, num_frames=8, prompt=prompt, logits_hook=force_seven)
    assert (out[:, :, 2:] == 7).all() and (out[:, :, :2] == 0).all()
    assert seen == list(range(2, 8 + K - 1))  # every step after the prompt's, up to S - 1


def test_sampling_filters() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    kept = torch.isfinite(top_p_filter(logits, 0.7))[0].tolist()
    assert kept == [True, True, False, False]  # p(0) = 0.61 < 0.7, p(0) + p(1) >= 0.7
    g = torch.Generator().manual_seed(0)
    draws = sample(logits.expand(20000, -1), temperature=1.0, generator=g)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, logits.softmax(-1)[0], atol=0.02)
    draws = sample(logits.expand(20000, -1), temperature=1.0, top_k=2, generator=g)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.cat((logits[0, :2].softmax(-1), torch.zeros(2))), atol=0.02)
    draws = sample(logits.expand(20000, -1), temperature=1.0, top_k=3, top_p=0.7, generator=g)
    assert set(draws.tolist()) == {0, 1}


def test_user_errors() -> None:
    model = tiny()
    with pytest.raises(AudiogenError):
        generate_tokens(model, num_frames=4, prompt=torch.zeros(1, K, 6, dtype=torch.long))
    with pytest.raises(AudiogenError):
        generate_tokens(model, num_frames=10, cond=midi(1, 8))
    with pytest.raises(AudiogenError):
        generate_tokens(tiny(cond_features=0), num_frames=4, cond=midi(1, 8))
    with pytest.raises(AudiogenError):
        generate_tokens(model, num_frames=4, sampling=SamplingConfig(temperature=-1.0))


def test_packed_decoding_gives_the_same_tokens() -> None:
    """fp32: the prepacked CPU decode step (where oneDNN is available) samples exactly the tokens
    of the module path, with guidance (a 2B batch) and past the window."""
    model = tiny()
    cond = midi(2, 24)
    sampling = SamplingConfig(seed=3, guidance=3.0, top_k=8)
    fast = generate_tokens(model, num_frames=20, batch_size=2, cond=cond, sampling=sampling)
    packed = model._decoder is not None
    model.fast_decode = False
    plain = generate_tokens(model, num_frames=20, batch_size=2, cond=cond, sampling=sampling)
    assert model._decoder is None
    assert torch.equal(fast, plain)
    if torch.backends.mkldnn.is_available():
        assert packed


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no prepacked CPU decode step here")
def test_decode_loop_runs_on_the_threads_its_step_wants() -> None:
    """In a 2-thread process, fp32 at small batch decodes with XNNPACK on one thread: the loop runs
    on 1 thread (set once, restored after), a lone step outside the loop switches for itself, and
    the tokens are those of the module path."""
    from audiogen.lm.decode_cpu import _xnnpack

    model = tiny()
    torch.set_num_threads(2)
    seen = []

    def hook(step: int, logits: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return logits

    sampling = SamplingConfig(seed=1, guidance=3.0, top_k=8)
    fast = generate_tokens(model, num_frames=12, batch_size=1, cond=midi(1, 12), sampling=sampling,
                           logits_hook=hook)
    want = 1 if _xnnpack() else 2
    assert model._decoder.kind == ("xnnpack" if want == 1 else "onednn")
    assert seen and set(seen) == {want} and torch.get_num_threads() == 2
    model.decode_step(torch.zeros(2, K, 1, dtype=torch.long), position=12)  # outside the loop
    assert torch.get_num_threads() == 2
    model.fast_decode = False
    assert torch.equal(fast, generate_tokens(model, num_frames=12, batch_size=1, cond=midi(1, 12),
                                             sampling=sampling))


def test_a_model_made_under_inference_mode_generates() -> None:
    """Weights created inside torch.inference_mode() have no version counter; the decoder's cache
    key must not need one (a user may load and generate inside one `with` block)."""
    with torch.inference_mode():
        model = tiny()
        codes = generate_tokens(model, num_frames=10, sampling=SamplingConfig(seed=1, top_k=4), cond=midi(1, 10))
    model2 = tiny()
    assert torch.equal(codes, generate_tokens(model2, num_frames=10, sampling=SamplingConfig(seed=1, top_k=4),
                                              cond=midi(1, 10)))

