"""Batch jobs (`audiogen batch`, `audiogen.generation.batch`): resume after a kill, failures reported,
disjoint shards that reproduce the single run, with a tiny model built in the test.

    .venv/bin/pytest tests/generation/test_batch.py -q
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tinymodel import make_tiny_model, write_seed, write_sketch
from tinymodel import run_main as run_cli


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


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
    assert row["seconds"] == pytest.approx(1.0) and row["model"]["lm_weights"]
    assert row["seed"] == row["params"]["seed"] and isinstance(row["seed"], int)  # from the job's hash: no seed given
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
