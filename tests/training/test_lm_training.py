"""LM training from a tokenized folder: learning, per-codebook validation, resume, and torchrun DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch
from conftest import run_torchrun
from tinymodel import SAMPLE_RATE

from audiogen.codec import CodecConfig, EncodecCodec
from audiogen.lm.model import LM
from audiogen.tokens.tokenize import tokenize

pytestmark = pytest.mark.usefixtures("one_thread")


def render_pair(folder: Path, name: str, pitches: list[int], seconds: float = 2.0) -> None:
    """A tone sequence and the MIDI that describes it (same stem): a paired file."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    step = seconds / len(pitches)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wav = np.zeros_like(t)
    for i, p in enumerate(pitches):
        inst.notes.append(pretty_midi.Note(100, p, i * step, (i + 1) * step))
        f = 440 * 2 ** ((p - 69) / 12)
        on = (t >= i * step) & (t < (i + 1) * step)
        wav[on] = 0.3 * np.sin(2 * np.pi * f * t[on])
    pm.instruments.append(inst)
    pm.write(str(folder / f"{name}.mid"))
    sf.write(folder / f"{name}.wav", wav.astype(np.float32), SAMPLE_RATE)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lm")
    audio = root / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        render_pair(audio, f"piece{i}", list(rng.integers(55, 80, size=8)))
    torch.manual_seed(0)
    codec = EncodecCodec(CodecConfig(sample_rate=SAMPLE_RATE, n_filters=4, dimension=16, ratios=(4, 4, 4),
                                     lstm_layers=0, max_codebooks=2, num_codebooks=2, codebook_size=32))
    with torch.no_grad():
        codec.train()(torch.randn(4, 1, SAMPLE_RATE) * 0.3)
    codec.eval().save(root / "codec")
    summary = tokenize(audio, root / "tokens", EncodecCodec.load(root / "codec"), codec_spec=str(root / "codec"),
                       quiet=True)
    assert summary.paired == 8
    return root / "tokens"


