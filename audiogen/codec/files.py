"""Code files (`.npz`) written by `audiogen codec encode` and read by `audiogen codec decode`.

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

from ..errors import AudiogenError
from ..fileio import write_bytes


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
            codes = torch.from_numpy(data["codes"].astype(np.int64))
            if codes.dim() != 2:
                raise ValueError("codes must be [K, T]")
            return CodeFile(
                codes=codes, sample_rate=int(data["sample_rate"]), channels=int(data["channels"]),
                length=int(data["length"]), codec=str(data["codec"]),
                bandwidth=None if np.isnan(bandwidth) else bandwidth,
                identity=json.loads(str(data["identity"])),
                scale=float(data["scale"]) if "scale" in data.files else None,
            )
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        raise AudiogenError(f"{path}: not an audiogen code file") from None
