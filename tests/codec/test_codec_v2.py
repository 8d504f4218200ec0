"""Codec v2 pieces: the inverse-STFT decoder (`codec/spectral.py`) at 75 / 37.5 / 25 Hz, quantizer
dropout, the multi-resolution STFT loss, the multi-period discriminator and a short training run
with all of them that resumes exactly.

    .venv/bin/pytest tests/test_codec_v2.py -q
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import prime_codec, read_csv, synth, tiny_codec_config, tiny_recipe, torch_threads

from audiogen import checkpoint
from audiogen.codec import CodecConfig, EncodecCodec, load_codec
from audiogen.codec.spectral import ISTFTDecoder
from audiogen.errors import AudiogenError
from audiogen.evaluation.metrics import MultiScaleMel, si_snr
from audiogen.training.codec import CodecTask
from audiogen.training.codec_discriminators import PERIODS, CombinedDiscriminator, MultiPeriodDiscriminator
from audiogen.training.codec_losses import (
    LossConfig,
    ReconstructionLosses,
    adversarial_generator_loss,
    build_discriminator,
    discriminator_loss,
    feature_matching_loss,
)
from audiogen.training.codec_stft_loss import MultiResolutionSTFTLoss
from audiogen.training.loop import run

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
# (ratios, istft_subframes R): hop 320 / 640 / 960 at 24 kHz, STFT hop 320 in each
RATES = {75.0: ((8, 5, 4, 2), 1), 37.5: ((8, 5, 4, 4), 2), 25.0: ((8, 6, 5, 4), 3)}


def istft_config(**overrides) -> CodecConfig:
    base = dict(decoder="istft", istft_dim=16, istft_layers=2)
    base.update(overrides)
    return tiny_codec_config(**base)


def wav_of(seconds: float, *, seed: int = 0, batch: int = 1) -> torch.Tensor:
    return torch.from_numpy(synth(seconds, 24000, 1, seed=seed))[None].expand(batch, -1, -1).contiguous()


# ---------------------------------------------------------------------- the iSTFT decoder


@pytest.mark.parametrize("rate", sorted(RATES))
@pytest.mark.parametrize("decoder", ["istft", "conv"])
def test_both_decoders_round_trip_at_75_37_5_and_25_hz(rate, decoder):
    ratios, subframes = RATES[rate]
    torch.manual_seed(0)
    codec = prime_codec(EncodecCodec(tiny_codec_config(ratios=ratios, decoder=decoder, istft_dim=16,
                                                       istft_layers=2, istft_subframes=subframes)))
    hop = codec.hop_length
    assert codec.frame_rate == rate and hop == 24000 / rate
    for n in (1, hop, hop + 1, 5 * hop - 7):
        wav = wav_of(n / 24000, seed=n, batch=2)
        codes = codec.encode(wav)
        assert codes.shape == (2, 2, math.ceil(n / hop))
        out = codec.decode(codes)
        assert out.shape == (2, 1, codes.shape[-1] * hop) and torch.isfinite(out).all()
    codec.train()
    wav = wav_of(0.3, seed=1, batch=2)
    recon, codes, commit = codec(wav)
    assert recon.shape == wav.shape and codes.shape == (2, 2, math.ceil(wav.shape[-1] / hop))
    if decoder == "istft":
        assert isinstance(codec.decoder, ISTFTDecoder)
        assert codec.decoder.stft_hop == 320 and codec.decoder.n_fft == 1280


@pytest.mark.parametrize("frames", [1, 2, 9])
def test_istft_decoder_length_is_frames_times_hop_and_matches_torch_istft(frames):
    torch.manual_seed(0)
    latent = torch.randn(3, 8, frames)
    for hop, subframes, n_fft in ((320, 1, 0), (960, 3, 0), (64, 2, 0), (64, 1, 160)):  # 160: not a multiple of the hop
        decoder = ISTFTDecoder(dimension=8, channels=2, hop_length=hop, dim=16, layers=1, subframes=subframes,
                               n_fft=n_fft)
        out = decoder(latent)
        assert out.shape == (3, 2, frames * hop)
        spec = decoder.spectrum(latent)
        assert spec.shape == (6, decoder.n_fft // 2 + 1, frames * subframes)
        reference = torch.istft(spec, n_fft=decoder.n_fft, hop_length=decoder.stft_hop, window=decoder.window,
                                center=True, length=frames * hop)
        torch.testing.assert_close(out.reshape(6, -1), reference, atol=1e-6, rtol=1e-5)


def test_istft_decoder_output_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    decoder = ISTFTDecoder(dimension=8, channels=1, hop_length=320, dim=32, layers=2).eval()
    latent = torch.randn(4, 8, 20)
    with torch.no_grad():
        together = decoder(latent)
        alone = torch.cat([decoder(latent[i : i + 1]) for i in range(4)])
        shuffled = decoder(latent.flip(0)).flip(0)
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(together, shuffled, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(together[0], together[1])  # different inputs, different outputs


def test_istft_decoder_gradients_reach_magnitude_and_phase_outputs():
    torch.manual_seed(0)
    decoder = ISTFTDecoder(dimension=8, channels=1, hop_length=64, dim=16, layers=1, subframes=2)
    target = torch.randn(2, 1, 10 * 64)
    torch.nn.functional.l1_loss(decoder(torch.randn(2, 8, 10)), target).backward()
    grad = decoder.head.weight.grad.view(2, 2, decoder.bins, -1)  # [R, magnitude | phase, bins, dim]
    assert torch.isfinite(grad).all()
    assert float(grad[:, 0].abs().sum()) > 0 and float(grad[:, 1].abs().sum()) > 0
    assert float(decoder.embed.weight.grad.abs().sum()) > 0


def test_chunked_decoding_with_the_istft_decoder_matches_a_single_pass():
    torch.manual_seed(0)
    codec = prime_codec(EncodecCodec(istft_config(ratios=(8, 5, 4, 2), istft_layers=3)))
    receptive = codec.decoder.receptive_frames
    assert receptive == 3 * 4 + 2 and codec.context_frames >= receptive
    wav = wav_of(4.0, seed=5)  # 300 frames
    codes = codec.encode(wav)
    single = codec.decode(codes)

    def chunked(chunk_frames: int, context_frames: int) -> torch.Tensor:
        saved = codec.chunk_frames, codec.context_frames
        codec.chunk_frames, codec.context_frames = chunk_frames, context_frames
        try:
            return codec.decode(codes)
        finally:
            codec.chunk_frames, codec.context_frames = saved

    exact = chunked(40, receptive)  # 8 chunks, context = the receptive field
    assert exact.shape == single.shape
    assert float((exact - single).abs().max()) < 1e-5
    seams = chunked(40, 0)  # no context: chunk edges differ from the single pass
    assert float(si_snr(single, seams).min()) < float(si_snr(single, exact).min()) - 20
    # at 25 Hz one second of context (25 frames) is less than the decoder sees: the context grows
    low = EncodecCodec(istft_config(ratios=(8, 6, 5, 4), istft_subframes=3, istft_layers=8))
    assert low.context_frames >= low.decoder.receptive_frames > 25


def test_istft_codec_saves_and_loads_and_decodes_identically(tmp_path):
    torch.manual_seed(0)
    codec = prime_codec(EncodecCodec(istft_config(istft_subframes=2, quantizer_dropout=True)))
    wav = wav_of(1.0, seed=7)
    codes = codec.encode(wav)
    out = codec.decode(codes)
    codec.save(tmp_path / "codec")
    meta = json.loads((tmp_path / "codec" / "config.json").read_text())
    assert meta["config"]["decoder"] == "istft" and meta["config"]["istft_subframes"] == 2
    loaded = load_codec(tmp_path / "codec")
    assert isinstance(loaded.decoder, ISTFTDecoder) and loaded.config == codec.config
    assert loaded.identity == codec.identity and loaded.fingerprint() == codec.fingerprint()
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), out)
    # no window buffer or other extra tensor in the file: the state dicts match key for key
    assert checkpoint.load_weights(tmp_path / "codec").keys() == codec.state_dict().keys()


def test_old_codec_identity_is_unchanged_by_the_new_settings():
    """The bundled codec's config hash, as its language model recorded it, still matches."""
    lm_meta = json.loads((ROOT / "audiogen" / "default_model" / "config.json").read_text())
    codec = EncodecCodec.load(ROOT / "audiogen" / "default_model" / "codec")
    assert codec.config.decoder == "conv" and not codec.config.quantizer_dropout
    assert codec.identity["config_hash"] == lm_meta["codec"]["config_hash"]
    other = EncodecCodec(istft_config())
    assert other.identity["config_hash"] != EncodecCodec(tiny_codec_config()).identity["config_hash"]


