"""Where the corpus's scores come from: music21's bundled corpus or a folder of MIDI files.

`music21_sources()` / `midi_sources(dir)` list the pieces (`Source`: a file, or one tune of a
multi-tune ABC file); `Schedule` orders them so the collections (chorales, renaissance
polyphony, folk tunes, classical) are drawn in fixed proportions, each seed-shuffled and cycled;
`load_source` turns one into a `pretty_midi.PrettyMIDI` (repeats written out, long movements
cut, folk tunes' chord symbols played by a bass and block chords). `audiogen.corpus.build` augments
and renders them.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pretty_midi

from ..errors import AudiogenError
from ..folders import MIDI_SUFFIXES
from ..midi import load_midi

# music21 corpus folders by collection, and how often each collection is drawn.
GROUPS = {
    "chorales": ("bach",),
    "renaissance": ("palestrina", "monteverdi", "trecento", "josquin", "ciconia", "luca", "lusitano"),
    "folk": ("ryansMammoth", "essenFolksong", "oneills1850", "airdsAirs", "nottingham-dataset", "miscFolk"),
}
GROUP_WEIGHTS = {"chorales": 0.3, "renaissance": 0.2, "folk": 0.4, "classical": 0.1}
SKIP_FOLDERS = {"demos", "theoryExercises", "leadSheet", "choraleAnalyses"}
MAX_SCORE_BYTES = 120_000
SCORE_SUFFIXES = {".mxl", ".xml", ".musicxml", ".krn", ".abc"}  # .rntxt (analyses) is left out


@dataclasses.dataclass(frozen=True)
class Source:
    path: str
    tune: int | None  # the n-th tune of a multi-tune ABC file (None: the whole file)
    group: str
    label: str  # short, file-name-safe


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")[:limit] or "piece"


_TUNE_START = re.compile(r"^X:\s*\d", re.MULTILINE)


def _abc_tunes(path: Path) -> int:
    return len(_TUNE_START.findall(path.read_text(encoding="latin-1")))


def _abc_tune_text(path: str, tune: int) -> str:
    """The file header (fields before the first X:) plus the tune-th tune."""
    text = Path(path).read_text(encoding="latin-1")
    starts = [m.start() for m in _TUNE_START.finditer(text)]
    end = starts[tune + 1] if tune + 1 < len(starts) else len(text)
    return text[: starts[0]] + text[starts[tune] : end]


def music21_sources(*, large_groups: tuple[str, ...] | list[str] = ()) -> list[Source]:
    """Every usable score of music21's corpus; scores over `MAX_SCORE_BYTES` are left out (minutes to
    parse, for the 2 minutes the audio corpus uses) except in `large_groups` (the composer asks for
    "classical", whose 64 small scores are too few; its parse cuts a movement at about 200 bars)."""
    try:
        from music21 import corpus
    except ImportError:
        raise AudiogenError("music21 is not installed: pip install 'audiogen[data]' (or pass --midi-dir)") from None
    folder_group = {folder: group for group, folders in GROUPS.items() for folder in folders}
    out = []
    for path in sorted(corpus.getPaths(), key=str):
        path = Path(path)
        parts = path.parts[path.parts.index("corpus") + 1 :] if "corpus" in path.parts else path.parts[-2:]
        if path.suffix.lower() not in SCORE_SUFFIXES or SKIP_FOLDERS & set(parts):
            continue
        group = folder_group.get(parts[0], "classical")
        stem = _slug("-".join((*parts[:-1], path.stem)))
        tunes = _abc_tunes(path) if path.suffix.lower() == ".abc" else 1
        if tunes <= 1 and path.stat().st_size > MAX_SCORE_BYTES and group not in large_groups:
            continue
        if tunes > 1:
            out += [Source(str(path), k, group, f"{stem}-{k}") for k in range(tunes)]
        else:
            out.append(Source(str(path), None, group, stem))
    return out


def midi_sources(midi_dir: str | os.PathLike) -> list[Source]:
    root = Path(midi_dir)
    if not root.is_dir():
        raise AudiogenError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()
                   and not p.name.startswith("."))
    if not files:
        raise AudiogenError(f"{root}: no .mid/.midi files found")
    return [Source(str(p), None, "midi", _slug(str(p.relative_to(root).with_suffix("")))) for p in files]


class Schedule:
    """Piece index -> source: smooth weighted round robin over collections, each seed-shuffled and cycled."""

    def __init__(self, sources: list[Source], seed: int):
        rng = np.random.default_rng([seed, 1])
        groups: dict[str, list[Source]] = {}
        for s in sources:
            groups.setdefault(s.group, []).append(s)
        self.groups = {g: [items[i] for i in rng.permutation(len(items))] for g, items in sorted(groups.items())}
        self.weights = {g: GROUP_WEIGHTS.get(g, 1.0) for g in self.groups}
        self.credit = dict.fromkeys(self.groups, 0.0)
        self.taken = dict.fromkeys(self.groups, 0)
        self.order: list[Source] = []

    def __getitem__(self, index: int) -> Source:
        total = sum(self.weights.values())
        while len(self.order) <= index:
            for g in self.groups:
                self.credit[g] += self.weights[g]
            g = max(self.groups, key=lambda k: self.credit[k])
            self.credit[g] -= total
            items = self.groups[g]
            self.order.append(items[self.taken[g] % len(items)])
            self.taken[g] += 1
        return self.order[index]

    def __len__(self) -> int:
        return sum(len(v) for v in self.groups.values())


def _chord_symbols(score) -> list[tuple[float, float, list[int], int]]:
    """(offset, quarter lengths, pitch classes, bass pitch class) of each chord symbol ("Am", "D7")."""
    from music21 import harmony

    flat = score.flatten()
    symbols = [cs for cs in flat.getElementsByClass(harmony.ChordSymbol) if cs.pitches]
    out = []
    for k, cs in enumerate(symbols):
        start = float(cs.getOffsetBySite(flat))
        stop = float(symbols[k + 1].getOffsetBySite(flat)) if k + 1 < len(symbols) else float(flat.highestTime)
        if stop > start:
            out.append((start, stop - start, [p.pitchClass for p in cs.pitches], (cs.bass() or cs.root()).pitchClass))
    return out


def _accompaniment(pm: pretty_midi.PrettyMIDI, symbols: list[tuple[float, float, list[int], int]]) -> None:
    """A bass line and block chords that play a folk tune's chord symbols (placed via the tempo map)."""
    bass, pad = pretty_midi.Instrument(program=32, name="Bass"), pretty_midi.Instrument(program=0, name="Chords")
    for offset, length, classes, root in symbols:
        start = pm.tick_to_time(int(round(offset * pm.resolution)))
        end = pm.tick_to_time(int(round((offset + length) * pm.resolution)))
        bass.notes.append(pretty_midi.Note(velocity=80, pitch=36 + root, start=start, end=end))
        for pc in sorted(set(classes)):
            pitch = 48 + pc if pc >= 5 else 60 + pc  # close voicing between F3 and E4
            pad.notes.append(pretty_midi.Note(velocity=62, pitch=pitch, start=start, end=end))
    if bass.notes:
        pm.instruments += [pad, bass]


