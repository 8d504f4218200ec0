"""Helpers for the composer tests: MIDI written with pretty_midi, tiny models, tiny datasets.

Everything is made in the test: `song(...)` a multi-track piece on the grid, `midi_folder(...)` a
folder of such pieces (a user's MIDI folder), `tiny_composer(...)` a random 2-layer composer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import torch

from audiogen.composer.model import Composer, ComposerConfig

STEP = 0.125  # one grid step (a sixteenth note) at 120 quarter notes per minute


def song(*, seed: int = 0, bars: int = 4, meter: tuple[int, int] = (4, 4), bpm: float = 120.0,
         drums: bool = True, key_pc: int = 0) -> pretty_midi.PrettyMIDI:
    """A melody (program 73), a bass (program 33) and optionally drums, every note on the 1/16 grid."""
    rng = np.random.default_rng(seed)
    step = 60.0 / bpm / 4
    bar_steps = meter[0] * 16 // meter[1]
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(meter[0], meter[1], 0.0))
    melody = pretty_midi.Instrument(program=73, name="flute")
    bass = pretty_midi.Instrument(program=33, name="bass")
    scale = [0, 2, 4, 5, 7, 9, 11]
    for b in range(bars):
        t = b * bar_steps
        while t < (b + 1) * bar_steps:
            dur = min(int(rng.choice([1, 2, 2, 4, 4, 6, 8])), (b + 1) * bar_steps - t)
            pitch = 60 + key_pc + scale[int(rng.integers(7))] + 12 * int(rng.integers(0, 2))
            melody.notes.append(pretty_midi.Note(int(rng.integers(60, 120)), pitch, t * step, (t + dur) * step))
            t += dur
        bass.notes.append(pretty_midi.Note(80, 36 + key_pc + scale[b % 7], b * bar_steps * step,
                                           (b + 1) * bar_steps * step))
    pm.instruments += [melody, bass]
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
        for s in range(0, bars * bar_steps, 4):
            kit.notes.append(pretty_midi.Note(100, 36 if s % 8 == 0 else 38, s * step, (s + 1) * step))
        pm.instruments.append(kit)
    return pm


def midi_folder(folder: Path, count: int = 6, **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        song(seed=i, bars=4 + i % 3, key_pc=i % 5, **kwargs).write(str(folder / f"song{i}.mid"))
    return folder


def tiny_composer(**overrides) -> Composer:
    torch.manual_seed(0)
    config = dict(dim=32, num_layers=2, num_heads=2, context=96)
    config.update(overrides)
    return Composer(ComposerConfig(**config)).eval()
