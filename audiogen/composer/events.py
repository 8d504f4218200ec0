"""MIDI <-> composer events: the one encoder and decoder of the event vocabulary (`vocab.py`).

    piece = midi_to_events(pm, vocab)            # Encoded: body tokens (Bar ... EOS), key, meter, bpm, bars
    tokens = vocab.header(style=0, key=piece.key, meter=piece.meter, bpm=piece.bpm, bars=piece.bars)
    pm2 = events_to_midi(tokens + piece.tokens, vocab)

Times go through quarter notes computed from the tempo map (seconds -> quarters exactly, not via
rounded ticks), then onto the grid of `vocab.steps_per_quarter` steps. Bars come from the time
signature changes (4/4 when there are none); a meter change in the middle of a bar starts a new
bar there and the rest of the piece moves later to fill the short bar, since a bar is always
whole in the vocabulary. `pickup_steps` moves the whole piece later (a score's anacrusis, so its
first downbeat lands on a bar line). Notes of one program sounding the same pitch from the same
step are merged (the longest kept). Round trip: a note on the grid comes back with the same
pitch, onset, program and duration bucket (exact up to a whole 4/4 bar) and velocity bucket.

Decoding writes `resolution` 480 ticks a quarter, the tempo (the header's metronome mark, or
`bpm=` exactly), the meters, the key signature, one instrument per program (drums apart), and a
text event "end" at the end of the last bar, so `pm.get_end_time()` is exactly the bars written.

`python -m pytest tests/composer/test_composer_vocab.py` exercises it.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pretty_midi

from ..errors import AudiogenError
from .vocab import (
    DRUMS,
    HEADER_LENGTH,
    METERS,
    STYLES,
    TEMPI,
    VELOCITIES,
    Vocab,
    estimate_key,
    parse_meter,
    tempo_index,
    velocity_index,
)

RESOLUTION = 480  # ticks per quarter note in written files (divisible by every steps_per_quarter)
ON_GRID = 1e-3  # an onset within this many grid steps of a step is on the grid


@dataclasses.dataclass
class GridNote:
    onset: int  # grid steps from the start of the piece
    duration: int  # grid steps, >= 1
    pitch: int
    velocity: int
    program: int  # 0-127, or DRUMS


@dataclasses.dataclass
class Encoded:
    tokens: list[int]  # the body: Bar ... [EOS]
    key: int  # key number (pretty_midi's: 0-11 major, 12-23 minor)
    meter: tuple[int, int]  # at the first bar
    bpm: float  # quarter notes per minute at the first bar
    bars: int
    notes: int
    off_grid: int  # notes whose onset was moved onto the grid


# ---------------------------------------------------------------------------- reading MIDI


def _quarters(pm: pretty_midi.PrettyMIDI):
    """A function seconds -> quarter notes from the start, through the tempo map."""
    times, tempi = pm.get_tempo_changes()
    if len(times) == 0:
        times, tempi = np.array([0.0]), np.array([120.0])
    times = np.asarray(times, np.float64)
    tempi = np.asarray(tempi, np.float64)
    starts = np.concatenate([[0.0], np.cumsum(np.diff(times) * tempi[:-1] / 60.0)])  # quarters at each change

    def quarters(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, np.float64)
        i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
        return starts[i] + (t - times[i]) * tempi[i] / 60.0

    return quarters, times, tempi


def pitch_class_histogram(notes, *, weighted: bool = True) -> np.ndarray:
    """`[12]` pitch-class weights of non-drum notes (`GridNote`s or (pitch, duration) pairs), by duration."""
    hist = np.zeros(12)
    for note in notes:
        if isinstance(note, GridNote):
            if note.program == DRUMS:
                continue
            pitch, dur = note.pitch, note.duration
        else:
            pitch, dur = note
        hist[int(pitch) % 12] += float(dur) if weighted else 1.0
    return hist


def grid_notes(pm: pretty_midi.PrettyMIDI, vocab: Vocab) -> tuple[list[GridNote], int]:
    """Every note on the grid (onsets and ends rounded to steps) and how many onsets moved."""
    quarters, _, _ = _quarters(pm)
    q = vocab.steps_per_quarter
    out, moved = [], 0
    for inst in pm.instruments:
        program = DRUMS if inst.is_drum else int(inst.program)
        if not inst.notes:
            continue
        starts = quarters(np.array([n.start for n in inst.notes])) * q
        ends = quarters(np.array([n.end for n in inst.notes])) * q
        for note, s, e in zip(inst.notes, starts, ends):
            onset = int(round(s))
            moved += abs(s - onset) > ON_GRID
            out.append(GridNote(onset, max(1, int(round(e)) - onset), int(note.pitch), int(note.velocity), program))
    return out, moved


def _meters(pm: pretty_midi.PrettyMIDI, vocab: Vocab, quarters) -> list[tuple[int, tuple[int, int]]]:
    """(grid step, meter) of each time signature change, the first at step 0."""
    changes: dict[int, tuple[int, int]] = {}
    for ts in sorted(pm.time_signature_changes, key=lambda ts: ts.time):
        step = int(round(float(quarters(ts.time)) * vocab.steps_per_quarter))
        changes[step] = parse_meter((ts.numerator, ts.denominator))
    if 0 not in changes:
        first = min(changes) if changes else None
        changes[0] = (4, 4) if first is None or first > 0 else changes[first]
    return sorted(changes.items())


def midi_to_events(
    pm: pretty_midi.PrettyMIDI,
    vocab: Vocab,
    *,
    pickup_steps: int = 0,
    key: int | None = None,
    meter: tuple[int, int] | None = None,
    eos: bool = True,
) -> Encoded:
    """Encode `pm` as body tokens (Bar ... EOS); see the module docstring.

    `meter` replaces the file's time signatures (a prompt written for the meter asked for);
    `key` replaces the key found from the key signature and the notes.
    """
    quarters, tempo_times, tempi = _quarters(pm)
    notes, moved = grid_notes(pm, vocab)
    if not notes:
        raise AudiogenError("MIDI has no notes")
    segments = [(0, meter)] if meter is not None else _meters(pm, vocab, quarters)

    # Bars. A meter change inside a bar moves everything from it on to the next bar line.
    seg_old = [old + (pickup_steps if old > 0 else 0) for old, _ in segments]
    seg_new: list[int] = []
    bar_starts: list[int] = []
    bar_meters: list[tuple[int, int]] = []
    for i in range(len(segments)):
        if i:
            prev_meter, prev_len = segments[i - 1][1], vocab.bar_steps(segments[i - 1][1])
            span = seg_old[i] - seg_old[i - 1]
            count = max(1, -(-span // prev_len))
            bar_starts += [seg_new[-1] + k * prev_len for k in range(count)]
            bar_meters += [prev_meter] * count
            seg_new.append(seg_new[-1] + count * prev_len)
        else:
            seg_new.append(0)
    shifts = [n - o for n, o in zip(seg_new, seg_old)]

    def move(step: int) -> int:
        i = max(0, int(np.searchsorted(seg_old, step, side="right")) - 1)
        return step + shifts[i]

    placed: dict[tuple[int, int, int], GridNote] = {}
    for n in notes:
        onset = move(n.onset + pickup_steps)
        dur = min(n.duration, vocab.durations[-1])
        k = (onset, n.program, n.pitch)
        if k not in placed or placed[k].duration < dur:
            placed[k] = GridNote(onset, dur, n.pitch, n.velocity, n.program)
    end = max(n.onset + n.duration for n in placed.values())
    last_meter = segments[-1][1]
    t = seg_new[-1]
    while t < end:  # the last segment's bars, up to the end of the last note
        bar_starts.append(t)
        bar_meters.append(last_meter)
        t += vocab.bar_steps(last_meter)
    # Drop trailing bars that start after the last onset and hold no sound (a meter change after the music).
    last_onset = max(n.onset for n in placed.values())
    while len(bar_starts) > 1 and bar_starts[-1] > last_onset and bar_starts[-1] >= end:
        bar_starts.pop()
        bar_meters.pop()

    # Tempo at each bar line (the metronome mark nearest the tempo in force there).
    tempo_steps = [move(int(round(float(quarters(t)) * vocab.steps_per_quarter + (pickup_steps if t > 0 else 0))))
                   for t in tempo_times]
    starts_arr = np.asarray(bar_starts)
    bar_tempi = [tempo_index(float(tempi[max(0, int(np.searchsorted(tempo_steps, b, side="right")) - 1)]))
                 for b in bar_starts]

    if key is None:
        signature = pm.key_signature_changes[0].key_number if pm.key_signature_changes else None
        key = estimate_key(pitch_class_histogram(placed.values()), signature=signature)

    by_bar: list[list[GridNote]] = [[] for _ in bar_starts]
    for n in sorted(placed.values(), key=lambda n: (n.onset, n.program, n.pitch)):
        b = int(np.searchsorted(starts_arr, n.onset, side="right")) - 1
        by_bar[b].append(n)
    tokens: list[int] = []
    meter_now, tempo_now = bar_meters[0], bar_tempi[0]
    for b, bar_notes in enumerate(by_bar):
        tokens.append(vocab.bar)
        if bar_meters[b] != meter_now:
            meter_now = bar_meters[b]
            tokens.append(vocab.token("meter", METERS.index(meter_now)))
        if bar_tempi[b] != tempo_now:
            tempo_now = bar_tempi[b]
            tokens.append(vocab.token("tempo", tempo_now))
        position = program = velocity = -1
        for n in bar_notes:
            pos = n.onset - bar_starts[b]
            if pos != position:
                position = pos
                tokens.append(vocab.token("position", pos))
            if n.program != program:
                program = n.program
                tokens.append(vocab.token("program", program))
            vel = velocity_index(n.velocity)
            if vel != velocity:
                velocity = vel
                tokens.append(vocab.token("velocity", vel))
            tokens.append(vocab.token("pitch", n.pitch))
            tokens.append(vocab.token("duration", vocab.duration_index(n.duration)))
    if eos:
        tokens.append(vocab.eos)
    return Encoded(tokens=tokens, key=int(key), meter=bar_meters[0], bpm=float(TEMPI[bar_tempi[0]]),
                   bars=len(bar_starts), notes=len(placed), off_grid=int(moved))


# ---------------------------------------------------------------------------- writing MIDI


@dataclasses.dataclass
class Header:
    style: int
    key: int
    meter: tuple[int, int]
    tempo: int  # index into TEMPI
    bars: int  # index into BAR_COUNTS


def read_header(tokens, vocab: Vocab) -> Header:
    kinds = [vocab.kind(int(t)) for t in tokens[:HEADER_LENGTH]]
    if kinds != ["bos", "style", "key", "meter", "tempo", "bars"]:
        raise ValueError(f"not a header: {vocab.describe(tokens[:HEADER_LENGTH])}")
    v = [vocab.value(int(t)) for t in tokens[:HEADER_LENGTH]]
    return Header(style=v[1], key=v[2], meter=METERS[v[3]], tempo=v[4], bars=v[5])


def style_name(index: int, user_styles: list[str] | tuple[str, ...] = ()) -> str:
    if index < len(STYLES):
        return STYLES[index]
    k = index - len(STYLES)
    return user_styles[k] if k < len(user_styles) else f"user{k}"


def events_to_midi(
    tokens,
    vocab: Vocab,
    *,
    bpm: float | None = None,
    key: int | None = None,
    meter: tuple[int, int] | None = None,
    tempo: int | None = None,
) -> pretty_midi.PrettyMIDI:
    """Tokens (a header then the body, or a body with `meter`/`tempo`/`key` given) -> PrettyMIDI.

    `bpm` writes that exact tempo instead of the header's metronome mark (tempo changes inside
    the piece keep their ratio to it).
    """
    tokens = [int(t) for t in tokens]
    if tokens and tokens[0] == vocab.bos:
        header = read_header(tokens, vocab)
        key = header.key if key is None else key
        meter = meter or header.meter
        tempo = header.tempo if tempo is None else tempo
        tokens = tokens[HEADER_LENGTH:]
    meter = meter or (4, 4)
    tempo = tempo_index(120.0) if tempo is None else tempo
    scale = (bpm / TEMPI[tempo]) if bpm else 1.0
    ticks_per_step = RESOLUTION // vocab.steps_per_quarter

    bar_start, bar_len, started = 0, vocab.bar_steps(meter), False
    meters = [(0, meter)]
    tempos = [(0, TEMPI[tempo] * scale)]
    position = program = velocity = -1
    pitch = None
    notes: dict[int, list[tuple[int, int, int, int]]] = {}
    for t in tokens:
        kind, value = vocab.kind(t), vocab.value(t)
        if kind == "eos":
            break
        if kind == "bar":
            if started:
                bar_start += bar_len
            started = True
            position = program = velocity = -1
        elif kind == "meter":
            meter = METERS[value]
            bar_len = vocab.bar_steps(meter)
            meters.append((bar_start, meter))
        elif kind == "tempo":
            tempos.append((bar_start, TEMPI[value] * scale))
        elif kind == "position":
            position = value
        elif kind == "program":
            program = value
        elif kind == "velocity":
            velocity = VELOCITIES[value]
        elif kind == "pitch":
            pitch = value
        elif kind == "duration" and pitch is not None and position >= 0 and program >= 0:
            onset = bar_start + position
            notes.setdefault(program, []).append((onset, vocab.durations[value], pitch, max(velocity, 1)))
            pitch = None
    end_step = bar_start + bar_len if started else 0

    pm = pretty_midi.PrettyMIDI(resolution=RESOLUTION, initial_tempo=tempos[0][1])
    ticks = [(step * ticks_per_step, 60.0 / (qpm * RESOLUTION)) for step, qpm in _dedupe(tempos)]
    pm._tick_scales = ticks  # pretty_midi's tempo map (it has no public setter for tempo changes)
    pm._update_tick_to_time(end_step * ticks_per_step + 1)

    def seconds(step: int) -> float:
        return float(pm.tick_to_time(int(step * ticks_per_step)))

    for step, (num, den) in _dedupe(meters):
        pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, seconds(step)))
    if key is not None:
        pm.key_signature_changes.append(pretty_midi.KeySignature(int(key), 0.0))
    for program in sorted(notes):
        drums = program == DRUMS
        name = "Drums" if drums else pretty_midi.program_to_instrument_name(program)
        inst = pretty_midi.Instrument(program=0 if drums else program, is_drum=drums, name=name)
        for onset, dur, pitch, vel in notes[program]:
            stop = min(onset + dur, end_step)
            inst.notes.append(pretty_midi.Note(velocity=vel, pitch=pitch, start=seconds(onset), end=seconds(stop)))
        pm.instruments.append(inst)
    if started:
        pm.text_events.append(pretty_midi.Text("end", seconds(end_step)))
    return pm


def _dedupe(changes: list[tuple[int, object]]) -> list[tuple[int, object]]:
    """The last change at each step, and none that repeats the one before."""
    out: list[tuple[int, object]] = []
    for step, value in changes:
        if out and out[-1][0] == step:
            out[-1] = (step, value)
        elif not out or out[-1][1] != value:
            out.append((step, value))
    return out


def midi_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    """The file `pm.write` would make, as bytes."""
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.write(buffer)
    return buffer.getvalue()
