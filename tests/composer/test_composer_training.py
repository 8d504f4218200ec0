"""Composer training through the shared loop: the recipe, learning, and exact resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from composer_helpers import midi_folder

from audiogen.composer.generate import compose
from audiogen.composer.model import Composer
from audiogen.config import load_recipe
from audiogen.errors import AudiogenError
from audiogen.training.composer import ComposerRecipe, ComposerTask
from audiogen.training.loop import run

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "composer" / "composer.toml"


@pytest.fixture(scope="module")
def midi(tmp_path_factory) -> Path:
    return midi_folder(tmp_path_factory.mktemp("composer_train") / "midi", count=8)


def tiny(midi: Path, dataset: Path, **train) -> ComposerRecipe:
    overrides = [f"--data.dataset={dataset}", "--data.music21=false", f"--data.midi_dir={midi}",
                 "--data.midi_style=jigs", "--data.val_fraction=0.25", "--data.val_pieces=4", "--data.workers=1",
                 "--model.dim=32", "--model.num_layers=2", "--model.num_heads=2", "--model.context=64",
                 "--train.batch_size=4", "--train.lr=3e-3", "--train.warmup_steps=2", "--train.threads=1",
                 "--train.log_every=4", "--train.device=cpu"]
    overrides += [f"--train.{k}={v}" for k, v in train.items()]
    return load_recipe(ComposerRecipe, RECIPE, overrides)


def train(recipe: ComposerRecipe, out: Path, *, resume: bool = False) -> ComposerTask:
    torch.manual_seed(recipe.train.seed)  # as the CLI does: the same initial weights for every run
    task = ComposerTask(recipe, device=torch.device("cpu"))
    run(task, recipe.train, out, device=torch.device("cpu"), resume=resume, quiet=True)
    return task


def test_the_recipe_loads_and_its_model_fits_the_bundle_limit() -> None:
    recipe = load_recipe(ComposerRecipe, RECIPE)
    assert recipe.data.music21 and recipe.model.dim == 192 and recipe.train.steps >= 1000
    model = Composer(recipe.model)
    assert model.num_params * 2 <= 5e6  # fp16 bytes
    assert load_recipe(ComposerRecipe, RECIPE, ["--model.dim=64"]).model.dim == 64
    with pytest.raises(AudiogenError):
        load_recipe(ComposerRecipe, RECIPE, ["--data.transpose=40"])
    with pytest.raises(AudiogenError, match="unknown setting"):
        load_recipe(ComposerRecipe, RECIPE, ["--model.layers=3"])


def test_trains_through_the_shared_loop_and_resumes_exactly(midi: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    whole = tiny(midi, data, steps=24, eval_every=12, checkpoint_every=6)
    torch.manual_seed(0)
    before = ComposerTask(whole, device=torch.device("cpu")).evaluate()
    assert before["val_bigram_nll"] > 0 and before["val_nll"] > 0
    task = train(whole, tmp_path / "a")
    assert task.model_config.user_styles == ["jigs"]
    with open(tmp_path / "a" / "eval_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [12, 24]
    assert float(rows[-1]["val_nll"]) < before["val_nll"] - 0.5  # it learns
    assert float(rows[-1]["val_nll_ratio"]) == pytest.approx(
        float(rows[-1]["val_nll"]) / float(rows[-1]["val_bigram_nll"]), rel=1e-4)

    # Interrupted at step 12 (stop_after keeps the schedule), then resumed in a fresh task.
    train(tiny(midi, data, steps=24, eval_every=12, checkpoint_every=6, stop_after=12), tmp_path / "b")
    train(whole, tmp_path / "b", resume=True)
    a, b = Composer.load(tmp_path / "a"), Composer.load(tmp_path / "b")
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert (tmp_path / "a" / "eval_log.csv").read_text() == (tmp_path / "b" / "eval_log.csv").read_text()

    # The run folder is a composer that writes in the user's style.
    assert a.config.user_styles == ["jigs"] and a.meta["dataset"]["pieces"] == 8
    pm = compose(a, bars=2, style="jigs", key="G", meter="4/4", seed=0, max_notes_per_bar=8)
    assert pm.get_end_time() == pytest.approx(4.0)
