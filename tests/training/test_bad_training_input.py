"""`audiogen train` with what a user can get wrong (recipe values, overrides, recipe files, torchrun's
environment): one line `audiogen: error: ...`, exit 2, no traceback, and no run folder made.

    .venv/bin/pytest tests/training/test_bad_training_input.py -q

Everything here is refused before a model or dataset is built, so each case takes milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_recipe
from tinymodel import run_main

pytestmark = pytest.mark.usefixtures("one_thread")


def _refused(capsys, out: Path, *args) -> str:
    """Run `audiogen train ARGS -o OUT`; check the refusal and return its one line."""
    capsys.readouterr()
    assert run_main("train", *args, "-o", out, "--quiet") == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()  # nothing made: no run folder, no recipe.json, no log
    return lines[0]


# The cases of issue 17, then every float of the train / data / losses sections outside its domain.
CODEC_OVERRIDES = [
    ("--train.lr=nan", "train.lr must be a finite number"),
    ("--train.weight_decay=nan", "train.weight_decay must be a finite number"),
    ("--train.betas=[2.0,-1.0]", "betas must be two numbers in [0, 1)"),
    ("--train.threads=-3", "threads must be in 0..1024"),
    ("--data.crop_seconds=nan", "data.crop_seconds must be a finite number"),
    ("--train.=5", "is not a setting name"),
    ("--train.nosuchkey=1", "unknown setting train.nosuchkey"),
    ("--nosection.x=1", "unknown setting nosection"),
    ("--train.steps=abc", "train.steps: expected an integer"),
    ("--train.lr=fast", "train.lr: expected a number"),
    ("--train.lr=0", "lr must be a positive finite number"),
    ("--train.lr=-1e-3", "lr must be a positive finite number"),
    ("--train.lr=inf", "train.lr must be a finite number"),
    ("--train.weight_decay=-0.1", "weight_decay must be a finite number >= 0"),
    ("--train.betas=[0.9, 1.0]", "betas must be two numbers in [0, 1)"),
    ("--train.min_lr_ratio=1.5", "min_lr_ratio must be in [0, 1]"),
    ("--train.min_lr_ratio=nan", "train.min_lr_ratio must be a finite number"),
    ("--train.grad_clip=-1", "grad_clip must be a finite number >= 0"),
    ("--train.max_minutes=-1", "max_minutes must be a finite number >= 0"),
    ("--train.max_minutes=inf", "train.max_minutes must be a finite number"),
    ("--train.warmup_steps=-5", "warmup_steps and stop_after must be >= 0"),
    ("--train.seed=-1", "seed must be in 0.."),
    ("--train.threads=100000000", "threads must be in 0..1024"),
    ("--data.crop_seconds=0", "crop_seconds and val_seconds must be in (0, 3600]"),
    ("--data.val_seconds=1e9", "crop_seconds and val_seconds must be in (0, 3600]"),
    ("--data.val_fraction=nan", "data.val_fraction must be a finite number"),
    ("--data.val_fraction=-0.1", "val_fraction must be in [0, 1)"),
    ("--data.gain_db=-6", "gain_db must be in [0, 120]"),
    ("--data.val_crops=0", "val_crops must be at least 1"),
    ("--losses.mel=nan", "losses.mel must be a finite number"),
    ("--losses.l1=-1", "weights (l1, mel, adversarial, feature, commitment, stft) must be finite numbers >= 0"),
    ("--losses.balancer_ema=1.0", "balancer_ema must be in [0, 1)"),
    ("--losses.disc_lr_scale=-2", "disc_lr_scale must be a finite number >= 0"),
    ("--losses.disc_start_step=-1", "disc_start_step must be >= 0"),
]


@pytest.mark.parametrize("override, words", CODEC_OVERRIDES, ids=[o for o, _ in CODEC_OVERRIDES])
def test_impossible_codec_settings_are_one_line(tmp_path, audio_dir, capsys, override, words):
    recipe = write_recipe(tmp_path / "codec.toml", audio_dir)
    line = _refused(capsys, tmp_path / "run", "codec", recipe, override)
    assert words in line, line


OTHER_TASKS = [
    ("lm", "--data.crop_seconds=nan", "data.crop_seconds must be a finite number"),
    ("lm", "--data.crop_seconds=-1", "crop_seconds must be in (0, 3600]"),
    ("lm", "--data.val_fraction=1", "val_fraction must be in [0, 1)"),
    ("lm", "--train.lr=nan", "train.lr must be a finite number"),
    ("lm", "--train.={}", "is not a setting name"),
    ("composer", "--data.val_fraction=nan", "data.val_fraction must be a finite number"),
    ("composer", "--train.betas=[0.9, nan]", "train.betas must be a finite number"),
]


@pytest.mark.parametrize("what, override, words", OTHER_TASKS, ids=[f"{w} {o}" for w, o, _ in OTHER_TASKS])
def test_impossible_lm_and_composer_settings_are_one_line(tmp_path, capsys, what, override, words):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text("[train]\nsteps = 5\n")
    line = _refused(capsys, tmp_path / "run", what, recipe, override)
    assert words in line, line


RECIPE_FILES = [
    ("binary", bytes(range(256)) * 4, "not valid TOML: not UTF-8 text"),
    ("lr nan", b"[train]\nlr = nan\n", "train.lr must be a finite number"),
    ("betas inf", b"[train]\nbetas = [0.9, inf]\n", "train.betas must be a finite number"),
    ("train not a table", b"train = 5\n", "train: expected a table"),
    ("unknown key", b"[train]\nstepz = 5\n", "unknown setting train.stepz"),
    ("broken TOML", b"[train\n", "not valid TOML"),
]


@pytest.mark.parametrize("name, content, words", RECIPE_FILES, ids=[n for n, _, _ in RECIPE_FILES])
def test_bad_recipe_files_are_one_line(tmp_path, audio_dir, capsys, name, content, words):
    recipe = tmp_path / "recipe.toml"
    recipe.write_bytes(content)
    line = _refused(capsys, tmp_path / "run", "codec", recipe, f"--data.root={audio_dir}")
    assert words in line, line


ENVIRONMENTS = [
    ({"RANK": "5", "WORLD_SIZE": "2"}, "RANK=5 must be in 0..1"),
    ({"RANK": "-1"}, "RANK=-1 must be in 0..0"),
    ({"RANK": "abc"}, "RANK='abc' is not an integer"),
    ({"RANK": ""}, "RANK='' is not an integer"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 must be at least 1"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"RANK": "1"}, "RANK=1 must be in 0..0 (WORLD_SIZE=1, unset)"),
    ({"LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not an integer"),
    ({"LOCAL_RANK": "3", "RANK": "0", "WORLD_SIZE": "2"}, "LOCAL_RANK=3 must be in 0..1"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR and MASTER_PORT are not set"),
    ({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost"}, "MASTER_PORT is not set"),
    ({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "http"},
     "MASTER_PORT='http' must be a port number"),
]
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.mark.parametrize("env, words", ENVIRONMENTS, ids=[" ".join(f"{k}={v}" for k, v in e.items())
                                                          for e, _ in ENVIRONMENTS])
def test_a_bad_torchrun_environment_is_one_line(tmp_path, audio_dir, capsys, monkeypatch, env, words):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    recipe = write_recipe(tmp_path / "codec.toml", audio_dir)
    line = _refused(capsys, tmp_path / "run", "codec", recipe)
    assert words in line, line


def test_a_bad_environment_in_a_real_process_is_one_line(tmp_path, audio_dir):
    """The same through the real entry point (a fresh interpreter: torch sees the variables from the start)."""
    recipe = write_recipe(tmp_path / "codec.toml", audio_dir)
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    result = subprocess.run([sys.executable, "-m", "audiogen", "train", "codec", str(recipe), "-o",
                             str(tmp_path / "run")], capture_output=True, text=True,
                            env={**env, "RANK": "5", "WORLD_SIZE": "2", "PYTHONWARNINGS": "ignore"}, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "audiogen: error: environment variable RANK=5 must be in 0..1 (WORLD_SIZE=2)"]
    assert not (tmp_path / "run").exists()


def test_an_output_path_that_is_a_file_is_one_line(tmp_path, audio_dir, capsys):
    recipe = write_recipe(tmp_path / "codec.toml", audio_dir, train={"steps": 1})
    out = tmp_path / "run"
    out.write_text("not a folder")
    capsys.readouterr()
    assert run_main("train", "codec", recipe, "-o", out, "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create output folder" in err[0], err
    assert out.read_text() == "not a folder"
