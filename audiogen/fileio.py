"""Atomic file writing: the one way audiogen puts a file on disk.

Every output (WAV, NPZ, JSON, checkpoint) is written to a temporary file in the destination
folder and renamed into place, so a crash or SIGKILL never leaves a half-written file under
the final name.

    with atomic_path("out.wav") as tmp:
        write_something(tmp)          # the rename happens only if the block succeeds

    check_writable("out/x.wav")       # before the work: fails now, in one line, where the write would fail

A write that fails for a reason the user can act on (a full disk or quota, a file-size limit, a
read-only or pseudo file system such as /proc, a name the file system refuses) is one `AudiogenError`
line ("disk full writing PATH"), and the temporary file is gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import AudiogenError

_UMASK = os.umask(0)
os.umask(_UMASK)


class WriteError(AudiogenError):
    """A write the file system refused (full disk, quota, file-size limit, read-only): the run cannot go on,
    so callers that note a failed item and carry on (batch jobs, corpus pieces) let this one through."""


# What a failed write says, by errno; other OSErrors give the system's own words.
WRITE_ERRORS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}
# How writers that do not raise OSError (libsndfile, safetensors' Rust, numpy) spell those errnos.
_ERRNO_WORDS = {"no space left on device": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT,
                "file too large": errno.EFBIG}
_RUST_ERRNO = re.compile(r"os error (\d+)")
TEMP_STEM_BYTES = 64  # of the final name kept in a temporary name, so a long (valid) name still fits
NAME_MAX = 255  # where the file system does not say


def _name_max(path: Path) -> int:
    folder = path
    # the nearest folder that exists says (os.path.exists, unlike Path.exists, is False for a too-long name)
    while not os.path.exists(folder) and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def check_file_name(path: str | os.PathLike) -> Path:
    """Fail in one line when a part of `path` is longer than its file system allows (ENAMETOOLONG)."""
    final = Path(path)
    limit = _name_max(final.parent if str(final.parent) else Path("."))
    for part in final.parts:
        size = len(os.fsencode(part))
        if size > limit:
            shown = part if len(part) <= 40 else part[:37] + "..."
            raise AudiogenError(f"file name too long: {shown} is {size} bytes, the file system allows {limit}")
    return final


def write_error(err: BaseException, path: str | os.PathLike, *, tmp: Path | None = None) -> WriteError | None:
    """The one-line error for `err`, raised while writing `path` (through the temporary file `tmp`), or
    None when `err` is not the file system's doing (a bug: let it raise).

    Writers that do not raise OSError count when their message names the errno (safetensors) or, for a
    bare "System error." (libsndfile), when the disk is full or `tmp` reached the process's file-size
    limit (RLIMIT_FSIZE).
    """
    if isinstance(err, AudiogenError):
        return None
    code = err.errno if isinstance(err, OSError) else None
    if code is None:
        text = str(err).lower()
        found = _RUST_ERRNO.search(text)
        code = int(found.group(1)) if found else next((c for w, c in _ERRNO_WORDS.items() if w in text), None)
    if code is None and isinstance(err, (OSError, RuntimeError)):
        code = _space_errno(Path(path).parent, tmp)
    if code in WRITE_ERRORS:
        return WriteError(f"{WRITE_ERRORS[code]} writing {path}")
    if isinstance(err, OSError):
        return WriteError(f"cannot write {path}: {err.strerror or str(err)}")
    return None


def space_error(path: str | os.PathLike, *, tmp: Path | None = None) -> WriteError | None:
    """"disk full writing PATH" when `path`'s file system has no free blocks or inodes (for this user: root
    may use the reserved ones), "file too large writing PATH" when `tmp` (the file being written) reached
    the process's file-size limit (RLIMIT_FSIZE); else None. For writers whose failure does not say why."""
    code = _space_errno(Path(path).parent, tmp)
    return None if code is None else WriteError(f"{WRITE_ERRORS[code]} writing {path}")


def _space_errno(folder: Path, tmp: Path | None) -> int | None:
    try:
        stat = os.statvfs(folder)
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        blocks, inodes = (stat.f_bfree, stat.f_ffree) if root else (stat.f_bavail, stat.f_favail)
        if stat.f_blocks > 0 and (blocks == 0 or (stat.f_files > 0 and inodes == 0)):
            return errno.ENOSPC
    except (OSError, AttributeError):
        pass
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if tmp is not None and limit != resource.RLIM_INFINITY and tmp.stat().st_size >= limit:
            return errno.EFBIG
    except (ImportError, OSError):
        pass
    return None


