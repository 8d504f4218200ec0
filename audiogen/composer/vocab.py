"""The composer's event vocabulary (REMI-like) and its grammar.

    vocab = Vocab()                                  # 4 grid steps per quarter note (1/16 of a 4/4 bar)
    vocab.token("pitch", 60), vocab.kind(t), vocab.value(t)
    state = GrammarState(vocab); state.allowed() ; state.advance(t)

A piece is a header of control tokens, then bars of events:

    BOS Style Key Meter Tempo Bars                        the conditioning (what `compose` asks for)
    Bar [Meter] [Tempo]                                   a bar; Meter/Tempo only where they change
      Position p  [Program i] [Velocity v] Pitch n Duration d  ...   notes at grid step p of the bar
      Position p' ...                                     (p' > p)
    Bar ...
    EOS

Positions are grid steps from the bar line: `steps_per_quarter` per quarter note, so a bar of
3/4 has 12 positions and one of 6/8 has 12 (eighths are 2 steps). Program and Velocity are
sticky within a bar (written when they change, and always for a bar's first note), so every bar
reads on its own; inside one position notes come in (program, pitch) order, so the encoding of
a set of notes is unique. Durations are grid steps, exact up to a whole 4/4 bar and bucketed
above; tempi are metronome marks; velocities 8 buckets. Drums are the program `DRUMS` (their
pitches are GM percussion keys). Styles: the four corpus groups plus `USER_STYLE_SLOTS` slots
that a model maps to user labels (a MIDI folder's style).

Keys are pretty_midi key numbers: 0-11 C..B major, 12-23 C..B minor. `parse_key("F#m")`,
`parse_meter("6/8")` raise `AudiogenError` with one line for impossible input.

`python -m pytest tests/composer/test_composer_vocab.py` exercises it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np

from ..errors import AudiogenError

STYLES = ("chorale", "folk", "renaissance", "classical")
USER_STYLE_SLOTS = 8
# Supported meters (numerator, denominator); the order is part of the vocabulary.
METERS = ((4, 4), (3, 4), (2, 4), (6, 8), (2, 2), (3, 2), (4, 2), (5, 4), (6, 4), (1, 4), (3, 8), (9, 8),
          (12, 8), (5, 8), (7, 8), (7, 4), (2, 8), (4, 8), (3, 16), (6, 16), (9, 16), (12, 16))
# Maelzel's metronome marks (quarter notes per minute) and a little more.
TEMPI = (40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 63, 66, 69, 72, 76, 80, 84, 88, 92, 96, 100, 104, 108,
         112, 116, 120, 126, 132, 138, 144, 152, 160, 168, 176, 184, 192, 200, 208, 224, 240)
VELOCITIES = (16, 32, 48, 64, 80, 96, 112, 127)
BAR_COUNTS = tuple(range(1, 17)) + (20, 24, 32, 48, 64, 96, 128)  # "at least this many bars"
DRUMS = 128  # the program index of the drum track
NUM_PROGRAMS = 129
NUM_KEYS = 24
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 9, 10, 11)  # natural minor with the raised 6th and 7th (melodic/harmonic)

KINDS = ("pad", "bos", "eos", "bar", "style", "key", "meter", "tempo", "bars", "position", "program",
         "velocity", "pitch", "duration")


# ---------------------------------------------------------------------------- keys, meters, buckets


def key_name(key: int) -> str:
    return f"{NOTE_NAMES[key % 12]} {'minor' if key >= 12 else 'major'}"


def key_tonic(key: int) -> int:
    return key % 12


def key_is_minor(key: int) -> bool:
    return key >= 12


def scale_pitch_classes(key: int) -> tuple[int, ...]:
    """Pitch classes in the key (major scale; minor with both raised 6th and 7th)."""
    steps = MINOR_SCALE if key_is_minor(key) else MAJOR_SCALE
    return tuple(sorted((key_tonic(key) + s) % 12 for s in steps))


def transpose_key(key: int, semitones: int) -> int:
    return (key_tonic(key) + semitones) % 12 + (12 if key_is_minor(key) else 0)


_KEY = re.compile(r"^\s*([A-Ga-g])\s*([#♯b♭]?)\s*(major|maj|minor|min|m|M)?\s*$")
_LETTER = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_key(text: str | int) -> int:
    """`"D"`, `"F# major"`, `"Bbm"`, `"c minor"`, or a key number 0-23 -> key number."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        if 0 <= int(text) < NUM_KEYS:
            return int(text)
        raise AudiogenError(f"key number {text} is impossible (0-11 major, 12-23 minor)")
    match = _KEY.match(str(text))
    if not match:
        raise AudiogenError(f"key {text!r} is impossible (examples: C, F#, Bb major, D minor, Am)")
    letter, accidental, mode = match.groups()
    pc = (_LETTER[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}[accidental]) % 12
    minor = mode in ("m", "min", "minor")
    return pc + (12 if minor else 0)


