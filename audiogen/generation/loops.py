"""Seamless, bar-exact loops: `audiogen loops -o DIR --count N --bars B --bpm BPM`.

Length: exactly round(bars * beats_per_bar * 60 / bpm * sample_rate) samples, so a game engine
or sampler looping the file stays on the beat forever.

Seamless wrap: generation starts a pre-roll (whole bars, at least the crossfade) before the
loop's first sample, and runs to its last sample. The loop is `x[a : a + L]` (a = pre-roll
length), except that its last `crossfade` seconds fade (equal power) into the pre-roll's last
`crossfade` seconds, `x[a - X : a]`. At the wrap the file therefore goes from (almost exactly)
`x[a - 1]` to `x[a]`: two samples that were generated next to each other. With a MIDI sketch,
the sketch is fitted to the loop's bars and repeated, so the pre-roll plays the loop's last
bars and the crossfade joins like with like. `midi` may also be one sketch per loop (a list):
`AudioGen.loop_sketches` composes them (`loop_meter`: a loop of N beats is a bar of N/4), and the
CLI and batch jobs save each beside its loop file and name it in the loop's `loops.json` row.

The WAV carries the `smpl` chunk (loop start/end) and the `acid` chunk (tempo, beats, meter); an
Ogg or FLAC loop carries `LOOPSTART` / `LOOPLENGTH` Vorbis comments (`audio.save`). Beside the files,
`loops.json` lists each file's loop start and length (samples), BPM, bars, meter, sample rate and
format for tools that take loop regions as numbers (FMOD, Wwise): `record_loop` updates it as each
file is written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from copy import copy as shallow_copy
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import torch

from .. import audio
from ..composer.vocab import METERS
from ..errors import AudiogenError
from ..fileio import update_json
from ..midi import beat_grid, load_midi, midi_features
from .options import LOOP_FORMATS, SamplingConfig, check_batch_size, check_count, check_number, show_value
from .tasks import chunk_sampling, chunks, decode, device_of, encode_prompt, memory_errors, prompt_limit
from .token_loop import generate_tokens

MIN_BPM, MAX_BPM = 20.0, 400.0
MAX_LOOP_SECONDS = 600.0
DEFAULT_CROSSFADE = 0.25
MAX_CROSSFADE = 10.0  # seconds (a loop's crossfade is at most a quarter of the loop anyway)
LOOP_INDEX = "loops.json"


def loop_seconds(bars: int, bpm: float, beats_per_bar: int) -> float:
    return bars * beats_per_bar * 60.0 / bpm


def check_loop(*, count: int, bars: int, bpm: float, beats_per_bar: int, cli: bool = True) -> None:
    """Raise AudiogenError for impossible loop parameters (before any work or file is made); `cli`: name them as
    options (--bpm), else as batch job fields (bpm)."""
    def name(field: str) -> str:
        return f"--{field.replace('_', '-')}" if cli else field

    check_count(count, name("count"))
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
        raise AudiogenError(f"{name('bars')} must be a whole number of at least 1, got {show_value(bars)}")
    if isinstance(bpm, bool) or not (isinstance(bpm, (int, float)) and math.isfinite(bpm)
                                     and MIN_BPM <= bpm <= MAX_BPM):
        raise AudiogenError(f"{name('bpm')} must be between {MIN_BPM:g} and {MAX_BPM:g}, got {show_value(bpm)}")
    if isinstance(beats_per_bar, bool) or not isinstance(beats_per_bar, int) or not 1 <= beats_per_bar <= 32:
        raise AudiogenError(f"{name('beats_per_bar')} must be between 1 and 32, got {show_value(beats_per_bar)}")
    if loop_seconds(bars, bpm, beats_per_bar) > MAX_LOOP_SECONDS:
        raise AudiogenError(f"a {bars}-bar loop at {bpm:g} BPM lasts over {MAX_LOOP_SECONDS:g} s")


def check_crossfade(crossfade: Any) -> float:
    return check_number(crossfade, "crossfade", low=0.0, high=MAX_CROSSFADE)


def loop_meter(beats_per_bar: int) -> str:
    """The composer's meter for a loop of `beats_per_bar` quarter-note beats a bar ("N/4"), or an AudiogenError."""
    if (beats_per_bar, 4) not in METERS:
        known = ", ".join(str(n) for n, d in sorted(METERS) if d == 4)
        raise AudiogenError(f"the composer writes no {beats_per_bar}/4 bars (beats per bar: {known}); "
                            "pass --midi SKETCH.mid or --no-compose")
    return f"{beats_per_bar}/4"


def loop_length(bars: int, bpm: float, beats_per_bar: int, sample_rate: int) -> int:
    """Samples in the loop: the bar-exact length rounded to the nearest sample."""
    return int(round(loop_seconds(bars, bpm, beats_per_bar) * sample_rate))


