"""Make the bundled inputs of `make demo`: samples/sketch.mid and samples/seed.wav (deterministic).

    .venv/bin/python samples/make_samples.py

sketch.mid: an 8-bar game-music sketch at 112 BPM in A minor (pad chords, bass, a lead melody
and a generated drum part), written with pretty_midi. seed.wav: 6 seconds of a different little
piece (piano + strings) rendered by fluidsynth with the General MIDI soundfont, the kind of
recording a user would continue.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pretty_midi

from audiogen import audio
from audiogen.corpus.build import _render, default_soundfont
from audiogen.corpus.drums import add_drums

HERE = Path(__file__).parent


def sketch() -> pretty_midi.PrettyMIDI:
    bpm, beat = 112, 60 / 112
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    pm.time_signature_changes = [pretty_midi.TimeSignature(4, 4, 0.0)]
    pad = pretty_midi.Instrument(program=89, name="pad")  # warm pad
    bass = pretty_midi.Instrument(program=33, name="bass")  # finger bass
    lead = pretty_midi.Instrument(program=80, name="lead")  # square lead
    chords = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)] * 2  # Am F C G
    melody = [76, 74, 72, 71, 72, 74, 76, 79, 77, 76, 74, 72, 71, 72, 74, 72]
    for bar, chord in enumerate(chords):
        t0 = bar * 4 * beat
        for p in chord:
            pad.notes.append(pretty_midi.Note(70, p, t0, t0 + 4 * beat - 0.05))
        root = chord[0] - 24
        for i, p in enumerate([root, root, root + 7, root + 12, root, root + 7, root + 5, root + 7]):
            bass.notes.append(pretty_midi.Note(95, p, t0 + i * beat / 2, t0 + (i + 0.9) * beat / 2))
        for i in range(2):
            p = melody[(2 * bar + i) % len(melody)]
            lead.notes.append(pretty_midi.Note(90, p, t0 + i * 2 * beat, t0 + i * 2 * beat + 1.6 * beat))
    pm.instruments += [pad, bass, lead]
    add_drums(pm, np.random.default_rng(7), style="backbeat")
    return pm


def seed_piece() -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI(initial_tempo=96)
    piano = pretty_midi.Instrument(program=0)
    strings = pretty_midi.Instrument(program=48)
    beat = 60 / 96
    line = [64, 67, 72, 71, 69, 67, 65, 64, 62, 64, 65, 67, 69, 71, 72, 74]
    for i, p in enumerate(line):
        piano.notes.append(pretty_midi.Note(85, p, i * beat / 2 * 2, i * beat + 0.9 * beat))
        if i % 4 == 0:
            for q in (48, 55, 60):
                strings.notes.append(pretty_midi.Note(60, q + (i // 4) * 2 % 5, i * beat, (i + 4) * beat))
    pm.instruments += [piano, strings]
    return pm


def main() -> None:
    pm = sketch()
    pm.write(str(HERE / "sketch.mid"))
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "seed.mid"
        seed_piece().write(str(midi))
        wav = _render(midi, str(default_soundfont()), 24000, Path(tmp) / "seed.wav")
    wav = wav[: 6 * 24000]
    audio.save(HERE / "seed.wav", audio.peak_normalize(__import__("torch").from_numpy(wav)[None], -3.0), 24000)
    print(f"wrote {HERE / 'sketch.mid'} ({pm.get_end_time():.1f} s) and {HERE / 'seed.wav'} (6.0 s)")


if __name__ == "__main__":
    main()
