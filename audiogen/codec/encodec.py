"""EnCodec-architecture codecs on the `encodec` package's modules (SEANet + residual VQ).

Two ways in, one class:
  * `EncodecCodec(CodecConfig(...))` builds a codec of any size, which audiogen trains itself
    and saves as a model directory (`config.json` + `model.safetensors`);
  * `load_pretrained("encodec_24khz", bandwidth=6.0)` builds Meta's published architecture and
    loads its official checkpoint from a local file or the torch hub cache (never the network;
    `torch.load(weights_only=True)`, so a checkpoint cannot run code).

The module keeps the official attribute names (`encoder`, `quantizer`, `decoder`) so the
official state dict loads as is.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path

import torch
from encodec.modules import SEANetDecoder, SEANetEncoder
from encodec.quantization import ResidualVectorQuantizer

from .. import checkpoint
from ..config import from_dict, to_dict
from ..errors import AudiogenError
from .base import Codec, kbps

KIND = "codec"


@dataclasses.dataclass
class CodecConfig:
    """Architecture of an EnCodec-style codec; defaults are Meta's 24 kHz model at 6 kbps."""

    sample_rate: int = 24000
    channels: int = 1
    n_filters: int = 32
    dimension: int = 128
    ratios: tuple[int, ...] = (8, 5, 4, 2)  # decoder order; hop = product
    n_residual_layers: int = 1
    lstm_layers: int = 2
    causal: bool = True
    norm: str = "weight_norm"  # weight_norm | time_group_norm
    max_codebooks: int = 32  # quantizers built (the checkpoint's depth)
    num_codebooks: int = 8  # quantizers used (bitrate = num_codebooks * log2(codebook_size) * frame_rate)
    codebook_size: int = 1024
    ema_decay: float = 0.99
    kmeans_iters: int = 50
    dead_code_threshold: int = 2
    normalize: bool = False  # 48 kHz model: inputs scaled to unit RMS before encoding
    name: str = "custom"

    def validate(self) -> None:
        if self.sample_rate <= 0 or self.channels not in (1, 2):
            raise AudiogenError("codec: sample_rate must be positive and channels 1 or 2")
        if not self.ratios or any(r <= 0 for r in self.ratios):
            raise AudiogenError("codec: ratios must be positive integers")
        if not 1 <= self.num_codebooks <= self.max_codebooks:
            raise AudiogenError(f"codec: num_codebooks must be in 1..{self.max_codebooks}")
        if self.codebook_size < 2:
            raise AudiogenError("codec: codebook_size must be at least 2")
        if self.norm not in ("weight_norm", "time_group_norm", "none"):
            raise AudiogenError("codec: norm must be weight_norm, time_group_norm or none")

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def kbps(self) -> float:
        return kbps(self.num_codebooks, self.codebook_size, self.sample_rate / self.hop_length)


