"""The token-dataset format: the one place that knows its files, dtypes and conditioning quantisation.

Layout of DATASET (written by `audiogen.tokens.tokenize`, read by `audiogen.tokens.crops`):
    index.json          the truth: codec identity, one entry per file (offsets, frames, hashes)
    codes-00000.bin     int16 (int32 for codebooks > 32768) frames, stored frame-major [T_total, K]
    cond-00000.bin      int8 MIDI conditioning rows [T_cond, F] (value * 127), for files with a
                        paired `name.mid`/`name.midi`, aligned frame by frame with their codes

A shard may hold bytes past what the index records (a writer killed mid-append); readers use only
what the index vouches for, and the next `tokenize` cuts the rest. `read_index` checks the index's
keys and types and that every shard holds at least the bytes the index records: a damaged dataset
is one clear error, never a KeyError or a read past the end of a memmap.
"""

from __future__ import annotations

import json
import math
import os
import re
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
_LARGEST = 1 << 53  # no count in a real dataset comes near this; JSON readers lose integers past it
_SHARD_NAME = re.compile(r"(codes|cond)-(\d{5})\.bin")


def codes_dtype(codebook_size: int) -> np.dtype:
    return np.dtype(np.int16 if codebook_size <= 32768 else np.int32)


def shard_path(dataset: str | os.PathLike, kind: str, shard: int) -> Path:
    """`codes-00000.bin` or `cond-00000.bin` of shard `shard`."""
    assert kind in ("codes", "cond"), kind
    return Path(dataset) / f"{kind}-{shard:05d}.bin"


def shard_files(dataset: str | os.PathLike) -> list[tuple[int, Path]]:
    """(shard number, path) of every codes or conditioning shard file in the folder, recorded or not."""
    root = Path(dataset)
    if not root.is_dir():
        return []
    found = [(int(match[2]), path) for path in root.iterdir() if (match := _SHARD_NAME.fullmatch(path.name))]
    return sorted(found)


def shard_bytes(index: dict[str, Any], kind: str, shard: int) -> int:
    """How many bytes of shard `shard`'s codes or conditioning file the (validated) index vouches for."""
    record = index["shards"][shard]
    if kind == "codes":
        return record["frames"] * index["num_codebooks"] * codes_dtype(index["codebook_size"]).itemsize
    return record["cond_frames"] * record["cond_features"] * COND_DTYPE.itemsize


def quantize_cond(cond: torch.Tensor) -> np.ndarray:
    """Conditioning rows `[T, F]` in [-1, 1] -> int8 as stored."""
    return torch.round(cond.clamp(-1, 1) * COND_SCALE).to(torch.int8).numpy()


def dequantize_cond(rows: np.ndarray) -> torch.Tensor:
    """Stored int8 rows `[T, F]` -> float32 conditioning."""
    return torch.from_numpy(rows.astype(np.float32)) / COND_SCALE


def read_index(dataset: str | os.PathLike, *, check_files: bool = True) -> dict[str, Any]:
    """The dataset's index, validated (`validate_index`); with `check_files`, also that every shard
    holds the bytes it records (`check_shard_files`). Anything wrong is one AudiogenError line."""
    path = Path(dataset) / INDEX_NAME
    if not path.exists():
        raise AudiogenError(f"{dataset}: not a token dataset (no {INDEX_NAME}; make one with audiogen tokenize)")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise AudiogenError(f"{path}: not valid JSON") from None
    except OSError as err:
        raise AudiogenError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(index, dict):
        raise AudiogenError(f"{path}: not a token-dataset index (expected a JSON object)")
    if index.get("format_version") != FORMAT_VERSION:
        raise AudiogenError(f"{path}: unsupported dataset format {index.get('format_version')!r}")
    validate_index(index, where=path)
    if check_files:
        check_shard_files(dataset, index)
    return index


