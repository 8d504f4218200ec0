"""Recipes (`audiogen.config`): TOML over dataclass defaults, `--section.key=value` overrides,
type checks, unknown keys and validation.

    .venv/bin/pytest tests/test_config.py -q
"""

from __future__ import annotations

import pytest

from audiogen.config import from_dict, load_recipe, parse_override, to_dict
from audiogen.errors import AudiogenError
from audiogen.training.codec import CodecRecipe
from audiogen.training.loop import TrainConfig


def _recipe(tmp_path, text: str, overrides: list[str] | None = None) -> CodecRecipe:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return load_recipe(CodecRecipe, path, overrides)


def test_defaults_without_a_file():
    recipe = load_recipe(CodecRecipe, None)
    assert recipe == CodecRecipe()
    assert recipe.model.max_codebooks == 4 and recipe.train.warmup_steps == 200


def test_a_section_setting_one_key_keeps_the_recipe_defaults_of_that_section(tmp_path):
    recipe = _recipe(tmp_path, "[train]\nsteps = 5\n\n[model]\nn_filters = 8\n")
    assert recipe.train.steps == 5
    # the codec recipe's own defaults (not TrainConfig's / CodecConfig's generic ones) survive
    codec_defaults = CodecRecipe()
    assert recipe.train.warmup_steps == codec_defaults.train.warmup_steps == 200 != TrainConfig().warmup_steps
    assert recipe.train.betas == (0.5, 0.9) != TrainConfig().betas
    assert recipe.model.n_filters == 8
    assert recipe.model.max_codebooks == 4 and recipe.model.name == "audiogen_codec"
    assert recipe.losses == codec_defaults.losses and recipe.data == codec_defaults.data


def test_overrides_beat_the_file_and_take_toml_literals_or_bare_strings(tmp_path):
    recipe = _recipe(
        tmp_path, '[train]\nsteps = 5\nlr = 0.001\n[data]\nroot = "from_file"\n',
        ["--train.steps=7", "--model.ratios=[4,4,2]", "--data.root=audio/dir", "--train.lr=1",
         "--losses.balancer=false", "--train.betas=[0.8, 0.99]", "--model.name=my codec"],
    )
    assert recipe.train.steps == 7
    assert recipe.model.ratios == (4, 4, 2) and recipe.model.hop_length == 32
    assert recipe.data.root == "audio/dir"
    assert recipe.train.lr == 1.0 and isinstance(recipe.train.lr, float)
    assert recipe.losses.balancer is False
    assert recipe.train.betas == (0.8, 0.99)
    assert recipe.model.name == "my codec"


def test_string_settings_take_the_override_as_typed(tmp_path):
    """`--data.root=2024` names a folder: TOML would read an integer, a string setting keeps the text."""
    recipe = _recipe(tmp_path, "", ["--data.root=2024", "--model.name=[1]", "--train.steps=2024"])
    assert recipe.data.root == "2024" and recipe.model.name == "[1]"
    assert recipe.train.steps == 2024 and isinstance(recipe.train.steps, int)
    assert type(to_dict(recipe)["data"]["root"]) is str


def test_parse_override_nests_keys():
    three = parse_override("--a.b.c=3")["a"]["b"]["c"]
    assert three == "3" and three.parsed == 3  # the text as typed, and what TOML reads in it
    assert parse_override("train.steps=[1, 2]")["train"]["steps"].parsed == [1, 2]
    assert parse_override("--data.root=x=y") == {"data": {"root": "x=y"}}