@pytest.mark.parametrize("overrides, message", [
    ({"decoder": "wavenet"}, "decoder must be conv or istft"),
    ({"decoder": "istft", "ratios": (8, 5, 4, 2), "istft_subframes": 3}, "not divisible by istft_subframes"),
    ({"decoder": "istft", "istft_n_fft": 33}, "istft_n_fft must be even"),
    ({"decoder": "istft", "istft_dim": 0}, "must be positive"),
])
def test_bad_decoder_settings_are_user_errors(overrides, message):
    with pytest.raises(AudiogenError, match=message):
        tiny_codec_config(**overrides).validate()


# ---------------------------------------------------------------------- quantizer dropout


def test_quantizer_dropout_draws_allowed_depths_reproducibly_and_inference_uses_num_codebooks(tmp_path):
    config = CodecConfig(max_codebooks=8, num_codebooks=4, ratios=(8, 5, 4, 2), quantizer_dropout=True)
    assert config.codebook_choices == (2, 4, 8)
    assert [dataclass_kbps(config, k) for k in config.codebook_choices] == [1.5, 3.0, 6.0]
    torch.manual_seed(0)
    codec = prime_codec(EncodecCodec(tiny_codec_config(max_codebooks=4, num_codebooks=2, quantizer_dropout=True)))
    assert codec.config.codebook_choices == (1, 2, 4)
    rng_before = torch.get_rng_state()
    draws = [codec.draw_num_codebooks(torch.Generator().manual_seed(s)) for s in range(60)]
    again = [codec.draw_num_codebooks(torch.Generator().manual_seed(s)) for s in range(60)]
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is never touched
    assert draws == again and set(draws) == {1, 2, 4}
    off = EncodecCodec(tiny_codec_config(max_codebooks=4, num_codebooks=2))
    assert {off.draw_num_codebooks(torch.Generator().manual_seed(s)) for s in range(10)} == {2}

    wav = wav_of(0.5, seed=3, batch=2)
    codec.train()
    for depth in (1, 4):
        _, codes, _ = codec(wav, num_codebooks=depth)
        assert codes.shape[1] == depth
    codec.eval()
    codes = codec.encode(wav)
    assert codes.shape[1] == 2  # inference: num_codebooks
    codec.save(tmp_path / "codec")
    deeper = EncodecCodec.load(tmp_path / "codec", num_codebooks=4)
    shallow = EncodecCodec.load(tmp_path / "codec", num_codebooks=1)
    deep_codes = deeper.encode(wav)
    assert deep_codes.shape[1] == 4 and torch.equal(deep_codes[:, :2], codes)  # residual VQ: a prefix
    assert torch.equal(shallow.encode(wav), codes[:, :1])
    assert deeper.decode(deep_codes).shape == codec.decode(codes).shape
    with pytest.raises(AudiogenError, match="num_codebooks"):
        EncodecCodec.load(tmp_path / "codec", num_codebooks=5)


