"""Music metrics on real fluidsynth renders and synthetic loops (seconds in all)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from audiogen.errors import AudiogenError
from audiogen.evaluation.musicmetrics import (
    chroma_similarity,
    energy_ratio,
    fingerprint,
    longest_quiet,
    loop_wrap_click,
    midi_onsets,
    onset_f1,
    own_track_hits,
    real_time_factor,
    seam_score,
    timbre_seam,
)

SR = 24000
FONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
CHORDS = [[60, 64, 67], [57, 60, 64], [53, 57, 60], [55, 59, 62]] * 2  # C Am F G, one per second


def _sketch() -> pretty_midi.PrettyMIDI:
    """8 s: held piano chords, a bass on every beat (0.5 s), a melody on beats, a drum on beats."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano, bass = pretty_midi.Instrument(program=0), pretty_midi.Instrument(program=33)
    lead, drums = pretty_midi.Instrument(program=73), pretty_midi.Instrument(program=0, is_drum=True)
    for bar, chord in enumerate(CHORDS):
        t = float(bar)
        piano.notes += [pretty_midi.Note(velocity=70, pitch=p, start=t, end=t + 0.95) for p in chord]
        for beat in (0.0, 0.5):
            bass.notes.append(pretty_midi.Note(velocity=90, pitch=chord[0] - 24, start=t + beat, end=t + beat + 0.45))
            lead.notes.append(pretty_midi.Note(velocity=85, pitch=chord[int(beat * 4)] + 12, start=t + beat,
                                               end=t + beat + 0.45))
            drums.notes.append(pretty_midi.Note(velocity=100, pitch=36 if beat == 0 else 38, start=t + beat,
                                                end=t + beat + 0.1))
    pm.instruments = [piano, bass, lead, drums]
    return pm


def _transposed(pm: pretty_midi.PrettyMIDI, semitones: int) -> pretty_midi.PrettyMIDI:
    out = copy.deepcopy(pm)
    for instrument in out.instruments:
        if not instrument.is_drum:
            for note in instrument.notes:
                note.pitch += semitones
    return out


def _shuffled(pm: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    """Same notes, bars played in another order (C Am F G -> F G C Am...): harmony out of place."""
    out = copy.deepcopy(pm)
    for instrument in out.instruments:
        for note in instrument.notes:
            bar = int(note.start)
            new_bar = (bar + 2) % len(CHORDS)
            note.start, note.end = note.start + new_bar - bar, note.end + new_bar - bar
    return out


@pytest.fixture(scope="module")
def render(tmp_path_factory) -> tuple[np.ndarray, Path, pretty_midi.PrettyMIDI]:
    if shutil.which("fluidsynth") is None or not FONT.exists():
        pytest.skip("fluidsynth or the TimGM6mb soundfont is not installed")
    folder = tmp_path_factory.mktemp("render")
    pm = _sketch()
    midi, wav = folder / "sketch.mid", folder / "sketch.wav"
    pm.write(str(midi))
    subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(SR), "-F", str(wav), str(FONT), str(midi)],
                   check=True, capture_output=True)
    audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    assert sr == SR
    return audio.T, midi, pm  # [C, N] stereo


def test_chroma_render_beats_mismatched_midi_and_noise(render):
    wav, midi, pm = render
    own = chroma_similarity(wav, SR, midi)  # path in
    tritone = chroma_similarity(wav, SR, _transposed(pm, 6))
    shuffled = chroma_similarity(wav, SR, _shuffled(pm))
    noise = chroma_similarity(np.random.default_rng(0).standard_normal(wav.shape) * 0.1, SR, pm)
    print(f"chroma: render {own:.3f} tritone {tritone:.3f} shuffled {shuffled:.3f} noise {noise:.3f}")
    assert own > 0.7
    assert own > tritone + 0.25
    assert own > shuffled + 0.2
    assert own > noise + 0.2


