"""Quality metrics that need no downloaded networks.

* `si_snr(ref, est)`: scale-invariant signal-to-noise ratio in dB (higher is better).
* `mel_distance(ref, est, sr)`: multi-scale log-mel L1 distance (lower is better); the
  same module (`MultiScaleMel`) is the codec's reconstruction loss, so what we train is
  what we report.
* `high_frequency_ratio(ref, est, sr, cutoff_hz)`: the share of energy above the cutoff in the
  estimate over the same share in the reference (1 = the highs kept; a muffled codec scores
  far below 1, one that adds hiss above 1).

Further metrics for generated music (chroma similarity against MIDI, onset F1, loop seam
score) live in `audiogen/evaluation/musicmetrics.py`.
"""

from __future__ import annotations

import functools

import torch
import torchaudio
from torch import nn


def si_snr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """SI-SNR in dB per item over the last axis; inputs `[..., N]`, output `[...]`."""
    n = min(reference.shape[-1], estimate.shape[-1])
    ref = reference[..., :n].double()
    est = estimate[..., :n].double()
    ref = ref - ref.mean(dim=-1, keepdim=True)
    est = est - est.mean(dim=-1, keepdim=True)
    projection = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps) * ref
    noise = est - projection
    ratio = projection.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps)
    return (10 * torch.log10(ratio + eps)).float()


class MultiScaleMel(nn.Module):
    """L1 between log-mel spectrograms at several STFT sizes (scaled to the sample rate).

    Window sizes 2^5..2^11 at 24 kHz (32 to 2048 samples) cover transients to pitch; the
    number of mel bands grows with the window so small windows are not over-resolved.
    """

    def __init__(self, sample_rate: int, *, min_exponent: int = 5, max_exponent: int = 11, eps: float = 1e-5):
        super().__init__()
        scale = sample_rate / 24000
        self.eps = eps
        self.transforms = nn.ModuleList()
        for exponent in range(min_exponent, max_exponent + 1):
            n_fft = max(16, int(2**exponent * scale))
            self.transforms.append(
                torchaudio.transforms.MelSpectrogram(
                    sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft, hop_length=n_fft // 4,
                    n_mels=min(80, max(8, n_fft // 8)), f_min=0.0, f_max=sample_rate / 2, power=1.0,
                    normalized=False, center=True, norm="slaney", mel_scale="slaney",
                )
            )

    def forward(self, reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """Mean over scales of L1(log mel); `[B, C, N]` inputs, scalar output."""
        total = reference.new_zeros(())
        for transform in self.transforms:
            ref = transform(reference.float())
            est = transform(estimate.float())
            total = total + (torch.log(ref + self.eps) - torch.log(est + self.eps)).abs().mean()
        return total / len(self.transforms)


@functools.lru_cache(maxsize=4)
def _mel(sample_rate: int) -> MultiScaleMel:
    return MultiScaleMel(sample_rate)


@torch.no_grad()
def mel_distance(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> float:
    """Multi-scale log-mel L1 between two waveforms `[C, N]` or `[B, C, N]`."""
    n = min(reference.shape[-1], estimate.shape[-1])
    ref, est = reference[..., :n], estimate[..., :n]
    while ref.dim() < 3:
        ref, est = ref.unsqueeze(0), est.unsqueeze(0)
    return float(_mel(sample_rate).to(ref.device)(ref, est))


def high_frequency_share(wav: torch.Tensor, sample_rate: int, cutoff_hz: float) -> float:
    """Share of the energy of `wav [..., N]` (channels mixed) above `cutoff_hz`, from a 2048-point STFT."""
    mono = wav.reshape(-1, wav.shape[-1]).double().mean(dim=0)
    n_fft = 2048
    if mono.shape[-1] < n_fft:
        mono = torch.nn.functional.pad(mono, (0, n_fft - mono.shape[-1]))
    spec = torch.stft(mono, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft, dtype=mono.dtype,
                      device=mono.device), return_complex=True).abs().pow(2).sum(dim=-1)  # [bins]
    freqs = torch.arange(spec.shape[0], device=spec.device) * sample_rate / n_fft
    total = float(spec.sum())
    return float(spec[freqs >= cutoff_hz].sum()) / total if total > 0 else 0.0


def high_frequency_ratio(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                         cutoff_hz: float) -> float:
    """`high_frequency_share(estimate) / high_frequency_share(reference)`; NaN where the reference has no
    highs to keep (under 1e-4 of its energy, -40 dB: a ratio of window leakage would mean nothing)."""
    ref = high_frequency_share(reference, sample_rate, cutoff_hz)
    if ref < 1e-4:
        return float("nan")
    return high_frequency_share(estimate, sample_rate, cutoff_hz) / ref
