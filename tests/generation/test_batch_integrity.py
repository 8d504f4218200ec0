"""Batch jobs keep matching their outputs (issue 17): jobs are known by a hash of their content, so the tests
edit the jobs file (insert a job at the top, change a job), collide names and run one shard twice at once,
then check each output's duration and parameters against its job. A bad job fails alone (one line, a row in
failures.jsonl, exit status 1) while the others run; a damaged manifest is skipped over with one warning.

    .venv/bin/pytest tests/generation/test_batch_integrity.py -q

A tiny model made in the test; jobs of a fraction of a second. The shard-twice test runs a real second
process (`python -m audiogen batch`) and the same shard in this one while it holds its lock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tinymodel import SAMPLE_RATE, frames_of, make_tiny_model, write_seed, write_sketch
from tinymodel import run_main as run_cli

from audiogen.generation.batch import read_jobs, shard_running
from audiogen.generation.loops import loop_length
from audiogen.generation.options import SamplingConfig

pytestmark = pytest.mark.usefixtures("one_thread")
SEED_SECONDS = 0.25  # the continue jobs' seed recording: 8 kHz mono, kept at the output's start


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def inputs(folder: Path) -> None:
    write_seed(folder / "seed.wav", seconds=SEED_SECONDS, sample_rate=SAMPLE_RATE, channels=1)
    write_sketch(folder / "s.mid", seconds=1.0)


def write_jobs(path: Path, jobs: list) -> Path:
    path.write_text("".join((j if isinstance(j, str) else json.dumps(j)) + "\n" for j in jobs))
    return path


def cont(seconds: float, **fields) -> dict:
    return {"task": "continue", "seed_audio": "seed.wav", "seconds": seconds, **fields}


def loops(**fields) -> dict:  # 1 bar of 1 beat at 400 BPM: 0.15 s loops (about 1.2 s generated with pre-roll)
    return {"task": "loops", "bars": 1, "beats_per_bar": 1, "bpm": 400, "compose": False, **fields}


def last_rows(out: Path) -> tuple[dict[str, dict], Counter]:
    """(the last manifest row of each output, rows per (output, key))."""
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    return {r["output"]: r for r in rows}, Counter((r["output"], r.get("key")) for r in rows)


def check_outputs_match_jobs(jobs_path: Path, out: Path) -> None:
    """Every output of every job in the file: its file's duration and its manifest row's key and parameters are
    the job's; no output was made twice for one key."""
    jobs, _ = read_jobs(jobs_path)
    rows, counts = last_rows(out)
    assert max(counts.values()) == 1, counts
    for job in jobs:
        params, key = job.resolve(SamplingConfig())  # the CLI's defaults: the tests pass no sampling options
        for name in job.outputs():
            row = rows[name]
            assert row["key"] == key and row["params"] == params and row["name"] == job.name, (name, row)
            frames, rate, _ = frames_of(out / name)
            if job.task == "continue":
                expected = round((SEED_SECONDS + params["seconds"]) * SAMPLE_RATE)
            elif job.task == "loops":
                expected = loop_length(params["bars"], params["bpm"], params["beats_per_bar"], SAMPLE_RATE)
            else:
                expected = round(params["seconds"] * SAMPLE_RATE)
            assert (frames, rate) == (expected, SAMPLE_RATE), name
            assert row["seconds"] == pytest.approx(frames / SAMPLE_RATE)


def batch(jobs: Path, out: Path, model: Path, capsys, *extra) -> tuple[int, str, str]:
    code = run_cli("batch", jobs, "-o", out, "--model", model, "--quiet", *extra)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def summary(out: Path, done: int, skipped: int, failed: int, total: int) -> str:
    return f"{out}: {done} jobs done, {skipped} already done, {failed} failed (of {total} in this shard)"


