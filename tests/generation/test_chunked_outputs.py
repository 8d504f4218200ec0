"""Many outputs are made `batch_size` at a time and written as each is done (issue 17): `generate --count N`
and `loops --count N` no longer hold every output until the end, and Ctrl-C keeps the finished files.

    .venv/bin/pytest tests/generation/test_chunked_outputs.py -q

The Python API is checked for laziness (a step counter passed as the progress bar sees one chunk's steps after
the first item, not all of them; composed sketches are composed chunk by chunk) and for resumable chunks
(`start`); the CLI is interrupted in a real process
(SIGINT, as Ctrl-C sends) after its first file, since a real interrupted process is the point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import sigint_default
from tinymodel import SAMPLE_RATE, frames_of, make_tiny_model
from tinymodel import run_main as run_cli

from audiogen import AudioGen
from audiogen.errors import AudiogenError
from audiogen.generation.loops import loop_length
from audiogen.generation.options import MAX_COUNT

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def ag(model: Path) -> AudioGen:
    return AudioGen.load(model)


class Steps:
    """A progress "bar" that counts the decode steps it is told about."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass


def test_generate_yields_each_chunk_as_it_is_made(ag: AudioGen) -> None:
    steps = Steps()
    samples = ag.iter_generate(seconds=0.1, count=3, batch_size=1, seed=5, progress=steps)
    i, first = next(samples)
    one_chunk = steps.n
    rest = list(samples)
    assert i == 0 and one_chunk > 0 and [j for j, _ in rest] == [1, 2]
    assert steps.n == 3 * one_chunk  # the later chunks ran only when asked for
    whole, sr = ag.generate(seconds=0.1, count=3, batch_size=1, seed=5)
    assert whole.shape == (3, 1, round(0.1 * SAMPLE_RATE)) and sr == SAMPLE_RATE
    assert np.array_equal(whole[0], first) and all(np.array_equal(whole[j], w) for j, w in rest)
    assert not np.array_equal(whole[0], whole[1])  # each chunk has its own seed


def test_loops_yield_each_chunk_and_resume_from_a_chunk(ag: AudioGen) -> None:
    steps = Steps()
    loops = ag.iter_loops(3, 1, 400, beats_per_bar=1, batch_size=2, seed=1, progress=steps)
    i, first = next(loops)
    one_chunk = steps.n
    full = {i: first, **dict(loops)}
    assert sorted(full) == [0, 1, 2] and steps.n == 2 * one_chunk  # chunks of 2, 1: each the same steps
    assert first.shape == (1, loop_length(1, 400, 1, SAMPLE_RATE))
    tail = dict(ag.iter_loops(3, 1, 400, beats_per_bar=1, batch_size=2, seed=1, start=2))
    assert list(tail) == [2] and np.array_equal(tail[2], full[2])  # a resumed job makes the same loops


def test_generate_count_in_chunks_on_the_cli(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("generate", "-o", out, "--count", "3", "--batch-size", "2", "--seconds", "0.1", "--model", model,
                   "--quiet") == 0
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["sample-00.wav", "sample-01.wav", "sample-02.wav"]
    assert all(frames_of(f) == (round(0.1 * SAMPLE_RATE), SAMPLE_RATE, 1) for f in files)
    assert len({f.read_bytes() for f in files}) == 3


COMMANDS = {
    "generate": (["generate", "--seconds", "0.5"], "sample-00.wav", round(0.5 * SAMPLE_RATE)),
    "loops": (["loops", "--bars", "1", "--bpm", "400", "--beats-per-bar", "1", "--no-compose"], "loop-00.wav",
              loop_length(1, 400, 1, SAMPLE_RATE)),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_ctrl_c_keeps_every_finished_file(model: Path, tmp_path: Path, command: str) -> None:
    args, first, frames = COMMANDS[command]
    out = tmp_path / "out"
    count = 500
    proc = subprocess.Popen([sys.executable, "-m", "audiogen", *args, "-o", str(out), "--count", str(count),
                             "--batch-size", "1", "--model", str(model), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (out / first).exists():
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr.strip().splitlines() == ["audiogen: interrupted"], stderr
    files = sorted(p.name for p in out.iterdir() if p.suffix == ".wav")
    assert first in files and len(files) < count
    assert all(frames_of(out / name)[0] == frames for name in files)  # every file there is whole
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries
    if command == "loops":  # each finished loop is listed as it is written, Ctrl-C or not
        listed = {row["file"] for row in json.loads((out / "loops.json").read_text())["loops"]}
        assert listed == set(files)  # a loop and its row are written together, Ctrl-C or not


def test_composed_loops_compose_each_sketch_when_its_chunk_starts(ag: AudioGen) -> None:
    """The bundled composer writes the sketches; with `lazy=True` a loop's sketch is composed when its chunk
    starts (the first one at once, so a bad style still fails before any loop), not all `count` up front."""
    count = MAX_COUNT
    sketches = ag.loop_sketches(count, 1, 200, beats_per_bar=2, seed=3, lazy=True)
    assert len(sketches) == count and sketches.made == 1
    loops = ag.iter_loops(count, 1, 200, beats_per_bar=2, midi=sketches, batch_size=2, seed=3)
    (i, first), (j, _) = next(loops), next(loops)
    assert (i, j) == (0, 1) and first.shape == (1, loop_length(1, 200, 2, SAMPLE_RATE))
    assert sketches.made == 2  # one chunk's sketches, composed once each
    eager = ag.loop_sketches(2, 1, 200, beats_per_bar=2, seed=3)
    assert [pm.get_end_time() for pm in eager] == [sketches[0].get_end_time(), sketches[1].get_end_time()]
    with pytest.raises(AudiogenError):
        ag.loop_sketches(count, 1, 200, beats_per_bar=2, style="no such style", lazy=True)