class EncodecCodec(Codec):
    """SEANet encoder -> residual VQ -> SEANet decoder, behind the `Codec` interface."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.sample_rate = config.sample_rate
        self.channels = config.channels
        self.hop_length = config.hop_length
        self.num_codebooks = config.num_codebooks
        self.codebook_size = config.codebook_size
        # Context a chunk needs: about one second each side covers the convolutions' receptive
        # field and lets the LSTM settle.
        self.context_frames = max(8, int(round(self.frame_rate)))
        self.chunk_frames = max(64, int(round(20 * self.frame_rate)))
        common = dict(
            channels=config.channels, dimension=config.dimension, n_filters=config.n_filters,
            n_residual_layers=config.n_residual_layers, ratios=list(config.ratios), norm=config.norm,
            causal=config.causal, lstm=config.lstm_layers,
        )
        with warnings.catch_warnings():  # torch's weight_norm deprecation notice, from encodec
            warnings.simplefilter("ignore", FutureWarning)
            self.encoder = SEANetEncoder(**common)
            self.decoder = SEANetDecoder(**common)
        self.quantizer = ResidualVectorQuantizer(
            dimension=config.dimension, n_q=config.max_codebooks, bins=config.codebook_size,
            decay=config.ema_decay, kmeans_iters=config.kmeans_iters,
            threshold_ema_dead_code=config.dead_code_threshold,
        )

    # ------------------------------------------------------------------ identity and I/O
    @property
    def identity(self) -> dict:
        return {"name": self.config.name, "config_hash": checkpoint.config_hash(to_dict(self.config)),
                "sample_rate": self.sample_rate, "num_codebooks": self.num_codebooks,
                "codebook_size": self.codebook_size, "frame_rate": self.frame_rate}

    def save(self, directory: str | os.PathLike, *, extra: dict | None = None) -> Path:
        return checkpoint.save_model(directory, kind=KIND, config=to_dict(self.config),
                                     state_dict=self.state_dict(), extra=extra)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> EncodecCodec:
        meta = checkpoint.read_config(directory, kind=KIND)
        codec = cls(from_dict(CodecConfig, meta["config"]))
        state = checkpoint.load_weights(directory)
        try:
            missing, unexpected = codec.load_state_dict(state, strict=False)
        except RuntimeError:  # same names, different shapes
            raise AudiogenError(f"{directory}: weights do not match config.json (tensor shapes differ)") from None
        if missing or unexpected:
            raise AudiogenError(f"{directory}: weights do not match config.json "
                                f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
        return codec.eval()

    # ------------------------------------------------------------------ the codec itself
    REFERENCE_RMS = 0.1  # normalising codecs decode at this level (-20 dBFS)

    def input_scale(self, wav: torch.Tensor) -> torch.Tensor:
        """Per-item RMS `[B, 1, 1]` that normalising codecs divide by (1 for the others)."""
        if not self.config.normalize:
            return wav.new_ones(wav.shape[0], 1, 1)
        return wav.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt() + 1e-8

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        # Normalise the whole item once (not per chunk) so chunking cannot change the level.
        if self.config.normalize:
            wav = wav / self.input_scale(wav)
        return super().encode(wav)

    def _encode_chunk(self, wav: torch.Tensor) -> torch.Tensor:
        latent = self.encoder(wav)  # [B, D, T]
        codes = self.quantizer.vq.encode(latent, n_q=self.num_codebooks)  # [K, B, T]
        return codes.transpose(0, 1)

    def _decode_chunk(self, codes: torch.Tensor) -> torch.Tensor:
        latent = self.quantizer.vq.decode(codes.transpose(0, 1))
        wav = self.decoder(latent)
        if self.config.normalize:
            wav = wav * self.REFERENCE_RMS  # the model works at unit RMS
        return wav

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: `wav [B, C, N]` -> (reconstruction `[B, C, N]`, codes `[B, K, T]`, commitment loss)."""
        latent = self.encoder(wav)
        quantized, codes, losses = self.quantizer.vq(latent, n_q=self.num_codebooks)
        recon = self.decoder(quantized)[..., : wav.shape[-1]]
        return recon, codes.transpose(0, 1), losses.mean()


# ---------------------------------------------------------------------- pretrained EnCodec

PRETRAINED = {
    # name: (checkpoint file, config, bandwidths in kbps)
    "encodec_24khz": ("encodec_24khz-d7cc33bc.th",
                      CodecConfig(sample_rate=24000, channels=1, causal=True, norm="weight_norm",
                                  max_codebooks=32, num_codebooks=8, name="encodec_24khz"),
                      (1.5, 3.0, 6.0, 12.0, 24.0)),
    "encodec_48khz": ("encodec_48khz-7e698e3e.th",
                      CodecConfig(sample_rate=48000, channels=2, causal=False, norm="time_group_norm",
                                  max_codebooks=16, num_codebooks=8, normalize=True, name="encodec_48khz"),
                      (3.0, 6.0, 12.0, 24.0)),
}


def hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_pretrained(name: str, path: str | os.PathLike | None = None) -> Path | None:
    """The local checkpoint file for `name`: an explicit path (file or folder), else the hub cache."""
    filename = PRETRAINED[name][0]
    candidates = []
    if path is not None:
        p = Path(path)
        candidates.append(p / filename if p.is_dir() else p)
    candidates.append(hub_dir() / filename)
    return next((c for c in candidates if c.is_file()), None)


def load_pretrained(
    name: str, *, bandwidth: float | None = None, path: str | os.PathLike | None = None
) -> EncodecCodec:
    """Meta's EnCodec from a local checkpoint (official `.th` format) at `bandwidth` kbps."""
    if name not in PRETRAINED:
        raise AudiogenError(f"unknown pretrained codec {name!r} (known: {', '.join(PRETRAINED)})")
    filename, base, bandwidths = PRETRAINED[name]
    bandwidth = 6.0 if bandwidth is None else float(bandwidth)
    if bandwidth not in bandwidths:
        raise AudiogenError(f"{name} supports bandwidths {', '.join(map(str, bandwidths))} kbps, not {bandwidth}")
    file = find_pretrained(name, path)
    if file is None:
        raise AudiogenError(
            f"{name} weights not found: put {filename} in {hub_dir()} (or pass its path); "
            f"audiogen never downloads"
        )
    per_codebook = kbps(1, base.codebook_size, base.sample_rate / base.hop_length)
    config = dataclasses.replace(base, num_codebooks=int(round(bandwidth / per_codebook)))
    codec = EncodecCodec(config)
    try:
        state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or a pickle that needs code: refuse either way
        raise AudiogenError(f"{file}: not a loadable EnCodec checkpoint ({type(err).__name__})") from None
    try:
        codec.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        raise AudiogenError(f"{file}: tensors do not match the {name} architecture") from None
    return codec.eval()