def test_edit_collide_and_run_one_shard_twice(model: Path, tmp_path: Path, capsys) -> None:
    inputs(tmp_path)
    jobs = tmp_path / "jobs.jsonl"
    out = tmp_path / "out"
    v1 = [cont(0.25, name="a"), cont(0.5), loops(count=2, name="x"),
          {"task": "render", "midi": "s.mid", "seconds": 0.25}]
    write_jobs(jobs, v1)
    code, stdout, _ = batch(jobs, out, model, capsys)
    assert code == 0 and summary(out, 4, 0, 0, 4) in stdout
    check_outputs_match_jobs(jobs, out)
    files = {p.name: p.read_bytes() for p in out.glob("*.wav")}

    # A new job at the top: it is made (it was "already done" when jobs were keyed by line); no other job moves.
    write_jobs(jobs, [cont(0.75), *v1])
    code, stdout, _ = batch(jobs, out, model, capsys)
    assert code == 0 and summary(out, 1, 4, 0, 5) in stdout
    check_outputs_match_jobs(jobs, out)
    assert all((out / name).read_bytes() == data for name, data in files.items())  # untouched

    # A job whose content changed is made again; its file and its last manifest row follow the new content.
    write_jobs(jobs, [cont(0.75), cont(0.5, name="a"), *v1[1:]])
    code, stdout, _ = batch(jobs, out, model, capsys)
    assert code == 0 and summary(out, 1, 4, 0, 5) in stdout
    check_outputs_match_jobs(jobs, out)

    # Colliding names refuse the file in one line naming both lines; nothing changes.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    write_jobs(jobs, [cont(0.75), cont(0.5, name="a"), *v1[1:], cont(0.25, name="x-00")])
    code, _, err = batch(jobs, out, model, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "line 4" in err and "line 6" in err, err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    # The same shard twice at once: the second run fails at once (so do shards of another split); the first
    # makes every output once.
    write_jobs(jobs, [cont(0.75), cont(0.5, name="a"), *v1[1:], loops(count=3, batch_size=1, name="y"),
                      cont(1.0, name="late")])
    proc = subprocess.Popen([sys.executable, "-m", "audiogen", "batch", str(jobs), "-o", str(out), "--model",
                             str(model), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not shard_running(out, 0, 1):
        time.sleep(0.01)
    assert proc.poll() is None, "the first run ended before the second started"
    for shard in ("0/1", "0/2"):
        code, _, err = batch(jobs, out, model, capsys, "--shard", shard)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "running" in err, err
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert summary(out, 2, 5, 0, 7) in stdout
    check_outputs_match_jobs(jobs, out)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no lock or temporary file left


BAD_JOBS = {
    "seconds text": cont("abc"),
    "seconds null": cont(None),
    "seconds list": cont([1]),
    "seconds NaN": '{"task": "continue", "seed_audio": "seed.wav", "seconds": NaN}',
    "temperature text": cont(0.1, temperature="hot"),
    "top_k fraction": cont(0.1, top_k=1.5),
    "top_p text": cont(0.1, top_p="x"),
    "seed past 64 bits": cont(0.1, seed=2**70),
    "seed_audio number": {"task": "continue", "seed_audio": 123},
    "midi number": {"task": "render", "midi": 123},
    "guidance text": {"task": "render", "midi": "s.mid", "guidance": "x"},
    "prompt number": {"task": "render", "midi": "s.mid", "prompt": 5},
    "batch_size text": loops(batch_size="x"),
    "batch_size zero": loops(batch_size=0),
    "count huge": loops(count=10**12),
    "count true": loops(count=True),
    "name with NUL": cont(0.1, name="a\0b"),
    "name 300 long": cont(0.1, name="n" * 300),
    "name a path": cont(0.1, name="../escape"),
    "name a number": cont(0.1, name=5),
    "unknown field": cont(0.1, speed=2),
    "not JSON": '{"task": "continue", ',
    "deep JSON": "[" * 100_000,
    "a list": "[1, 2]",
    "seed_audio a folder": {"task": "continue", "seed_audio": ".", "seconds": 0.1},  # fails when it runs
    "midi not MIDI": {"task": "render", "midi": "seed.wav", "seconds": 0.1},  # fails when it runs
}


@pytest.mark.parametrize("case", list(BAD_JOBS))
def test_a_bad_job_fails_alone(model: Path, tmp_path: Path, capsys, case: str) -> None:
    inputs(tmp_path)
    jobs = write_jobs(tmp_path / "jobs.jsonl", [BAD_JOBS[case], cont(0.1, name="good")])
    out = tmp_path / "out"
    code, stdout, err = batch(jobs, out, model, capsys)
    assert code == 1, err  # something failed
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: job line 1") and "failed" in lines[0], err
    assert "Traceback" not in err
    assert summary(out, 1, 0, 1, 2) in stdout
    failures = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["line"] for f in failures] == [1]
    assert sorted(p.name for p in out.iterdir()) == ["failures.jsonl", "good.wav", "manifest.jsonl"]
    rows, _ = last_rows(out)
    assert list(rows) == ["good.wav"]
    assert frames_of(out / "good.wav")[0] == round((SEED_SECONDS + 0.1) * SAMPLE_RATE)


DAMAGE = {
    "torn UTF-8 last line": lambda data: data + b'{"output": "a.wav", "key": "\xe2\x82',
    "binary lines": lambda data: b"\x00\x00\xff\xfe\x80 not json\n" + data + b"\x00" * 64 + b"\n",
    "rows of an older version (no key)": lambda data: data.replace(b'"key": ', b'"old_key": '),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_manifest_resumes(model: Path, tmp_path: Path, capsys, case: str) -> None:
    inputs(tmp_path)
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cont(0.1, name="a"), cont(0.2, name="b")])
    out = tmp_path / "out"
    assert batch(jobs, out, model, capsys)[0] == 0
    manifest = out / "manifest.jsonl"
    manifest.write_bytes(DAMAGE[case](manifest.read_bytes()))
    code, stdout, err = batch(jobs, out, model, capsys)
    assert code == 0, err
    if case.startswith("rows"):  # readable rows without a key: their outputs are made again, silently
        assert summary(out, 2, 0, 0, 2) in stdout and err == ""
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "unreadable" in lines[0] and "Traceback" not in err, err
        assert summary(out, 0, 2, 0, 2) in stdout
        manifest.read_bytes().decode("utf-8")  # the unreadable lines were dropped (no other shard was running)
    check_outputs_match_jobs(jobs, out)
    code, stdout, err = batch(jobs, out, model, capsys)  # and from now on, nothing to say
    assert code == 0 and err == "" and summary(out, 0, 2, 0, 2) in stdout


def test_a_damaged_loop_index_is_one_line(model: Path, tmp_path: Path, capsys) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [loops(count=1)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "loops.json").write_bytes(b'{"loops": [\xff')
    code, _, err = batch(jobs, out, model, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "loops.json" in err and "move it away" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["loops.json"]
