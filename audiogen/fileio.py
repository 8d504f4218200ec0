"""Atomic file writing: the one way audiogen puts a file on disk.

Every output (WAV, NPZ, JSON, checkpoint) is written to a temporary file in the destination
folder and renamed into place, so a crash or SIGKILL never leaves a half-written file under
the final name.

    with atomic_path("out.wav") as tmp:
        write_something(tmp)          # the rename happens only if the block succeeds
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import AudiogenError

_UMASK = os.umask(0)
os.umask(_UMASK)


def ensure_writable_dir(directory: str | os.PathLike) -> Path:
    """Create `directory` if needed and check that we can write into it."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AudiogenError(f"cannot create output folder {path}: {err.strerror}") from None
    if not path.is_dir():
        raise AudiogenError(f"output path {path} exists and is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise AudiogenError(f"output folder {path} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    The temporary name keeps the final suffix (writers such as soundfile infer the format
    from it) and starts with a dot so folder listings and resume logic ignore it.
    """
    final = Path(path)
    if final.is_dir():
        raise AudiogenError(f"{final} is a folder, expected a file name")
    parent = ensure_writable_dir(final.parent if str(final.parent) else ".")
    suffix = final.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes 0600 (and some writers, safetensors among them, recreate the file so):
        # outputs get the usual permissions.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as handle:  # make the bytes durable before the rename publishes them
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (flock on the folder itself: no lock file is left behind).

    Serializes read-modify-write updates of a shared file between processes writing into one folder
    (batch shards); where flock does not exist the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_json(path: str | os.PathLike, update: Callable[[Any], Any], *, default: Any) -> Any:
    """Read `path` (or `default` when absent), apply `update`, write the result atomically; under a folder lock."""
    path = Path(path)
    parent = ensure_writable_dir(path.parent if str(path.parent) else ".")
    with folder_lock(parent):
        current = default
        if path.exists():
            try:
                current = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise AudiogenError(f"{path}: not valid JSON (remove it to start a new one)") from None
        result = update(current)
        write_json(path, result)
    return result


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line and flush it to disk (manifests, logs: a crash loses at most this line)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def is_temporary(path: str | os.PathLike) -> bool:
    """True for the temporary files `atomic_path` makes (left behind only by a SIGKILL)."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files a killed run left in `folder` (call only when no writer is running)."""
    count = 0
    path = Path(folder)
    if path.is_dir():
        for entry in path.iterdir():
            if entry.is_file() and is_temporary(entry):
                entry.unlink(missing_ok=True)
                count += 1
    return count
