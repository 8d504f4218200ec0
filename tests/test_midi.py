"""MIDI -> frame-aligned conditioning: notes, drums, families, tempo changes and beat positions land on
the frames they should, and unusable MIDI files raise one-line AudiogenErrors."""

from __future__ import annotations

import mido
import numpy as np
import pretty_midi
import pytest
import torch

from audiogen.errors import AudiogenError
from audiogen.midi import FEATURE_LAYOUT, NUM_FEATURES, load_midi, midi_features, midi_seconds

PITCH, ONSET, DRUMS = FEATURE_LAYOUT["pitch"], FEATURE_LAYOUT["onset"], FEATURE_LAYOUT["drums"]
FAMILY, POSITION = FEATURE_LAYOUT["family"], FEATURE_LAYOUT["position"]


def _pm(notes, *, program=0, drums=(), tempo=120.0) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(program=program)
    inst.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in notes]
    pm.instruments.append(inst)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in drums]
        pm.instruments.append(kit)
    return pm


def _frames(column) -> list[int]:
    return np.nonzero(column.numpy())[0].tolist()


def test_layout_covers_the_feature_axis():
    spans = sorted((s.start, s.stop) for s in FEATURE_LAYOUT.values())
    assert spans[0][0] == 0 and spans[-1][1] == NUM_FEATURES
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert {"pitch", "onset", "drums", "family", "position"} <= set(FEATURE_LAYOUT)


# frame rate, frames where C4 (0.4-1.0 s) sounds, E4 (0.21-0.30 s, starting mid-frame): onset frame and
# sounding frames, frames in 1 s, the frame of the 2.0 s downbeat.
CASES = [
    (75.0, range(30, 75), 15, range(15, 23), 75, 150),  # 0.21 s * 75 = 15.75; 0.30 s * 75 = 22.5
    (50.0, range(20, 50), 10, range(10, 15), 50, 100),  # 0.21 s * 50 = 10.5
]


@pytest.mark.parametrize("frame_rate, c4, e4_onset, e4, T, bar2", CASES)
def test_notes_land_on_the_expected_frames(frame_rate, c4, e4_onset, e4, T, bar2, tmp_path):
    path = tmp_path / "two.mid"
    _pm([(60, 0.4, 1.0, 127), (64, 0.21, 0.3, 64)]).write(str(path))
    feats = midi_features(path, frame_rate=frame_rate)
    assert feats.dtype == torch.float32 and feats.shape == (T, NUM_FEATURES)
    pitch, onset = feats[:, PITCH], feats[:, ONSET]
    assert _frames(pitch[:, 60]) == list(c4) and _frames(onset[:, 60]) == [c4[0]]
    assert float(pitch[c4[0], 60]) == pytest.approx(1.0)
    assert _frames(onset[:, 64]) == [e4_onset] and _frames(pitch[:, 64]) == list(e4)
    assert float(onset[e4_onset, 64]) == pytest.approx(64 / 127)
    assert float(pitch[:, [p for p in range(128) if p not in (60, 64)]].sum()) == 0
    # Padding keeps the beat clock running; cutting drops late notes.
    padded = midi_features(path, frame_rate=frame_rate, num_frames=3 * T)
    assert padded.shape[0] == 3 * T and float(padded[T:, PITCH].sum()) == 0
    assert _frames(padded[:, POSITION][:, 4]) == [0, bar2]  # 4/4 at 120 bpm: bars at 0 and 2 s
    assert float(midi_features(path, frame_rate=frame_rate, num_frames=c4[0])[:, PITCH][:, 60].sum()) == 0
    assert midi_seconds(path) == pytest.approx(1.0)


def test_drums_use_the_drum_slice_and_families_are_flagged():
    pm = _pm([(48, 0.0, 1.0, 100)], program=33, drums=[(36, 0.0, 0.1, 127), (42, 0.5, 0.6, 80), (30, 0.75, 0.8, 90)])
    strings = pretty_midi.Instrument(program=41)  # viola: strings family (program // 8 == 5)
    strings.notes.append(pretty_midi.Note(velocity=90, pitch=67, start=1.0, end=2.0))
    pm.instruments.append(strings)
    feats = midi_features(pm, frame_rate=50.0)
    drums = feats[:, DRUMS]
    assert _frames(drums[:, 36 - 35]) == [0] and float(drums[0, 1]) == pytest.approx(1.0)
    assert _frames(drums[:, 42 - 35]) == [25]
    assert _frames(drums[:, 0]) == [37]  # key 30 is outside 35..81: clamped onto the lowest key
    assert float(feats[:, PITCH][:, [30, 36, 42]].sum()) == 0  # drum keys never appear as pitches
    assert float(feats[:, ONSET][:, [30, 36, 42]].sum()) == 0
    family = feats[:, FAMILY]
    assert _frames(family[:, 4]) == list(range(0, 50))  # bass (program 33 // 8 = 4) for 0..1 s
    assert _frames(family[:, 5]) == list(range(50, 100))  # strings for 1..2 s
    assert 0 in _frames(family[:, 16]) and 25 in _frames(family[:, 16])  # the drum family
    assert float(family[:, [f for f in range(17) if f not in (4, 5, 16)]].sum()) == 0


