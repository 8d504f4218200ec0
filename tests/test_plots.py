"""Spectrogram PNGs: valid files of the promised size, written atomically, any input shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import image

from audiogen.errors import AudiogenError
from audiogen.plots import DPI, HEIGHT_INCHES, WIDTH_INCHES, log_mel, save_comparison, save_spectrogram

SR = 24000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chirp(seconds: float, channels: int = 2) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    mono = 0.3 * torch.sin(2 * torch.pi * (200 + 2000 * t) * t)
    return mono.expand(channels, -1).clone()  # [C, N]


def _check_png(path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(path)  # [H, W, 4] floats in [0, 1]
    assert pixels.shape[:2] == (int(HEIGHT_INCHES * DPI), int(WIDTH_INCHES * DPI))
    return pixels


def test_save_spectrogram_writes_a_png_atomically(tmp_path):
    out = save_spectrogram(tmp_path / "plots" / "chirp.png", _chirp(2.0), SR, title="chirp")
    assert out == tmp_path / "plots" / "chirp.png"
    pixels = _check_png(out)
    assert pixels[..., :3].std() > 0.1  # a picture, not a blank canvas
    assert [p.name for p in out.parent.iterdir()] == ["chirp.png"]  # no temporary left behind


def test_save_spectrogram_loop_silence_short_and_mono(tmp_path):
    _check_png(save_spectrogram(tmp_path / "loop.png", _chirp(1.0).numpy(), SR, loop=True, title="loop"))
    _check_png(save_spectrogram(tmp_path / "silence.png", np.zeros((2, SR // 4)), SR))
    _check_png(save_spectrogram(tmp_path / "tiny.png", _chirp(0.01, channels=1), SR))  # 240 samples
    _check_png(save_spectrogram(tmp_path / "mono.png", _chirp(0.5)[0], 16000))  # [N], another rate
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.png", "mono.png", "silence.png", "tiny.png"]
    with pytest.raises(AudiogenError):
        save_spectrogram(tmp_path / "empty.png", np.zeros((1, 0)), SR)


def test_loop_view_is_the_loop_twice():
    mono = _chirp(1.0)[0].numpy()
    once, hop = log_mel(mono, SR)
    twice, _ = log_mel(np.concatenate([mono, mono]), SR)
    assert twice.shape[1] == pytest.approx(2 * once.shape[1], abs=1)
    assert once.max() == 0.0 and once.min() >= -80.0  # dB relative to the loudest bin, 80 dB range
    assert hop == 256


def test_comparison_draws_input_above_output_on_one_scale(tmp_path):
    """The output loses its highs: the lower panel is darker than the upper in the top half of the picture."""
    wav = _chirp(2.0, channels=1)
    muffled = torch.from_numpy(
        np.fft.irfft(np.fft.rfft(wav.numpy()) * (np.fft.rfftfreq(wav.shape[-1], 1 / SR) < 1500), n=wav.shape[-1])
    ).float()
    out = save_comparison(tmp_path / "cmp" / "codec.png", wav, muffled, SR, titles=("in", "out"))
    pixels = image.imread(out)
    assert pixels.shape[:2] == (int(2 * HEIGHT_INCHES * DPI), int(WIDTH_INCHES * DPI))
    h = pixels.shape[0] // 2
    upper_highs = pixels[int(0.15 * h) : int(0.45 * h), 100:800, :3].mean()  # upper panel, upper half of its axis
    lower_highs = pixels[h + int(0.15 * h) : h + int(0.45 * h), 100:800, :3].mean()
    assert upper_highs > lower_highs + 0.05
    with pytest.raises(AudiogenError):
        save_comparison(tmp_path / "empty.png", wav, np.zeros((1, 0)), SR)


def test_high_frequency_ratio_sees_a_muffled_copy():
    from audiogen.evaluation.metrics import high_frequency_ratio

    noise = torch.randn(1, SR, generator=torch.Generator().manual_seed(0)) * 0.1
    spectrum = torch.fft.rfft(noise)
    freqs = torch.fft.rfftfreq(SR, 1 / SR)
    muffled = torch.fft.irfft(spectrum * (freqs < 3000), n=SR)
    assert high_frequency_ratio(noise, noise, SR, 2000) == pytest.approx(1.0)
    # White noise: 10 of 12 kHz above 2 kHz; the copy cut at 3 kHz: 1 of 3. Ratio (1/3) / (10/12) = 0.4.
    assert high_frequency_ratio(noise, muffled, SR, 2000) == pytest.approx(0.4, abs=0.03)
    assert high_frequency_ratio(noise, muffled, SR, 4000) < 0.01
    assert high_frequency_ratio(muffled, noise, SR, 4000) != high_frequency_ratio(muffled, noise, SR, 4000)  # NaN