def _tidy_score(score, max_quarters: float):
    """Repairs and trims before MIDI export: repeats written out, the score cut to what can be used."""
    from music21 import meter, stream

    # The ABC reader shares one TimeSignature object between measures with mixed meters; MIDI export
    # then refuses to insert it twice. Give each measure its own copy.
    seen: set[int] = set()
    for measure in list(score.recurse().getElementsByClass(stream.Measure)):
        for ts in list(measure.getElementsByClass(meter.TimeSignature)):
            if id(ts) in seen:
                measure.replace(ts, copy.deepcopy(ts))
            seen.add(id(ts))
    try:
        score = score.expandRepeats()
    except Exception:  # repeats music21 cannot follow: drop them and play the score as written
        _strip_repeats(score)
    # Long movements: only the first minutes are used, and whole movements at music21's 10080 ticks
    # a beat overflow pretty_midi's tick limit.
    for part in score.parts if score.parts else [score]:
        for measure in list(part.getElementsByClass(stream.Measure)):
            if measure.offset >= max_quarters:
                part.remove(measure)
    return score


def _strip_repeats(score) -> None:
    from music21 import bar, repeat, spanner, stream

    for measure in score.recurse().getElementsByClass(stream.Measure):
        if isinstance(measure.leftBarline, bar.Repeat):
            measure.leftBarline = None
        if isinstance(measure.rightBarline, bar.Repeat):
            measure.rightBarline = None
        for mark in list(measure.getElementsByClass((repeat.RepeatExpression, repeat.RepeatMark))):
            measure.remove(mark)
    for bracket in list(score.recurse().getElementsByClass(spanner.RepeatBracket)):
        if bracket.activeSite is not None:
            bracket.activeSite.remove(bracket)


def load_source(source: Source, *, max_seconds: float) -> pretty_midi.PrettyMIDI:
    if source.group == "midi":
        return load_midi(source.path, max_seconds=None)
    from music21 import converter, stream
    from music21.midi import translate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if source.tune is None:
            score = converter.parse(source.path)
        else:
            score = converter.parseData(_abc_tune_text(source.path, source.tune), format="abc")
        if isinstance(score, stream.Opus):
            score = score.scores[0]
        # 4 quarters a second (240 a minute) covers max_seconds at any tempo a score is likely to have.
        score = _tidy_score(score, max_quarters=4 * max_seconds * 1.25)
        try:
            symbols = _chord_symbols(score) if source.group == "folk" else []
        except Exception:  # odd chord symbols: keep the bare tune
            symbols = []
        data = translate.music21ObjectToMidiFile(score).writestr()
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    pm.instruments = [inst for inst in pm.instruments if inst.notes]
    if not pm.instruments:
        raise AudiogenError("no notes")
    _accompaniment(pm, symbols)
    return pm
