"""The composer on the command line and in the Python API: `audiogen train composer`, `audiogen compose`
and `AudioGen.compose`, through the real entry point (`python -m audiogen`).

A tiny composer is trained by the CLI on MIDI files the test writes (interrupted, then resumed);
compose's outputs are read back on the grid; bad input is one stderr line, exit status 2, no file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pretty_midi
import pytest
from composer_helpers import midi_folder, song
from conftest import read_csv, run_cli
from tinymodel import make_tiny_model, run_main

from audiogen.composer.events import midi_to_events
from audiogen.composer.generate import bar_seconds, compose, load_composer
from audiogen.composer.vocab import Vocab, parse_key
from audiogen.generation.engine import AudioGen

pytestmark = pytest.mark.usefixtures("one_thread")


def write_recipe(path: Path, *, dataset: Path, midi: Path) -> Path:
    """A composer recipe small enough to train in seconds (the shared loop's own settings elsewhere)."""
    path.write_text(f"""[data]
dataset = "{dataset}"
music21 = false
midi_dir = "{midi}"
midi_style = "jigs"
val_fraction = 0.25
val_pieces = 4
workers = 1

[model]
dim = 32
num_layers = 2
num_heads = 2
context = 128

[train]
steps = 8
batch_size = 4
lr = 3e-3
warmup_steps = 2
eval_every = 4
checkpoint_every = 4
log_every = 4
threads = 1
device = "cpu"
""")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """`audiogen train composer`: stopped at step 4 (a --section.key override), then --resume to step 8."""
    root = tmp_path_factory.mktemp("composer_cli")
    recipe = write_recipe(root / "tiny.toml", dataset=root / "data", midi=midi_folder(root / "midi", count=6))
    out = root / "run"
    first = run_cli("train", "composer", recipe, "-o", out, "--quiet", "--train.stop_after=4")
    assert first.returncode == 0, first.stderr
    assert [int(r["step"]) for r in read_csv(out / "eval_log.csv")] == [4]
    second = run_cli("train", "composer", recipe, "-o", out, "--resume", "--quiet")
    assert second.returncode == 0, second.stderr
    rows = read_csv(out / "eval_log.csv")
    assert [int(r["step"]) for r in rows] == [4, 8]
    assert float(rows[-1]["val_nll"]) > 0 and "val_nll_ratio" in rows[-1]
    return out


def notes(pm: pretty_midi.PrettyMIDI) -> list[tuple[int, int, float, float]]:
    return sorted((i.program + 128 * i.is_drum, n.pitch, round(n.start, 4), round(n.end, 4))
                  for i in pm.instruments for n in i.notes)


def check_bars(path: Path, *, bars: int, meter: str, bpm: float, key: str) -> pretty_midi.PrettyMIDI:
    """The file parses, lasts exactly `bars` bars, and reads back on the meter's grid as `bars` non-empty bars."""
    pm = pretty_midi.PrettyMIDI(str(path))
    num, den = (int(v) for v in meter.split("/"))
    end = bars * bar_seconds(meter, bpm)
    assert pm.get_end_time() == pytest.approx(end, abs=1e-4)
    assert [(ts.numerator, ts.denominator) for ts in pm.time_signature_changes] == [(num, den)]
    assert [ks.key_number for ks in pm.key_signature_changes] == [parse_key(key)]
    assert pm.get_tempo_changes()[1] == pytest.approx([bpm], rel=1e-5)
    assert midi_to_events(pm, Vocab(), meter=(num, den)).bars == bars
    bar = bar_seconds(meter, bpm)
    assert all(any(b * bar <= n.start < (b + 1) * bar for i in pm.instruments for n in i.notes) for b in range(bars))
    return pm


def test_compose_writes_exactly_the_bars_asked_for_and_the_seed_fixes_the_bytes(run: Path, tmp_path: Path) -> None:
    args = ["--bars", "3", "--style", "jigs", "--key", "D", "--meter", "3/4", "--bpm", "96", "--top-k", "20"]
    done = run_cli("compose", "-o", tmp_path / "a.mid", "--model", run, "--seed", "1", *args)
    assert done.returncode == 0, done.stderr
    assert "3 bars of 3/4 at 96 BPM" in done.stdout
    check_bars(tmp_path / "a.mid", bars=3, meter="3/4", bpm=96.0, key="D")

    # The same seed gives the same bytes, also through a model folder that keeps the composer in composer/.
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copytree(run, folder / "composer", ignore=shutil.ignore_patterns("*.pt", "*.csv", "checkpoints"))
    again = run_cli("compose", "-o", tmp_path / "b.mid", "--model", folder, "--seed", "1", "--quiet", *args)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert (tmp_path / "b.mid").read_bytes() == (tmp_path / "a.mid").read_bytes()


def test_compose_loops_a_prompt(run: Path, tmp_path: Path) -> None:
    melody = song(seed=3, bars=1, drums=False)  # one bar of 4/4 at 120 BPM, on the grid
    melody.write(str(tmp_path / "melody.mid"))
    done = run_cli("compose", "-o", tmp_path / "loop.mid", "--model", run, "--prompt", tmp_path / "melody.mid",
                   "--loop", "--bars", "3", "--style", "jigs", "--key", "C", "--seed", "5", "--quiet")
    assert done.returncode == 0, done.stderr
    pm = check_bars(tmp_path / "loop.mid", bars=3, meter="4/4", bpm=120.0, key="C")
    # The prompt's notes open the piece as written (the model may add to its last bar, then writes on).
    first_bar = {n[:3] for n in notes(pm) if n[2] < 2.0}
    assert {n[:3] for n in notes(melody)} <= first_bar
    assert any(n[2] >= 4.0 for n in notes(pm))


@pytest.mark.parametrize("case", ["empty prompt", "style", "meter", "key", "bars", "model"])
def test_bad_input_is_one_line_exit_2_and_no_file(run: Path, tmp_path: Path, case: str) -> None:
    out = tmp_path / "out.mid"
    args = ["compose", "-o", out, "--model", run, "--bars", "2", "--quiet"]
    if case == "empty prompt":
        pretty_midi.PrettyMIDI(initial_tempo=120).write(str(tmp_path / "empty.mid"))
        args += ["--prompt", tmp_path / "empty.mid"]
    elif case == "style":
        args += ["--style", "polka"]
    elif case == "meter":
        args += ["--meter", "7/3"]
    elif case == "key":
        args += ["--key", "H minor"]
    elif case == "bars":
        args += ["--bars", "0"]
    else:  # a language-model folder is not a composer
        args[args.index("--model") + 1] = make_tiny_model(tmp_path / "lm")
    done = run_cli(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error: "), done.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".mid", ".tmp") and p.name != "empty.mid"]


def test_the_engine_composes_with_its_model_folders_composer(run: Path, tmp_path: Path) -> None:
    folder = make_tiny_model(tmp_path / "model")
    shutil.copytree(run, folder / "composer", ignore=shutil.ignore_patterns("*.pt", "*.csv", "checkpoints"))
    request = dict(bars=2, style="jigs", key="G", meter="6/8", bpm=132.0, seed=4, top_k=10)
    expected = notes(compose(load_composer(run), **request))
    ag = AudioGen.load(folder, device="cpu")
    pm = ag.compose(**request)
    assert isinstance(pm, pretty_midi.PrettyMIDI) and notes(pm) == expected
    assert pm.get_end_time() == pytest.approx(2 * bar_seconds("6/8", 132.0))
    # composer=DIR names it explicitly, whatever the model folder holds.
    explicit = AudioGen.load(make_tiny_model(tmp_path / "bare"), device="cpu", composer=run)
    assert notes(explicit.compose(**request)) == expected
    assert notes(explicit.compose(**{**request, "seed": 5})) != expected


def test_eval_composer_prints_every_figure_beside_its_reference(run: Path, tmp_path: Path, capsys) -> None:
    """`audiogen eval --composer RUN --composer-data DATA`: held-out NLL beside the bigram, generated pieces beside
    held-out ones, the loop wrap beside inner transitions; the same figures in --json."""
    report_path = tmp_path / "composer.json"
    code = run_main("eval", "--composer", run, "--composer-data", run.parent / "data", "--pieces", "1",
                    "--val-fraction", "0.5", "--json", report_path, "--quiet")
    assert code == 0
    printed = capsys.readouterr().out
    for line in ("NLL per event", "share of notes in key", "pitch-class distance", "onsets on the grid",
                 "bar self-similarity", "wrap NLL"):
        assert line in printed
    report = json.loads(report_path.read_text())
    assert report["heldout"]["nll"] > 0 and report["heldout"]["bigram_nll"] > 0 and report["heldout_pieces"] >= 1
    assert report["generated_styles"]["jigs"]["grid"] == 1.0 and report["loop"]["wrap_nll"] > 0  # the user style
    # a folder that is not a composer dataset, and an impossible count: one line each, no report
    report_path.unlink()
    assert run_main("eval", "--composer", run, "--composer-data", tmp_path / "data-missing", "--build-pieces", "1",
                    "--json", report_path) == 2
    assert run_main("eval", "--composer", run, "--composer-data", run.parent / "data", "--pieces", "0") == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(e.startswith("audiogen: error: ") for e in errors)
    assert not report_path.exists()
