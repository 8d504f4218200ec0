"""Malformed model folders (`audiogen.checkpoint`, the configs' `validate`): every command that loads one
(continue, render, loops, export) fails with exit status 2, one stderr line, no traceback and no output,
before anything large is built.

    .venv/bin/pytest tests/test_model_folders.py -q
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tinymodel import make_tiny_model, run_main, write_seed, write_sketch

from audiogen import checkpoint
from audiogen.codec import CodecConfig
from audiogen.errors import AudiogenError
from audiogen.lm.model import LMConfig


def _edit(part: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A mutation of the folder's config.json (`part` "" for the LM, "codec" for its codec)."""

    def apply(folder: Path) -> None:
        path = folder / part / checkpoint.CONFIG_NAME
        meta = json.loads(path.read_text())
        change(meta)
        path.write_text(json.dumps(meta))  # NaN and Infinity are written as JSON's NaN / Infinity tokens

    return apply


def _setting(part: str, **values) -> Callable[[Path], None]:
    return _edit(part, lambda meta: meta["config"].update(values))


def _entry(part: str, key: str, value) -> Callable[[Path], None]:
    return _edit(part, lambda meta: meta.__setitem__(key, value))


# (what is wrong, how to make it, a word the error line must hold)
CASES = [
    ("lm weights of another size", _setting("", dim=64), "weights do not match"),
    ("codec weights of another size", _setting("codec", dimension=32), "weights do not match"),
    ("config null", _entry("", "config", None), '"config" must be a JSON object'),
    ("config a number", _entry("", "config", 7), '"config" must be a JSON object'),
    ("codec config null", _entry("codec", "config", None), '"config" must be a JSON object'),
    ("codec entry a number", _entry("", "codec", 5), '"codec" must be a JSON object'),
    ("mlp_ratio NaN", _setting("", mlp_ratio=float("nan")), "finite number"),
    ("rope_base infinite", _setting("", rope_base=float("inf")), "finite number"),
    ("dim 1e9", _setting("", dim=10**9), "dim must be in 1..8192"),
    ("num_layers 1e6", _setting("", num_layers=10**6), "num_layers must be in 1..96"),
    ("context 1e9", _setting("", context=10**9), "context must be in 1..65536"),
    ("codebook_size 1e7", _setting("", codebook_size=10**7), "codebook_size must be in 2..65536"),
    ("parameters over the bound", _setting("", dim=8192, num_heads=8, num_layers=96), "parameters, at most"),
    ("codec codebook_size 1e7", _setting("codec", codebook_size=10**7), "codebook_size must be in 2..65536"),
    ("codec n_filters 1e6", _setting("codec", n_filters=10**6), "n_filters must be in 1..512"),
    ("codec ema_decay NaN", _setting("codec", ema_decay=float("nan")), "finite number"),
    ("config.json not JSON", lambda f: (f / checkpoint.CONFIG_NAME).write_text("{"), "not valid JSON"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("folders")
    return {"model": make_tiny_model(root / "tiny"), "seed": write_seed(root / "seed.wav", seconds=0.5),
            "sketch": write_sketch(root / "sketch.mid", seconds=1.0)}


COMMANDS = {
    "continue": lambda f, m, out: ["continue", f["seed"], "-o", out / "x.wav", "--model", m, "--seconds", "0.1"],
    "render": lambda f, m, out: ["render", f["sketch"], "-o", out / "x.wav", "--model", m],
    "loops": lambda f, m, out: ["loops", "-o", out / "loops", "--model", m, "--count", "1", "--no-compose"],
    "export": lambda f, m, out: ["export", m, "-o", out / "exported"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_model_folder_is_one_line(files, tmp_path, capsys, case, command) -> None:
    _, mutate, expected = case
    folder = tmp_path / "model"
    shutil.copytree(files["model"], folder)
    mutate(folder)
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    assert run_main(*COMMANDS[command](files, folder, out), "--quiet") == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error: "), err
    assert expected in lines[0] and "Traceback" not in err
    assert list(out.iterdir()) == []  # nothing written, not even a temporary file


def test_bounds_are_checked_before_building() -> None:
    """The configs refuse absurd sizes themselves (what every loader, trainer and test builds from)."""
    with pytest.raises(AudiogenError, match="dim must be in"):
        LMConfig(dim=10**9).validate()
    with pytest.raises(AudiogenError, match="parameters, at most"):
        LMConfig(dim=4096, num_heads=32, num_layers=96).validate()
    with pytest.raises(AudiogenError, match="max_codebooks x codebook_size x dimension"):
        CodecConfig(max_codebooks=64, codebook_size=65536, dimension=128).validate()
    with pytest.raises(AudiogenError, match="n_filters \\* 2 \\*\\* len\\(ratios\\)"):
        CodecConfig(n_filters=512, ratios=(2, 2, 2, 2)).validate()
    LMConfig().validate()  # the defaults and the bundled model's sizes are well inside
    CodecConfig().validate()
    assert LMConfig().num_params < LMConfig.MAX_PARAMS


COMPOSER_CASES = [
    ("weights of another size", _setting("", dim=256), "weights do not match"),
    ("config null", _entry("", "config", None), '"config" must be a JSON object'),
    ("dim 1e9", _setting("", dim=10**9), "dim must be in 1..8192"),
    ("context 1e9", _setting("", context=10**9), "context must be in 1..65536"),
    ("mlp_ratio NaN", _setting("", mlp_ratio=float("nan")), "finite number"),
]


@pytest.mark.parametrize("case", COMPOSER_CASES, ids=[c[0] for c in COMPOSER_CASES])
def test_malformed_composer_folder_is_one_line(tmp_path, capsys, case) -> None:
    _, mutate, expected = case
    folder = tmp_path / "composer"
    shutil.copytree(checkpoint.DEFAULT_MODEL_DIR / "composer", folder)  # the bundled one, then broken
    mutate(folder)
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    assert run_main("compose", "-o", out / "x.mid", "--model", folder, "--quiet") == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err
    assert list(out.iterdir()) == []
