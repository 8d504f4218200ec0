"""The generation commands end to end (`audiogen continue | render`, exit codes and error lines) with a
tiny model built in the test.

    .venv/bin/pytest tests/generation/test_cli_generate.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tinymodel import SAMPLE_RATE, frames_of, make_tiny_model, write_seed, write_sketch
from tinymodel import run_main as run_cli

from audiogen import audio


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def test_continue_lengths_and_seed(model: Path, tmp_path: Path) -> None:
    seed = write_seed(tmp_path / "seed.wav", seconds=1.0, sample_rate=44100, channels=2)
    out = tmp_path / "out" / "cont.wav"
    assert run_cli("continue", seed, "-o", out, "--seconds", "1.5", "--model", model, "--quiet") == 0
    # keep-prompt (default): the seed (resampled to 8 kHz) plus exactly 1.5 s
    assert frames_of(out) == (SAMPLE_RATE + int(1.5 * SAMPLE_RATE), SAMPLE_RATE, 1)
    only = tmp_path / "only.wav"
    assert run_cli("continue", seed, "-o", only, "--seconds", "1.5", "--no-keep-prompt", "--model", model,
                   "--quiet", "--plot") == 0
    assert frames_of(only) == (int(1.5 * SAMPLE_RATE), SAMPLE_RATE, 1)
    assert only.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = tmp_path / "again.wav"
    run_cli("continue", seed, "-o", again, "--seconds", "1.5", "--no-keep-prompt", "--model", model, "--quiet")
    assert again.read_bytes() == only.read_bytes()  # fixed seed, identical file
    other = tmp_path / "other.wav"
    run_cli("continue", seed, "-o", other, "--seconds", "1.5", "--no-keep-prompt", "--model", model, "--quiet",
            "--seed", "5")
    assert other.read_bytes() != only.read_bytes()


def test_continue_seed_longer_than_context(model: Path, tmp_path: Path) -> None:
    # The window is 64 steps (0.26 s at 250 frames/s): a 3 s seed keeps only its last part as prompt.
    seed = write_seed(tmp_path / "long.wav", seconds=3.0, sample_rate=8000, channels=1)
    out = tmp_path / "cont.wav"
    assert run_cli("continue", seed, "-o", out, "--seconds", "0.5", "--model", model, "--quiet") == 0
    assert frames_of(out)[0] == 3 * SAMPLE_RATE + SAMPLE_RATE // 2


def test_render_length_follows_the_midi(model: Path, tmp_path: Path) -> None:
    sketch = write_sketch(tmp_path / "sketch.mid", seconds=2.0)
    out = tmp_path / "render.wav"
    assert run_cli("render", sketch, "-o", out, "--model", model, "--quiet") == 0
    import pretty_midi

    end = pretty_midi.PrettyMIDI(str(sketch)).get_end_time()
    assert frames_of(out)[0] == audio.seconds_to_samples(end + 1.0, SAMPLE_RATE)
    fixed = tmp_path / "fixed.wav"
    seed = write_seed(tmp_path / "timbre.wav", seconds=0.5)
    assert run_cli("render", sketch, "-o", fixed, "--seconds", "1.25", "--prompt", seed, "--guidance", "2",
                   "--model", model, "--quiet") == 0
    assert frames_of(fixed)[0] == int(1.25 * SAMPLE_RATE)


BAD = [
    ("continue", "missing.wav", "-o", "{tmp}/x.wav"),
    ("continue", "{notaudio}", "-o", "{tmp}/x.wav"),
    ("continue", "{seed}", "-o", "{tmp}/x.wav", "--seconds", "0"),
    ("continue", "{seed}", "-o", "{tmp}/x.wav", "--seconds", "1e9"),
    ("render", "{notaudio}", "-o", "{tmp}/x.wav"),
    ("render", "{emptymidi}", "-o", "{tmp}/x.wav"),
    ("loops", "-o", "{tmp}/loops", "--count", "0"),
    ("loops", "-o", "{tmp}/loops", "--bpm", "10"),
    ("loops", "-o", "{tmp}/loops", "--bpm", "401"),
    ("loops", "-o", "{tmp}/loops", "--bars", "0"),
    ("loops", "-o", "{readonly}/loops"),
    ("continue", "{seed}", "-o", "{tmp}/x.wav", "--model", "{tmp}"),
]


@pytest.mark.parametrize("args", BAD)
def test_bad_input_exit_2_one_line_no_files(model: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    import pretty_midi

    work = tmp_path / "work"
    work.mkdir()
    seed = write_seed(tmp_path / "seed.wav")
    notaudio = tmp_path / "notes.txt"
    notaudio.write_text("hello")
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    readonly = tmp_path / "ro"
    readonly.mkdir()
    (readonly / "file").write_text("x")
    fill = {"tmp": work, "seed": seed, "notaudio": notaudio, "emptymidi": empty, "readonly": readonly / "file"}
    argv = [a.format(**fill) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(model)]
    proc = subprocess.run([sys.executable, "-m", "audiogen", *argv, "--quiet"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(work.iterdir()) == []  # nothing half-written
