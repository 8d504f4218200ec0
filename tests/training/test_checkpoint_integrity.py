"""Checkpoint integrity (`audiogen.training.checkpoints`): a sha256 per file in `checkpoint.json`, the previous
training state kept, `--resume` verifies and falls back, and a damaged or foreign state is one line, exit 2.

    .venv/bin/pytest tests/training/test_checkpoint_integrity.py -q
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import read_csv, write_recipe
from safetensors.torch import save_file
from tinymodel import run_main

from audiogen import checkpoint
from audiogen.errors import AudiogenError
from audiogen.training.checkpoints import MANIFEST_NAME, PREVIOUS_NAME, STATE_NAME, Checkpoints, sha256

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(recipe: Path, out: Path, *extra: str) -> int:
    return run_main("train", "codec", recipe, "-o", out, "--quiet", *extra)


def _flip_a_data_byte(path: Path) -> None:
    """Flip one byte in the middle of a safetensors file's tensor data (its header stays readable)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start + (len(data) - start) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _lines(text: str) -> list[str]:
    return text.strip().splitlines()


def _recipe(tmp_path: Path, audio_dir: Path, **train) -> Path:
    settings = {"steps": 6, "checkpoint_every": 2, "eval_every": 6, "log_every": 1, **train}
    return write_recipe(tmp_path / "recipe.toml", audio_dir, train=settings)


def test_a_flipped_byte_falls_back_to_the_previous_checkpoint_and_ends_bitwise_identical(
        tmp_path, audio_dir, capsys):
    recipe = _recipe(tmp_path, audio_dir)
    straight, damaged = tmp_path / "straight", tmp_path / "damaged"
    assert _train(recipe, straight) == 0
    assert _train(recipe, damaged, "--train.stop_after=4") == 0  # checkpoints at steps 2 and 4
    manifest = json.loads((damaged / MANIFEST_NAME).read_text())
    assert [(s["file"], s["step"]) for s in manifest["states"]] == [(STATE_NAME, 4), (PREVIOUS_NAME, 2)]
    assert manifest["states"][0]["sha256"] == sha256(damaged / STATE_NAME)
    assert manifest["states"][1]["sha256"] == sha256(damaged / PREVIOUS_NAME)
    assert manifest["model"]["step"] == 4
    assert manifest["model"]["files"]["model.safetensors"]["sha256"] == sha256(damaged / "model.safetensors")
    capsys.readouterr()

    _flip_a_data_byte(damaged / STATE_NAME)
    assert _train(recipe, damaged, "--resume") == 0
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("audiogen: warning:"), err
    assert "damaged" in err[0] and f"{PREVIOUS_NAME} (step 2)" in err[0]
    # Resumed at step 2 on the same schedule: weights, optimizer moments, RNG and logs as if never stopped.
    a, b = checkpoint.load_weights(straight), checkpoint.load_weights(damaged)
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    sa = checkpoint.load_tensors(straight / STATE_NAME)
    sb = checkpoint.load_tensors(damaged / STATE_NAME)
    assert sa.keys() == sb.keys() and [k for k in sa if not torch.equal(sa[k], sb[k])] == []
    log_a, log_b = read_csv(straight / "train_log.csv"), read_csv(damaged / "train_log.csv")
    assert [int(r["step"]) for r in log_b] == list(range(1, 7))
    assert [(r["l1"], r["mel"]) for r in log_a] == [(r["l1"], r["mel"]) for r in log_b]
    # The damaged file was replaced by new checkpoints; every file matches the manifest again.
    assert Checkpoints(damaged).choose().step == 6 and Checkpoints(damaged).model_matches(6)


@pytest.mark.parametrize("newest, previous", [("damaged", None), ("damaged", "damaged"), ("missing", "damaged")])
def test_no_intact_checkpoint_is_one_line_and_touches_nothing(tmp_path, audio_dir, capsys, newest, previous):
    recipe = _recipe(tmp_path, audio_dir, steps=4, checkpoint_every=2 if previous else 4, eval_every=4)
    run = tmp_path / "run"
    assert _train(recipe, run) == 0
    assert (run / PREVIOUS_NAME).exists() == bool(previous)
    if newest == "missing":
        (run / STATE_NAME).unlink()
    else:
        _flip_a_data_byte(run / STATE_NAME)
    if previous:
        _flip_a_data_byte(run / PREVIOUS_NAME)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert _train(recipe, run, "--resume", "--train.steps=10") == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("audiogen: error: no intact training state"), err
    assert "damaged" in err[0]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def _state(path: Path, meta: object | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"x": torch.zeros(2)}, str(path), metadata=None if meta is None else {"audiogen": json.dumps(meta)})
    return path


GOOD_META = {"step": 3, "optimizers": {}, "extra": {}, "format_version": 1}


