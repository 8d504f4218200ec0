"""fileio: outputs checked before the work (a real file is created, not a permission asked), and a write the
file system refuses (full disk, file-size limit) is one line with the temporary file removed.

Two real mechanisms make writes fail: RLIMIT_FSIZE (any user: writes past the limit fail with EFBIG, since
Python ignores SIGXFSZ) and, as root where mounting is allowed, a full 64 KB tmpfs (ENOSPC) under every
writing command.

    .venv/bin/pytest tests/test_fileio.py -q
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import write_recipe
from safetensors.torch import save_file
from tinymodel import run_main as run_cli
from tinymodel import writer_inputs

from audiogen.errors import AudiogenError
from audiogen.fileio import (
    WriteError,
    append_line,
    atomic_path,
    check_writable,
    is_temporary,
    write_bytes,
    write_json,
)

LONG = "n" * 300  # longer than any file system's 255-byte name limit


@pytest.mark.parametrize("target, folder", [
    ("/proc/out.wav", False), ("/sys/out.wav", False), ("/proc/x.json", False), ("/proc", True),
    ("/sys/kernel", True), (f"{{tmp}}/{LONG}.wav", False), (f"{{tmp}}/{LONG}/out.wav", False),
    (f"{{tmp}}/a/{LONG}", True),
], ids=["proc-file", "sys-file", "proc-json", "proc-folder", "sys-folder", "long-name", "long-folder",
        "long-folder-flag"])
def test_check_writable_fails_at_once_in_one_line_and_leaves_nothing(tmp_path, target, folder):
    """os.access says yes to root on /proc and /sys: the check creates a real file instead."""
    path = target.replace("{tmp}", str(tmp_path))
    with pytest.raises(AudiogenError) as caught:
        check_writable(path, folder=folder)
    assert "\n" not in str(caught.value) and str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_check_writable_creates_and_removes_what_it_needs(tmp_path):
    assert check_writable(tmp_path / "a" / "b" / "out.wav") == tmp_path / "a" / "b" / "out.wav"
    assert check_writable(tmp_path / "c" / "d", folder=True) == tmp_path / "c" / "d"
    assert list(tmp_path.iterdir()) == []  # the probe file and the folders made for it are gone
    with pytest.raises(AudiogenError, match="is a folder"):
        check_writable(tmp_path)


def test_a_long_valid_name_still_writes(tmp_path):
    """The temporary name keeps only the start of the final name: a 250-byte name (valid) fits."""
    name = "v" * 246 + ".wav"
    write_bytes(tmp_path / name, b"RIFF")
    assert [p.name for p in tmp_path.iterdir()] == [name]


@contextlib.contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """RLIMIT_FSIZE for the block: writes past `nbytes` fail with EFBIG (Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _flac(tmp: Path) -> None:  # libsndfile: a bare "System error."
    sf.write(str(tmp), np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.3, 8000,
             format="FLAC")


def _ogg(tmp: Path) -> None:  # libsndfile's Vorbis writer
    sf.write(str(tmp), np.random.default_rng(0).standard_normal(80000).astype(np.float32) * 0.3, 8000,
             format="OGG", subtype="VORBIS")


WRITERS = {
    "bytes": lambda tmp: tmp.write_bytes(b"x" * 20000),  # OSError EFBIG
    "flac": _flac,
    "ogg": _ogg,
    "safetensors": lambda tmp: save_file({"x": torch.zeros(10000)}, str(tmp)),  # SafetensorError "(os error 27)"
    "npy": lambda tmp: np.save(tmp, np.zeros(10000)),  # OSError "... requested and ... written", errno None
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_write_past_the_file_size_limit_is_one_line_and_no_file(tmp_path, writer):
    final = tmp_path / f"out.{writer}"
    with pytest.raises(WriteError) as caught:
        with file_size_limit(8192), atomic_path(final) as tmp:
            WRITERS[writer](tmp)
    assert str(caught.value) == f"file too large writing {final}"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path):
    log = tmp_path / "manifest.jsonl"
    append_line(log, '{"a": 1}')
    with pytest.raises(WriteError, match="file too large writing"):
        with file_size_limit(4096):
            append_line(log, "y" * 20000)
    assert log.read_text() == '{"a": 1}\n'  # no half line
    fresh = tmp_path / "failures.jsonl"
    with pytest.raises(WriteError):
        with file_size_limit(4096):
            append_line(fresh, "y" * 20000)
    assert not fresh.exists()  # a file the failed append created is removed


def test_a_bug_in_the_writer_is_not_disguised(tmp_path):
    with pytest.raises(RuntimeError, match="a bug"):
        with atomic_path(tmp_path / "x.wav") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("a bug")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a full disk under every writing command


def _mount_tmpfs(folder: Path) -> str | None:
    """Mount a 64 KB tmpfs at `folder`; the reason it cannot be done, else None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount command"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    return None if done.returncode == 0 else f"mount -t tmpfs refused: {done.stderr.strip()[:100]}"


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory) -> Iterator[Path]:
    """A real file system with no free block left (a filler file takes all of it): writes fail with ENOSPC."""
    folder = tmp_path_factory.mktemp("fulldisk")
    reason = _mount_tmpfs(folder)
    if reason is not None:
        pytest.skip(f"no full disk to test on ({reason}); the file-size-limit tests cover the same code path")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def _fill(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("inputs")
    return {**writer_inputs(base), "recipe": write_recipe(base / "recipe.toml", base / "clips")}


COMMANDS = {  # every writer: audio (three formats, and a PNG), codes, loops, a token dataset, batch, training, MIDI
    "continue-wav": ["continue", "{seed}", "-o", "{out}/c.wav", "--model", "{model}", "--seconds", "0.25"],
    "continue-flac": ["continue", "{seed}", "-o", "{out}/c.flac", "--model", "{model}", "--seconds", "0.25"],
    "continue-ogg": ["continue", "{seed}", "-o", "{out}/c.ogg", "--model", "{model}", "--seconds", "0.25"],
    "encode": ["codec", "encode", "{seed}", "-o", "{out}/x.npz", "--codec", "{model}/codec"],
    "decode": ["codec", "decode", "{npz}", "-o", "{out}/x.wav"],
    "loops": ["loops", "-o", "{out}/loops", "--model", "{model}", "--no-compose", "--count", "1", "--bars", "1",
              "--bpm", "240"],
    "tokenize": ["tokenize", "{clips}", "-o", "{out}/ds", "--codec", "{model}/codec"],
    "batch": ["batch", "{jobs}", "-o", "{out}/b", "--model", "{model}"],
    "train": ["train", "codec", "{recipe}", "-o", "{out}/run", "--train.steps=1"],
    "compose": ["compose", "-o", "{out}/x.mid"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_full_disk_is_one_line_and_leaves_no_file(full_disk, inputs, command, capsys):
    _fill(full_disk)
    argv = [a.format(out=full_disk, **inputs) for a in COMMANDS[command]]
    status = run_cli(*argv, "--quiet")
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    if command == "batch":  # batch also reports the job it was running (generation/batch.py's own line)
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith(f"audiogen: error: disk full writing {full_disk}/"), err
    left = [p for p in full_disk.rglob("*") if p.is_file() and p.name != "filler"]
    assert left == [], left  # neither the output nor a temporary file (is_temporary) is left
    assert not any(is_temporary(p) for p in full_disk.rglob("*"))


def test_a_full_disk_under_a_json_report(full_disk):
    _fill(full_disk)
    with pytest.raises(WriteError, match=f"^disk full writing {full_disk}/r.json$"):
        write_json(full_disk / "r.json", {"rows": list(range(1000))})
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


NO_ROOT_COMMANDS = {  # the same commands' writers through RLIMIT_FSIZE: no root, no mount
    "continue": ["continue", "{seed}", "-o", "{out}/c.wav", "--model", "{model}", "--seconds", "0.25"],
    "decode": ["codec", "decode", "{npz}", "-o", "{out}/x.flac"],
    "compose": ["compose", "-o", "{out}/x.mid", "--bars", "16"],
}


@pytest.mark.parametrize("command", list(NO_ROOT_COMMANDS))
def test_a_file_size_limit_under_a_command_is_one_line(inputs, tmp_path, command, capsys):
    argv = [a.format(out=tmp_path, **inputs) for a in NO_ROOT_COMMANDS[command]]
    with file_size_limit(128):  # every output here is larger (a 16-bar MIDI is about 850 bytes)
        status = run_cli(*argv, "--quiet")
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith(f"audiogen: error: file too large writing {tmp_path}/") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
