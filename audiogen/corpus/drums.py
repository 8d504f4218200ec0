"""General MIDI drum parts written to fit a piece's meter and tempo map.

    style = add_drums(pm, np.random.default_rng(0))     # appends an is_drum instrument to `pm`

The corpus's scores (chorales, folk tunes, motets) have no drums, while game music is full of
them. `add_drums` picks a groove that suits the meter (backbeat, half-time, four-on-the-floor,
shuffle, march and brushy patterns for 2/4 and 4/4; waltz for 3/4; 6/8-12/8 shuffles for
compound meters), plays it on the bar/beat grid that pretty_midi derives from the tempo map and
time signatures, marks section starts with a crash, fills into every 4th or 8th bar, humanises
velocities, and ends with a crash on the final bar. Hits sit exactly on subdivisions of the
beats (sixteenths, or triplet eighths for shuffles and compound meters): the timing is the
score's, the feel comes from the pattern and the velocities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pretty_midi

from ..midi import beat_grid

KICK, STICK, SNARE, CLAP, HAT, PEDAL_HAT, OPEN_HAT = 36, 37, 38, 39, 42, 44, 46
CRASH, CRASH2, RIDE, RIDE_BELL, TAMBOURINE = 49, 57, 51, 53, 54
TOMS = (50, 48, 47, 45, 43, 41)  # high tom .. low floor tom
CYMBALS = (CRASH, CRASH2, RIDE, RIDE_BELL, OPEN_HAT)

Hit = tuple[float, int, float]  # (position in beats from the bar start, GM key, loudness 0..1)


@dataclasses.dataclass
class Bar:
    beats: np.ndarray  # beat times in seconds, plus the time the bar ends: [n + 1]

    @property
    def n(self) -> int:
        return len(self.beats) - 1

    def time(self, position: float) -> float:
        """Seconds at `position` beats into the bar (linear inside each beat: follows tempo changes)."""
        i = min(int(np.floor(position + 1e-9)), self.n - 1)
        return float(self.beats[i] + (position - i) * (self.beats[i + 1] - self.beats[i]))

    def position(self, seconds: float) -> float:
        """Inverse of `time`: beats into the bar at `seconds`."""
        i = int(np.clip(np.searchsorted(self.beats, seconds, side="right") - 1, 0, self.n - 1))
        return i + (seconds - self.beats[i]) / max(self.beats[i + 1] - self.beats[i], 1e-9)


def _backbeats(n: int) -> list[int]:
    return [1] if n <= 3 else list(range(1, n, 2))


def _grid(n: int, step: float, key: int, loud: float, accent: float = 0.2) -> list[Hit]:
    """A cymbal/hat on every `step` of the bar, louder on the beat."""
    out = []
    for pos in np.arange(0, n - 1e-9, step):
        on_beat = abs(pos - round(pos)) < 1e-6
        out.append((float(pos), key, loud if on_beat else loud - accent))
    return out


# Each style makes one bar: (beats in bar, rng, cymbal key) -> hits. Positions are multiples of
# 1/4 beat (straight) or 1/3 beat (triplet); `TRIPLET` tells fills which grid to use.
def _backbeat(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = _grid(n, 0.5, cym, 0.7) + [(0.0, KICK, 0.9)] + [(float(b), SNARE, 0.9) for b in _backbeats(n)]
    if n >= 4:
        hits.append((n // 2, KICK, 0.85))
        if rng.random() < 0.4:
            hits.append((n // 2 - 0.5, KICK, 0.7))
    return hits


def _pop16(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = _grid(n, 0.25, HAT if cym == RIDE else cym, 0.65, accent=0.25) + [(0.0, KICK, 0.9)]
    hits += [(float(b), SNARE, 0.9) for b in _backbeats(n)]
    if n >= 4:
        hits += [(1.5, KICK, 0.75), (n // 2, KICK, 0.85)]
    if rng.random() < 0.5:
        hits.append((n - 0.25, SNARE, 0.3))  # ghost note into the next bar
    return hits


def _halftime(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = _grid(n, 0.5, cym, 0.65) + [(0.0, KICK, 0.9), (float(max(n // 2, 1)), SNARE, 0.95)]
    if n >= 4 and rng.random() < 0.5:
        hits.append((n - 1.5, KICK, 0.7))
    return hits


def _four_on_floor(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = [(float(b), KICK, 0.95) for b in range(n)] + [(b + 0.5, OPEN_HAT, 0.6) for b in range(n)]
    hits += [(b + 0.25, HAT, 0.35) for b in range(n)] + [(b + 0.75, HAT, 0.35) for b in range(n)]
    hits += [(float(b), CLAP if rng.random() < 0.5 else SNARE, 0.85) for b in _backbeats(n)]
    return hits


def _march(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = [(float(b), KICK, 0.75) for b in range(n)] + _grid(n, 0.5, SNARE, 0.7, accent=0.25)
    for b in range(n):
        if rng.random() < 0.3:  # a sixteenth-note roll figure on this beat
            hits += [(b + 0.25, SNARE, 0.45), (b + 0.75, SNARE, 0.45)]
    return hits


def _shuffle(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = [(b + off, cym, 0.7 if off == 0 else 0.5) for b in range(n) for off in (0.0, 2 / 3)]
    hits += [(0.0, KICK, 0.9)] + [(float(b), SNARE, 0.85) for b in _backbeats(n)]
    if n >= 4:
        hits.append((n // 2, KICK, 0.8))
        if rng.random() < 0.5:
            hits.append((n // 2 - 1 / 3, KICK, 0.6))
    return hits


def _brushy(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    """Quiet ride with a swung skip note, side stick on the backbeat, feathered kick."""
    hits = [(float(b), RIDE, 0.5) for b in range(n)] + [(b + 2 / 3, RIDE, 0.35) for b in _backbeats(n)]
    hits += [(0.0, KICK, 0.45)] + [(float(b), STICK, 0.55) for b in _backbeats(n)]
    hits += [(float(b), PEDAL_HAT, 0.4) for b in _backbeats(n)]
    return hits


def _waltz(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = [(0.0, KICK, 0.9)] + [(float(b), SNARE if rng.random() < 0.3 else cym, 0.6) for b in range(1, n)]
    hits += [(b + 0.5, HAT, 0.35) for b in range(n)]
    return hits


def _jazz_waltz(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = [(float(b), RIDE, 0.6) for b in range(n)] + [(1 + 2 / 3, RIDE, 0.4)]
    hits += [(0.0, KICK, 0.55), (float(n - 1), STICK, 0.6), (1.0, PEDAL_HAT, 0.45)]
    return hits


def _compound(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    """6/8, 9/8, 12/8: three eighths to a beat, kick on 1, snare on the weak dotted-quarter beats."""
    hits = [(b + k / 3, cym, 0.7 if k == 0 else 0.45) for b in range(n) for k in range(3)]
    hits += [(0.0, KICK, 0.9)] + [(float(b), SNARE, 0.85) for b in _backbeats(n)]
    if n >= 4:
        hits.append((2.0, KICK, 0.8))
    if rng.random() < 0.5:
        hits.append((n - 1 / 3, KICK, 0.6))
    return hits


def _jig(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    hits = [(float(b), KICK, 0.8) for b in range(n)] + [(b + 2 / 3, TAMBOURINE, 0.5) for b in range(n)]
    hits += [(float(b), SNARE, 0.8) for b in _backbeats(n)] + [(b + 1 / 3, SNARE, 0.25) for b in range(n)]
    return hits


def _odd(n: int, rng: np.random.Generator, cym: int) -> list[Hit]:
    """5/4, 7/8 and other meters: kick on 1, snare on the last beat, cymbal on every beat."""
    hits = _grid(n, 0.5, cym, 0.6) + [(0.0, KICK, 0.9), (float(n - 1), SNARE, 0.85)]
    if n >= 5:
        hits += [(float(n // 2), KICK, 0.7), (float(n // 2 - 1), SNARE, 0.6)]
    return hits


STYLES: dict[str, Callable[[int, np.random.Generator, int], list[Hit]]] = {
    "backbeat": _backbeat, "pop16": _pop16, "halftime": _halftime, "four_on_floor": _four_on_floor,
    "march": _march, "shuffle": _shuffle, "brushy": _brushy, "waltz": _waltz, "jazz_waltz": _jazz_waltz,
    "compound": _compound, "jig": _jig, "odd": _odd,
}
TRIPLET = {"shuffle", "brushy", "jazz_waltz", "compound", "jig"}
# Which grooves suit which meter, with weights.
METER_STYLES = {
    "duple": {"backbeat": 0.28, "pop16": 0.14, "halftime": 0.14, "four_on_floor": 0.12, "march": 0.1,
              "shuffle": 0.12, "brushy": 0.1},
    "triple": {"waltz": 0.5, "jazz_waltz": 0.3, "brushy": 0.2},
    "compound": {"compound": 0.55, "jig": 0.25, "brushy": 0.2},
    "odd": {"odd": 0.8, "brushy": 0.2},
}


def meter_class(pm: pretty_midi.PrettyMIDI, at: float = 0.0) -> str:
    """duple (2/4, 4/4, 2/2, ...), triple (3/4), compound (6/8, 9/8, 12/8) or odd (5/4, 7/8, ...)."""
    sigs = [ts for ts in pm.time_signature_changes if ts.time <= at + 1e-6]
    num = sigs[-1].numerator if sigs else 4
    if num % 3 == 0 and num > 3:
        return "compound"
    return {2: "duple", 4: "duple", 3: "triple"}.get(num, "duple" if num % 2 == 0 else "odd")


def _fill(n: int, triplet: bool, rng: np.random.Generator) -> tuple[float, list[Hit]]:
    """(start position, hits) of a fill that runs to the end of an `n`-beat bar."""
    length = float(rng.choice([1, 2, n], p=[0.5, 0.35, 0.15])) if n >= 2 else float(n)
    length = min(length, float(n))
    start = n - length
    step = 1 / 3 if triplet else (0.25 if rng.random() < 0.75 else 0.5)
    kind = rng.choice(["snare", "toms", "mixed"])
    positions = np.arange(start, n - 1e-9, step)
    hits = []
    for i, pos in enumerate(positions):
        frac = i / max(len(positions) - 1, 1)
        loud = 0.55 + 0.4 * frac  # crescendo into the next section
        if kind == "snare":
            key = SNARE
        elif kind == "toms":
            key = TOMS[min(int(frac * len(TOMS)), len(TOMS) - 1)]
        else:
            key = SNARE if i % 2 == 0 else TOMS[min(int(frac * 4) + 1, len(TOMS) - 1)]
        hits.append((float(pos), key, loud))
    hits += [(float(b), KICK, 0.7) for b in range(int(np.ceil(start)), n)]
    return start, hits


def _bars(pm: pretty_midi.PrettyMIDI, end: float) -> list[tuple[Bar, float]]:
    """(bar, start time) for every bar that starts before `end`."""
    beats, downbeats = beat_grid(pm, until=end)
    bars = []
    for k in range(len(downbeats) - 1):
        start, stop = downbeats[k], downbeats[k + 1]
        if start >= end:
            break
        inside = beats[(beats >= start - 1e-6) & (beats < stop - 1e-6)]
        if len(inside) == 0 or abs(inside[0] - start) > 1e-6:
            inside = np.concatenate([[start], inside])
        bars.append((Bar(np.concatenate([inside, [stop]])), float(start)))
    return bars


def add_drums(
    pm: pretty_midi.PrettyMIDI, rng: np.random.Generator, *, style: str | None = None, program: int = 0
) -> str | None:
    """Append a GM drum instrument that follows `pm`'s bars and beats; returns the groove's name.

    Returns None (and adds nothing) when the piece has no pitched notes.
    """
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    if not notes:
        return None
    first_onset = min(n.start for n in notes)
    last_onset = max(n.start for n in notes)
    bars = _bars(pm, end=last_onset + 1e-3)
    # Start on the first downbeat of the music (a pickup plays without drums).
    first = next((i for i, (_, t) in enumerate(bars) if t >= first_onset - 0.05), len(bars) - 1)
    final = len(bars) - 1
    meter = meter_class(pm, at=bars[first][1])
    if style is None:
        choices = METER_STYLES[meter]
        style = str(rng.choice(list(choices), p=np.array(list(choices.values())) / sum(choices.values())))
    pattern, triplet = STYLES[style], style in TRIPLET
    phrase = int(rng.choice([4, 8], p=[0.4, 0.6]))
    dynamics = rng.uniform(0.8, 1.05)
    cym = HAT
    hits: list[tuple[float, int, float]] = []  # (seconds, key, loudness)
    for i in range(first, final):
        bar, _ = bars[i]
        in_phrase = (i - first) % phrase
        if in_phrase == 0 and rng.random() < 0.35:  # a new section may move from hats to ride
            cym = RIDE if cym == HAT else HAT
        bar_hits = pattern(bar.n, rng, cym)
        if in_phrase == phrase - 1 or i == final - 1:
            start, fill = _fill(bar.n, triplet, rng)
            bar_hits = [h for h in bar_hits if h[0] < start - 1e-6] + fill
        if in_phrase == 0:  # a section starts: crash with the kick instead of the hat
            bar_hits = [h for h in bar_hits if not (h[0] < 1e-6 and h[1] in CYMBALS + (HAT,))]
            bar_hits += [(0.0, CRASH if rng.random() < 0.7 else CRASH2, 0.9), (0.0, KICK, 0.95)]
        hits += [(bar.time(pos), key, loud) for pos, key, loud in bar_hits]
    # The ending: crash and kick on the last bar's downbeat, and with the last note if it comes later.
    end_bar, end_start = bars[final]
    hits += [(end_start, CRASH, 0.95), (end_start, KICK, 0.95)]
    step = 1 / 3 if triplet else 0.25
    pos = min(round(end_bar.position(last_onset) / step) * step, end_bar.n - step)
    if pos > 0:
        hits += [(end_bar.time(pos), CRASH2, 0.95), (end_bar.time(pos), KICK, 0.95)]
    pm.instruments.append(_to_instrument(hits, rng, dynamics, program, style))
    return style


def _to_instrument(
    hits: list[tuple[float, int, float]], rng: np.random.Generator, dynamics: float, program: int, style: str
) -> pretty_midi.Instrument:
    """Velocity-humanised notes; one note per key and time; a note never overlaps its next hit."""
    best: dict[tuple[int, int], tuple[float, float]] = {}
    for t, key, loud in hits:
        slot = (key, int(round(t * 1e6)))  # same key at the same instant: keep the loudest
        if slot not in best or best[slot][1] < loud:
            best[slot] = (t, loud)
    inst = pretty_midi.Instrument(program=program, is_drum=True, name=f"Drums ({style})")
    by_key: dict[int, list[tuple[float, float]]] = {}
    for (key, _), value in sorted(best.items(), key=lambda kv: (kv[0][0], kv[1][0])):
        by_key.setdefault(key, []).append(value)
    for key, seq in by_key.items():
        ring = 1.0 if key in (CRASH, CRASH2, RIDE, RIDE_BELL) else 0.2
        for j, (t, loud) in enumerate(seq):
            nxt = seq[j + 1][0] if j + 1 < len(seq) else np.inf
            end = min(t + ring, nxt - 0.002)
            vel = int(np.clip(round(127 * loud * dynamics + rng.normal(0, 6)), 15, 127))
            inst.notes.append(pretty_midi.Note(velocity=vel, pitch=key, start=t, end=max(end, t + 0.01)))
    inst.notes.sort(key=lambda note: (note.start, note.pitch))
    return inst