def fit_sketch(
    sketch: pretty_midi.PrettyMIDI, *, bars: int, bpm: float, beats_per_bar: int, preroll_bars: int, cycles: int,
) -> pretty_midi.PrettyMIDI:
    """The sketch's first `bars` bars, re-timed onto the loop's grid and repeated.

    Beat i of the sketch (its own tempo map) lands on beat i of a `bpm` grid, so a sketch written
    at any tempo plays at the loop's tempo. The result starts `preroll_bars` before the loop (the
    sketch's last bars there) and repeats the loop `cycles` times after.
    """
    beats_in_loop = bars * beats_per_bar
    if sketch.time_signature_changes and all((ts.numerator, ts.denominator) == (beats_per_bar, 4)
                                             for ts in sketch.time_signature_changes):
        # A sketch in the loop's own meter N/4 counts quarter notes, as the loop does; pretty_midi would
        # group 6/4 (9/4, 12/4) in dotted halves. A view without its meter has quarter-note beats.
        sketch = shallow_copy(sketch)
        sketch.time_signature_changes = []
    beats, _ = beat_grid(sketch, until=0.0)
    beats, _ = beat_grid(sketch, until=float(beats[min(len(beats) - 1, beats_in_loop)]) + 1.0)
    source_beats = beats[: beats_in_loop + 1]
    if len(source_beats) < beats_in_loop + 1:
        step = source_beats[-1] - source_beats[-2]
        extra = source_beats[-1] + step * np.arange(1, beats_in_loop + 2 - len(source_beats))
        source_beats = np.concatenate([source_beats, extra])
    beat = 60.0 / bpm
    loop = beats_in_loop * beat

    def retime(t: float) -> float:  # sketch seconds -> loop seconds, piecewise linear on beats
        return float(np.interp(t, source_beats, np.arange(len(source_beats)) * beat))

    out = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    out.time_signature_changes = [pretty_midi.TimeSignature(beats_per_bar, 4, 0.0)]
    offset0 = preroll_bars * beats_per_bar * beat
    total = offset0 + cycles * loop
    for inst in sketch.instruments:
        copy = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
        for note in inst.notes:
            if note.start >= source_beats[-1] - 1e-6:
                continue
            start, end = retime(note.start), min(retime(note.end), loop)
            for cycle in range(-1, cycles + 1):
                shift = offset0 + cycle * loop
                s, e = start + shift, max(end + shift, start + shift + 0.02)
                if e > 0 and s < total:
                    copy.notes.append(pretty_midi.Note(note.velocity, note.pitch, max(0.0, s), min(e, total)))
        if copy.notes:
            out.instruments.append(copy)
    if not any(inst.notes for inst in out.instruments):
        raise AudiogenError(f"the MIDI sketch has no notes in its first {bars} bars")
    return out