@pytest.mark.parametrize("case, words", [
    ("step abc", "its step is 'abc'"),
    ("step -1", "its step is -1"),
    ("step 2.5", "its step is 2.5"),
    ("no metadata", "no audiogen training metadata"),
    ("metadata a list", "no audiogen training metadata"),
    ("optimizer state not a table", "optimizer state is malformed"),
    ("fitted_steps abc", "fitted_steps is 'abc'"),
    ("not safetensors", "not a readable training state"),
    ("empty file", "not a readable training state"),
    ("manifest not JSON", "not a valid checkpoint manifest"),
    ("manifest without states", "not a valid checkpoint manifest"),
])
def test_a_foreign_or_malformed_state_is_one_line(tmp_path, audio_dir, capsys, case, words):
    recipe = _recipe(tmp_path, audio_dir)
    run = tmp_path / "run"
    path = run / STATE_NAME
    metas = {"step abc": {**GOOD_META, "step": "abc"}, "step -1": {**GOOD_META, "step": -1},
             "step 2.5": {**GOOD_META, "step": 2.5}, "no metadata": None, "metadata a list": [1, 2],
             "optimizer state not a table": {**GOOD_META, "optimizers": {"codec": {"state": 5, "param_groups": []}}},
             "fitted_steps abc": {**GOOD_META, "extra": {"fitted_steps": "abc"}}}
    if case in metas:
        _state(path, metas[case])
    elif case == "not safetensors":
        run.mkdir()
        path.write_bytes(b"\x00\xff" * 100)
    elif case == "empty file":
        run.mkdir()
        path.write_bytes(b"")
    else:
        _state(path, GOOD_META)
        (run / MANIFEST_NAME).write_text("{" if case == "manifest not JSON" else '{"states": 5}')
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert _train(recipe, run, "--resume") == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("audiogen: error: ") and words in err[0], err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_run_saved_before_checksums_resumes_unverified_and_gains_a_manifest(tmp_path, audio_dir, capsys):
    recipe = _recipe(tmp_path, audio_dir, steps=6, checkpoint_every=3, eval_every=6)
    run = tmp_path / "run"
    assert _train(recipe, run, "--train.stop_after=3") == 0
    (run / MANIFEST_NAME).unlink()  # as an older audiogen left it
    (run / PREVIOUS_NAME).unlink(missing_ok=True)
    capsys.readouterr()
    assert _train(recipe, run, "--resume") == 0
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "without a checksum" in err[0] and "step 3" in err[0], err
    manifest = json.loads((run / MANIFEST_NAME).read_text())
    assert [(s["file"], s["step"]) for s in manifest["states"]] == [(STATE_NAME, 6), (PREVIOUS_NAME, 3)]
    assert Checkpoints(run).choose().step == 6


def test_a_damaged_exported_model_is_exported_again_on_resume(tmp_path, audio_dir, capsys):
    recipe = _recipe(tmp_path, audio_dir, steps=4, checkpoint_every=4, eval_every=4)
    run = tmp_path / "run"
    assert _train(recipe, run) == 0
    good = (run / "model.safetensors").read_bytes()
    _flip_a_data_byte(run / "model.safetensors")
    capsys.readouterr()
    assert _train(recipe, run, "--resume") == 0  # nothing left to train: only the repair
    out, err = capsys.readouterr()
    assert "nothing to do" in out
    assert len(_lines(err)) == 1 and "exported again from step 4" in err, err
    assert (run / "model.safetensors").read_bytes() == good
    assert Checkpoints(run).model_matches(4)


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", range(6))
def test_a_save_killed_at_any_rename_leaves_a_verified_newest_state(tmp_path, monkeypatch, crash_at):
    """Every rename and link of a save (state, manifest, move aside, publish) in turn is where the process
    dies: the folder then always resumes from a state the manifest vouches for, without a fallback."""
    def write(content: bytes):
        return lambda path: checkpoint.save_tensors(path, {"x": torch.tensor(list(content), dtype=torch.uint8)})

    saved = Checkpoints(tmp_path)
    saved.save(step=1, write_state=write(b"one"))
    saved.save(step=2, write_state=write(b"two"))
    calls = []
    real_replace, real_link = os.replace, os.link

    def counted(real):
        def call(*args, **kwargs):
            if len(calls) == crash_at:
                raise Crash
            calls.append(args)
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(os, "replace", counted(real_replace))
    monkeypatch.setattr(os, "link", counted(real_link))
    try:
        saved.save(step=3, write_state=write(b"three"))
        finished = True
    except Crash:
        finished = False
    monkeypatch.undo()
    assert finished == (crash_at == 5)  # a save: state, manifest, link, move aside, publish
    choice = Checkpoints(tmp_path).choose()
    assert not choice.fallback and choice.step in (2, 3) and choice.path.name == STATE_NAME
    assert (choice.step == 3) == finished
    if choice.step == 2:  # the previous state is still there to fall back to
        assert checkpoint.load_tensors(tmp_path / STATE_NAME)["x"].tolist() == list(b"two")
    # a resumed run saves on from there
    again = Checkpoints(tmp_path)
    again.choose()
    again.save(step=4, write_state=write(b"four"))
    assert Checkpoints(tmp_path).choose().step == 4
    _flip_a_data_byte(tmp_path / STATE_NAME)
    assert Checkpoints(tmp_path).choose().step == choice.step  # the previous one is the state resumed before


def test_choose_without_any_state_is_nothing_to_resume(tmp_path):
    with pytest.raises(AudiogenError, match="nothing to resume"):
        Checkpoints(tmp_path).choose()