def dataclass_kbps(config: CodecConfig, depth: int) -> float:
    import dataclasses

    return dataclasses.replace(config, num_codebooks=depth).kbps


# ---------------------------------------------------------------------- multi-resolution STFT loss


def band(wav: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """`wav` with only the frequencies in [low, high) Hz kept (brick wall over the whole signal)."""
    spec = torch.fft.rfft(wav)
    freqs = torch.fft.rfftfreq(wav.shape[-1], 1 / 24000)
    return torch.fft.irfft(spec * ((freqs >= low) & (freqs < high)), n=wav.shape[-1])


def test_mrstft_loss_is_zero_for_equal_inputs_and_punishes_lost_highs_more_than_mel():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 1, 24000, generator=generator)
    freqs = torch.fft.rfftfreq(24000, 1 / 24000)
    noise = torch.fft.irfft(torch.fft.rfft(noise) / (1 + freqs / 200).sqrt(), n=24000)  # pink-ish: highs quieter
    wav = wav_of(1.0, seed=3) + 0.05 * noise / noise.std()
    stft, mel = MultiResolutionSTFTLoss(sample_rate=24000), MultiScaleMel(24000)
    assert float(stft(wav, wav)) == 0.0
    no_highs, fewer_highs, no_lows = band(wav, 0, 2000), band(wav, 0, 4000), band(wav, 1000, 1e9)
    assert float(stft(wav, no_highs)) > float(stft(wav, fewer_highs)) > 0
    # relative to losing everything below 1 kHz, losing the highs above 4 kHz costs the STFT loss
    # far more than it costs the mel loss (measured: 1.90x vs 0.95x)
    stft_growth = float(stft(wav, fewer_highs)) / float(stft(wav, no_lows))
    mel_growth = float(mel(wav, fewer_highs)) / float(mel(wav, no_lows))
    assert stft_growth > 1.5 * mel_growth
    without_linear = MultiResolutionSTFTLoss(sample_rate=24000, linear=0.0)
    assert 0 < float(without_linear(wav, no_highs)) < float(stft(wav, no_highs))
    # gradients reach the estimate
    estimate = (0.5 * wav).requires_grad_(True)
    stft(wav, estimate).backward()
    assert torch.isfinite(estimate.grad).all() and float(estimate.grad.abs().sum()) > 0


