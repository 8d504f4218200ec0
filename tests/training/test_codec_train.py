"""Codec training (`audiogen.training.codec` on the shared loop `audiogen.training.loop.run`): it learns,
the GAN and balancer-off paths run, and a SIGKILLed run resumes to bitwise the same weights.

    .venv/bin/pytest tests/training/test_codec_train.py -q
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import read_csv, run_cli, run_torchrun, tiny_recipe, torch_threads, write_recipe
from safetensors import safe_open

from audiogen import checkpoint, cli
from audiogen.errors import AudiogenError
from audiogen.training.codec import CodecTask
from audiogen.training.loop import run

# Measured for the tiny recipe (200 steps, one thread): validation SI-SNR -68 dB at step 0 (all-zero
# codebooks before k-means), then 2.9 / 4.3 / 4.9 / 5.0 dB at steps 50 / 100 / 150 / 200; variants
# (two threads, other learning rates) ended at 4.0-4.6 dB. Mel distance 2.66 -> 0.56.
MIN_FINAL_SI_SNR_DB = 3.0

pytestmark = pytest.mark.usefixtures("one_thread")


def test_training_improves_validation_si_snr(trained_codec):
    first, last = trained_codec.before, trained_codec.evals[-1]
    assert first["val_si_snr"] < 0.0
    assert int(last["step"]) == 200
    assert float(last["val_si_snr"]) > MIN_FINAL_SI_SNR_DB
    assert float(last["val_mel"]) < 0.5 * first["val_mel"]
    snrs = [float(row["val_si_snr"]) for row in trained_codec.evals]
    assert snrs[-1] > snrs[0]  # still improving between the first and last evaluation
    final = json.loads((trained_codec.directory / "final_metrics.json").read_text())
    assert final["step"] == 200 and final["val_si_snr"] == pytest.approx(float(last["val_si_snr"]), abs=1e-4)
    assert 0 < final["val_hf2k"] < 5 and 0 < final["val_hf4k"] < 5  # the highs, reported for every evaluation
    meta = checkpoint.read_config(trained_codec.directory, kind="codec")
    assert meta["config"]["ratios"] == [8, 8] and meta["recipe"]["train"]["steps"] == 200


def _train_in_process(audio_dir, out_dir, **sections):
    recipe = tiny_recipe(audio_dir, **sections)
    with torch_threads(1):
        torch.manual_seed(0)
        task = CodecTask(recipe, device=torch.device("cpu"))
        start = {k: v.clone() for k, v in task.codec.state_dict().items()}
        run(task, recipe.train, out_dir, device=torch.device("cpu"), quiet=True)
    return task, start


def test_gan_path_runs_with_finite_losses_and_saves_the_discriminator_optimizer(tmp_path, audio_dir):
    task, _ = _train_in_process(
        audio_dir, tmp_path / "run",
        losses={"adversarial": 3.0, "feature": 3.0, "disc_filters": 4, "disc_lr_scale": 0.5},
        train={"steps": 3, "log_every": 1, "eval_every": 3, "checkpoint_every": 3},
    )
    rows = read_csv(tmp_path / "run" / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for row in rows:
        for key in ("l1", "mel", "adversarial", "feature", "disc", "commit"):
            assert math.isfinite(float(row[key])), (key, row)
    state = tmp_path / "run" / checkpoint.TRAIN_STATE_NAME
    with safe_open(str(state), framework="pt") as handle:
        keys = list(handle.keys())
        meta = json.loads(handle.metadata()["audiogen"])
    assert meta["step"] == 3 and set(meta["optimizers"]) == {"codec", "disc"}
    groups = {name: opt["param_groups"][0] for name, opt in meta["optimizers"].items()}
    assert groups["disc"]["lr"] == pytest.approx(0.5 * groups["codec"]["lr"])  # losses.disc_lr_scale
    assert any(k.startswith("module/disc/") for k in keys)
    # the discriminator trained: AdamW moments exist for its parameters and are non-zero
    tensors = checkpoint.load_tensors(state)
    moments = [v for k, v in tensors.items() if k.startswith("optim/disc/") and k.endswith("/exp_avg")]
    assert len(moments) == len(list(task.disc.parameters()))
    assert all(torch.isfinite(m).all() for m in moments) and any(float(m.abs().sum()) > 0 for m in moments)


def test_balancer_off_path_trains(tmp_path, audio_dir):
    task, start = _train_in_process(
        audio_dir, tmp_path / "run", losses={"balancer": False},
        train={"steps": 3, "log_every": 1, "eval_every": 3, "checkpoint_every": 3},
    )
    assert task.balancer is None
    rows = read_csv(tmp_path / "run" / "train_log.csv")
    assert len(rows) == 3 and all(math.isfinite(float(r["mel"])) for r in rows)
    changed = [k for k, v in task.codec.state_dict().items() if not torch.equal(v, start[k])]
    assert any(k.startswith("decoder.") for k in changed) and any(k.startswith("encoder.") for k in changed)


def _saved_step(run_dir) -> int | None:
    path = run_dir / checkpoint.TRAIN_STATE_NAME
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as handle:  # the file is replaced atomically
        return json.loads(handle.metadata()["audiogen"])["step"]


def _train_command(recipe, out_dir, *extra):
    return [sys.executable, "-m", "audiogen", "train", "codec", str(recipe), "-o", str(out_dir), *extra]


@pytest.mark.slow
def test_sigkilled_run_resumes_to_bitwise_identical_weights(tmp_path, audio_dir, capsys):
    steps = 30
    recipe = write_recipe(tmp_path / "recipe.toml", audio_dir,
                          train={"steps": steps, "checkpoint_every": 5, "log_every": 1, "eval_every": 15})
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    # Both runs at once (one thread each): the uninterrupted reference and the one to kill.
    straight = subprocess.Popen(_train_command(recipe, straight_dir, "--quiet"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(_train_command(recipe, killed_dir, "--quiet"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while victim.poll() is None and time.time() < deadline:
            saved = _saved_step(killed_dir)
            if saved is not None and saved >= 10:
                victim.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    saved = _saved_step(killed_dir)
    assert 10 <= saved < steps

    resumed = run_cli("train", "codec", recipe, "-o", killed_dir, "--resume", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err

    # the resumed run started at the saved step (its progress bar opens at saved/steps)
    counts = re.findall(rf"\b(\d+)/{steps}\b", resumed.stderr)
    assert counts and int(counts[0]) == saved, resumed.stderr[-2000:]
    # final weights, optimizer moments, codebook buffers and RNG states: bitwise identical
    a = checkpoint.load_weights(straight_dir)
    b = checkpoint.load_weights(killed_dir)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    sa = checkpoint.load_tensors(straight_dir / checkpoint.TRAIN_STATE_NAME)
    sb = checkpoint.load_tensors(killed_dir / checkpoint.TRAIN_STATE_NAME)
    assert sa.keys() == sb.keys()
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []
    # one log row per step, and the same losses as the uninterrupted run at every step
    log_a, log_b = read_csv(straight_dir / "train_log.csv"), read_csv(killed_dir / "train_log.csv")
    assert [int(r["step"]) for r in log_b] == list(range(1, steps + 1))
    assert [(r["l1"], r["mel"]) for r in log_a] == [(r["l1"], r["mel"]) for r in log_b]

    # a finished run resumed again has nothing to do
    assert cli.main(["train", "codec", str(recipe), "-o", str(killed_dir), "--resume", "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert checkpoint.load_weights(killed_dir).keys() == b.keys()


def test_existing_run_without_resume_and_resume_of_nothing_are_errors(tmp_path, audio_dir, capsys):
    recipe = write_recipe(tmp_path / "recipe.toml", audio_dir,
                          train={"steps": 2, "checkpoint_every": 2, "eval_every": 2})
    out = tmp_path / "run"
    with torch_threads(1):
        assert cli.main(["train", "codec", str(recipe), "-o", str(out), "--quiet"]) == 0
        before = checkpoint.weights_hash(out)
        capsys.readouterr()
        assert cli.main(["train", "codec", str(recipe), "-o", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "already holds a training run" in err and "--resume" in err and err.count("\n") == 1
        assert checkpoint.weights_hash(out) == before  # the existing run is untouched
        changed = ["train", "codec", str(recipe), "-o", str(out), "--resume", "--quiet", "--model.n_filters=8"]
        assert cli.main(changed) == 2
        err = capsys.readouterr().err
        assert "does not fit this recipe" in err and err.count("\n") == 1
        assert checkpoint.weights_hash(out) == before
        # resuming with more steps extends the run
        assert cli.main(["train", "codec", str(recipe), "-o", str(out), "--resume", "--quiet", "--train.steps=3"]) == 0
        assert [int(r["step"]) for r in read_csv(out / "eval_log.csv")] == [2, 3]
        empty = tmp_path / "empty"
        empty.mkdir()
        assert cli.main(["train", "codec", str(recipe), "-o", str(empty), "--resume", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "nothing to resume" in err and err.count("\n") == 1
        assert list(empty.iterdir()) == []
    with pytest.raises(AudiogenError, match="nothing to resume"):
        checkpoint.load_train_state(empty / checkpoint.TRAIN_STATE_NAME, modules={}, optimizers={})


def test_decoder_only_finetune_keeps_the_codes(trained_codec, tmp_path: Path) -> None:
    """Fine-tuning the decoder leaves encoder, codebooks and fingerprint untouched; the decoder changes."""
    from audiogen.codec import EncodecCodec

    source = EncodecCodec.load(trained_codec.directory)
    recipe = write_recipe(tmp_path / "ft.toml", trained_codec.audio_dir,
                          train={"steps": 20, "threads": 1, "eval_every": 20, "checkpoint_every": 20,
                                 "warmup_steps": 1},
                          finetune={"init_from": str(trained_codec.directory), "decoder_only": True})
    result = run_cli("train", "codec", recipe, "-o", tmp_path / "ft", "--quiet")
    assert result.returncode == 0, result.stderr
    tuned = EncodecCodec.load(tmp_path / "ft")
    before, after = source.state_dict(), tuned.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("decoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert tuned.fingerprint() == source.fingerprint()


@pytest.mark.slow
def test_torchrun_two_processes_keep_codebooks_in_sync(audio_dir, tmp_path: Path) -> None:
    """DDP codec training: gradients and EMA codebook buffers are averaged, so ranks end identical."""
    recipe = write_recipe(tmp_path / "ddp.toml", audio_dir,
                          train={"steps": 12, "threads": 1, "eval_every": 12, "checkpoint_every": 6})
    run_torchrun("train", "codec", recipe, "-o", tmp_path / "run", "--quiet")
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert final["step"] == 12 and len(final["rank_checksums"]) == 2
    assert final["rank_checksums"][0] == final["rank_checksums"][1]
    assert json.loads((tmp_path / "run" / "recipe.json").read_text())["world_size"] == 2
