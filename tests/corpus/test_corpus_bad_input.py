"""`audiogen corpus` refuses impossible options before any work (one line, exit status 2, no folder made):
a --soundfont that is not a SoundFont (fluidsynth would silently render with another one), a sample rate
fluidsynth cannot render at, --hours nan or inf, no workers, a negative seed; and each fluidsynth render is
stopped once its output outgrows the MIDI's length (a tiny dense MIDI once wrote a 21 GB scratch WAV).

    .venv/bin/pytest tests/corpus/test_corpus_bad_input.py -q
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pretty_midi
import pytest
from conftest import write_wav
from tinymodel import run_main as run_cli

from audiogen.corpus.build import RenderError, _render

FONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not Path(FONT).exists(), reason="fluidsynth and TimGM6mb needed"
)


@pytest.fixture
def midi_dir(tmp_path) -> Path:
    folder = tmp_path / "midi"
    folder.mkdir()
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(90, 60, 0.0, 1.0))
    pm.instruments.append(piano)
    pm.write(str(folder / "a.mid"))
    return folder


def _fake_fonts(folder: Path) -> dict[str, Path]:
    wav = write_wav(folder / "random.wav", 0.1, 8000)  # a RIFF file, form WAVE
    text = folder / "notes.sf2"
    text.write_text("not a soundfont\n")
    short = folder / "short.sf2"
    short.write_bytes(b"RIFF")
    return {"wav": wav, "text": text, "short": short}


CASES = {
    "soundfont-wav": (["--soundfont", "{wav}"], "not a SoundFont"),
    "soundfont-text": (["--soundfont", "{text}"], "not a SoundFont"),
    "soundfont-short": (["--soundfont", "{short}"], "not a SoundFont"),
    "soundfont-missing": (["--soundfont", "{tmp}/none.sf2"], "soundfont not found"),
    "soundfont-folder": (["--soundfont", "{tmp}"], "soundfont not found"),
    "sample-rate-0": (["--sample-rate", "0"], "--sample-rate must be 8000 to 96000"),
    "sample-rate-negative": (["--sample-rate", "-24000"], "--sample-rate must be"),
    "sample-rate-4000": (["--sample-rate", "4000"], "--sample-rate must be"),
    "sample-rate-192000": (["--sample-rate", "192000"], "--sample-rate must be"),
    "hours-nan": (["--hours", "nan"], "--hours must be a positive number"),
    "hours-inf": (["--hours", "inf"], "--hours must be a positive number"),
    "hours-0": (["--hours", "0"], "--hours must be a positive number"),
    "hours-negative": (["--hours", "-1"], "--hours must be a positive number"),
    "workers-0": (["--workers", "0"], "--workers must be 1 to 64"),
    "workers-negative": (["--workers", "-2"], "--workers must be 1 to 64"),
    "workers-huge": (["--workers", "100000"], "--workers must be 1 to 64"),
    "seed-negative": (["--seed", "-1"], "--seed must be a non-negative integer"),
    "drums-fraction-nan": (["--drums-fraction", "nan"], "--drums-fraction must be 0 to 1"),
    "drums-fraction-2": (["--drums-fraction", "2"], "--drums-fraction must be 0 to 1"),
    "max-piece-seconds-nan": (["--max-piece-seconds", "nan"], "--max-piece-seconds must be 3 to 3600"),
    "max-piece-seconds-inf": (["--max-piece-seconds", "inf"], "--max-piece-seconds must be 3 to 3600"),
    "max-piece-seconds-1": (["--max-piece-seconds", "1"], "--max-piece-seconds must be 3 to 3600"),
}


@needs_fluidsynth
@pytest.mark.parametrize("case", list(CASES))
def test_an_impossible_option_is_one_line_before_any_work(tmp_path, midi_dir, case, capsys):
    options, words = CASES[case]
    fonts = _fake_fonts(tmp_path)
    out = tmp_path / "corpus"
    argv = ["corpus", "-o", out, "--midi-dir", midi_dir, "--hours", "0.001", "--workers", "1",
            *[a.format(tmp=tmp_path, **fonts) for a in options]]
    if "--soundfont" not in options:
        argv += ["--soundfont", FONT]
    status = run_cli(*argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("audiogen: error: ") and words in err, err
    assert not out.exists()


@needs_fluidsynth
def test_a_render_that_outgrows_its_midi_is_stopped(tmp_path):
    """fluidsynth is stopped once its output passes the length it was given: here a 30-minute MIDI allowed
    1 s, whose whole render would be 1800 s x 8000 Hz x 8 bytes = 115 MB; it stops at a small part of that."""
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes += [pretty_midi.Note(90, 60, 0.0, 0.5), pretty_midi.Note(90, 64, 1799.0, 1800.0)]
    pm.instruments.append(piano)
    midi = tmp_path / "long.mid"
    pm.write(str(midi))
    scratch = tmp_path / "scratch.wav"
    with pytest.raises(RenderError, match="fluidsynth rendered more than 1.0 s of audio"):
        _render(midi, FONT, 8000, scratch, max_seconds=1.0)
    whole = 1800 * 8000 * 8
    assert scratch.stat().st_size < whole / 4  # killed early, not finished and then refused


@needs_fluidsynth
def test_a_render_within_its_length_is_kept(tmp_path, midi_dir):
    mono = _render(midi_dir / "a.mid", FONT, 8000, tmp_path / "scratch.wav", max_seconds=1.0 + 10.0)
    assert 1.0 * 8000 <= len(mono) <= 11.0 * 8000
