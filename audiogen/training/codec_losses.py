"""Codec training losses: waveform L1, multi-scale mel, multi-resolution STFT (`stft_loss.py`,
off unless weighted), RVQ commitment, adversarial + feature matching with EnCodec's multi-scale
STFT discriminator and/or HiFi-GAN's multi-period discriminator (`discriminators.py`), and a
gradient balancer.

The balancer (EnCodec, Défossez et al. 2022, section 3.4) makes each reconstruction loss
contribute a fixed share of the gradient reaching the decoder output, whatever its raw scale:
for each loss l_i with weight w_i, g_i = d l_i / d y is rescaled to
`w_i / sum(w) * ref_norm * g_i / ||g_i||_ema`, and the sum is backpropagated once through the
decoder. Turning it off uses the weights as plain multipliers.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
import torch.nn.functional as F
from encodec.msstftd import MultiScaleSTFTDiscriminator

from ..errors import AudiogenError
from ..evaluation.metrics import MultiScaleMel
from .codec_discriminators import CombinedDiscriminator, MultiPeriodDiscriminator
from .codec_stft_loss import MultiResolutionSTFTLoss

DISCRIMINATORS = ("msstft", "mpd", "msstft+mpd")


@dataclasses.dataclass
class LossConfig:
    l1: float = 0.1
    mel: float = 1.0
    adversarial: float = 3.0  # weight of the generator's adversarial loss (0 turns the GAN off)
    feature: float = 3.0  # feature matching
    commitment: float = 1.0  # RVQ commitment (not balanced: it does not pass through the decoder)
    balancer: bool = True
    balancer_ema: float = 0.999
    disc_filters: int = 32
    disc_start_step: int = 0  # train without the GAN first, then add it
    disc_lr_scale: float = 1.0
    stft: float = 0.0  # multi-resolution STFT loss (keeps the highs the mel loss compresses); 0 = off
    discriminator: str = "msstft"  # msstft (EnCodec's) | mpd (HiFi-GAN multi-period) | msstft+mpd
    mpd_filters: int = 16  # first layer width of each period discriminator

    def validate(self) -> None:
        weights = (self.l1, self.mel, self.adversarial, self.feature, self.commitment, self.stft)
        if not all(0 <= w < math.inf for w in weights):  # NaN fails too
            raise AudiogenError("losses: weights (l1, mel, adversarial, feature, commitment, stft) must be "
                                "finite numbers >= 0")
        if not 0 <= self.balancer_ema < 1:
            raise AudiogenError(f"losses: balancer_ema must be in [0, 1), got {self.balancer_ema!r}")
        if not 0 <= self.disc_lr_scale < math.inf:
            raise AudiogenError(f"losses: disc_lr_scale must be a finite number >= 0, got {self.disc_lr_scale!r}")
        if self.disc_start_step < 0:
            raise AudiogenError("losses: disc_start_step must be >= 0")
        if self.l1 + self.mel + self.stft == 0:
            raise AudiogenError("losses: at least one of l1 and mel (or stft) must be positive")
        if self.discriminator not in DISCRIMINATORS:
            raise AudiogenError(f"losses: discriminator must be one of {', '.join(DISCRIMINATORS)}")
        if self.disc_filters < 1 or self.mpd_filters < 1:
            raise AudiogenError("losses: disc_filters and mpd_filters must be positive")

    @property
    def use_gan(self) -> bool:
        return self.adversarial > 0 or self.feature > 0


class Balancer(torch.nn.Module):
    """Scales per-loss gradients at the decoder output to fixed shares (see module docstring).

    A module only so that its running gradient norms are a buffer: the training task lists it
    among its modules, so `--resume` restores the norms and continues bitwise like an
    uninterrupted run.
    """

    def __init__(self, weights: dict[str, float], ema: float = 0.999, total_norm: float = 1.0):
        super().__init__()
        self.weights = {k: w for k, w in weights.items() if w > 0}
        self.ema = ema
        self.total_norm = total_norm
        # EMA of each loss's gradient norm, in the order of `weights`; NaN until first seen.
        self.register_buffer("ema_norms", torch.full((len(self.weights),), float("nan"), dtype=torch.float64))

    @property
    def norms(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.weights, self.ema_norms.tolist()) if v == v}

    def gradient(self, losses: dict[str, torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        """The balanced gradient to backpropagate from `output` (the decoder's waveform)."""
        grads = {}
        for name, loss in losses.items():
            if name not in self.weights:
                continue
            (grad,) = torch.autograd.grad(loss, [output], retain_graph=True)
            grads[name] = grad
            norm = float(grad.norm()) / max(1, grad.shape[0]) ** 0.5
            slot = list(self.weights).index(name)
            previous = float(self.ema_norms[slot])
            self.ema_norms[slot] = norm if previous != previous else self.ema * previous + (1 - self.ema) * norm
        norms = self.norms
        total_weight = sum(self.weights[n] for n in grads)
        combined = torch.zeros_like(output)
        for name, grad in grads.items():
            share = self.weights[name] / total_weight
            combined = combined + grad * (share * self.total_norm / (norms[name] + 1e-12))
        return combined


def adversarial_generator_loss(logits_fake: list[torch.Tensor]) -> torch.Tensor:
    """Hinge loss for the generator: mean over discriminators of relu(1 - D(fake))."""
    return sum(F.relu(1 - l).mean() for l in logits_fake) / len(logits_fake)


def discriminator_loss(logits_real: list[torch.Tensor], logits_fake: list[torch.Tensor]) -> torch.Tensor:
    loss = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(logits_real, logits_fake))
    return loss / len(logits_real)


def feature_matching_loss(feats_real: list[list[torch.Tensor]], feats_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between discriminator features, each layer normalised by the real feature's mean magnitude."""
    total, count = 0.0, 0
    for real_layers, fake_layers in zip(feats_real, feats_fake):
        for real, fake in zip(real_layers, fake_layers):
            total = total + F.l1_loss(fake, real.detach()) / (real.detach().abs().mean() + 1e-8)
            count += 1
    return total / max(1, count)


def build_discriminator(config: LossConfig, channels: int) -> torch.nn.Module:
    """The discriminator set `config.discriminator` names; each returns (logits list, features list)."""
    parts: list[torch.nn.Module] = []
    if "msstft" in config.discriminator:
        with warnings.catch_warnings():  # torch's weight_norm deprecation notice, from encodec
            warnings.simplefilter("ignore", FutureWarning)
            parts.append(MultiScaleSTFTDiscriminator(filters=config.disc_filters, in_channels=channels,
                                                     out_channels=channels))
    if "mpd" in config.discriminator:
        parts.append(MultiPeriodDiscriminator(channels=channels, filters=config.mpd_filters))
    return parts[0] if len(parts) == 1 else CombinedDiscriminator(parts)


class ReconstructionLosses(torch.nn.Module):
    """Waveform L1 and multi-scale mel (and, with `stft`, multi-resolution STFT) between the input
    and the reconstruction."""

    def __init__(self, sample_rate: int, *, stft: bool = False):
        super().__init__()
        self.mel = MultiScaleMel(sample_rate)
        self.stft = MultiResolutionSTFTLoss(sample_rate=sample_rate) if stft else None

    def forward(self, reference: torch.Tensor, estimate: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = {"l1": F.l1_loss(estimate, reference), "mel": self.mel(reference, estimate)}
        if self.stft is not None:
            losses["stft"] = self.stft(reference, estimate)
        return losses