def test_reconstruction_losses_add_stft_only_when_weighted():
    wav = wav_of(0.3, seed=1)
    assert set(ReconstructionLosses(24000)(wav, 0.5 * wav)) == {"l1", "mel"}
    losses = ReconstructionLosses(24000, stft=True)(wav, 0.5 * wav)
    assert set(losses) == {"l1", "mel", "stft"} and float(losses["stft"]) > 0
    with pytest.raises(AudiogenError, match="discriminator must be one of"):
        LossConfig(discriminator="hifigan").validate()
    LossConfig(l1=0.0, mel=0.0, stft=1.0).validate()  # the STFT loss alone is a reconstruction loss


# ---------------------------------------------------------------------- discriminators


def test_multi_period_discriminator_gives_logits_and_features_per_period():
    disc = MultiPeriodDiscriminator(channels=1, filters=4)
    wav = wav_of(0.1, seed=2, batch=2)[..., :2399]  # not a multiple of any period
    logits, features = disc(wav)
    assert len(logits) == len(features) == len(PERIODS)
    for logit, feats, period in zip(logits, features, PERIODS):
        assert logit.shape[0] == 2 and logit.shape[1] == 1 and logit.shape[-1] == period
        assert len(feats) == 6 and feats[-1] is logit and all(torch.isfinite(f).all() for f in feats)


def test_combined_discriminator_trains_a_step_and_feeds_the_generator_losses():
    torch.manual_seed(0)
    config = LossConfig(discriminator="msstft+mpd", disc_filters=4, mpd_filters=4)
    disc = build_discriminator(config, channels=1)
    assert isinstance(disc, CombinedDiscriminator)
    assert type(build_discriminator(LossConfig(disc_filters=4), 1)).__name__ == "MultiScaleSTFTDiscriminator"
    assert isinstance(build_discriminator(LossConfig(discriminator="mpd"), 1), MultiPeriodDiscriminator)
    real = wav_of(0.2, seed=4, batch=2)
    fake = (0.5 * real + 0.01 * torch.randn(real.shape)).requires_grad_(True)
    logits_real, feats_real = disc(real)
    logits_fake, feats_fake = disc(fake)
    scales = len(disc.discriminators[0].discriminators)
    assert len(logits_real) == scales + len(PERIODS) and len(feats_real) == len(logits_real)
    d_loss = discriminator_loss(logits_real, [l.detach() for l in logits_fake])
    assert torch.isfinite(d_loss)
    d_loss.backward()
    for part in disc.discriminators:  # both kinds learn
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0
    g_loss = adversarial_generator_loss(logits_fake) + feature_matching_loss(feats_real, feats_fake)
    assert torch.isfinite(g_loss)
    (grad,) = torch.autograd.grad(g_loss, [fake])
    assert float(grad.abs().sum()) > 0


# ---------------------------------------------------------------------- training


V2_SECTIONS = dict(
    model={"decoder": "istft", "istft_dim": 16, "istft_layers": 2, "quantizer_dropout": True,
           "max_codebooks": 4, "num_codebooks": 2},
    losses={"stft": 1.0, "discriminator": "msstft+mpd", "adversarial": 1.0, "feature": 1.0,
            "disc_filters": 4, "mpd_filters": 4},
)


def _train(audio_dir, out_dir, *, resume: bool = False, **train) -> tuple[CodecTask, dict[str, torch.Tensor]]:
    recipe = tiny_recipe(audio_dir, **V2_SECTIONS,
                         train={"steps": 3, "log_every": 1, "eval_every": 3, "checkpoint_every": 1, **train})
    with torch_threads(1):
        torch.manual_seed(0)
        task = CodecTask(recipe, device=torch.device("cpu"))
        start = {k: v.clone() for k, v in task.codec.state_dict().items()}
        run(task, recipe.train, out_dir, device=torch.device("cpu"), quiet=True, resume=resume)
    return task, start


