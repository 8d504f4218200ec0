"""The paired corpus builder with the real fluidsynth, and the drum generator on real beat grids.

Corpora here are a few seconds long (TimGM6mb, short pieces), so each build takes seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import librosa
import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from audiogen.corpus.build import augment, build_corpus
from audiogen.corpus.drums import METER_STYLES, STYLES, add_drums
from audiogen.errors import AudiogenError
from audiogen.midi import beat_grid

FONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not Path(FONT).exists(), reason="fluidsynth and TimGM6mb needed"
)


def _pairs(out: Path) -> tuple[list[str], list[str]]:
    audio = sorted(p.stem for p in (out / "audio").glob("*.wav"))
    midi = sorted(p.stem for p in (out / "audio").glob("*.mid"))
    return audio, midi


def _onsets(pm: pretty_midi.PrettyMIDI) -> np.ndarray:
    """Distinct note starts (starts closer than 20 ms count as one)."""
    starts = np.array(sorted(n.start for inst in pm.instruments for n in inst.notes))
    return starts[np.concatenate([[True], np.diff(starts) > 0.02])]


@needs_fluidsynth
def test_music21_corpus_pairs_manifest_determinism_and_resume(tmp_path):
    pytest.importorskip("music21")
    kw = dict(hours=0.002, seed=3, soundfont=FONT, max_piece_seconds=6.0, quiet=True)
    first = build_corpus(tmp_path / "a", workers=1, **kw)
    audio, midi = _pairs(tmp_path / "a")
    assert audio == midi and len(audio) == first.files >= 2  # 7.2 s of 6 s pieces: at least two
    assert 0.002 * 3600 <= first.seconds <= 0.002 * 3600 + 6.0
    manifest = json.loads((tmp_path / "a" / "corpus.json").read_text())
    assert [p["name"] for p in manifest["pieces"]] == audio
    assert manifest["settings"]["seed"] == 3 and manifest["files"] == first.files
    for piece in manifest["pieces"]:
        assert piece["source"].startswith("music21:")
        assert 0.8 <= piece["tempo_factor"] <= 1.25 and -5 <= piece["transpose"] <= 5
        assert all(0 <= p < 128 for p in piece["programs"])
        info = sf.info(str(tmp_path / "a" / piece["audio"]))
        assert info.samplerate == 24000 and info.channels == 1
        assert abs(info.duration - piece["seconds"]) < 1e-3 and 2.0 < info.duration <= 6.0
        pm = pretty_midi.PrettyMIDI(str(tmp_path / "a" / piece["midi"]))
        notes_end = max(n.end for inst in pm.instruments for n in inst.notes)
        assert notes_end <= info.duration + 1e-3  # every note is in the audio
        assert piece["drums"] == any(inst.is_drum for inst in pm.instruments)
        wav, _ = sf.read(str(tmp_path / "a" / piece["audio"]))
        assert 0.85 < np.abs(wav).max() <= 0.9  # peak-normalised to -1 dBFS

    # The same seed in two worker processes gives the same pieces and the same MIDI bytes.
    second = build_corpus(tmp_path / "b", workers=2, **kw)
    assert second.files == first.files and _pairs(tmp_path / "b") == (audio, midi)
    for name in midi:
        assert (tmp_path / "a" / "audio" / f"{name}.mid").read_bytes() == (
            tmp_path / "b" / "audio" / f"{name}.mid").read_bytes()

    # Resume: nothing new is built; a lost WAV and a killed run's scratch file are dealt with.
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "a" / "audio").iterdir()}
    again = build_corpus(tmp_path / "a", workers=1, **kw)
    assert again.files == first.files and again.seconds == pytest.approx(first.seconds)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "a" / "audio").iterdir()} == stamps
    lost = tmp_path / "a" / "audio" / f"{audio[-1]}.wav"
    midi_bytes = lost.with_suffix(".mid").read_bytes()
    lost.unlink()
    (tmp_path / "a" / "audio" / f".{audio[-1]}.wav.x.tmp.wav").write_bytes(b"half")
    build_corpus(tmp_path / "a", workers=1, **kw)
    assert lost.exists() and _pairs(tmp_path / "a") == (audio, midi)
    assert not [p for p in (tmp_path / "a" / "audio").iterdir() if p.name.startswith(".")]
    assert lost.with_suffix(".mid").read_bytes() == midi_bytes  # rebuilt the same
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "a" / "audio").iterdir()
            if p.stem != lost.stem} == {k: v for k, v in stamps.items() if not k.startswith(lost.stem)}

    with pytest.raises(AudiogenError, match="other settings"):
        build_corpus(tmp_path / "a", workers=1, **{**kw, "seed": 4})


def _melody(path: Path) -> None:
    """Short staccato notes at irregular eighth-note times: clear onsets."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    rng = np.random.default_rng(0)
    t = 0.0
    while t < 7.5:
        inst.notes.append(pretty_midi.Note(velocity=100, pitch=int(rng.integers(55, 80)), start=t, end=t + 0.2))
        t += float(rng.choice([0.25, 0.5, 0.75]))
    pm.instruments.append(inst)
    pm.write(str(path))