def parse_meter(text: str | tuple[int, int]) -> tuple[int, int]:
    """`"3/4"` or `(3, 4)` -> (3, 4), if the vocabulary has that meter."""
    if isinstance(text, tuple):
        meter = tuple(int(v) for v in text)
    else:
        match = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", str(text))
        if not match:
            raise AudiogenError(f"meter {text!r} is impossible (write it like 3/4 or 6/8)")
        meter = (int(match.group(1)), int(match.group(2)))
    if meter not in METERS:
        known = ", ".join(f"{n}/{d}" for n, d in METERS)
        raise AudiogenError(f"meter {meter[0]}/{meter[1]} is not supported (choose from {known})")
    return meter  # type: ignore[return-value]


def meter_quarters(meter: tuple[int, int]) -> float:
    """Quarter notes in one bar."""
    return meter[0] * 4.0 / meter[1]


def nearest(values: tuple[int, ...], x: float) -> int:
    """Index of the bucket value nearest to x (ties: the lower)."""
    return int(np.argmin(np.abs(np.asarray(values, dtype=np.float64) - x)))


def tempo_index(bpm: float) -> int:
    """Nearest metronome mark in log-tempo (so 10 % faster is the same distance everywhere)."""
    return int(np.argmin(np.abs(np.log(np.asarray(TEMPI, dtype=np.float64)) - np.log(max(bpm, 1e-3)))))


def velocity_index(velocity: int) -> int:
    return nearest(VELOCITIES, velocity)


def bars_index(bars: int) -> int:
    """The largest bar-count bucket not above `bars` (bars >= 1)."""
    return max(0, int(np.searchsorted(BAR_COUNTS, bars, side="right")) - 1)


# ---------------------------------------------------------------------------- the vocabulary


