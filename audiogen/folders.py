"""Audio folders: recursive listing, MIDI pairing by stem, and a stable train/validation split.

The split is decided per file by a hash of its path relative to the root, so adding files
never moves an existing file from one side to the other, and every process agrees.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .audio import AUDIO_SUFFIXES
from .errors import AudiogenError
from .fileio import is_temporary

MIDI_SUFFIXES = (".mid", ".midi")


def list_audio(root: str | os.PathLike, *, suffixes: tuple[str, ...] = AUDIO_SUFFIXES) -> list[Path]:
    """Audio files under `root` (recursive, sorted), skipping hidden and temporary files."""
    root = Path(root)
    if not root.exists():
        raise AudiogenError(f"{root}: no such folder")
    if root.is_file():
        return [root] if root.suffix.lower() in suffixes else []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() in suffixes and not name.startswith(".") and not is_temporary(path):
                found.append(path)
    return found


def paired_midi(audio_path: str | os.PathLike) -> Path | None:
    """`name.mid` or `name.midi` beside `name.wav` (same stem, any case of the suffix)."""
    audio_path = Path(audio_path)
    for suffix in MIDI_SUFFIXES:
        for candidate in (audio_path.with_suffix(suffix), audio_path.with_suffix(suffix.upper())):
            if candidate.exists():
                return candidate
    return None


def name_hash(name: str, seed: int = 0) -> float:
    """The name's fixed place in [0, 1): a hash, so a name's side of a split never depends on the others."""
    return int.from_bytes(hashlib.sha1(f"{seed}:{name}".encode()).digest()[:8], "big") / 2**64


def is_validation(relative_path: str, val_fraction: float, seed: int = 0) -> bool:
    return name_hash(relative_path, seed) < val_fraction


def split_files(
    files: list[Path], root: str | os.PathLike, val_fraction: float, seed: int = 0
) -> tuple[list[Path], list[Path]]:
    """(train, validation) by file; at least one file on each side when there are two or more."""
    root = Path(root)
    rel = [str(f.relative_to(root)) if root in f.parents else f.name for f in files]
    val = [f for f, r in zip(files, rel) if is_validation(r, val_fraction, seed)]
    train = [f for f, r in zip(files, rel) if not is_validation(r, val_fraction, seed)]
    if len(files) >= 2 and val_fraction > 0 and not val:
        val, train = [train[-1]], train[:-1]
    if len(files) >= 2 and not train:
        train, val = [val[0]], val[1:]
    return train, val
