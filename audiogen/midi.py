"""MIDI to frame-aligned conditioning features: the one function used by training and generation.

    cond = midi_features("song.mid", frame_rate=75.0)               # [T, F] float32
    cond = midi_features(pm, frame_rate=75.0, num_frames=codes.shape[-1])

Frame t covers the time [t / frame_rate, (t + 1) / frame_rate). Every time comes from seconds as
pretty_midi computes them from the tempo map, so tempo changes move notes and beats correctly.
The F axis is split into named slices (`FEATURE_LAYOUT`):

    pitch     128  sounding non-drum pitches, velocity / 127 (max over overlapping notes)
    onset     128  non-drum note starts, velocity / 127, in the frame that contains the start
    drums      47  GM percussion starts (keys 35..81; keys outside are clamped to the nearest)
    family     17  sounding instrument families: GM program // 8 (16 families), then drums
    position    5  sin/cos of the phase within the beat, sin/cos within the bar, downbeat flag
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from .errors import AudiogenError
from .fileio import atomic_path

DRUM_LOW, DRUM_HIGH = 35, 81  # General MIDI percussion key map: Acoustic Bass Drum .. Open Triangle
NUM_DRUM_KEYS = DRUM_HIGH - DRUM_LOW + 1
NUM_FAMILIES = 17  # 16 GM program families + drums
DRUM_FAMILY = 16


def _layout(sizes: list[tuple[str, int]]) -> dict[str, slice]:
    out, start = {}, 0
    for name, size in sizes:
        out[name] = slice(start, start + size)
        start += size
    return out


FEATURE_LAYOUT: dict[str, slice] = _layout(
    [("pitch", 128), ("onset", 128), ("drums", NUM_DRUM_KEYS), ("family", NUM_FAMILIES), ("position", 5)]
)
NUM_FEATURES: int = FEATURE_LAYOUT["position"].stop

# A note starting at exactly k / frame_rate must land in frame k despite float rounding.
_EPS = 1e-6


def _name(source: object) -> str:
    return "MIDI object" if isinstance(source, pretty_midi.PrettyMIDI) else str(source)


def _has_notes(pm: pretty_midi.PrettyMIDI) -> bool:
    return any(inst.notes for inst in pm.instruments)


def _end_of_notes(pm: pretty_midi.PrettyMIDI) -> float:
    return max((note.end for inst in pm.instruments for note in inst.notes), default=0.0)


def load_midi(
    source: str | os.PathLike | pretty_midi.PrettyMIDI, *, max_seconds: float | None = 600.0,
    require_notes: bool = True,
) -> pretty_midi.PrettyMIDI:
    """Read a MIDI file (or check a PrettyMIDI); one-line `AudiogenError` for anything unusable.

    The one MIDI loader (generation, tokenizing, the corpus and the music metrics all read through it).
    `require_notes=False` accepts a file without notes; `max_seconds=None` any length.
    """
    name = _name(source)
    if isinstance(source, pretty_midi.PrettyMIDI):
        pm = source
    else:
        path = Path(source)
        if not path.exists():
            raise AudiogenError(f"{path}: no such file")
        if path.is_dir():
            raise AudiogenError(f"{path}: is a folder, expected a MIDI file")
        try:
            with warnings.catch_warnings():  # pretty_midi warns about meta events on other tracks
                warnings.simplefilter("ignore")
                pm = pretty_midi.PrettyMIDI(str(path))
        except Exception:  # mido/pretty_midi raise OSError, EOFError, KeyError, ValueError, ...
            raise AudiogenError(f"{path}: not a readable MIDI file") from None
    if require_notes and not _has_notes(pm):
        raise AudiogenError(f"{name}: MIDI has no notes")
    seconds = _end_of_notes(pm)
    if max_seconds is not None and seconds > max_seconds:
        raise AudiogenError(f"{name}: MIDI is {seconds:.0f} s long, the limit is {max_seconds:.0f} s")
    return pm


def save_midi(path: str | os.PathLike, pm: pretty_midi.PrettyMIDI) -> Path:
    """Write `pm` to `path` atomically (`fileio.atomic_path`: an error leaves nothing behind)."""
    path = Path(path)
    with atomic_path(path, suffix=".mid") as tmp:
        pm.write(str(tmp))
    return path


def midi_seconds(source: str | os.PathLike | pretty_midi.PrettyMIDI) -> float:
    """End time in seconds of the last note (drums included)."""
    return _end_of_notes(load_midi(source, max_seconds=None))


def _extend(times: np.ndarray, until: float, step: float) -> np.ndarray:
    """Continue a grid past its last point with a constant `step` until it passes `until`."""
    last = float(times[-1])
    if last > until:
        return times
    count = int(math.floor((until - last) / step)) + 2
    return np.concatenate([times, last + step * np.arange(1, count + 1)])


def beat_grid(pm: pretty_midi.PrettyMIDI, until: float) -> tuple[np.ndarray, np.ndarray]:
    """(beats, downbeats) in seconds from the tempo map and time signatures, both reaching past `until`.

    pretty_midi stops its grid at the end of the file; past it we continue with the last beat
    period and the last bar's number of beats (the tempo map has nothing more to say there).
    Compound meters (6/8, 9/8, 12/8) give dotted-quarter beats, as pretty_midi defines them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        beats = np.asarray(pm.get_beats(), dtype=np.float64)
        downbeats = np.asarray(pm.get_downbeats(), dtype=np.float64)
    if len(beats) < 2:  # a file whose end is at 0: one beat of the initial tempo
        _, tempi = pm.get_tempo_changes()
        beats = np.array([0.0, 60.0 / float(tempi[0] if len(tempi) else 120.0)])
    beat_period = float(beats[-1] - beats[-2])
    if len(downbeats) >= 2:
        last_bar = downbeats[-2:]
        per_bar = int(np.sum((beats >= last_bar[0] - _EPS) & (beats < last_bar[1] - _EPS)))
    else:
        ts = pm.time_signature_changes
        num = ts[-1].numerator if ts else 4
        per_bar = num // 3 if num % 3 == 0 and num > 3 else num
    beats = _extend(beats, until, beat_period)
    if len(downbeats) == 0:
        downbeats = beats[:1]
    downbeats = _extend(downbeats, until, max(per_bar, 1) * beat_period)
    return beats, downbeats