@needs_fluidsynth
def test_midi_dir_with_drums_onsets_line_up_with_the_midi(tmp_path):
    midi_dir = tmp_path / "in"
    midi_dir.mkdir()
    _melody(midi_dir / "melody.mid")
    # A seed whose melody program has a sharp attack (piano, mallets, guitar), found the way
    # make_piece draws it: default_rng([seed, piece index]).
    plucked = set(range(0, 16)) | set(range(24, 32))
    seed = next(s for s in range(50) if augment(
        pretty_midi.PrettyMIDI(str(midi_dir / "melody.mid")), np.random.default_rng([s, 0]),
        drums_fraction=1.0, max_seconds=6.0, keep_programs=0.3)["programs"][0] in plucked)
    out = tmp_path / "out"
    summary = build_corpus(out, hours=0.001, seed=seed, midi_dir=str(midi_dir), soundfont=FONT, workers=1,
                           drums_fraction=1.0, max_piece_seconds=6.0, quiet=True)
    assert summary.files == 1 and summary.skipped == []
    piece = json.loads((out / "corpus.json").read_text())["pieces"][0]
    assert piece["drums"] and piece["drum_style"] in STYLES and piece["source"].endswith("melody.mid")
    pm = pretty_midi.PrettyMIDI(str(out / piece["midi"]))
    assert [inst.is_drum for inst in pm.instruments] == [False, True]
    wav, sr = sf.read(str(out / piece["audio"]), dtype="float32")
    reference = _onsets(pm)
    detected = librosa.onset.onset_detect(y=wav, sr=sr, hop_length=128, units="time")
    nearest = np.array([np.min(np.abs(reference - t)) for t in detected])
    assert len(detected) >= 0.5 * len(reference)
    assert np.mean(nearest <= 0.03) >= 0.85  # nearly every audible onset is a MIDI onset, within 30 ms
    f_measure, precision, recall = mir_eval.onset.f_measure(reference, detected, window=0.03)
    assert f_measure >= 0.7, (f_measure, precision, recall)


def test_corpus_errors(tmp_path):
    with pytest.raises(AudiogenError, match="soundfont not found"):
        build_corpus(tmp_path / "x", soundfont=str(tmp_path / "none.sf2"), quiet=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudiogenError, match="no .mid"):
        build_corpus(tmp_path / "x", midi_dir=str(tmp_path / "empty"), soundfont=FONT, quiet=True)
    with pytest.raises(AudiogenError, match="hours"):
        build_corpus(tmp_path / "x", hours=0, quiet=True)


@needs_fluidsynth
def test_unusable_sources_are_skipped_and_reported(tmp_path):
    midi_dir = tmp_path / "in"
    midi_dir.mkdir()
    (midi_dir / "broken.mid").write_bytes(b"MThd not really")
    _melody(midi_dir / "good.mid")
    summary = build_corpus(tmp_path / "out", hours=0.003, seed=0, midi_dir=str(midi_dir), soundfont=FONT,
                           workers=1, max_piece_seconds=5.0, quiet=True)
    assert summary.files >= 2 and summary.seconds >= 0.003 * 3600  # the good file again, augmented anew
    assert any("broken" in s for s in summary.skipped)
    assert all("broken" not in p.name for p in (tmp_path / "out" / "audio").iterdir())


def _piece(numerator: int, denominator: int, bars: int, tempo: float = 100.0) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(numerator, denominator, 0.0))
    inst = pretty_midi.Instrument(program=0)
    quarter = 60.0 / tempo
    bar = quarter * numerator * 4 / denominator
    for k in range(bars * numerator):
        start = k * bar / numerator
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=60 + k % 7, start=start, end=start + 0.1))
    pm.instruments.append(inst)
    return pm


@pytest.mark.parametrize("meter", [(4, 4), (3, 4), (6, 8)])
def test_drum_hits_fall_on_the_beat_grid(meter):
    for seed in range(6):
        pm = _piece(*meter, bars=12)
        style = add_drums(pm, np.random.default_rng(seed))
        drums = pm.instruments[-1]
        assert drums.is_drum and style in STYLES and len(pm.instruments) == 2
        assert style in METER_STYLES[{(4, 4): "duple", (3, 4): "triple", (6, 8): "compound"}[meter]]
        beats, downbeats = beat_grid(pm, until=pm.get_end_time())
        period = np.diff(beats)
        for note in drums.notes:
            i = int(np.searchsorted(beats, note.start + 1e-6) - 1)
            frac = (note.start - beats[i]) / period[i]
            # sixteenths or triplet eighths of the beat (12 = lcm(4, 3)), to the millisecond
            assert abs(frac * 12 - round(frac * 12)) * period[i] / 12 < 1e-3, (style, note.start)
        starts = np.array([n.start for n in drums.notes])
        kicks = np.array([n.start for n in drums.notes if n.pitch == 36])
        assert np.min(np.abs(kicks - downbeats[0])) < 1e-3  # the groove starts with a kick on bar 1
        last_onset = max(n.start for n in pm.instruments[0].notes)
        assert starts.max() <= last_onset + 1e-3  # the drums end with the music
        for k in range(11):  # every bar but the last has a groove
            assert np.sum((starts >= downbeats[k] - 1e-6) & (starts < downbeats[k + 1] - 1e-6)) >= 3
        crashes = [n.start for n in drums.notes if n.pitch in (49, 57)]
        assert min(abs(c - downbeats[11]) for c in crashes) < 1e-3  # a crash on the final bar