def test_chroma_input_forms_and_edge_cases(render):
    wav, midi, pm = render
    stereo = chroma_similarity(wav, SR, pm)
    assert chroma_similarity(torch.from_numpy(wav), SR, pm) == pytest.approx(stereo, abs=1e-6)
    assert chroma_similarity(wav.mean(0), SR, pm) == pytest.approx(stereo, abs=1e-6)  # mono [N]
    assert chroma_similarity(np.zeros_like(wav), SR, pm) == 0.0  # silence plays no harmony
    short = chroma_similarity(wav[:, : SR // 2], SR, pm)  # 0.5 s: still a number in [0, 1]
    assert 0.0 <= short <= 1.0
    with pytest.raises(AudiogenError):
        chroma_similarity(wav, SR, pretty_midi.PrettyMIDI())  # nothing to compare against
    with pytest.raises(AudiogenError):
        chroma_similarity(wav, SR, midi.with_name("missing.mid"))


def test_onset_f1_render_high_shifted_low(render):
    wav, midi, _ = render
    good = onset_f1(wav, SR, midi)
    late = onset_f1(np.pad(wav, ((0, 0), (int(0.2 * SR), 0))), SR, midi)  # 200 ms late
    print(f"onset F1: render {good['f1']:.3f} shifted {late['f1']:.3f}")
    assert set(good) == {"f1", "precision", "recall"}
    assert good["f1"] > 0.85
    assert late["f1"] < 0.2
    by_array = onset_f1(torch.from_numpy(wav), SR, midi_onsets(midi))
    assert by_array["f1"] == pytest.approx(good["f1"])
    assert onset_f1(np.zeros_like(wav), SR, midi)["f1"] == 0.0


def test_midi_onsets_merge_close_notes(render):
    _, _, pm = render
    onsets = midi_onsets(pm)  # chord notes, bass, lead and drum start together: one onset per beat
    np.testing.assert_allclose(onsets, np.arange(16) * 0.5, atol=1e-6)


def _harmonic_tone(n: int, f0: float = 200.0, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n) / SR
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t + k * phase) for k in range(1, 6))


def _arpeggio(periods: int = 3, step: float = 0.25, pitches=(220.0, 277.2, 329.6, 440.0)) -> np.ndarray:
    """Plucked notes every `step` s, decaying over ~0.15 s, repeating every len(pitches)*step s.

    Notes ring 2 s (decayed 110 dB: no cut-off) and rise over 20 ms like an instrument's attack; a
    sine switched on within a sample is itself a click, and seam_score would rightly see one.
    """
    hop, length = int(step * SR), 2 * SR
    out = np.zeros(periods * len(pitches) * hop + length)
    t = np.arange(length) / SR
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-t / 0.15)
    for i in range(periods * len(pitches)):
        f = pitches[i % len(pitches)]
        note = sum(0.3 / k * np.sin(2 * np.pi * k * f * t) for k in range(1, 4)) * envelope
        out[i * hop : i * hop + length] += note
    return out


