"""Code files (`.npz`) written by `audiogen codec encode` and read by `audiogen codec decode`.

    item = encode_file(codec, "in.wav", spec="runs/codec"); save("in.npz", item, codec.codebook_size)
    wav = decode_file(codec, load("in.npz"))                 # [C, N], the original's length and loudness

Contents: `codes [K, T]` (int16 when the codebook fits, else int32), `sample_rate`, `channels`,
`length` (samples of the original), `codec` (the spec that loads the codec again: a folder
path or a pretrained name), `bandwidth`, `identity` (JSON) and, for normalising codecs,
`scale` (the input's RMS, restored on decode).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..errors import AudiogenError
from ..fileio import write_bytes
from .base import Codec


@dataclass
class CodeFile:
    codes: torch.Tensor  # [K, T] int64
    sample_rate: int
    channels: int
    length: int
    codec: str
    bandwidth: float | None
    identity: dict
    scale: float | None = None


def save(path: str | os.PathLike, item: CodeFile, codebook_size: int) -> None:
    dtype = np.int16 if codebook_size <= 32768 else np.int32
    buffer = io.BytesIO()
    fields = dict(
        codes=item.codes.cpu().numpy().astype(dtype), sample_rate=np.int64(item.sample_rate),
        channels=np.int64(item.channels), length=np.int64(item.length), codec=np.str_(item.codec),
        bandwidth=np.float64(item.bandwidth if item.bandwidth is not None else np.nan),
        identity=np.str_(json.dumps(item.identity, sort_keys=True)),
    )
    if item.scale is not None:
        fields["scale"] = np.float64(item.scale)
    np.savez_compressed(buffer, **fields)
    write_bytes(path, buffer.getvalue())


def load(path: str | os.PathLike) -> CodeFile:
    path = Path(path)
    if not path.exists():
        raise AudiogenError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            bandwidth = float(data["bandwidth"])
            raw = data["codes"]
            if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
                raise ValueError("codes must be integers [K, T]")
            item = CodeFile(
                codes=torch.from_numpy(raw.astype(np.int64)), sample_rate=int(data["sample_rate"]),
                channels=int(data["channels"]), length=int(data["length"]), codec=str(data["codec"]),
                bandwidth=None if np.isnan(bandwidth) else bandwidth,
                identity=json.loads(str(data["identity"])),
                scale=float(data["scale"]) if "scale" in data.files else None,
            )
    except (OSError, EOFError, ValueError, TypeError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        raise AudiogenError(f"{path}: not an audiogen code file") from None
    # Fields a decode uses: a NaN scale would reach the audio writer as NaN samples (a traceback).
    if item.sample_rate <= 0 or item.channels not in (1, 2) or item.length <= 0 or not isinstance(item.identity, dict):
        raise AudiogenError(f"{path}: not an audiogen code file (sample_rate, channels, length or identity invalid)")
    if item.scale is not None and not (np.isfinite(item.scale) and item.scale > 0):
        raise AudiogenError(f"{path}: scale must be a positive finite number, got {item.scale}")
    if item.bandwidth is not None and not (np.isfinite(item.bandwidth) and item.bandwidth > 0):
        raise AudiogenError(f"{path}: bandwidth must be a positive number of kbps, got {item.bandwidth}")
    return item


def encode_file(codec: Codec, path: str | os.PathLike, *, spec: str, bandwidth: float | None = None) -> CodeFile:
    """An audio file's codes, as `audiogen codec encode` writes them (`spec`: what loads `codec` again).

    The audio is resampled and mixed to the codec's rate and channels; for a normalising codec the
    input's RMS scale travels with the codes, so `decode_file` restores the original loudness.
    """
    seconds = audio.info(path)[2]
    # Streamed: mixed and resampled while it is read, so memory holds the codec-rate audio only (the encoder is
    # chunked too): a 10-minute file of any rate and channel count encodes in well under 1 GB.
    wav = audio.load(path, sample_rate=codec.sample_rate, channels=codec.channels)[0][None]
    length = audio.seconds_to_samples(seconds, codec.sample_rate)
    scale = None
    if getattr(codec.config, "normalize", False):
        scale = float(codec.input_scale(wav).flatten()[0])
    with torch.inference_mode():
        codes = codec.encode(wav.to(next(codec.parameters()).device))[0].cpu()
    return CodeFile(codes=codes, sample_rate=codec.sample_rate, channels=codec.channels, length=length, codec=spec,
                    bandwidth=bandwidth, identity=codec.identity, scale=scale)


def check_codec(codec: Codec, item: CodeFile, *, name: str | os.PathLike = "codes") -> None:
    """A one-line `AudiogenError` unless `codec` made `item` and its codes are valid for it."""
    if codec.identity.get("config_hash") != item.identity.get("config_hash"):
        raise AudiogenError(f"{name} was made by a different codec ({item.identity.get('name')}); pass --codec")
    if item.codes.shape[0] != codec.num_codebooks:
        raise AudiogenError(f"{name}: {item.codes.shape[0]} codebooks, codec uses {codec.num_codebooks}")
    if item.codes.shape[1] == 0 or item.codes.min() < 0 or item.codes.max() >= codec.codebook_size:
        raise AudiogenError(f"{name}: codes must be at least one frame of values in [0, {codec.codebook_size})")


def decode_file(codec: Codec, item: CodeFile) -> torch.Tensor:
    """Audio `[C, N]` (float32, clamped to [-1, 1]) of a code file, at its original length and loudness."""
    with torch.inference_mode():
        wav = codec.decode(item.codes[None].to(next(codec.parameters()).device), length=item.length)[0].cpu()
    if item.scale is not None:
        wav = wav * (item.scale / codec.REFERENCE_RMS)
    return wav.clamp(-1, 1)
