"""The start-up line (audiogen/progress.py `startup`): on a terminal a command shows a line at once, the first
real bar replaces it, and an error clears it first, so the terminal shows the error alone; off a terminal
(pipes, logs, these tests' other runs) nothing changes.

    .venv/bin/pytest tests/test_progress.py -q
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from audiogen.evaluation import bench

pytest.importorskip("pty")


def run_on_terminal(*args: str) -> tuple[int, bytes]:
    """`audiogen ARGS` with stderr on a pseudo-terminal of 100 columns: exit status and all it wrote there."""
    code, chunks = bench.run_on_terminal([sys.executable, "-m", "audiogen", *args])
    return code, b"".join(chunk for _, chunk in chunks)


def visible(raw: bytes) -> list[str]:
    """What a terminal shows: each line's text after its last carriage return, blanks dropped."""
    lines = raw.decode().replace("\r\n", "\n").split("\n")
    return [line.rsplit("\r", 1)[-1].strip() for line in lines if line.rsplit("\r", 1)[-1].strip()]


def test_an_error_after_the_start_up_line_is_one_line_on_a_terminal(tmp_path):
    code, raw = run_on_terminal("render", str(tmp_path / "missing.mid"), "-o", str(tmp_path / "out.wav"))
    assert code == 2
    assert raw.lstrip(b"\r").startswith(b"render: starting"), raw  # the line came first ...
    shown = visible(raw)
    assert len(shown) == 1 and shown[0].startswith("audiogen: error: ") and "missing.mid" in shown[0], raw
    assert not (tmp_path / "out.wav").exists()


def test_quiet_and_pipes_get_no_start_up_line(tmp_path):
    code, raw = run_on_terminal("render", str(tmp_path / "missing.mid"), "-o", str(tmp_path / "o.wav"), "--quiet")
    assert code == 2 and b"starting" not in raw and visible(raw)[0].startswith("audiogen: error: ")
    piped = subprocess.run([sys.executable, "-m", "audiogen", "render", str(tmp_path / "missing.mid"), "-o",
                            str(tmp_path / "o.wav")], capture_output=True, text=True)
    assert piped.returncode == 2 and piped.stderr.splitlines() == [piped.stderr.strip()]
    assert piped.stderr.startswith("audiogen: error: ")