def validate_index(index: dict[str, Any], *, where: str | os.PathLike) -> None:
    """Check every key the readers and the writer use: present, of the right type, counts in range and
    every entry inside its shard's recorded frames. `where` names the file in the error."""

    def fail(problem: str) -> None:
        raise AudiogenError(f"{where}: {problem} (the dataset is damaged: delete it and tokenize again)")

    def count(value: Any, what: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < _LARGEST:
            fail(f"{what} must be a whole number from {minimum} to 2**53, not {value!r:.40}")
        return value

    def real(value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            fail(f"{what} must be a non-negative number, not {value!r:.40}")
        return value

    def key(record: dict[str, Any], name: str, what: str) -> Any:
        if name not in record:
            fail(f"{what} has no {name!r}")
        return record[name]

    codec = key(index, "codec", "the index")
    if not isinstance(codec, dict) or not isinstance(codec.get("fingerprint"), str):
        fail(f"'codec' must be an object with a 'fingerprint' string, not {codec!r:.60}")
    count(key(index, "num_codebooks", "the index"), "'num_codebooks'", minimum=1)
    codebook_size = count(key(index, "codebook_size", "the index"), "'codebook_size'", minimum=1)
    if real(key(index, "frame_rate", "the index"), "'frame_rate'") <= 0:
        fail("'frame_rate' must be positive")
    cond_features = count(index.get("cond_features", 0), "'cond_features'")
    if "codes_dtype" in index and index["codes_dtype"] != codes_dtype(codebook_size).name:
        fail(f"'codes_dtype' is {index['codes_dtype']!r}, but {codebook_size} codes per codebook are stored as "
             f"{codes_dtype(codebook_size).name}")
    shards = key(index, "shards", "the index")
    if not isinstance(shards, list):
        fail(f"'shards' must be a list, not {type(shards).__name__}")
    for number, shard in enumerate(shards):
        what = f"shard {number}"
        if not isinstance(shard, dict):
            fail(f"{what} must be an object, not {type(shard).__name__}")
        count(key(shard, "frames", what), f"{what}: 'frames'")
        cond_frames = count(key(shard, "cond_frames", what), f"{what}: 'cond_frames'")
        features = count(key(shard, "cond_features", what), f"{what}: 'cond_features'")
        if cond_frames and not features:
            fail(f"{what} records {cond_frames} conditioning rows of 0 features")
        if cond_frames and cond_features and features != cond_features:  # index 0: readers ignore the rows
            fail(f"{what} has conditioning rows of {features} features, the index says {cond_features}")
    entries = key(index, "entries", "the index")
    if not isinstance(entries, dict):
        fail(f"'entries' must be an object (file name -> entry), not {type(entries).__name__}")
    for name, entry in entries.items():
        what = f"entry {name!r}"
        if not isinstance(entry, dict):
            fail(f"{what} must be an object, not {type(entry).__name__}")
        if not isinstance(key(entry, "hash", what), str):
            fail(f"{what}: 'hash' must be a string")
        if not isinstance(entry.get("midi_hash"), (str, type(None))) or not isinstance(entry.get("midi"),
                                                                                         (str, type(None))):
            fail(f"{what}: 'midi' and 'midi_hash' must be strings or null")
        real(key(entry, "seconds", what), f"{what}: 'seconds'")
        shard = count(key(entry, "shard", what), f"{what}: 'shard'")
        if shard >= len(shards):
            fail(f"{what} is in shard {shard}, but the index records {len(shards)} shard(s)")
        frames = count(key(entry, "frames", what), f"{what}: 'frames'", minimum=1)  # empty files are skipped
        offset = count(key(entry, "offset", what), f"{what}: 'offset'")
        if offset + frames > shards[shard]["frames"]:
            fail(f"{what} ends at frame {offset + frames}, past the {shards[shard]['frames']} frames of shard {shard}")
        cond_offset = key(entry, "cond_offset", what)
        if cond_offset is not None:
            cond_offset = count(cond_offset, f"{what}: 'cond_offset'")
            if cond_offset + frames > shards[shard]["cond_frames"]:
                fail(f"{what} conditioning ends at row {cond_offset + frames}, past the "
                     f"{shards[shard]['cond_frames']} rows of shard {shard}")


def check_shard_files(dataset: str | os.PathLike, index: dict[str, Any]) -> None:
    """Every shard file holds at least the bytes the (validated) index records for it."""
    for number in range(len(index["shards"])):
        for kind in ("codes", "cond"):
            path = shard_path(dataset, kind, number)
            need = shard_bytes(index, kind, number)
            size = path.stat().st_size if path.exists() else None
            if need and (size is None or size < need):
                have = "missing" if size is None else f"{size} bytes"
                raise AudiogenError(f"{path}: {have}, but {INDEX_NAME} records {need} bytes (the dataset is "
                                    "damaged: delete it and tokenize again)")
