"""Loops (`audiogen.generation.loops`): bar-exact lengths with loop points, seamless wraps, through the
CLI and the Python API, with a tiny model built in the test.

    .venv/bin/pytest tests/generation/test_loops.py -q
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tinymodel import SAMPLE_RATE, frames_of, make_tiny_model, write_sketch
from tinymodel import run_main as run_cli

from audiogen import AudioGen, audio
from audiogen.generation.loops import loop_length


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.mark.parametrize("bars,bpm,beats", [(1, 120.0, 4), (2, 97.0, 3), (1, 133.3, 7)])
def test_loops_are_bar_exact_with_smpl_chunk(model: Path, tmp_path: Path, bars: int, bpm: float, beats: int) -> None:
    out = tmp_path / "loops"
    assert run_cli("loops", "-o", out, "--count", "3", "--bars", bars, "--bpm", bpm, "--beats-per-bar", beats,
                   "--batch-size", "2", "--model", model, "--quiet") == 0
    files = sorted(out.glob("*.wav"))
    assert len(files) == 3
    expected = round(bars * beats * 60 / bpm * SAMPLE_RATE)
    assert expected == loop_length(bars, bpm, beats, SAMPLE_RATE)
    for f in files:
        assert frames_of(f) == (expected, SAMPLE_RATE, 1)
        info = audio.read_loop_info(f)
        assert info is not None and (info.start, info.end) == (0, expected - 1)
        assert info.beats == bars * beats and info.beats_per_bar == beats and abs(info.bpm - bpm) < 1e-3
    # Different items of a batch differ; the same seed reproduces the same files.
    assert files[0].read_bytes() != files[1].read_bytes()
    again = tmp_path / "again"
    run_cli("loops", "-o", again, "--count", "3", "--bars", bars, "--bpm", bpm, "--beats-per-bar", beats,
            "--batch-size", "2", "--model", model, "--quiet")
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in sorted(again.glob("*.wav"))]


def test_loops_from_a_midi_sketch_wrap_smoothly(model: Path, tmp_path: Path) -> None:
    sketch = write_sketch(tmp_path / "s.mid", seconds=4.0, tempo=90)
    ag = AudioGen.load(model)
    loops, sr = ag.loops(2, 2, 120, midi=sketch, seed=1)
    for loop in loops:
        assert loop.shape == (1, loop_length(2, 120, 4, sr))
        # The wrap is a join of two samples generated next to each other: its step is no larger
        # than the largest step inside the loop.
        wrap = abs(float(loop[0, 0] - loop[0, -1]))
        inner = np.abs(np.diff(loop[0])).max()
        assert wrap <= inner + 1e-6