@pytest.mark.parametrize(
    "override, words",
    [
        ("--train.steps=abc", "train.steps: expected an integer, got 'abc'"),
        ("--train.steps=1.5", "train.steps: expected an integer"),
        ("--train.steps=true", "train.steps: expected an integer"),
        ("--train.lr=fast", "train.lr: expected a number"),
        ("--losses.balancer=1", "losses.balancer: expected true or false"),
        ("--model.ratios=8", "model.ratios: expected a list"),
        ("--model.ratios=[8, 'x']", "model.ratios: expected an integer"),
        ("--train.betas=[0.9]", "train.betas: expected 2 values"),
        ("--train=5", "train is a table of settings"),
        ("--train={}", "train is a table of settings"),  # would reset the recipe's [train] to code defaults
        ("--train.={}", "is not a setting name"),
        ("--train.=5", "is not a setting name"),
        ("--train..steps=5", "is not a setting name"),
        ("--.train.steps=5", "is not a setting name"),
        ("--train.steps.=5", "is not a setting name"),
        ("--train.steps.x=5", "train.steps is a setting, not a table"),
        ("--train.stepz=5", "unknown setting train.stepz"),
        ("--nosuch.key=1", "unknown setting nosuch"),
        ("--train.steps", "must look like --section.key=value"),
        ("--=3", "has no key"),
        ("--train.lr=nan", "train.lr must be a finite number, got nan"),
        ("--train.lr=inf", "train.lr must be a finite number"),
        ("--train.lr=-inf", "train.lr must be a finite number"),
        ("--train.lr=1e999", "train.lr must be a finite number"),
        (f"--train.lr={10**400}", "train.lr must be a finite number"),
        ("--train.betas=[nan, 0.9]", "train.betas must be a finite number"),
    ],
)
def test_bad_overrides_are_one_line_user_errors(override, words):
    with pytest.raises(AudiogenError) as err:
        load_recipe(CodecRecipe, None, [override])
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[train]\nstepz = 1\n", "unknown setting train.stepz"),
        ("[trian]\nsteps = 1\n", "unknown setting trian"),
        ('[train]\nsteps = "10"\n', "train.steps: expected an integer"),
        ("[model]\nratios = [8, 5.5]\n", "model.ratios: expected an integer"),
        ("[train\nsteps = 1\n", "is not valid TOML"),
        ("[train]\nsteps = 0\n", "steps, batch_size and grad_accum must be at least 1"),
        ("[model]\nnum_codebooks = 5\n", "num_codebooks must be in 1..4"),
        ("[losses]\nl1 = 0.0\nmel = 0.0\n", "at least one of l1 and mel"),
        ("[data]\nval_fraction = 1.0\n", "val_fraction"),
        ("[train]\nlr = nan\n", "train.lr must be a finite number"),
        ("[losses]\nmel = inf\n", "losses.mel must be a finite number"),
    ],
)
def test_bad_recipe_files_are_one_line_user_errors(tmp_path, text, words):
    with pytest.raises(AudiogenError) as err:
        _recipe(tmp_path, text)
    assert words in str(err.value)


def test_missing_or_unreadable_recipe(tmp_path):
    with pytest.raises(AudiogenError, match="recipe not found"):
        load_recipe(CodecRecipe, tmp_path / "nope.toml")
    with pytest.raises(AudiogenError, match="recipe"):
        load_recipe(CodecRecipe, tmp_path)  # a folder, not a file
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(AudiogenError, match="not valid TOML: not UTF-8 text"):
        load_recipe(CodecRecipe, binary)


def test_an_override_of_one_key_keeps_the_rest_of_the_recipe_section():
    """The recipe's own [train] (composer: 1500 steps, lr 2e-3) survives an override of one key."""
    from audiogen.training.composer import ComposerRecipe

    recipe = load_recipe(ComposerRecipe, None, ["--train.seed=3"])
    assert (recipe.train.steps, recipe.train.lr, recipe.train.seed) == (1500, 2e-3, 3)


def test_to_dict_from_dict_round_trip():
    recipe = load_recipe(CodecRecipe, None, ["--model.ratios=[2,2]", "--train.steps=3"])
    plain = to_dict(recipe)
    assert plain["model"]["ratios"] == [2, 2]  # JSON/TOML friendly
    assert from_dict(CodecRecipe, plain) == recipe