def _two_tempo_file(path) -> None:
    """120 bpm for 4 beats (2 s), then 60 bpm: notes on every beat, written with mido."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    delta = 0  # ticks since the previous event
    for beat in range(8):
        if beat == 4:
            track.append(mido.MetaMessage("set_tempo", tempo=1000000, time=delta))
            delta = 0
        track.append(mido.Message("note_on", note=60 + beat, velocity=100, time=delta))
        track.append(mido.Message("note_off", note=60 + beat, velocity=0, time=240))  # half a beat
        delta = 240
    mid.tracks.append(track)
    mid.save(str(path))


def test_tempo_changes_move_notes_and_beats(tmp_path):
    path = tmp_path / "tempo.mid"
    _two_tempo_file(path)
    feats = midi_features(path, frame_rate=50.0)
    # Beats (and notes) at 0, .5, 1, 1.5 s at 120 bpm, then 2, 3, 4, 5 s at 60 bpm: frames at 50 Hz.
    beat_frames = [0, 25, 50, 75, 100, 150, 200, 250]
    for beat, frame in enumerate(beat_frames):
        assert _frames(feats[:, ONSET][:, 60 + beat]) == [frame]
    assert feats.shape[0] == 275  # the last note lasts half a beat at 60 bpm: ends at 5.5 s
    pos = feats[:, POSITION]
    for frame in beat_frames:  # the beat phase restarts on every beat: sin 0, cos 1
        assert float(pos[frame, 0]) == pytest.approx(0.0, abs=1e-6)
        assert float(pos[frame, 1]) == pytest.approx(1.0, abs=1e-6)
    # Half-way through a slow beat (2.5 s) and a fast one (0.25 s) the phase is pi: cos -1.
    assert float(pos[125, 1]) == pytest.approx(-1.0, abs=1e-6)
    assert float(pos[12, 1]) == pytest.approx(-1.0, abs=0.05)  # 0.24 s: 0.48 of a beat
    # Downbeats at 0 and 2 s (bar 2 starts with the slow tempo), then every 4 s; bar phase at 1 s is pi.
    assert _frames(pos[:, 4]) == [0, 100]
    assert float(pos[50, 3]) == pytest.approx(-1.0, abs=1e-6)
    assert float(pos[150, 3]) == pytest.approx(0.0, abs=1e-6)  # a quarter of the slow bar: cos 0
    assert float(pos.abs().max()) <= 1.0 and float(feats.min()) >= -1.0


def test_unusable_midi_raises_one_line_errors(tmp_path):
    with pytest.raises(AudiogenError, match="no such file"):
        midi_features(tmp_path / "missing.mid", frame_rate=75.0)
    junk = tmp_path / "junk.mid"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(AudiogenError, match="junk.mid: not a readable MIDI file"):
        load_midi(junk)
    real = tmp_path / "real.mid"
    _pm([(60 + k, k * 0.1, k * 0.1 + 0.5, 90) for k in range(40)]).write(str(real))
    cut = tmp_path / "truncated.mid"
    cut.write_bytes(real.read_bytes()[: len(real.read_bytes()) // 2])
    with pytest.raises(AudiogenError, match="truncated.mid: not a readable MIDI file"):
        load_midi(cut)
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(AudiogenError, match="empty.mid: MIDI has no notes"):
        midi_features(empty, frame_rate=75.0)
    long = tmp_path / "long.mid"
    _pm([(60, 0.0, 1.0, 90), (62, 899.0, 900.0, 90)]).write(str(long))
    with pytest.raises(AudiogenError, match="long.mid: MIDI is 900 s long, the limit is 600 s"):
        midi_features(long, frame_rate=75.0)
    assert midi_features(long, frame_rate=10.0, max_seconds=None).shape == (9000, NUM_FEATURES)
    for err in ("missing", "junk"):
        try:
            load_midi(tmp_path / f"{err}.mid")
        except AudiogenError as e:
            assert "\n" not in str(e)
