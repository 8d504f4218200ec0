"""Spectrogram pictures of audio (PNG), for eyeballing generations and loop seams.

    from audiogen.plots import save_spectrogram
    save_spectrogram("out.png", wav, 24000, title="sketch 3")       # wav [C, N] or [N]
    save_spectrogram("loop.png", loop_wav, 24000, loop=True)        # the loop twice, seam marked
    save_comparison("codec.png", wav, decoded, 24000)               # input above output, same scale

A log-mel spectrogram (dB relative to the loudest bin, 80 dB range), time in seconds and
frequency in Hz, 10x4 inches at 100 dpi (1000x400 pixels). Channels are mixed to mono. Drawn with
matplotlib's Agg canvas directly (no pyplot, no display, no global state) and written atomically.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import librosa
import librosa.display
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .audio import as_mono
from .errors import AudiogenError
from .fileio import atomic_path

WIDTH_INCHES, HEIGHT_INCHES, DPI = 10.0, 4.0, 100
DYNAMIC_RANGE_DB = 80.0


def mel_power(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Mel power spectrogram `[mels, frames]` of `mono` and its hop in samples (~43 ms windows)."""
    n_fft = 2 ** int(round(np.log2(sample_rate / 24000 * 1024)))  # ~43 ms at any rate
    hop = n_fft // 4
    n_mels = 128 if sample_rate >= 16000 else 64
    if len(mono) < n_fft:  # short clips: pad so at least one full frame exists
        mono = np.pad(mono, (0, n_fft - len(mono)))
    with warnings.catch_warnings():  # librosa warns about empty mel bands at low rates
        warnings.simplefilter("ignore")
        mel = librosa.feature.melspectrogram(
            y=mono, sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmax=sample_rate / 2
        )
    return mel, hop


def log_mel(mono: np.ndarray, sample_rate: int, *, peak: float | None = None) -> tuple[np.ndarray, int]:
    """dB log-mel spectrogram `[mels, frames]` (0 dB = loudest bin, or `peak` when given) and its hop."""
    mel, hop = mel_power(mono, sample_rate)
    peak = float(mel.max()) if peak is None else peak
    if peak <= 0:  # silence: a flat floor instead of log(0)
        return np.full_like(mel, -DYNAMIC_RANGE_DB), hop
    db = 10 * np.log10(np.maximum(mel / peak, 1e-30))
    return np.clip(db, -DYNAMIC_RANGE_DB, 0.0), hop


def _draw(axes, db: np.ndarray, hop: int, sample_rate: int, samples: int):
    image = librosa.display.specshow(
        db, sr=sample_rate, hop_length=hop, x_axis="s", y_axis="mel", fmax=sample_rate / 2,
        ax=axes, cmap="magma", vmin=-DYNAMIC_RANGE_DB, vmax=0.0,
    )
    axes.set_xlim(0.0, samples / sample_rate)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("frequency (Hz)")
    return image


def save_spectrogram(
    path: str | os.PathLike,
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    title: str | None = None,
    loop: bool = False,
) -> Path:
    """Write a log-mel spectrogram PNG of `wav [C, N]` (or `[N]`) to `path`; return the path.

    `loop=True` draws the loop twice in a row, the second copy following the first exactly as a
    player would wrap it, with a dashed line at the join, so a seam shows as a vertical stripe.
    """
    mono = as_mono(wav)
    if mono.shape[0] == 0:
        raise AudiogenError("cannot plot a spectrogram of empty audio")
    seconds = mono.shape[0] / sample_rate
    shown = np.concatenate([mono, mono]) if loop else mono
    db, hop = log_mel(shown, sample_rate)

    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    image = _draw(axes, db, hop, sample_rate, shown.shape[0])
    if loop:
        axes.axvline(seconds, color="white", linestyle="--", linewidth=1.5)
        axes.text(seconds, 1.01, " wrap", transform=axes.get_xaxis_transform(), ha="center", va="bottom")
    if title:
        axes.set_title(title, loc="left")
    figure.colorbar(image, ax=axes, format="%+.0f dB", pad=0.01)
    figure.tight_layout()

    final = Path(path)
    with atomic_path(final) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return final


def save_comparison(
    path: str | os.PathLike,
    reference: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    titles: tuple[str, str] = ("input", "output"),
) -> Path:
    """Two spectrograms one above the other (e.g. a codec's input and output), in dB relative to
    the reference's loudest bin, so a lost band shows as a darker region below the same band above."""
    ref, est = as_mono(reference), as_mono(estimate)
    if ref.shape[0] == 0 or est.shape[0] == 0:
        raise AudiogenError("cannot plot a spectrogram of empty audio")
    # One scale for both: dB relative to the reference's loudest bin, not each one's own.
    figure = Figure(figsize=(WIDTH_INCHES, 2 * HEIGHT_INCHES), dpi=DPI)
    FigureCanvasAgg(figure)
    peak = float(mel_power(ref, sample_rate)[0].max())
    ref_db, hop = log_mel(ref, sample_rate, peak=peak)
    est_db, _ = log_mel(est, sample_rate, peak=peak)
    for row, (db, title, samples) in enumerate(((ref_db, titles[0], ref.shape[0]), (est_db, titles[1], est.shape[0]))):
        axes = figure.add_subplot(2, 1, row + 1)
        image = _draw(axes, db, hop, sample_rate, samples)
        axes.set_title(title, loc="left")
        figure.colorbar(image, ax=axes, format="%+.0f dB", pad=0.01)
    figure.tight_layout()
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return final