def test_seam_score_periodic_is_one_and_breaks_are_not():
    n = SR // 200 * 200  # 1 s = 200 whole periods of 200 Hz
    whole = seam_score(_harmonic_tone(n), SR)
    cut = seam_score(_harmonic_tone(n + 37), SR)  # cut a fifth of a period early: phase jump at the wrap
    clicked = _harmonic_tone(n)
    clicked[-1] += 0.5
    click = seam_score(clicked, SR)

    period = SR  # the arpeggio repeats every second; its middle period carries the tails it would have
    arpeggio = _arpeggio()
    loop = arpeggio[period : 2 * period]
    seamless = seam_score(loop, SR)  # the wrap falls on a note onset, like every beat
    rotated = [seam_score(np.roll(loop, shift), SR) for shift in (3001, 6000)]  # mid-note, other onset
    mid_note = seam_score(arpeggio[period : 2 * period - SR // 10], SR)  # ringing note cut off

    noise = seam_score(np.random.default_rng(0).standard_normal((2, SR)) * 0.1, SR)  # stereo
    print(f"seam: tone whole {whole:.2f} cut {cut:.2f} click {click:.2f} | arpeggio seamless "
          f"{seamless:.2f} rotated {rotated[0]:.2f} {rotated[1]:.2f} cut mid-note {mid_note:.2f} | noise {noise:.2f}")
    assert 0.7 < whole < 1.5
    assert 0.6 < seamless < 1.5
    assert all(0.6 < score < 1.6 for score in rotated)
    assert 0.7 < noise < 1.4
    assert cut > 10
    assert click > 10
    assert mid_note > 2


def test_seam_score_edge_cases():
    assert seam_score(np.zeros((2, SR // 2)), SR) == 1.0  # silence is seamless
    half = torch.from_numpy(_harmonic_tone(SR // 2 // 120 * 120 + 37)).float()[None]  # [1, N] tensor, 0.5 s
    assert seam_score(half, SR) > 10
    with pytest.raises(AudiogenError):
        seam_score(np.zeros(1000), SR)


def test_loop_wrap_click():
    n = SR // 200 * 200
    clean = _harmonic_tone(n)
    clicked = clean.copy()
    clicked[0] -= 0.4
    assert loop_wrap_click(clean) < 1.2
    assert loop_wrap_click(np.stack([clean, clicked])) > 2  # the worse channel counts
    assert loop_wrap_click(np.zeros((2, 100))) == 0.0


def test_real_time_factor():
    assert real_time_factor(10.0, 2.0) == 5.0
    assert real_time_factor(1.0, 4.0) == 0.25
    assert real_time_factor(0.0, 0.0) == 0.0


def test_timbre_seam_loop_of_a_period_is_one_and_a_break_is_not(render):
    audio, _, _ = render
    loop = audio[:, 4 * SR : 8 * SR]  # C Am F G repeats every 4 s: its second period wraps onto itself
    seamless = timbre_seam(loop, SR)
    rotated = timbre_seam(np.roll(loop, int(1.3 * SR), axis=1), SR)  # the wrap mid-chord
    broken = loop.copy()
    broken[:, -int(0.6 * SR) :] = 0.0  # the end falls silent: silence -> music at the wrap
    # another piece of music glued on: the last second is noise, not the chord that leads to bar 1
    glued = loop.copy()
    glued[:, -SR:] = 0.2 * np.random.default_rng(0).standard_normal((loop.shape[0], SR))
    scores = (seamless, rotated, timbre_seam(broken, SR), timbre_seam(glued, SR))
    print("timbre seam: seamless {:.2f} rotated {:.2f} silent end {:.2f} noise end {:.2f}".format(*scores))
    assert 0.5 < seamless < 1.5 and 0.5 < rotated < 1.5
    assert scores[2] > 3 and scores[3] > 2
    assert timbre_seam(np.zeros((2, 2 * SR)), SR) == 1.0  # silence is seamless
    assert timbre_seam(torch.from_numpy(loop).float(), SR) == pytest.approx(seamless, rel=1e-4)  # a tensor
    with pytest.raises(AudiogenError):
        timbre_seam(np.zeros(SR // 2), SR)  # shorter than 6 windows of 0.2 s


def _tone(seconds: float, freq: float, *, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    return (0.3 * np.sin(2 * np.pi * freq * t + phase) + 0.1 * np.sin(2 * np.pi * 3 * freq * t)).astype(np.float32)


def test_own_track_retrieval_finds_each_clip_of_the_same_source(render):
    audio, _, _ = render
    noise = lambda seed: 0.1 * np.random.default_rng(seed).standard_normal(4 * SR)  # noqa: E731
    # references: the first half of each source; queries: a later stretch of the same source
    references = [fingerprint(audio[:, : 4 * SR], SR), fingerprint(_tone(4, 220.0), SR),
                  fingerprint(noise(0), SR), fingerprint(_tone(4, 1500.0), SR)]
    queries = [fingerprint(audio[:, 4 * SR :], SR), fingerprint(_tone(3, 220.0, seed=1), SR),
               fingerprint(noise(1), SR), fingerprint(_tone(3, 1500.0, seed=2), SR)]
    assert all(f.shape == (76,) and np.isfinite(f).all() for f in references + queries)
    assert own_track_hits(queries, references) == [True] * 4
    assert own_track_hits(queries[::-1], references) == [False] * 4  # every query against another source
    with pytest.raises(AudiogenError):
        own_track_hits(queries[:1], references[:1])
    with pytest.raises(AudiogenError):
        fingerprint(np.zeros(100), SR)


def test_energy_ratio_and_longest_quiet():
    tone = _tone(6, 330.0)
    assert energy_ratio(tone, tone[: 3 * SR], SR) == pytest.approx(1.0, rel=0.01)
    assert energy_ratio(0.5 * tone, tone[: 3 * SR], SR) == pytest.approx(0.25, rel=0.01)
    faded = tone.copy()
    faded[-3 * SR :] = 0
    assert energy_ratio(faded, tone, SR) == 0.0 and energy_ratio(tone, np.zeros(SR), SR) == 0.0
    gap = tone.copy()
    gap[SR : SR + int(1.2 * SR)] = 0.0
    assert longest_quiet(gap, SR) == pytest.approx(1.2, abs=0.1)
    assert longest_quiet(tone, SR) == 0.0
    assert longest_quiet(np.stack([gap, gap]), SR) == pytest.approx(1.2, abs=0.1)  # [C, N]