def test_v2_training_run_completes_and_resumes_exactly(tmp_path, audio_dir):
    task, start = _train(audio_dir, tmp_path / "straight")
    changed = {k.split(".")[0] for k, v in task.codec.state_dict().items() if not torch.equal(v, start[k])}
    assert changed == {"encoder", "quantizer", "decoder"}
    assert isinstance(task.codec.decoder, ISTFTDecoder) and isinstance(task.disc, CombinedDiscriminator)
    assert list(task.balancer.weights) == ["l1", "mel", "stft", "adversarial", "feature"]
    assert all(v == v for v in task.balancer.ema_norms.tolist())  # every balanced loss was seen
    rows = read_csv(tmp_path / "straight" / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for row in rows:
        for key in ("l1", "mel", "stft", "adversarial", "feature", "disc", "commit"):
            assert math.isfinite(float(row[key])), (key, row)
        assert float(row["codebooks"]) in (1.0, 2.0, 4.0)
    assert [task.num_codebooks(s, 0) for s in range(3)] == [int(float(r["codebooks"])) for r in rows]
    # stopped at step 2, then resumed to 3: the same weights, buffers and losses as the straight run
    _train(audio_dir, tmp_path / "resumed", stop_after=2)
    assert [int(r["step"]) for r in read_csv(tmp_path / "resumed" / "train_log.csv")] == [1, 2]
    _train(audio_dir, tmp_path / "resumed", resume=True)
    a, b = checkpoint.load_weights(tmp_path / "straight"), checkpoint.load_weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    sa = checkpoint.load_tensors(tmp_path / "straight" / checkpoint.TRAIN_STATE_NAME)
    sb = checkpoint.load_tensors(tmp_path / "resumed" / checkpoint.TRAIN_STATE_NAME)
    assert sa.keys() == sb.keys() and [k for k in sa if not torch.equal(sa[k], sb[k])] == []  # disc, balancer
    resumed_rows = read_csv(tmp_path / "resumed" / "train_log.csv")
    assert [(r["stft"], r["codebooks"]) for r in resumed_rows] == [(r["stft"], r["codebooks"]) for r in rows]
    loaded = load_codec(tmp_path / "resumed")
    assert isinstance(loaded.decoder, ISTFTDecoder) and loaded.num_codebooks == 2


def test_the_quantizer_keeps_its_codes_under_bf16_autocast() -> None:
    """bf16 autocast (the default on CUDA) must not reach the residual VQ: its distances and EMA counts
    need fp32. On an H100 the codebooks collapsed to one code within 100 steps before this was fixed."""
    cfg = CodecConfig(sample_rate=24000, n_filters=4, dimension=64, ratios=(8, 6, 5, 4), lstm_layers=0,
                      causal=False, max_codebooks=2, num_codebooks=2, codebook_size=256, decoder="istft",
                      istft_dim=32, istft_layers=1, istft_subframes=3)
    t = torch.arange(24000) / 24000
    wav = torch.stack([0.3 * torch.sin(2 * torch.pi * (200 + 300 * i) * t) for i in range(8)])[:, None]
    wav = wav + 0.02 * torch.randn(wav.shape, generator=torch.Generator().manual_seed(0))
    used = {}
    for name, ctx in {"fp32": torch.autocast("cpu", enabled=False),
                      "bf16": torch.autocast("cpu", dtype=torch.bfloat16)}.items():
        torch.manual_seed(0)
        codec = EncodecCodec(cfg).train()
        with ctx:
            for _ in range(3):
                codec(wav)
            codec.eval()
            with torch.no_grad():
                used[name] = codec.encode(wav)[:, 0].unique().numel()
    assert used["bf16"] >= 0.8 * used["fp32"] > 20


def test_bandwidth_picks_a_trained_depth_of_a_codec_trained_with_quantizer_dropout(tmp_path: Path) -> None:
    common = dict(sample_rate=24000, n_filters=4, dimension=16, ratios=(8, 6, 5, 4), lstm_layers=0, causal=False,
                  max_codebooks=8, num_codebooks=4, codebook_size=64)
    EncodecCodec(CodecConfig(**common, quantizer_dropout=True)).save(tmp_path / "dropout")
    EncodecCodec(CodecConfig(**common)).save(tmp_path / "fixed")
    # 25 Hz x 6 bits = 0.15 kbps per codebook: depths 2 / 4 / 8 serve 0.3 / 0.6 / 1.2 kbps.
    assert [load_codec(tmp_path / "dropout", bandwidth=b).num_codebooks for b in (0.3, 0.6, 1.2)] == [2, 4, 8]
    assert load_codec(tmp_path / "fixed", bandwidth=0.6).num_codebooks == 4
    with pytest.raises(AudiogenError, match="serves 0.6 kbps, not 1.2"):
        load_codec(tmp_path / "fixed", bandwidth=1.2)
    with pytest.raises(AudiogenError, match="serves 0.3, 0.6, 1.2 kbps, not 0.45"):
        load_codec(tmp_path / "dropout", bandwidth=0.45)
