"""The token-dataset format: the one place that knows its files, dtypes and conditioning quantisation.

Layout of DATASET (written by `audiogen.tokens.tokenize`, read by `audiogen.tokens.crops`):
    index.json          the truth: codec identity, one entry per file (offsets, frames, hashes)
    codes-00000.bin     int16 (int32 for codebooks > 32768) frames, stored frame-major [T_total, K]
    cond-00000.bin      int8 MIDI conditioning rows [T_cond, F] (value * 127), for files with a
                        paired `name.mid`/`name.midi`, aligned frame by frame with their codes
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AudiogenError

INDEX_NAME = "index.json"
FORMAT_VERSION = 1
SHARD_FRAMES = 1 << 24  # start a new shard past ~16 M frames (62 h at 75 Hz)
COND_DTYPE = np.dtype(np.int8)
COND_SCALE = 127.0  # conditioning values in [-1, 1] are stored as round(value * 127)


def codes_dtype(codebook_size: int) -> np.dtype:
    return np.dtype(np.int16 if codebook_size <= 32768 else np.int32)


def shard_path(dataset: str | os.PathLike, kind: str, shard: int) -> Path:
    """`codes-00000.bin` or `cond-00000.bin` of shard `shard`."""
    assert kind in ("codes", "cond"), kind
    return Path(dataset) / f"{kind}-{shard:05d}.bin"


def quantize_cond(cond: torch.Tensor) -> np.ndarray:
    """Conditioning rows `[T, F]` in [-1, 1] -> int8 as stored."""
    return torch.round(cond.clamp(-1, 1) * COND_SCALE).to(torch.int8).numpy()


def dequantize_cond(rows: np.ndarray) -> torch.Tensor:
    """Stored int8 rows `[T, F]` -> float32 conditioning."""
    return torch.from_numpy(rows.astype(np.float32)) / COND_SCALE


def read_index(dataset: str | os.PathLike) -> dict[str, Any]:
    path = Path(dataset) / INDEX_NAME
    if not path.exists():
        raise AudiogenError(f"{dataset}: not a token dataset (no {INDEX_NAME}; make one with audiogen tokenize)")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AudiogenError(f"{path}: not valid JSON") from None
    if index.get("format_version") != FORMAT_VERSION:
        raise AudiogenError(f"{path}: unsupported dataset format {index.get('format_version')!r}")
    return index
