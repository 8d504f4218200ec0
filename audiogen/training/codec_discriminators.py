"""Waveform discriminators for codec training: HiFi-GAN's multi-period discriminator, and a
combiner that runs several discriminators as one.

    disc = CombinedDiscriminator([MultiScaleSTFTDiscriminator(...), MultiPeriodDiscriminator()])
    logits, features = disc(wav)   # wav [B, C, N]; lists over sub-discriminators

Both return what encodec's `MultiScaleSTFTDiscriminator` returns: a list of logits (one tensor
per sub-discriminator) and a list of feature lists (one list of layer outputs per
sub-discriminator), so `losses.py`'s hinge and feature-matching losses work on any of them.

The multi-period discriminator (Kong et al. 2020, HiFi-GAN) folds the waveform into a 2-D grid
of `period` columns and runs strided (5 x 1) convolutions down the rows: each sub-discriminator
sees one phase of every period-p pattern, which is what catches periodic (pitch and
high-frequency) artefacts the STFT discriminator's coarse frames miss. HiFi-GAN's channels
(32 ... 1024) cost more than the codec; `filters` (default 16: 16, 32, 64, 128, 128) keeps it
a small fraction of a training step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

PERIODS: tuple[int, ...] = (2, 3, 5, 7, 11)
LEAKY_SLOPE = 0.1


class PeriodDiscriminator(nn.Module):
    """One period: `[B, C, N]` -> (logits `[B, 1, rows, period]`, layer features)."""

    def __init__(self, period: int, *, channels: int = 1, filters: int = 16, kernel: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        widths = [channels, filters, 2 * filters, 4 * filters, 8 * filters, 8 * filters]
        self.convs = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            conv = nn.Conv2d(cin, cout, (kernel, 1), (1 if last else stride, 1), padding=(kernel // 2, 0))
            self.convs.append(weight_norm(conv))
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        B, C, N = wav.shape
        missing = (-N) % self.period
        if missing:  # reflect-pad to whole periods (reflection needs N > missing; zeros for tiny inputs)
            wav = F.pad(wav, (0, missing), mode="reflect" if N > missing else "constant")
        x = wav.view(B, C, -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE)
            features.append(x)
        x = self.post(x)
        features.append(x)
        return x, features


class MultiPeriodDiscriminator(nn.Module):
    """One `PeriodDiscriminator` per period; returns (logits list, features list)."""

    def __init__(self, *, channels: int = 1, filters: int = 16, periods: tuple[int, ...] = PERIODS):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels=channels, filters=filters) for p in periods)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, features = [], []
        for disc in self.discriminators:
            logit, feats = disc(wav)
            logits.append(logit)
            features.append(feats)
        return logits, features


class CombinedDiscriminator(nn.Module):
    """Several multi-discriminators as one: their logits and feature lists, concatenated in order."""

    def __init__(self, discriminators: list[nn.Module]):
        super().__init__()
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits: list[torch.Tensor] = []
        features: list[list[torch.Tensor]] = []
        for disc in self.discriminators:
            more_logits, more_features = disc(wav)
            logits += more_logits
            features += more_features
        return logits, features