@dataclasses.dataclass(frozen=True)
class Vocab:
    """Token ids: one contiguous range per kind, in `KINDS` order."""

    steps_per_quarter: int = 4

    def __post_init__(self) -> None:
        if self.steps_per_quarter not in (1, 2, 3, 4, 6, 8, 12):
            raise AudiogenError("composer: steps_per_quarter must be one of 1, 2, 3, 4, 6, 8, 12")
        sizes = {"pad": 1, "bos": 1, "eos": 1, "bar": 1, "style": len(STYLES) + USER_STYLE_SLOTS,
                 "key": NUM_KEYS, "meter": len(METERS), "tempo": len(TEMPI), "bars": len(BAR_COUNTS),
                 "position": self.max_positions, "program": NUM_PROGRAMS, "velocity": len(VELOCITIES),
                 "pitch": 128, "duration": len(self.durations)}
        starts, total = {}, 0
        for kind in KINDS:
            starts[kind] = total
            total += sizes[kind]
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_sizes", sizes)
        object.__setattr__(self, "size", total)
        kinds = np.zeros(total, np.int64)
        values = np.zeros(total, np.int64)
        for k, kind in enumerate(KINDS):
            kinds[starts[kind] : starts[kind] + sizes[kind]] = k
            values[starts[kind] : starts[kind] + sizes[kind]] = np.arange(sizes[kind])
        object.__setattr__(self, "kinds", kinds)  # token -> index in KINDS
        object.__setattr__(self, "values", values)  # token -> index within its kind

    # -- sizes
    @property
    def durations(self) -> tuple[int, ...]:
        """Duration buckets in grid steps: every step up to 4 quarters, then 4.5 .. 24 quarters."""
        q = self.steps_per_quarter
        longer = [int(x * q) for x in (4.5, 5, 6, 7, 8, 10, 12, 16, 24)]
        return tuple(range(1, 4 * q + 1)) + tuple(longer)

    @property
    def max_positions(self) -> int:
        return max(self.bar_steps(m) for m in METERS)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a token id could: cached token arrays are only reused under the same one."""
        tables = [self.steps_per_quarter, KINDS, [self._sizes[k] for k in KINDS], STYLES, METERS, TEMPI,
                  VELOCITIES, BAR_COUNTS, self.durations]
        return hashlib.sha1(repr(tables).encode()).hexdigest()[:12]

    def bar_steps(self, meter: tuple[int, int]) -> int:
        """Grid steps in one bar of `meter`."""
        return int(round(meter_quarters(meter) * self.steps_per_quarter))

    def range(self, kind: str) -> tuple[int, int]:
        """[start, stop) ids of a kind."""
        start = self._starts[kind]
        return start, start + self._sizes[kind]

    # -- ids
    def token(self, kind: str, value: int = 0) -> int:
        size = self._sizes[kind]
        if not 0 <= value < size:
            raise ValueError(f"{kind} value {value} out of range [0, {size})")
        return self._starts[kind] + int(value)

    def kind(self, token: int) -> str:
        return KINDS[self.kinds[token]]

    def value(self, token: int) -> int:
        return int(self.values[token])

    @property
    def pad(self) -> int:
        return self._starts["pad"]

    @property
    def bos(self) -> int:
        return self._starts["bos"]

    @property
    def eos(self) -> int:
        return self._starts["eos"]

    @property
    def bar(self) -> int:
        return self._starts["bar"]

    def duration_index(self, steps: int) -> int:
        return nearest(self.durations, steps)

    def describe(self, tokens) -> list[str]:
        """Readable names (`Pitch_60`, `Meter_3/4`, ...) for debugging and tests."""
        out = []
        for t in tokens:
            kind, v = self.kind(int(t)), self.value(int(t))
            if kind == "meter":
                out.append(f"Meter_{METERS[v][0]}/{METERS[v][1]}")
            elif kind == "tempo":
                out.append(f"Tempo_{TEMPI[v]}")
            elif kind == "duration":
                out.append(f"Duration_{self.durations[v]}")
            elif kind == "velocity":
                out.append(f"Velocity_{VELOCITIES[v]}")
            elif kind == "key":
                out.append(f"Key_{key_name(v).replace(' ', '_')}")
            elif kind == "bars":
                out.append(f"Bars_{BAR_COUNTS[v]}")
            elif kind in ("pad", "bos", "eos", "bar"):
                out.append(kind.upper())
            else:
                out.append(f"{kind.capitalize()}_{v}")
        return out

    def header(self, *, style: int, key: int, meter: tuple[int, int], bpm: float, bars: int) -> list[int]:
        """BOS Style Key Meter Tempo Bars (style is a slot index: `STYLES` then user slots)."""
        return [self.bos, self.token("style", style), self.token("key", key),
                self.token("meter", METERS.index(meter)), self.token("tempo", tempo_index(bpm)),
                self.token("bars", bars_index(max(1, bars)))]


HEADER_KINDS = ("bos", "style", "key", "meter", "tempo", "bars")
HEADER_LENGTH = len(HEADER_KINDS)


# ---------------------------------------------------------------------------- grammar


class GrammarError(ValueError):
    """A token sequence that breaks the grammar (a bug or a corrupt dataset, not a user error)."""


@dataclasses.dataclass
class GrammarState:
    """Where a sequence stands in the grammar; `allowed()` lists the legal next tokens.

    Starts before BOS (or, with `header=False`, right after a header with `meter`). Generation
    adds its own limits (bar count, key, fixed meter) on top of `allowed()`. Every sequence the
    grammar accepts decodes, and every set of notes has exactly one encoding it accepts.
    """

    vocab: Vocab
    header: bool = True
    meter: tuple[int, int] = (4, 4)
    tempo: int = -1
    phase: str = "bos"  # a header kind, "bar" (the first Bar), "body", "duration" or "done"
    slot: str = "note"  # in the body, the last token: "note" (a Duration, or a bar's start), "position",
    #                     "program" or "velocity"
    bars: int = 0  # Bar tokens seen
    position: int = -1  # current position in the bar (-1: none yet)
    program: int = -1  # sticky within a bar (-1: none yet)
    velocity: int = -1
    last_pitch: int = -1  # last pitch at this position and program
    notes_in_bar: int = 0
    fresh_bar: bool = False  # nothing but Meter / Tempo since the Bar
    meter_written: bool = False
    tempo_written: bool = False

    def __post_init__(self) -> None:
        if not self.header and self.phase == "bos":
            self.phase = "bar"

    def copy(self) -> GrammarState:
        return dataclasses.replace(self)

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def _pitch_range(self) -> tuple[int, int]:
        start, stop = self.vocab.range("pitch")
        return (start + self.last_pitch + 1, stop)

    def _other(self, kind: str, current: int) -> list[tuple[int, int]]:
        span = self.vocab.range(kind)
        return [span] if current < 0 else _without(span, span[0] + current)

    def allowed(self) -> list[tuple[int, int]]:
        """Legal next tokens as [start, stop) id ranges (never empty before EOS)."""
        v, phase, slot = self.vocab, self.phase, self.slot
        if phase == "done":
            return []
        if phase in HEADER_KINDS or phase == "bar":
            return [v.range(phase)]
        if phase == "duration":
            return [v.range("duration")]
        if slot == "velocity":
            return [self._pitch_range()]
        if slot == "program":
            if self.velocity < 0:
                return [v.range("velocity")]
            return self._other("velocity", self.velocity) + [self._pitch_range()]
        if slot == "position":
            out = self._other("program", self.program)
            if self.program < 0:
                return out
            if self.velocity < 0:
                return out + [v.range("velocity")]
            return out + self._other("velocity", self.velocity) + [self._pitch_range()]
        out = []
        if self.fresh_bar:
            if not self.meter_written and not self.tempo_written:
                out += self._other("meter", METERS.index(self.meter))
            if not self.tempo_written:
                out += self._other("tempo", self.tempo)
        start, _ = v.range("position")
        bar_steps = v.bar_steps(self.meter)
        if self.position + 1 < bar_steps:
            out.append((start + self.position + 1, start + bar_steps))
        if self.position >= 0:  # another note at this position: a higher program or pitch, another velocity
            p0, p1 = v.range("program")
            if self.program + 1 < NUM_PROGRAMS:
                out.append((p0 + self.program + 1, p1))
            if self.last_pitch + 1 < 128:
                out += self._other("velocity", self.velocity) + [self._pitch_range()]
        return out + [v.range("bar"), v.range("eos")]

    def advance(self, token: int) -> None:
        """Move past `token`; raises GrammarError if it is not allowed here."""
        token = int(token)
        if not any(a <= token < b for a, b in self.allowed()):
            name = self.vocab.describe([token])[0]
            raise GrammarError(f"{name} not allowed here (phase {self.phase}, after {self.slot}, bar {self.bars}, "
                               f"position {self.position})")
        v = self.vocab
        kind, value = v.kind(token), v.value(token)
        if kind == "meter":
            self.meter = METERS[value]
            self.meter_written = True
        elif kind == "tempo":
            self.tempo = value
            self.tempo_written = True
        if self.phase in HEADER_KINDS:
            nxt = HEADER_KINDS.index(self.phase) + 1
            self.phase = HEADER_KINDS[nxt] if nxt < HEADER_LENGTH else "bar"
            return
        if kind == "eos":
            self.phase = "done"
        elif kind == "bar":
            self.bars += 1
            self.phase, self.slot = "body", "note"
            self.position = self.program = self.velocity = self.last_pitch = -1
            self.notes_in_bar = 0
            self.fresh_bar, self.meter_written, self.tempo_written = True, False, False
        elif kind in ("position", "program", "velocity"):
            self.fresh_bar = False
            self.slot = kind
            if kind == "position":
                self.position = value
                self.last_pitch = -1
            elif kind == "program":
                self.program = value
                self.last_pitch = -1
            else:
                self.velocity = value
        elif kind == "pitch":
            self.last_pitch = value
            self.phase = "duration"
        elif kind == "duration":
            self.phase, self.slot = "body", "note"
            self.notes_in_bar += 1


def _without(span: tuple[int, int], token: int) -> list[tuple[int, int]]:
    a, b = span
    return [r for r in ((a, token), (token + 1, b)) if r[0] < r[1]]


def check_grammar(vocab: Vocab, tokens, *, header: bool = True, meter: tuple[int, int] = (4, 4)) -> GrammarState:
    """Walk `tokens` through the grammar (raises GrammarError at the first illegal one); the final state."""
    state = GrammarState(vocab, header=header, meter=meter)
    for t in tokens:
        state.advance(int(t))
    return state


# ---------------------------------------------------------------------------- key finding

# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_scores(histogram: np.ndarray) -> np.ndarray:
    """Correlation of a pitch-class histogram `[12]` with each key's profile: `[24]` (key numbers)."""
    h = np.asarray(histogram, dtype=np.float64)
    out = np.full(NUM_KEYS, -1.0)
    if h.sum() <= 0 or np.allclose(h, h[0]):
        return out
    for key in range(NUM_KEYS):
        profile = np.roll(_MINOR_PROFILE if key >= 12 else _MAJOR_PROFILE, key % 12)
        out[key] = np.corrcoef(h, profile)[0, 1]
    return out


def estimate_key(histogram: np.ndarray, *, signature: int | None = None) -> int:
    """The best-correlated key; with `signature` (a key number from a key signature), only it or
    its relative major/minor (same accidentals) is considered, since key signatures rarely say the mode."""
    scores = key_scores(histogram)
    if signature is None:
        return int(np.argmax(scores)) if scores.max() > -1 else 0
    major = signature if signature < 12 else (signature % 12 + 3) % 12
    minor = (major + 9) % 12 + 12
    if scores[major] == scores[minor]:  # nothing to go on: keep what the signature said
        return signature
    return major if scores[major] > scores[minor] else minor