def write_recipe(path: Path, dataset: Path, **train) -> Path:
    settings = {"steps": 60, "batch_size": 4, "lr": 3e-3, "warmup_steps": 5, "eval_every": 30,
                "checkpoint_every": 20, "log_every": 10, "threads": 1, **train}
    lines = ["[data]", f'dataset = "{dataset}"', "crop_seconds = 0.5", "val_fraction = 0.25", "val_crops = 8",
             "[model]", "dim = 32", "num_layers = 2", "num_heads = 2", "context = 48", "cond_dropout = 0.2",
             "[train]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def audiogen(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audiogen", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def eval_rows(run: Path) -> list[dict[str, str]]:
    import csv

    with open(run / "eval_log.csv") as handle:
        return list(csv.DictReader(handle))


def test_lm_learns_and_reports_per_codebook_validation(dataset: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "lm.toml", dataset, steps=120, eval_every=60)
    proc = audiogen("train", "lm", recipe, "-o", tmp_path / "run", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = eval_rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [60, 120]
    last = rows[-1]
    # Chance is ln(32) = 3.47 nats per token; the tones are predictable given the MIDI.
    assert float(last["val_ce"]) < 2.5
    assert float(last["val_ce_k0"]) > 0 and float(last["val_ce_k1"]) > 0
    assert float(last["val_bits_per_second"]) == pytest.approx(
        (float(last["val_ce_k0"]) + float(last["val_ce_k1"])) / np.log(2) * SAMPLE_RATE / 64, rel=1e-3)
    assert float(last["val_ce_without_midi"]) > float(last["val_ce"])  # the MIDI helps
    # The run folder is a self-contained model: config names the codec, which is bundled inside.
    model = LM.load(tmp_path / "run")
    assert model.config.cond_features > 0 and model.meta["codec"]["fingerprint"]
    assert (tmp_path / "run" / "codec" / "model.safetensors").exists()
    from audiogen import AudioGen

    ag = AudioGen.load(tmp_path / "run")
    wav, sr = ag.generate(seconds=0.2)
    assert sr == SAMPLE_RATE and wav.shape == (1, 1, int(0.2 * SAMPLE_RATE))


def test_sigkill_then_resume_is_bitwise_identical(dataset: Path, tmp_path: Path) -> None:
    import signal
    import time

    recipe = write_recipe(tmp_path / "r.toml", dataset, steps=40, checkpoint_every=10, eval_every=20)
    assert audiogen("train", "lm", recipe, "-o", tmp_path / "a", "--quiet").returncode == 0
    cmd = [sys.executable, "-m", "audiogen", "train", "lm", str(recipe), "-o", str(tmp_path / "b"), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "b" / "train_state.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not state.exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists(), "the run ended before its first checkpoint"
    resumed = audiogen("train", "lm", recipe, "-o", tmp_path / "b", "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = LM.load(tmp_path / "a").state_dict(), LM.load(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "eval_log.csv").read_text() == (tmp_path / "b" / "eval_log.csv").read_text()


@pytest.mark.slow
def test_torchrun_two_processes_train_checkpoint_and_resume(dataset: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "ddp.toml", dataset, steps=20, checkpoint_every=10, eval_every=10,
                          batch_size=2)
    torchrun = ["train", "lm", recipe, "-o", tmp_path / "ddp", "--quiet"]
    run_torchrun(*torchrun, "--train.steps=10")
    saved = json.loads((tmp_path / "ddp" / "final_metrics.json").read_text())
    assert saved["step"] == 10 and len(saved["rank_checksums"]) == 2
    assert saved["rank_checksums"][0] == saved["rank_checksums"][1]
    run_torchrun(*torchrun, "--resume")
    done = json.loads((tmp_path / "ddp" / "final_metrics.json").read_text())
    assert done["step"] == 20 and done["rank_checksums"][0] == done["rank_checksums"][1]
    assert json.loads((tmp_path / "ddp" / "recipe.json").read_text())["world_size"] == 2
    train_steps = [int(r.split(",")[0]) for r in (tmp_path / "ddp" / "train_log.csv").read_text().splitlines()[1:]]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 20  # resumed, no duplicated rows


def test_stop_after_keeps_the_schedule(dataset: Path, tmp_path: Path) -> None:
    """`train.stop_after` stops early on the full run's schedule; resuming finishes it identically."""
    recipe = write_recipe(tmp_path / "r.toml", dataset, steps=30, checkpoint_every=10, eval_every=30)
    assert audiogen("train", "lm", recipe, "-o", tmp_path / "full", "--quiet").returncode == 0
    first = audiogen("train", "lm", recipe, "-o", tmp_path / "split", "--quiet", "--train.stop_after=15")
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "split" / "final_metrics.json").read_text())["step"] == 15
    assert audiogen("train", "lm", recipe, "-o", tmp_path / "split", "--quiet", "--resume").returncode == 0
    a, b = LM.load(tmp_path / "full").state_dict(), LM.load(tmp_path / "split").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_max_minutes_stops_on_time_and_resumes_to_the_same_weights(dataset: Path, tmp_path: Path) -> None:
    """`train.max_minutes` ends the run early with a checkpoint; `--resume` finishes the same schedule."""
    recipe = write_recipe(tmp_path / "r.toml", dataset, steps=20, checkpoint_every=50, eval_every=50)
    assert audiogen("train", "lm", recipe, "-o", tmp_path / "full", "--quiet").returncode == 0
    # A budget of ~6 ms: spent after the first step, wherever checkpoint_every falls.
    first = audiogen("train", "lm", recipe, "-o", tmp_path / "budget", "--quiet", "--train.max_minutes=0.0001")
    assert first.returncode == 0, first.stderr
    stopped = json.loads((tmp_path / "budget" / "final_metrics.json").read_text())
    assert stopped["stopped_by_time_budget"] is True and 1 <= stopped["step"] < 20
    assert (tmp_path / "budget" / "train_state.safetensors").is_file() and "val_ce" in stopped
    assert audiogen("train", "lm", recipe, "-o", tmp_path / "budget", "--quiet", "--resume").returncode == 0
    done = json.loads((tmp_path / "budget" / "final_metrics.json").read_text())
    assert done["step"] == 20 and done["stopped_by_time_budget"] is False
    a, b = LM.load(tmp_path / "full").state_dict(), LM.load(tmp_path / "budget").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_max_minutes_refuses_impossible_budgets(dataset: Path, tmp_path: Path, value: str) -> None:
    recipe = write_recipe(tmp_path / "r.toml", dataset, steps=5, checkpoint_every=5, eval_every=5)
    result = audiogen("train", "lm", recipe, "-o", tmp_path / "x", "--quiet", f"--train.max_minutes={value}")
    assert result.returncode == 2 and "max_minutes" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "train_state.safetensors").exists()


def test_fit_steps_to_budget_shortens_the_schedule_and_resume_keeps_it(dataset: Path, tmp_path: Path) -> None:
    """A 100,000-step recipe with a 3 s budget: the schedule is fitted to what 3 s allow, and kept."""
    recipe = write_recipe(tmp_path / "r.toml", dataset, steps=100_000, checkpoint_every=10_000, eval_every=10_000)
    budget = ["--train.max_minutes=0.05", "--train.fit_steps_to_budget=true", "--train.warmup_steps=50"]
    result = audiogen("train", "lm", recipe, "-o", tmp_path / "fit", "--quiet", *budget, "--train.stop_after=45")
    assert result.returncode == 0, result.stderr
    first = json.loads((tmp_path / "fit" / "final_metrics.json").read_text())
    assert first["step"] == 45 and 45 < first["schedule_steps"] < 100_000  # fitted after step 40
    again = audiogen("train", "lm", recipe, "-o", tmp_path / "fit", "--quiet", "--resume", *budget)
    assert again.returncode == 0, again.stderr
    resumed = json.loads((tmp_path / "fit" / "final_metrics.json").read_text())
    assert resumed["step"] > 45 and resumed["schedule_steps"] == first["schedule_steps"]  # not fitted again


def test_keep_best_exports_the_model_of_the_lowest_validation_score(dataset: Path, tmp_path: Path) -> None:
    """`train.keep_best` keeps the best evaluation's model in OUT/best, loadable like the run itself."""
    recipe = write_recipe(tmp_path / "lm.toml", dataset, steps=60, eval_every=15, keep_best="val_ce")
    proc = audiogen("train", "lm", recipe, "-o", tmp_path / "run", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = eval_rows(tmp_path / "run")
    scores = {int(r["step"]): float(r["val_ce"]) for r in rows}
    best = json.loads((tmp_path / "run" / "best" / "best.json").read_text())
    assert best["step"] == min(scores, key=scores.get) and best["val_ce"] == pytest.approx(min(scores.values()), rel=1e-5)
    model = LM.load(tmp_path / "run" / "best")
    assert (tmp_path / "run" / "best" / "codec" / "model.safetensors").exists()
    if best["step"] != 60:  # the best is not the last: its weights differ from the run's
        last = LM.load(tmp_path / "run")
        assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), last.state_dict().values()))
    wrong = audiogen("train", "lm", recipe, "-o", tmp_path / "wrong", "--quiet", "--train.keep_best=val_mel")
    assert wrong.returncode == 2 and "keep_best" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
