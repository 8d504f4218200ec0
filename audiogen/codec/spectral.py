"""A Vocos-style spectral decoder: latent frames -> STFT magnitude and phase -> inverse STFT.

    decoder = ISTFTDecoder(dimension=64, channels=1, hop_length=320, dim=192, layers=8)
    wav = decoder(latent)          # latent [B, D, T] -> wav [B, C, T * hop_length]

Instead of upsampling with transposed convolutions (SEANet), everything runs at the codec's
frame rate: a ConvNeXt backbone (embedding conv k7 -> LayerNorm -> `layers` ConvNeXt blocks with
layer scale -> LayerNorm) and a linear head that predicts, for each latent frame, `subframes` R
STFT frames of log-magnitude and phase for every channel. The waveform comes from one inverse
STFT with hop `hop_length / R` and a Hann window of `n_fft` (4 x that hop unless set). Highs are
as cheap to make as lows (every frequency bin is an output), and synthesis is an FFT rather than
a stack of time-domain convolutions, which is why Vocos is an order of magnitude faster than
time-domain GAN vocoders (Siuzdak 2023, arXiv 2306.00814).

Lengths: STFT frame j = t * R + r is centred on sample j * hop (torch.istft, center=True), so T
latent frames give exactly T * hop_length samples. The receptive field is
`receptive_frames` latent frames each side (3 per conv of kernel 7, plus the synthesis window),
which the codec uses as its chunk context so chunked decoding matches a single pass.
Every operation is per item (LayerNorm, not BatchNorm): the output for an item does not depend on
what else is in the batch. The head and the inverse STFT run in float32 even under bf16 autocast.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_LOG_MAGNITUDE = math.log(1e2)  # safeguard against huge magnitudes (as Vocos clips at 1e2)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv k7 -> LayerNorm -> Linear (dim -> hidden) -> GELU -> Linear -> layer scale, residual."""

    def __init__(self, dim: int, hidden: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, dim)
        # Small residual branches at first: the block starts near identity and trains stably.
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x [B, dim, T]` -> `[B, dim, T]`."""
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class ISTFTDecoder(nn.Module):
    """Latent `[B, D, T]` at the frame rate -> waveform `[B, C, T * hop_length]` via inverse STFT."""

    def __init__(
        self,
        *,
        dimension: int,
        channels: int,
        hop_length: int,
        dim: int = 256,
        layers: int = 8,
        subframes: int = 1,
        n_fft: int = 0,
        mlp_ratio: int = 3,
    ):
        super().__init__()
        if subframes < 1 or hop_length % subframes:
            raise ValueError(f"hop_length {hop_length} is not divisible by subframes {subframes}")
        self.channels = channels
        self.hop_length = hop_length
        self.subframes = subframes
        self.stft_hop = hop_length // subframes
        self.n_fft = n_fft or 4 * self.stft_hop
        if self.n_fft % 2 or self.n_fft < 2 * self.stft_hop:  # the last frame must reach the end
            raise ValueError(f"n_fft {self.n_fft} must be even and at least twice the STFT hop {self.stft_hop}")
        self.bins = self.n_fft // 2 + 1
        self.embed = nn.Conv1d(dimension, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, mlp_ratio * dim, 1.0 / max(1, layers)) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, channels * subframes * 2 * self.bins)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    @property
    def receptive_frames(self) -> int:
        """Latent frames each side that can change an output sample (convs k7, then the window)."""
        return 3 * (len(self.blocks) + 1) + math.ceil(self.n_fft / 2 / self.hop_length)

    def spectrum(self, latent: torch.Tensor) -> torch.Tensor:
        """`latent [B, D, T]` -> complex STFT `[B * C, bins, T * R]`."""
        B, _, T = latent.shape
        x = self.embed(latent)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        # The head in float32 even under bf16 autocast: bf16 keeps 8 bits, too coarse for phases
        # that may grow to tens of radians.
        with torch.autocast(device_type=latent.device.type, enabled=False):
            x = self.head(self.final_norm(x.float().transpose(1, 2)))  # [B, T, C * R * 2 * bins]
        x = x.view(B, T, self.channels, self.subframes, 2, self.bins)
        log_magnitude, phase = x.unbind(dim=4)  # [B, T, C, R, bins] each
        magnitude = torch.exp(log_magnitude.clamp(max=MAX_LOG_MAGNITUDE))
        # cos/sin of the predicted angle (as Vocos): any real number is a valid phase, no wrapping.
        spec = torch.polar(magnitude, phase)
        return spec.permute(0, 2, 4, 1, 3).reshape(B * self.channels, self.bins, T * self.subframes)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """`latent [B, D, T]` -> `wav [B, C, T * hop_length]`."""
        B, _, T = latent.shape
        spec = self.spectrum(latent)
        with torch.autocast(device_type=latent.device.type, enabled=False):
            wav = self.inverse_stft(spec, T * self.hop_length)
        return wav.view(B, self.channels, T * self.hop_length)

    def inverse_stft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Complex `[B', bins, L]` -> `[B', length]`: what `torch.istft(center=True, length=...)` gives.

        When n_fft is a multiple k of the hop (the default, k = 4) the overlap-add is k shifted
        sums of hop-sized blocks, several times faster on CPU than torch.istft's general path.
        """
        n_fft, hop = self.n_fft, self.stft_hop
        window = self.window.float()
        if n_fft % hop:
            return torch.istft(spec, n_fft=n_fft, hop_length=hop, win_length=n_fft, window=window,
                               center=True, length=length)
        k, L = n_fft // hop, spec.shape[-1]
        frames = torch.fft.irfft(spec, n=n_fft, dim=1).transpose(1, 2) * window  # [B', L, n_fft]
        blocks = frames.reshape(-1, L, k, hop)
        out = blocks.new_zeros(blocks.shape[0], L + k - 1, hop)
        envelope = window.new_zeros(L + k - 1, hop)
        squared = window.square().view(k, hop)
        for j in range(k):
            out[:, j : j + L] += blocks[:, :, j]
            envelope[j : j + L] += squared[j]
        start = n_fft // 2  # center=True: frame 0 is centred on sample 0
        out = out.flatten(1)[:, start : start + length]
        envelope = envelope.flatten()[start : start + length]
        if out.shape[-1] < length:  # past the last frame's reach (not for the codec's lengths)
            out = torch.nn.functional.pad(out, (0, length - out.shape[-1]))
            envelope = torch.nn.functional.pad(envelope, (0, length - envelope.shape[-1]), value=1.0)
        return out / envelope.clamp(min=1e-11)