def _phase(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fraction in [0, 1) of the way from the grid point at or before each time to the next."""
    idx = np.clip(np.searchsorted(grid, times + _EPS, side="right") - 1, 0, len(grid) - 2)
    start, stop = grid[idx], grid[idx + 1]
    return np.clip((times - start) / np.maximum(stop - start, 1e-9), 0.0, 1.0 - 1e-9)


def _frame(seconds: float, frame_rate: float) -> int:
    return int(math.floor(seconds * frame_rate + _EPS))


def midi_features(
    source: str | os.PathLike | pretty_midi.PrettyMIDI,
    *,
    frame_rate: float,
    num_frames: int | None = None,
    max_seconds: float | None = 600.0,
) -> torch.Tensor:
    """Conditioning `[T, F]` float32 for a MIDI file, one row per codec frame (see module docstring).

    T defaults to ceil(end of the last note * frame_rate); `num_frames` pads with zeros (the beat
    position keeps running on the tempo map) or cuts.
    """
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    pm = load_midi(source, max_seconds=max_seconds)
    end = _end_of_notes(pm)
    T = int(math.ceil(end * frame_rate - _EPS)) if num_frames is None else int(num_frames)
    out = np.zeros((T, NUM_FEATURES), dtype=np.float32)
    if T == 0:
        return torch.from_numpy(out)
    pitch = out[:, FEATURE_LAYOUT["pitch"]]
    onset = out[:, FEATURE_LAYOUT["onset"]]
    drums = out[:, FEATURE_LAYOUT["drums"]]
    family = out[:, FEATURE_LAYOUT["family"]]
    for inst in pm.instruments:
        fam = DRUM_FAMILY if inst.is_drum else int(inst.program) // 8
        for note in inst.notes:
            first = _frame(note.start, frame_rate)
            if first >= T:
                continue
            # Frames whose interval overlaps [start, end); a zero-length note still marks its onset frame.
            last = max(first + 1, int(math.ceil(note.end * frame_rate - _EPS)))
            last = min(last, T)
            vel = note.velocity / 127.0
            family[first:last, fam] = 1.0
            if inst.is_drum:
                key = min(max(note.pitch, DRUM_LOW), DRUM_HIGH) - DRUM_LOW
                drums[first, key] = max(drums[first, key], vel)
            else:
                pitch[first:last, note.pitch] = np.maximum(pitch[first:last, note.pitch], vel)
                onset[first, note.pitch] = max(onset[first, note.pitch], vel)
    times = np.arange(T, dtype=np.float64) / frame_rate
    beats, downbeats = beat_grid(pm, until=T / frame_rate)
    pos = out[:, FEATURE_LAYOUT["position"]]
    beat_phase = 2 * np.pi * _phase(times, beats)
    bar_phase = 2 * np.pi * _phase(times, downbeats)
    pos[:, 0], pos[:, 1] = np.sin(beat_phase), np.cos(beat_phase)
    pos[:, 2], pos[:, 3] = np.sin(bar_phase), np.cos(bar_phase)
    down_frames = np.floor(downbeats * frame_rate + _EPS).astype(np.int64)
    pos[down_frames[(down_frames >= 0) & (down_frames < T)], 4] = 1.0
    return torch.from_numpy(out)
