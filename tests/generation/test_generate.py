"""Generation end to end through the CLI and the Python API with a tiny model built in the test."""

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
import soundfile as sf
from tinymodel import SAMPLE_RATE, make_tiny_model, write_seed, write_sketch

from audiogen import AudioGen, audio
from audiogen.cli import main
from audiogen.generation.loops import loop_length


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def frames_of(path: Path) -> tuple[int, int, int]:
    info = sf.info(str(path))
    return info.frames, info.samplerate, info.channels


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


def test_api_matches_cli_and_has_no_hidden_state(model: Path, tmp_path: Path) -> None:
    ag = AudioGen.load(model)
    a, sr = ag.generate(seconds=0.5, count=2, seed=3)
    _ = ag.generate(seconds=0.3, count=1, seed=9)  # an unrelated call in between changes nothing
    b, _ = ag.generate(seconds=0.5, count=2, seed=3)
    assert sr == SAMPLE_RATE and a.shape == (2, 1, SAMPLE_RATE // 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    seed = np.random.default_rng(0).standard_normal((2, 22050)).astype(np.float32) * 0.1
    c, _ = ag.continue_audio(seed, 22050, 0.4, keep_prompt=False, seed=2)
    assert c.shape == (1, int(0.4 * SAMPLE_RATE))


def test_bf16_option(model: Path, tmp_path: Path) -> None:
    """--dtype bf16 runs the LM in bf16 (fixed by the seed, recorded in the identity); the codec
    stays fp32; auto picks bf16 exactly where it is native; anything else is a user error."""
    import torch

    from audiogen.errors import AudiogenError
    from audiogen.runtime import native_bf16, resolve_dtype

    fp32 = AudioGen.load(model)
    ag = AudioGen.load(model, dtype="bf16")
    assert ag.lm.heads.weight.dtype == torch.bfloat16 and next(ag.codec.parameters()).dtype == torch.float32
    assert ag.identity["lm_dtype"] == "bf16" and fp32.identity["lm_dtype"] == "fp32"
    a, _ = ag.generate(seconds=0.5, count=2, seed=3)
    b, _ = ag.generate(seconds=0.5, count=2, seed=3)
    assert np.array_equal(a, b) and a.shape == (2, 1, SAMPLE_RATE // 2) and np.isfinite(a).all()
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == (torch.bfloat16 if native_bf16(cpu) else torch.float32)
    with pytest.raises(AudiogenError, match="dtype must be"):
        AudioGen.load(model, dtype="fp8")
    out = tmp_path / "r.wav"
    sketch = write_sketch(tmp_path / "s.mid")
    assert run_cli("render", sketch, "-o", out, "--model", model, "--dtype", "bf16", "--seconds", "0.5",
                   "--quiet") == 0
    assert frames_of(out) == (SAMPLE_RATE // 2, SAMPLE_RATE, 1)


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


def test_batch_jobs_resume_and_shards(model: Path, tmp_path: Path) -> None:
    write_seed(tmp_path / "seed.wav", seconds=0.5)
    write_sketch(tmp_path / "s.mid", seconds=1.0)
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"task": "loops", "bars": 1, "bpm": 120 + i, "count": 2, "seed": i} for i in range(4)]
    lines += [{"task": "continue", "seed_audio": "seed.wav", "seconds": 0.5, "name": "cont"},
              {"task": "render", "midi": "s.mid", "seconds": 0.5},
              {"task": "render", "midi": "nope.mid"},  # fails; the others still run
              {"task": "loops", "bars": 1, "bpm": 5000}]  # invalid; reported
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out"
    # Interrupt a run after its first output, then resume: every output exactly once.
    cmd = [sys.executable, "-m", "audiogen", "batch", str(jobs), "-o", str(out), "--model", str(model), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        manifest = out / "manifest.jsonl"
        if manifest.exists() and manifest.read_text().count("\n") >= 1:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert run_cli("batch", jobs, "-o", out, "--model", model, "--quiet") == 1  # one job fails
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    outputs = [r["output"] for r in rows]
    assert len(outputs) == len(set(outputs)) == 4 * 2 + 2
    assert {f.name for f in out.glob("*.wav")} == set(outputs)
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temp files left
    row = next(r for r in rows if r["name"] == "cont")
    assert row["seconds"] == pytest.approx(1.0) and row["model"]["lm_weights"] and row["seed"] == 4
    failures = (out / "failures.jsonl").read_text()
    assert "nope.mid" in failures and "bpm" in failures
    # Shards: disjoint and complete.
    parts = []
    for i in range(3):
        shard_out = tmp_path / f"shard{i}"
        run_cli("batch", jobs, "-o", shard_out, "--shard", f"{i}/3", "--model", model, "--quiet")
        parts.append({f.name for f in shard_out.glob("*.wav")})
    assert all(a.isdisjoint(b) for i, a in enumerate(parts) for b in parts[i + 1 :])
    assert set().union(*parts) == set(outputs)
    # Same seeds, same model: the shards reproduce the single run's files.
    for part, shard_out in zip(parts, [tmp_path / f"shard{i}" for i in range(3)]):
        for name in part:
            assert (shard_out / name).read_bytes() == (out / name).read_bytes()
