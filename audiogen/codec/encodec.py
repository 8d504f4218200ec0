"""EnCodec-architecture codecs on the `encodec` package's modules (SEANet + residual VQ).

Two ways in, one class:
  * `EncodecCodec(CodecConfig(...))` builds a codec of any size, which audiogen trains itself
    and saves as a model directory (`config.json` + `model.safetensors`);
  * `load_pretrained("encodec_24khz", bandwidth=6.0)` builds Meta's published architecture and
    loads its official checkpoint from a local file or the torch hub cache (never the network;
    `torch.load(weights_only=True)`, so a checkpoint cannot run code).

The module keeps the official attribute names (`encoder`, `quantizer`, `decoder`) so the
official state dict loads as is.

Codec v2 options (defaults keep the original architecture, so old folders load unchanged):
  * `decoder = "istft"`: a Vocos-style spectral decoder (`spectral.ISTFTDecoder`) instead of the
    SEANet upsampling decoder: ConvNeXt at the frame rate, STFT magnitude + phase, inverse STFT.
    Recommended: `istft_subframes` R = hop_length / 320 (STFT hop 320, n_fft 1280 at 24 kHz):
    R = 1 at 75 Hz (ratios 8,5,4,2), 2 at 37.5 Hz (8,5,4,4), 3 at 25 Hz (8,6,5,4).
  * `quantizer_dropout = True`: each training batch uses a random number of codebooks from
    `codebook_choices` = {num_codebooks // 2, num_codebooks, max_codebooks} (at 75 Hz with
    1024-entry codebooks, num_codebooks 4 and max_codebooks 8: 1.5, 3 and 6 kbps), drawn from a
    generator the training task passes in; inference uses `num_codebooks`, and a folder can be
    loaded at another depth with `EncodecCodec.load(dir, num_codebooks=K)`.
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
from .spectral import ISTFTDecoder

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
    decoder: str = "conv"  # conv (SEANet upsampling) | istft (ConvNeXt + inverse STFT, spectral.py)
    istft_dim: int = 192  # ConvNeXt width of the istft decoder (8 x 192: 2.1 M parameters)
    istft_layers: int = 8  # ConvNeXt blocks
    istft_subframes: int = 1  # R STFT frames per codec frame: STFT hop = hop_length / R
    istft_n_fft: int = 0  # 0 = 4 x the STFT hop
    quantizer_dropout: bool = False  # train on a random depth from `codebook_choices` per batch

    # Stated bounds (inclusive), checked before anything is built: a config.json asking for more is a one-line
    # error, not gigabytes allocated first. Generous: Meta's 24 kHz model is n_filters 32, dimension 128, 32 x 1024.
    # Together they keep any codec within bounds near 1 GB of weights.
    BOUNDS = {"sample_rate": (1000, 768000), "n_filters": (1, 512), "dimension": (1, 4096), "ratios": (1, 16),
              "n_residual_layers": (0, 16), "lstm_layers": (0, 8), "max_codebooks": (1, 64),
              "codebook_size": (2, 65536), "ema_decay": (0, 1), "kmeans_iters": (0, 10000),
              "dead_code_threshold": (0, 2**31), "istft_dim": (1, 1024), "istft_layers": (0, 16),
              "istft_subframes": (1, 64), "istft_n_fft": (0, 2**16)}
    MAX_WIDTH = 2048  # channels of the widest SEANet layer, n_filters * 2 ** len(ratios) (Meta's: 512)
    MAX_CODEBOOK_VALUES = 2**24  # max_codebooks * codebook_size * dimension (64 MB per quantizer table)

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
        if self.decoder not in ("conv", "istft"):
            raise AudiogenError("codec: decoder must be conv or istft")
        if self.decoder == "istft":
            if self.istft_dim < 1 or self.istft_layers < 0 or self.istft_subframes < 1:
                raise AudiogenError("codec: istft_dim and istft_subframes must be positive, istft_layers >= 0")
            if self.hop_length % self.istft_subframes:
                raise AudiogenError(f"codec: hop_length {self.hop_length} (product of ratios) is not divisible "
                                    f"by istft_subframes {self.istft_subframes}")
            stft_hop = self.hop_length // self.istft_subframes
            if self.istft_n_fft and (self.istft_n_fft % 2 or self.istft_n_fft < 2 * stft_hop):
                raise AudiogenError(f"codec: istft_n_fft must be even and at least twice the STFT hop {stft_hop} "
                                    f"(or 0 for 4 x)")
        checkpoint.check_bounds(self, self.BOUNDS, where="codec")
        if not 1 <= len(self.ratios) <= 8 or self.n_filters * 2 ** len(self.ratios) > self.MAX_WIDTH:
            raise AudiogenError(f"codec: 1..8 ratios with n_filters * 2 ** len(ratios) at most {self.MAX_WIDTH}, "
                                f"got n_filters {self.n_filters} and {len(self.ratios)} ratios")
        if self.max_codebooks * self.codebook_size * self.dimension > self.MAX_CODEBOOK_VALUES:
            raise AudiogenError(f"codec: max_codebooks x codebook_size x dimension must be at most "
                                f"{self.MAX_CODEBOOK_VALUES:,}, got {self.max_codebooks} x {self.codebook_size} x "
                                f"{self.dimension}")

    # Settings added after the first format: left out of the identity hash while at their
    # defaults, so codes files and datasets made before them keep matching their codec.
    V2_FIELDS = ("decoder", "istft_dim", "istft_layers", "istft_subframes", "istft_n_fft", "quantizer_dropout")

    @property
    def codebook_choices(self) -> tuple[int, ...]:
        """Depths quantizer dropout trains on: half, `num_codebooks` and `max_codebooks`."""
        return tuple(sorted({max(1, self.num_codebooks // 2), self.num_codebooks, self.max_codebooks}))

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
        # 10 s chunks: the bundled codec's activations for 20 s + context are 34 MB tensors, which glibc's heap
        # fragments: encoding 3 minutes peaked at 1.13 GB with 20 s chunks, 0.84 GB with 10 s, for 9 % more
        # encoder work (benchmarks/peak_memory.py measures the commands).
        self.chunk_frames = max(64, int(round(10 * self.frame_rate)))
        common = dict(
            channels=config.channels, dimension=config.dimension, n_filters=config.n_filters,
            n_residual_layers=config.n_residual_layers, ratios=list(config.ratios), norm=config.norm,
            causal=config.causal, lstm=config.lstm_layers,
        )
        with warnings.catch_warnings():  # torch's weight_norm deprecation notice, from encodec
            warnings.simplefilter("ignore", FutureWarning)
            self.encoder = SEANetEncoder(**common)
            if config.decoder == "conv":
                self.decoder = SEANetDecoder(**common)
        if config.decoder == "istft":
            self.decoder = ISTFTDecoder(
                dimension=config.dimension, channels=config.channels, hop_length=config.hop_length,
                dim=config.istft_dim, layers=config.istft_layers, subframes=config.istft_subframes,
                n_fft=config.istft_n_fft,
            )
            # A chunk's context must cover the decoder's receptive field (at low frame rates one
            # second is fewer frames than the ConvNeXt stack sees).
            self.context_frames = max(self.context_frames, self.decoder.receptive_frames + 2)
        self.quantizer = ResidualVectorQuantizer(
            dimension=config.dimension, n_q=config.max_codebooks, bins=config.codebook_size,
            decay=config.ema_decay, kmeans_iters=config.kmeans_iters,
            threshold_ema_dead_code=config.dead_code_threshold,
        )

    # ------------------------------------------------------------------ identity and I/O
    @property
    def identity(self) -> dict:
        config, defaults = to_dict(self.config), to_dict(CodecConfig())
        for key in CodecConfig.V2_FIELDS:
            if config[key] == defaults[key]:
                del config[key]
        return {"name": self.config.name, "config_hash": checkpoint.config_hash(config),
                "sample_rate": self.sample_rate, "num_codebooks": self.num_codebooks,
                "codebook_size": self.codebook_size, "frame_rate": self.frame_rate}

    def save(self, directory: str | os.PathLike, *, extra: dict | None = None) -> Path:
        return checkpoint.save_model(directory, kind=KIND, config=to_dict(self.config),
                                     state_dict=self.state_dict(), extra=extra)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, num_codebooks: int | None = None) -> EncodecCodec:
        """A saved codec; `num_codebooks` picks another depth (any of 1..max_codebooks, e.g. the
        lower bitrates a codec trained with quantizer dropout serves)."""
        meta = checkpoint.read_config(directory, kind=KIND)
        config = meta["config"] if num_codebooks is None else {**meta["config"], "num_codebooks": num_codebooks}
        codec = cls(from_dict(CodecConfig, config))
        checkpoint.load_into(codec, directory)
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

    def _quantizer_fp32(self):
        """Autocast off for the residual VQ: under bf16 its distances (|x|^2 - 2 x.e + |e|^2, where
        large terms cancel) pick near-arbitrary codes, and its EMA counts and sums lose the one-hot
        updates; on a GPU (bf16 autocast by default) the codebooks collapsed to one code in 100 steps."""
        return torch.autocast(device_type=next(self.quantizer.buffers()).device.type, enabled=False)

    def _encode_chunk(self, wav: torch.Tensor) -> torch.Tensor:
        latent = self.encoder(wav)  # [B, D, T]
        with self._quantizer_fp32():
            codes = self.quantizer.vq.encode(latent.float(), n_q=self.num_codebooks)  # [K, B, T]
        return codes.transpose(0, 1)

    def _decode_chunk(self, codes: torch.Tensor) -> torch.Tensor:
        with self._quantizer_fp32():
            latent = self.quantizer.vq.decode(codes.transpose(0, 1))
        wav = self.decoder(latent)
        if self.config.normalize:
            wav = wav * self.REFERENCE_RMS  # the model works at unit RMS
        return wav

    def draw_num_codebooks(self, generator: torch.Generator) -> int:
        """A training depth from `config.codebook_choices`, uniformly, from `generator` (no global RNG,
        so a resumed run draws what the uninterrupted one did); `num_codebooks` without dropout."""
        if not self.config.quantizer_dropout:
            return self.num_codebooks
        choices = self.config.codebook_choices
        return choices[int(torch.randint(len(choices), (1,), generator=generator))]

    def forward(
        self, wav: torch.Tensor, *, num_codebooks: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: `wav [B, C, N]` -> (reconstruction `[B, C, N]`, codes `[B, K, T]`, commitment loss).

        `num_codebooks` (K, default the config's) is the depth quantizer dropout draws per batch.
        """
        K = self.num_codebooks if num_codebooks is None else num_codebooks
        assert 1 <= K <= self.config.max_codebooks, f"num_codebooks {K} not in 1..{self.config.max_codebooks}"
        latent = self.encoder(wav)
        with self._quantizer_fp32():
            quantized, codes, losses = self.quantizer.vq(latent.float(), n_q=K)
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
    # A refused file is one line: torch's own warnings about what it holds (sparse tensors, say) stay quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as err:  # corrupt file, or a pickle that needs code: refuse either way
            raise AudiogenError(f"{file}: not a loadable EnCodec checkpoint ({type(err).__name__})") from None
        try:
            codec.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError):
            raise AudiogenError(f"{file}: tensors do not match the {name} architecture") from None
    if not all(torch.isfinite(t).all() for t in codec.state_dict().values() if t.is_floating_point()):
        raise AudiogenError(f"{file}: weights are not finite (NaN or infinity): not a usable {name} checkpoint")
    return codec.eval()