def _make_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AudiogenError(f"cannot create output folder {path}: {err.strerror or err}") from None
    if not path.is_dir():
        raise AudiogenError(f"output path {path} exists and is not a folder")
    return path


def _temporary(folder: Path, final: Path, suffix: str) -> Path:
    """Create an empty temporary file for `final` in `folder` (a one-line error when none can be made)."""
    stem = os.fsencode(final.name)[:TEMP_STEM_BYTES].decode(errors="ignore")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=folder)
    except OSError as err:
        if err.errno in WRITE_ERRORS:
            raise WriteError(f"{WRITE_ERRORS[err.errno]} writing {final}") from None
        raise WriteError(f"output folder {folder} is not writable: {err.strerror or err}") from None
    os.close(fd)
    return Path(name)


def ensure_writable_dir(directory: str | os.PathLike) -> Path:
    """Create `directory` if needed and check that a file can really be made in it (one line if not).

    The check creates and removes a temporary file: a permission check (os.access) passes for root on
    /proc, /sys or a read-only mount, and a full disk would go unnoticed.
    """
    path = _make_dir(Path(directory))
    _temporary(path, path / "probe", "").unlink(missing_ok=True)
    return path


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """Fail now, in one line, unless the file `path` (with `folder`: files in the folder `path`) can really be
    written: call it before the work, so an impossible output costs nothing. Leaves nothing behind: folders
    it had to create for the check are removed again (the writer makes them)."""
    target = check_file_name(path)
    if not folder and target.is_dir():
        raise AudiogenError(f"{target} is a folder, expected a file name")
    directory = target if folder else (target.parent if str(target.parent) else Path("."))
    missing = []
    while not os.path.lexists(directory) and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    try:
        ensure_writable_dir(target if folder else (target.parent if str(target.parent) else Path(".")))
    finally:
        for made in missing:  # deepest first
            with contextlib.suppress(OSError):
                made.rmdir()
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    The temporary name keeps the final suffix (writers such as soundfile infer the format
    from it) and starts with a dot so folder listings and resume logic ignore it. A write the
    file system refuses (`write_error`) is one `AudiogenError` line; the temporary file is removed
    whatever happens.
    """
    final = check_file_name(path)
    if final.is_dir():
        raise AudiogenError(f"{final} is a folder, expected a file name")
    parent = _make_dir(final.parent if str(final.parent) else Path("."))
    tmp = _temporary(parent, final, final.suffix if suffix is None else suffix)
    try:
        try:
            yield tmp
            # Some writers (libsndfile's Ogg Vorbis) drop a failed write silently: a file system left full
            # (or a file at the size limit) means this file may be cut short.
            full = space_error(final, tmp=tmp)
            if full is not None:
                raise full
            # mkstemp makes 0600 (and some writers, safetensors among them, recreate the file so):
            # outputs get the usual permissions.
            os.chmod(tmp, 0o666 & ~_UMASK)
            with open(tmp, "rb+") as handle:  # make the bytes durable before the rename publishes them
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except Exception as err:
            problem = write_error(err, final, tmp=tmp)
            if problem is None:
                raise
            raise problem from None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def temporary_file(folder: str | os.PathLike, *, name: str, suffix: str = "") -> Iterator[Path]:
    """An empty scratch file in `folder` (named like `atomic_path`'s, so stale ones are recognised), removed
    after the block; a folder where none can be made is one `AudiogenError` line."""
    tmp = _temporary(_make_dir(Path(folder)), Path(folder) / name, suffix)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (flock on the folder itself: no lock file is left behind).

    Serializes read-modify-write updates of a shared file between processes writing into one folder
    (batch shards); where flock does not exist the block runs unlocked. With `wait=False`, raise
    BlockingIOError at once when another process holds it (one writer per token dataset).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
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
    """Append one line and flush it to disk (manifests, logs: a crash loses at most this line).

    A failed append (a full disk) is one `AudiogenError` line and leaves the file as it was.
    """
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    existed = os.path.exists(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as err:
        raise write_error(err, path) from None
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as err:
            os.ftruncate(fd, size)  # no half line (shrinking needs no space)
            if not existed:
                os.unlink(path)
            raise write_error(err, path) from None
    finally:
        os.close(fd)


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
