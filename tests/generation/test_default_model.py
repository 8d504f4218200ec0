"""The bundled default model (`audiogen/default_model/`): found with no arguments, within its size
budget, its codec the one the LM was trained with, and it generates (a fraction of a second).

    .venv/bin/pytest tests/generation/test_default_model.py -q
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from audiogen import AudioGen
from audiogen.checkpoint import DEFAULT_MODEL_DIR as ROOT
from audiogen.checkpoint import default_codec_dir, default_model_dir

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(default_model_dir() is None, reason="no bundled default model in this checkout"),
]


def test_bundle_is_complete_and_small() -> None:
    files = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file())
    assert files == ["codec/config.json", "codec/model.safetensors", "composer/config.json",
                     "composer/model.safetensors", "config.json", "model.safetensors"]
    sizes = {f: (ROOT / f).stat().st_size for f in files}
    assert sum(v for f, v in sizes.items() if not f.startswith("composer/")) <= 25_000_000  # LM + codec
    assert sizes["composer/config.json"] + sizes["composer/model.safetensors"] <= 5_000_000  # the composer's own budget
    assert default_codec_dir() == ROOT / "codec"
    # every file of the bundle is package data, so a wheel install carries it
    patterns = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    globs = patterns["tool"]["setuptools"]["package-data"]["audiogen"]
    assert all(any((ROOT / f).match(str(Path(__file__).parents[2] / "audiogen" / g)) for g in globs) for f in files)


def test_loads_with_no_arguments_and_generates() -> None:
    ag = AudioGen.load()
    assert ag.model_dir == ROOT and ag.conditional
    assert ag.sample_rate == 24000 and ag.frame_rate == 75.0
    wav, sr = ag.generate(seconds=0.2, count=1, seed=3)
    again, _ = ag.generate(seconds=0.2, count=1, seed=3)
    assert sr == 24000 and wav.shape[-1] == round(0.2 * sr) and wav.dtype == np.float32
    assert np.array_equal(wav, again) and np.isfinite(wav).all() and np.abs(wav).max() > 0


def test_the_bundled_composer_writes_the_bars_asked_for() -> None:
    from audiogen.composer.generate import bar_seconds

    ag = AudioGen.load()
    assert ag.has_composer
    pm = ag.compose(bars=4, style="folk", key="D", meter="3/4", bpm=120, seed=1)
    again = ag.compose(bars=4, style="folk", key="D", meter="3/4", bpm=120, seed=1)
    notes = [n for inst in pm.instruments for n in inst.notes]
    assert pm.get_end_time() == pytest.approx(4 * bar_seconds("3/4", 120))
    assert notes and all(n.start < pm.get_end_time() for n in notes)
    assert [(n.pitch, n.start) for n in notes] == [(n.pitch, n.start) for i in again.instruments for n in i.notes]
    assert [ts.numerator for ts in pm.time_signature_changes] == [3]
