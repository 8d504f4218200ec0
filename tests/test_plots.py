"""Spectrogram PNGs: valid files of the promised size, written atomically, any input shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import image

from audiogen.errors import AudiogenError
from audiogen.plots import DPI, HEIGHT_INCHES, WIDTH_INCHES, log_mel, save_spectrogram

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
