"""Compose, then render: `audiogen loops` without `--midi`, `compose` and styled `loops` batch jobs, and
`audiogen render --compose`, with a tiny composer trained in the test and the tiny LM of `tinymodel`.

    .venv/bin/pytest tests/generation/test_compose_render.py -q

Each composed loop's sketch is saved beside it (NAME.mid, named in loops.json), lasts exactly the loop's
bars and drives its render; `--no-compose` and a model with no composer keep free loops; bad input is one
stderr line, exit status 2, nothing written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pretty_midi
import pytest
import torch
from composer_helpers import midi_folder
from tinymodel import SAMPLE_RATE, frames_of, make_tiny_model, run_main, write_sketch

from audiogen.composer.events import midi_to_events
from audiogen.composer.generate import bar_seconds
from audiogen.composer.vocab import Vocab, parse_key
from audiogen.config import load_recipe
from audiogen.generation import engine
from audiogen.generation.loops import LOOP_INDEX, fit_sketch, loop_length

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "composer" / "composer.toml"
STYLE = "jigs"  # the label of the test's MIDI folder: a user style of the trained composer


@pytest.fixture(scope="module")
def composer(tmp_path_factory) -> Path:
    """A composer trained for 8 steps through the shared loop on MIDI written by the test (seconds)."""
    from audiogen.training.composer import ComposerRecipe, ComposerTask
    from audiogen.training.loop import run

    root = tmp_path_factory.mktemp("composer")
    overrides = [f"--data.dataset={root / 'data'}", "--data.music21=false",
                 f"--data.midi_dir={midi_folder(root / 'midi', count=6)}", f"--data.midi_style={STYLE}",
                 "--data.val_fraction=0.25", "--data.val_pieces=4", "--data.workers=1", "--model.dim=32",
                 "--model.num_layers=2", "--model.num_heads=2", "--model.context=64", "--train.steps=8",
                 "--train.batch_size=4", "--train.lr=3e-3", "--train.warmup_steps=2", "--train.threads=1",
                 "--train.eval_every=8", "--train.checkpoint_every=8", "--train.log_every=8", "--train.device=cpu"]
    recipe = load_recipe(ComposerRecipe, RECIPE, overrides)
    torch.manual_seed(recipe.train.seed)
    run(ComposerTask(recipe, device=torch.device("cpu")), recipe.train, root / "run", device=torch.device("cpu"),
        quiet=True)
    return root / "run"


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    """A model folder (tiny LM + codec) with no composer."""
    return make_tiny_model(tmp_path_factory.mktemp("bare") / "model")


@pytest.fixture(scope="module")
def model(tmp_path_factory, composer: Path) -> Path:
    """A model folder that keeps its composer in composer/."""
    folder = make_tiny_model(tmp_path_factory.mktemp("model") / "model")
    shutil.copytree(composer, folder / "composer", ignore=shutil.ignore_patterns("*.pt", "*.csv", "checkpoints"))
    return folder


@pytest.fixture
def no_bundled_composer(monkeypatch) -> None:
    """As in an install without a bundled composer (whether or not this one has one)."""
    monkeypatch.setattr(engine, "bundled_composer", lambda: None)


def check_sketch(path: Path, *, bars: int, beats: int, bpm: float) -> pretty_midi.PrettyMIDI:
    """The sketch parses, lasts exactly `bars` bars of beats/4 at `bpm`, and reads back as `bars` bars."""
    pm = pretty_midi.PrettyMIDI(str(path))
    meter = f"{beats}/4"
    assert pm.get_end_time() == pytest.approx(bars * bar_seconds(meter, bpm), abs=1e-4)
    assert [(ts.numerator, ts.denominator) for ts in pm.time_signature_changes] == [(beats, 4)]
    assert pm.get_tempo_changes()[1] == pytest.approx([bpm], rel=1e-5)
    assert midi_to_events(pm, Vocab(), meter=(beats, 4)).bars == bars
    return pm


def loop_rows(folder: Path) -> dict[str, dict]:
    return {row["file"]: row for row in json.loads((folder / LOOP_INDEX).read_text())["loops"]}


LOOP_ARGS = ["--count", "2", "--bars", "2", "--bpm", "180", "--beats-per-bar", "3", "--batch-size", "2", "--quiet"]


def test_loops_compose_one_sketch_per_loop_and_render_it(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "loops"
    assert run_main("loops", "-o", out, "--model", model, *LOOP_ARGS) == 0
    assert sorted(p.name for p in out.iterdir()) == ["loop-00.mid", "loop-00.wav", "loop-01.mid", "loop-01.wav",
                                                     LOOP_INDEX]
    expected = loop_length(2, 180.0, 3, SAMPLE_RATE)
    rows = loop_rows(out)
    sketches = []
    for i in range(2):
        assert frames_of(out / f"loop-0{i}.wav") == (expected, SAMPLE_RATE, 1)
        assert rows[f"loop-0{i}.wav"]["sketch"] == f"loop-0{i}.mid"
        assert rows[f"loop-0{i}.wav"]["loop_length"] == expected
        sketches.append(check_sketch(out / f"loop-0{i}.mid", bars=2, beats=3, bpm=180.0))
    # Each loop has its own sketch (seed + i), and the sketch drives the render: the same seed without it
    # (--no-compose) gives other audio and no sketch.
    assert (out / "loop-00.mid").read_bytes() != (out / "loop-01.mid").read_bytes()
    free = tmp_path / "free"
    assert run_main("loops", "-o", free, "--model", model, "--no-compose", *LOOP_ARGS) == 0
    assert not list(free.glob("*.mid"))
    assert all("sketch" not in row for row in loop_rows(free).values())
    assert frames_of(free / "loop-00.wav") == (expected, SAMPLE_RATE, 1)
    assert (free / "loop-00.wav").read_bytes() != (out / "loop-00.wav").read_bytes()
    # The same seed and options give the same files.
    again = tmp_path / "again"
    assert run_main("loops", "-o", again, "--model", model, *LOOP_ARGS) == 0
    assert [(again / p.name).read_bytes() for p in sorted(out.glob("loop-*"))] == \
        [p.read_bytes() for p in sorted(out.glob("loop-*"))]


def test_without_a_composer_loops_stay_free_and_composer_dir_names_one(
        bare: Path, composer: Path, tmp_path: Path, no_bundled_composer: None, capsys) -> None:
    out = tmp_path / "free"
    assert run_main("loops", "-o", out, "--model", bare, *LOOP_ARGS) == 0
    assert sorted(p.name for p in out.iterdir()) == ["loop-00.wav", "loop-01.wav", LOOP_INDEX]
    assert capsys.readouterr().err == ""  # silently: no error, no warning
    named = tmp_path / "named"
    assert run_main("loops", "-o", named, "--model", bare, "--composer", composer, "--style", STYLE, *LOOP_ARGS) == 0
    assert loop_rows(named)["loop-01.wav"]["sketch"] == "loop-01.mid"
    check_sketch(named / "loop-01.mid", bars=2, beats=3, bpm=180.0)


def test_an_unconditional_model_makes_free_loops_beside_a_composer(composer: Path, tmp_path: Path,
                                                                   capsys) -> None:
    """The bundled composer is no use to a model that cannot follow MIDI: loops stay free; asking for
    composed loops (--composer, --style) is one line, not a render error after composing."""
    from audiogen.composer.generate import bundled_composer

    assert bundled_composer() is not None  # the case this guards: a composer there, unused
    plain = make_tiny_model(tmp_path / "plain", conditional=False)
    out = tmp_path / "free"
    assert run_main("loops", "-o", out, "--model", plain, *LOOP_ARGS) == 0
    assert sorted(p.name for p in out.iterdir()) == ["loop-00.wav", "loop-01.wav", LOOP_INDEX]
    capsys.readouterr()
    assert run_main("loops", "-o", tmp_path / "styled", "--model", plain, "--composer", composer,
                    "--style", STYLE, *LOOP_ARGS) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "unconditional" in err[0] and not (tmp_path / "styled").exists()


def test_batch_compose_jobs_and_styled_loops_resume(model: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"task": "compose", "bars": 3, "style": STYLE, "key": "D", "meter": "3/4", "bpm": 100, "name": "tune"},
             {"task": "loops", "bars": 1, "bpm": 120, "count": 2, "style": STYLE, "seed": 3, "name": "lp"},
             {"task": "loops", "bars": 1, "bpm": 120, "count": 1, "compose": False, "name": "free"},
             {"task": "compose", "style": "polka", "bars": 2, "name": "bad"},  # fails at run time; the rest run
             {"task": "compose", "meter": "7/3", "name": "worse"}]  # fails when read
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out"
    assert run_main("batch", jobs, "-o", out, "--model", model, "--quiet") == 1
    expected = {"tune.mid", "lp-00.wav", "lp-00.mid", "lp-01.wav", "lp-01.mid", "free.wav"}
    assert {p.name for p in out.iterdir()} == expected | {"manifest.jsonl", "failures.jsonl", LOOP_INDEX}
    tune = pretty_midi.PrettyMIDI(str(out / "tune.mid"))
    assert tune.get_end_time() == pytest.approx(3 * bar_seconds("3/4", 100.0), abs=1e-4)
    assert [ks.key_number for ks in tune.key_signature_changes] == [parse_key("D")]
    for i in range(2):
        check_sketch(out / f"lp-0{i}.mid", bars=1, beats=4, bpm=120.0)
        assert frames_of(out / f"lp-0{i}.wav")[0] == loop_length(1, 120.0, 4, SAMPLE_RATE)
    rows = {r["output"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert set(rows) == {"tune.mid", "lp-00.wav", "lp-01.wav", "free.wav"}
    assert rows["lp-01.wav"]["sketch"] == "lp-01.mid" and "sketch" not in rows["free.wav"]
    assert loop_rows(out)["lp-00.wav"]["sketch"] == "lp-00.mid" and "sketch" not in loop_rows(out)["free.wav"]
    failures = (out / "failures.jsonl").read_text()
    assert "polka" in failures and "7/3" in failures

    # Resume: drop the last loop's manifest row and files; a rerun writes exactly those again, the same bytes.
    before = {p.name: p.read_bytes() for p in out.glob("lp-01.*")}
    tune_written = (out / "tune.mid").stat().st_mtime_ns
    kept = [line for line in (out / "manifest.jsonl").read_text().splitlines() if '"lp-01.wav"' not in line]
    (out / "manifest.jsonl").write_text("\n".join(kept) + "\n")
    for name in before:
        (out / name).unlink()
    assert run_main("batch", jobs, "-o", out, "--model", model, "--quiet") == 1
    assert {p.name: p.read_bytes() for p in out.glob("lp-01.*")} == before
    outputs = [json.loads(x)["output"] for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(outputs) == sorted(set(outputs)) == sorted(rows)
    assert (out / "tune.mid").stat().st_mtime_ns == tune_written  # done jobs are not redone


def test_render_compose_writes_the_sketch_and_its_render(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r" / "piece.wav"
    assert run_main("render", "--compose", "-o", out, "--model", model, "--bars", "2", "--style", STYLE,
                    "--key", "G", "--meter", "3/4", "--bpm", "150", "--seed", "2", "--quiet") == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["piece.mid", "piece.wav"]
    sketch = check_sketch(out.with_suffix(".mid"), bars=2, beats=3, bpm=150.0)
    assert [ks.key_number for ks in sketch.key_signature_changes] == [parse_key("G")]
    frames, rate, _ = frames_of(out)  # the sketch's notes plus the 1 s tail
    last = max(n.end for inst in sketch.instruments for n in inst.notes)
    assert rate == SAMPLE_RATE and frames / rate == pytest.approx(last + 1.0, abs=0.02)


BAD = {
    "loops: unknown style": ["loops", "-o", "{out}", "--style", "polka"],
    "loops: impossible meter": ["loops", "-o", "{out}", "--beats-per-bar", "9"],
    "loops: style without composing": ["loops", "-o", "{out}", "--style", STYLE, "--no-compose"],
    "loops: style with a sketch": ["loops", "-o", "{out}", "--style", STYLE, "--midi", "{sketch}"],
    "loops: composer that is not one": ["loops", "-o", "{out}", "--composer", "{bare}"],
    "render: compose and a sketch": ["render", "{sketch}", "--compose", "-o", "{out}/x.wav"],
    "render: neither": ["render", "-o", "{out}/x.wav"],
    "render: compose options alone": ["render", "{sketch}", "--bars", "4", "-o", "{out}/x.wav"],
    "render: unknown style": ["render", "--compose", "--style", "polka", "-o", "{out}/x.wav"],
    "render: impossible meter": ["render", "--compose", "--meter", "7/3", "-o", "{out}/x.wav"],
    "render: no bars": ["render", "--compose", "--bars", "0", "-o", "{out}/x.wav"],
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(model: Path, bare: Path, tmp_path: Path, case: str,
                                                          capsys) -> None:
    sketch = write_sketch(tmp_path / "s.mid", seconds=2.0)
    out = tmp_path / "out"
    args = [a.format(out=out, sketch=sketch, bare=bare) for a in BAD[case]]
    assert run_main(*args, "--model", model, "--quiet") == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error: "), lines
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mid"]


def test_a_sketch_in_the_loops_own_compound_meter_is_fitted_by_quarter_notes() -> None:
    """pretty_midi counts 6/4 in dotted halves; a 6-beat loop counts quarters, so a 6/4 sketch (what the composer
    writes for it) keeps its timing when fitted, one sketch bar per loop bar."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    pm.time_signature_changes = [pretty_midi.TimeSignature(6, 4, 0.0)]
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(90, 60 + q, q * 0.5, q * 0.5 + 0.4) for q in range(12)]  # 2 bars of quarters
    pm.instruments.append(piano)
    fitted = fit_sketch(pm, bars=1, bpm=120.0, beats_per_bar=6, preroll_bars=0, cycles=1)
    starts = sorted((round(n.start, 6), n.pitch) for n in fitted.instruments[0].notes if n.start < 3.0)
    assert starts == [(q * 0.5, 60 + q) for q in range(6)]  # the first bar, on its own beats
    assert [(ts.numerator, ts.denominator) for ts in pm.time_signature_changes] == [(6, 4)]  # the input untouched