def iter_loops(
    lm, codec, *, count: int, bars: int, bpm: float, beats_per_bar: int = 4,
    midi: str | os.PathLike | pretty_midi.PrettyMIDI | Sequence[Any] | None = None,
    prompt: tuple[torch.Tensor, int] | None = None,
    sampling: SamplingConfig, batch_size: int = 4, crossfade: float = DEFAULT_CROSSFADE, progress: Any = False,
    start: int = 0,
) -> Iterator[tuple[int, np.ndarray]]:
    """(i, loop i) for `count` loops, each float32 `[C, L]`, yielded as each chunk of `batch_size` finishes:
    memory follows the batch size, not the count. Bad parameters, a prompt or a shared sketch that cannot be
    used raise here, before the first loop is asked for.

    `midi`: one sketch (path or PrettyMIDI) for every loop, or a sequence of `count` (a list, or
    `AudioGen.loop_sketches(lazy=True)`), loop i's sketch at i, each asked for when its chunk starts.
    Chunk j draws with seed + its first loop's index, so `start` (a multiple of `batch_size`) skips the
    loops before it and makes the same later loops as a run from 0 (resuming a killed batch job).
    """
    check_loop(count=count, bars=bars, bpm=bpm, beats_per_bar=beats_per_bar)
    check_batch_size(batch_size, "--batch-size")
    check_crossfade(crossfade)
    sr, hop = codec.sample_rate, codec.hop_length
    L = loop_length(bars, bpm, beats_per_bar, sr)
    bar_seconds = beats_per_bar * 60.0 / bpm
    fade = min(crossfade, 0.25 * L / sr)
    preroll_bars = max(1, math.ceil(max(fade, 1.0) / bar_seconds - 1e-9))
    a = int(round(preroll_bars * bar_seconds * sr))
    X = int(round(fade * sr))
    T = math.ceil((a + L) / hop)

    sketches: Sequence[Any] = []
    if midi is not None:
        if not lm.config.cond_features:
            raise AudiogenError("this model is unconditional: loops from a MIDI sketch need a MIDI-conditioned model")
        many = isinstance(midi, Sequence) and not isinstance(midi, (str, bytes))
        sketches = midi if many else [midi]  # not list(midi): a lazy sequence composes each when asked for
        if many and len(sketches) != count:
            raise ValueError(f"midi: one sketch or a list of {count}, got {len(sketches)}")
    prompt_codes, Tp = None, 0
    if prompt is not None:
        prompt_codes, _ = encode_prompt(codec, prompt[0], prompt[1], max_frames=min(prompt_limit(lm) // 2, T))
        Tp = prompt_codes.shape[-1]

    def condition(sketch: Any) -> torch.Tensor:  # [Tp + T', F]: the fitted sketch, after the prompt's null rows
        fitted = fit_sketch(load_midi(sketch), bars=bars, bpm=bpm, beats_per_bar=beats_per_bar,
                            preroll_bars=preroll_bars, cycles=2)
        cond = midi_features(fitted, frame_rate=codec.frame_rate, num_frames=T + lm.config.cond_lookahead + 1,
                             max_seconds=None)
        return torch.cat([torch.zeros(Tp, cond.shape[1]), cond]) if Tp else cond

    shared_cond = condition(sketches[0]) if len(sketches) == 1 else None  # one sketch: fitted once
    chunk_list = list(chunks(count, batch_size, start=start))  # checks `start` now, not at the first item

    def generate() -> Iterator[tuple[int, np.ndarray]]:  # the work, chunk by chunk, as the caller asks
        shared, bar_or_flag = None, progress
        if progress is True:  # one bar with ETA across every batch, not one per batch
            from ..progress import bar

            steps = Tp + T + lm.pattern.max_delay
            shared = bar_or_flag = bar(len(chunk_list) * steps, "loops", unit="step")
        try:
            for first, b in chunk_list:
                cond = None
                if sketches:  # [1, T', F] shared by the batch, or [b, T', F]: each loop its own sketch (per chunk)
                    rows = [shared_cond] if shared_cond is not None else [condition(s) for s in
                                                                          sketches[first : first + b]]
                    cond = torch.stack(rows).to(device_of(lm))
                with memory_errors(b):
                    codes = generate_tokens(lm, num_frames=Tp + T, batch_size=b, prompt=prompt_codes, cond=cond,
                                            sampling=chunk_sampling(sampling, first), progress=bar_or_flag,
                                            desc="loops")
                    x = decode(codec, codes, start_frame=Tp, samples=T * hop)  # [b, C, T * hop]
                del codes, cond
                for j, item in enumerate(x):
                    yield first + j, close_loop(item, start=a, length=L, crossfade=X)
        finally:
            if shared is not None:
                shared.close()

    return generate()


def close_loop(x: np.ndarray, *, start: int, length: int, crossfade: int) -> np.ndarray:
    """`x[:, start : start + length]` whose last `crossfade` samples fade into `x[:, start - crossfade : start]`."""
    assert x.shape[-1] >= start + length and start >= crossfade, "generation too short for the loop"
    y = x[:, start : start + length].copy()
    if crossfade > 0:
        t = (np.arange(crossfade, dtype=np.float64) + 0.5) / crossfade
        fade_in = np.sin(0.5 * np.pi * t).astype(np.float32)  # equal power: partly uncorrelated material
        fade_out = np.cos(0.5 * np.pi * t).astype(np.float32)
        y[:, -crossfade:] = y[:, -crossfade:] * fade_out + x[:, start - crossfade : start] * fade_in
    peak = float(np.abs(y).max()) if y.size else 0.0
    return (y / peak * 0.98 if peak > 0.98 else y).astype(np.float32)


def loop_info(length: int, *, bars: int, bpm: float, beats_per_bar: int) -> audio.LoopInfo:
    return audio.LoopInfo(start=0, end=length - 1, bpm=float(bpm), beats=bars * beats_per_bar,
                          beats_per_bar=beats_per_bar)


def check_format(fmt: str) -> str:
    """The loop file format (`wav`, `ogg` or `flac`), or an AudiogenError."""
    if not isinstance(fmt, str) or fmt not in LOOP_FORMATS:
        raise AudiogenError(f"format must be one of {', '.join(LOOP_FORMATS)}, got {show_value(fmt)}")
    return fmt


def record_loop(path: str | os.PathLike, loop: audio.LoopInfo, *, sample_rate: int,
                sketch: str | None = None) -> dict[str, Any]:
    """Add (or replace) the row of the loop file `path` in `loops.json` beside it; returns the row.

    `sketch`: the file name of the MIDI sketch the loop was rendered from, saved beside it (the row's
    "sketch" field; absent for free loops and loops from a user's `--midi`).

    The file is rewritten atomically under a lock of its folder, so batch shards writing into one
    folder keep each other's rows. Rows are sorted by file name.
    """
    path = Path(path)
    beats_per_bar = int(loop.beats_per_bar)
    row = {"file": path.name, "format": path.suffix.lower().lstrip("."), "loop_start": int(loop.start),
           "loop_length": int(loop.end - loop.start + 1), "bpm": loop.bpm,
           "bars": int(loop.beats or 0) // beats_per_bar, "beats_per_bar": beats_per_bar,
           "sample_rate": int(sample_rate)}
    if sketch is not None:
        row["sketch"] = str(sketch)

    def update(index: Any) -> dict[str, Any]:
        old = index.get("loops", []) if isinstance(index, dict) else []
        rows = [r for r in old if isinstance(r, dict) and r.get("file") != path.name]
        return {"loops": sorted([*rows, row], key=lambda r: str(r.get("file")))}

    update_json(path.parent / LOOP_INDEX, update, default={"loops": []})
    return row
