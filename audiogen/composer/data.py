"""The composer's event dataset: music21's bundled corpus and/or a MIDI folder -> one int16 array.

    summary = build_dataset("data/composer", music21=True, midi_dir="my_midi", midi_style="jigs")
    data = EventData("data/composer", val_fraction=0.05)
    tokens, targets = data.train_batch(seed=0, index=7, batch_size=16, length=512, transpose=5)

Pieces come from `audiogen.corpus.sources` (the same listing the audio corpus uses: chorales, renaissance
polyphony, folk tunes, classical movements; or every .mid under a folder). The corpus group is
the style (`chorales` -> chorale; a MIDI folder takes the label the user gives). Each piece is
parsed once and cached in `DIR/pieces/<hash>.npy` (int16, or `<hash>.err` when it cannot be
used), so a rerun only assembles: `DIR/events.npy` (every piece's tokens, int16, one after
another) and `DIR/index.json` (name, style, start, length, bars, source per piece). Nothing is
pickled. A cached piece's tokens are `Key Meter Tempo Bar ... EOS`: its key and its first
meter and tempo, then the body (`audiogen.composer.events`).

`EventData` reads it: a held-out split by piece (a hash of the name, so adding pieces never moves
one; a style with few pieces gets at least `MIN_VAL_PER_STYLE` held out: `heldout_split`), crops
that start on a bar line under a header giving style, key, the meter and tempo in force there and
the bars left; transposition by up to +-`transpose` semitones (drums stay); training rows pack crops
one after another. A batch is a pure function of (seed, index), so
resumed and multi-process runs read exactly the same data.

`python -m pytest tests/composer/test_composer_data.py` exercises it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudiogenError
from ..fileio import atomic_path, write_json, write_text
from ..folders import is_validation, name_hash
from .events import midi_to_events
from .vocab import BAR_COUNTS, DRUMS, METERS, STYLES, Vocab, bars_index, tempo_index, transpose_key

FORMAT_VERSION = 1
ENCODER_VERSION = 1  # bump when the encoding of a piece changes: cached pieces are then re-parsed
GROUP_STYLES = {"chorales": "chorale", "renaissance": "renaissance", "folk": "folk", "classical": "classical"}
MAX_QUARTERS = 4 * 200  # longer movements are cut (about 200 bars of 4/4)
# Collections whose scores over `sources.MAX_SCORE_BYTES` are parsed too (the audio corpus leaves them out):
# classical has 64 small scores and 13 large ones (minutes each to parse; cut at MAX_QUARTERS).
LARGE_GROUPS = ("classical",)
# Held-out pieces a style has at least (a quarter of its pieces at most): the name hash holds out 5 of
# the 77 classical movements (3 of the first 64), too few to measure a style by.
MIN_VAL_PER_STYLE = 12


@dataclasses.dataclass
class DatasetSummary:
    out_dir: Path
    pieces: int
    tokens: int
    parsed: int  # parsed in this call (the rest came from the cache)
    failed: int
    missing: int  # not parsed yet (`parse=False`)
    seconds: float
    styles: dict[str, int]  # pieces per style


# ---------------------------------------------------------------------------- one piece


def _score_midi(path: str, tune: int | None, folk: bool, steps_per_quarter: int):
    """A music21 score -> (PrettyMIDI, pickup steps): repeats written out, long movements cut, a
    folk tune's chord symbols played (as `audiogen.corpus.sources` does for the audio corpus)."""
    import pretty_midi
    from music21 import converter, stream
    from music21.midi import translate

    from ..corpus import sources as scores

    if tune is None:
        score = converter.parse(path)
    else:
        score = converter.parseData(scores._abc_tune_text(path, tune), format="abc")
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    score = scores._tidy_score(score, max_quarters=MAX_QUARTERS)
    pickup = 0.0
    parts = list(score.parts) if score.parts else [score]
    measures = list(parts[0].getElementsByClass(stream.Measure))
    if measures:
        first = measures[0]
        pickup = float(first.paddingLeft or 0.0)
        if not pickup and first.barDuration is not None and first.number == 0:
            pickup = max(0.0, float(first.barDuration.quarterLength - first.duration.quarterLength))
    try:
        symbols = scores._chord_symbols(score) if folk else []
    except Exception:  # odd chord symbols: keep the bare tune
        symbols = []
    pm = pretty_midi.PrettyMIDI(io.BytesIO(translate.music21ObjectToMidiFile(score).writestr()))
    pm.instruments = [inst for inst in pm.instruments if inst.notes]
    scores._accompaniment(pm, symbols)
    return pm, int(round(pickup * steps_per_quarter))


def encode_piece(path: str, tune: int | None, group: str, steps_per_quarter: int) -> np.ndarray:
    """One source -> int16 `Key Meter Tempo Bar ... EOS` (raises AudiogenError if unusable)."""
    vocab = Vocab(steps_per_quarter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if group == "midi":
            from ..midi import load_midi

            pm, pickup = load_midi(path, max_seconds=None), 0
        else:
            pm, pickup = _score_midi(path, tune, group == "folk", steps_per_quarter)
        encoded = midi_to_events(pm, vocab, pickup_steps=pickup)
    head = [vocab.token("key", encoded.key), vocab.token("meter", METERS.index(encoded.meter)),
            vocab.token("tempo", tempo_index(encoded.bpm))]
    return np.asarray(head + encoded.tokens, dtype=np.int16)


def _job(args: tuple[str, int | None, str, int, str]) -> tuple[str, str | None, float]:
    """Worker: encode one piece into the cache; (cache stem, error or None, seconds)."""
    path, tune, group, spq, target = args
    started = time.time()
    try:
        tokens = encode_piece(path, tune, group, spq)
    except Exception as err:  # music21 raises all sorts on odd scores: record and skip the piece
        message = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        write_text(target + ".err", f"{type(err).__name__}: {message}\n")
        return target, message, time.time() - started
    with atomic_path(target + ".npy") as tmp:
        np.save(tmp, tokens, allow_pickle=False)
    return target, None, time.time() - started


def _cache_stem(cache: Path, path: str, tune: int | None, spq: int) -> str:
    stat = os.stat(path)
    vocab = Vocab(spq).fingerprint
    ident = f"{ENCODER_VERSION}|{vocab}|{os.path.abspath(path)}|{tune}|{stat.st_size}|{int(stat.st_mtime)}"
    return str(cache / hashlib.sha1(ident.encode()).hexdigest()[:20])


# ---------------------------------------------------------------------------- the dataset


def list_sources(*, music21: bool = True, groups: list[str] | tuple[str, ...] = (), midi_dir: str = "",
                 midi_style: str = "") -> list[tuple[Any, str]]:
    """(scores.Source, style) of every piece to use."""
    from ..corpus import sources as scores

    out: list[tuple[Any, str]] = []
    if music21:
        wanted = set(groups)
        unknown = wanted - set(GROUP_STYLES.values())
        if unknown:
            raise AudiogenError(f"data.styles: unknown corpus style {sorted(unknown)[0]!r} "
                                f"(known: {', '.join(STYLES)})")
        for source in scores.music21_sources(large_groups=LARGE_GROUPS):
            style = GROUP_STYLES.get(source.group, "classical")
            if not wanted or style in wanted:
                out.append((source, style))
    if midi_dir:
        if not midi_style:
            raise AudiogenError("data.midi_style is not set: name the MIDI folder's style (--data.midi_style=NAME)")
        out += [(s, midi_style) for s in scores.midi_sources(midi_dir)]
    if not out:
        raise AudiogenError("no pieces: set data.music21 = true or give data.midi_dir")
    return out


def build_dataset(
    out_dir: str | os.PathLike,
    *,
    steps_per_quarter: int = 4,
    music21: bool = True,
    groups: list[str] | tuple[str, ...] = (),
    midi_dir: str = "",
    midi_style: str = "",
    max_pieces: int = 0,
    workers: int = 1,
    parse: bool = True,
    quiet: bool = True,
) -> DatasetSummary:
    """Parse what is not cached yet, then write `events.npy` + `index.json` (see the module docstring).

    `max_pieces` > 0 takes that many pieces, spread evenly over the listing (for quick runs).
    `parse=False` assembles only what the cache holds (pieces not parsed yet count as `missing`).
    """
    from ..progress import bar

    started = time.time()
    out = Path(out_dir)
    cache = out / "pieces"
    cache.mkdir(parents=True, exist_ok=True)
    sources = list_sources(music21=music21, groups=groups, midi_dir=midi_dir, midi_style=midi_style)
    if max_pieces and len(sources) > max_pieces:
        picks = np.linspace(0, len(sources) - 1, max_pieces).round().astype(int)
        sources = [sources[i] for i in sorted(set(picks.tolist()))]
    stems = [_cache_stem(cache, s.path, s.tune, steps_per_quarter) for s, _ in sources]
    todo = [(s.path, s.tune, s.group, steps_per_quarter, stem) for (s, _), stem in zip(sources, stems)
            if not (os.path.exists(stem + ".npy") or os.path.exists(stem + ".err"))] if parse else []
    # Styles in turn, so an interrupted build (the cache keeps what was parsed) has some of each.
    by_group: dict[str, list] = {}
    for job in todo:
        by_group.setdefault(job[2], []).append(job)
    todo = [job for round_ in itertools.zip_longest(*by_group.values()) for job in round_ if job is not None]
    progress = bar(len(todo), "parse scores", quiet=quiet, unit="piece")
    if workers > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")  # (fork after torch's thread pools can hang)
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for _ in pool.map(_job, todo, chunksize=4):
                progress.update(1)
    else:
        for job in todo:
            _job(job)
            progress.update(1)
    progress.close()

    arrays, pieces, failed, missing = [], [], 0, 0
    bar_token = Vocab(steps_per_quarter).bar
    start = 0
    counts: dict[str, int] = {}
    for (source, style), stem in zip(sources, stems):
        if not os.path.exists(stem + ".npy"):
            failed += os.path.exists(stem + ".err")
            missing += not os.path.exists(stem + ".err")
            continue
        tokens = np.load(stem + ".npy", allow_pickle=False)
        pieces.append({"name": f"{style}/{source.label}", "style": style, "start": start, "length": int(len(tokens)),
                       "bars": int(np.count_nonzero(tokens == bar_token)), "source": source.path,
                       "tune": source.tune})
        counts[style] = counts.get(style, 0) + 1
        arrays.append(tokens)
        start += len(tokens)
    if not pieces:
        raise AudiogenError(f"{out}: none of the {len(sources)} pieces could be used")
    events = np.concatenate(arrays).astype(np.int16)
    with atomic_path(out / "events.npy") as tmp:
        np.save(tmp, events, allow_pickle=False)
    write_json(out / "index.json", {"format_version": FORMAT_VERSION, "steps_per_quarter": steps_per_quarter,
                                    "vocab": Vocab(steps_per_quarter).fingerprint,
                                    "vocab_size": Vocab(steps_per_quarter).size, "tokens": int(len(events)),
                                    "failed": failed, "missing": missing, "styles": counts, "pieces": pieces})
    return DatasetSummary(out_dir=out, pieces=len(pieces), tokens=int(len(events)), parsed=len(todo),
                          failed=failed, missing=missing, seconds=time.time() - started, styles=counts)


# ---------------------------------------------------------------------------- reading


@dataclasses.dataclass
class Crop:
    piece: int
    bar: int
    transpose: int


def heldout_split(names: list[str], styles: list[str], val_fraction: float, *, seed: int = 0,
                  min_per_style: int = MIN_VAL_PER_STYLE) -> list[bool]:
    """Which pieces are held out: a name's hash below `val_fraction` (`folders.is_validation`), and in a style
    with fewer such names than `min_per_style`, the names with the next-lowest hashes until it has that many
    (at most a quarter of the style's names). Copies of a name stay on one side. So a small style's held-out
    figures are not those of two or three pieces; in a style at its minimum a newly added piece can take
    the place of the last one held out, otherwise adding pieces never moves one."""
    val = [is_validation(n, val_fraction, seed) for n in names]
    if val_fraction <= 0 or min_per_style <= 0:
        return val
    by_style: dict[str, set[str]] = {}
    for name, style in zip(names, styles):
        by_style.setdefault(style, set()).add(name)
    extra: set[str] = set()
    for group in by_style.values():
        ranked = sorted(group, key=lambda n: (name_hash(n, seed), n))
        want = min(min_per_style, len(ranked) // 4)
        held = sum(is_validation(n, val_fraction, seed) for n in ranked)
        if held < want:
            extra.update(ranked[:want])  # the lowest hashes: those held out already come first
    return [v or n in extra for v, n in zip(val, names)]


class EventData:
    """A built dataset: pieces, their split, and crops as token rows."""

    def __init__(self, directory: str | os.PathLike, *, val_fraction: float = 0.05, seed: int = 0,
                 styles: list[str] | tuple[str, ...] = (), min_val_per_style: int = MIN_VAL_PER_STYLE):
        directory = Path(directory)
        index_path = directory / "index.json"
        if not index_path.exists():
            raise AudiogenError(f"{directory}: not a composer dataset (no index.json)")
        self.index = json.loads(index_path.read_text())
        if self.index.get("format_version") != FORMAT_VERSION:
            raise AudiogenError(f"{index_path}: format_version {self.index.get('format_version')!r} is not supported")
        self.vocab = Vocab(int(self.index["steps_per_quarter"]))
        if self.index.get("vocab") != self.vocab.fingerprint:
            raise AudiogenError(f"{directory}: built with another event vocabulary: build it again")
        self.events = np.load(directory / "events.npy", mmap_mode="r", allow_pickle=False)
        self.pieces = self.index["pieces"]
        if styles:
            self.pieces = [p for p in self.pieces if p["style"] in styles]
        if not self.pieces:
            raise AudiogenError(f"{directory}: no pieces of the styles asked for")
        val = heldout_split([p["name"] for p in self.pieces], [p["style"] for p in self.pieces], val_fraction,
                            seed=seed, min_per_style=min_val_per_style)
        if len(self.pieces) >= 2 and val_fraction > 0 and not any(val):
            val[-1] = True
        if len(self.pieces) >= 2 and all(val):
            val[0] = False
        self.val_pieces = [i for i, v in enumerate(val) if v]
        self.train_pieces = [i for i, v in enumerate(val) if not v]
        self.style_names = sorted({p["style"] for p in self.pieces})
        self._bars: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        by_style: dict[str, list[int]] = {}
        for i in self.train_pieces:
            by_style.setdefault(self.pieces[i]["style"], []).append(i)
        self.train_by_style = by_style

    # -- one piece
    def tokens(self, piece: int) -> np.ndarray:
        p = self.pieces[piece]
        return np.asarray(self.events[p["start"] : p["start"] + p["length"]], dtype=np.int64)

    def bars(self, piece: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offset of each Bar token, meter index and tempo index in force in that bar)."""
        if piece not in self._bars:
            v = self.vocab
            tokens = self.tokens(piece)
            kinds = v.kinds[tokens]
            bar_at = np.flatnonzero(tokens == v.bar)
            idx = np.arange(len(tokens))
            last = {}
            for kind in ("meter", "tempo"):
                k = v.kinds[v.range(kind)[0]]
                marks = np.where(kinds == k, idx, -1)
                last[kind] = np.maximum.accumulate(marks)
            # A bar's Meter/Tempo come right after its Bar: look at the bar's third token (or its last).
            next_bar = np.append(bar_at[1:], len(tokens))
            look = np.minimum(bar_at + 2, next_bar - 1)
            meters = v.values[tokens[last["meter"][look]]]
            tempi = v.values[tokens[last["tempo"][look]]]
            self._bars[piece] = (bar_at, meters, tempi)
        return self._bars[piece]

    def style_index(self, style: str, user_styles: list[str] | tuple[str, ...]) -> int:
        if style in STYLES:
            return STYLES.index(style)
        if style in user_styles:
            return len(STYLES) + list(user_styles).index(style)
        raise AudiogenError(f"style {style!r} of the dataset has no slot (model.user_styles: {list(user_styles)})")

    def crop_tokens(self, crop: Crop, user_styles: list[str] | tuple[str, ...] = ()) -> np.ndarray:
        """Header + the piece from bar `crop.bar` on (to its EOS), transposed."""
        v = self.vocab
        tokens = self.tokens(crop.piece)
        bar_at, meters, tempi = self.bars(crop.piece)
        key = v.values[tokens[0]]
        b = crop.bar
        body = tokens[bar_at[b] :].copy()
        # Meter / Tempo changes at the crop's first bar move into the header.
        drop = 1
        while drop < len(body) and v.kind(int(body[drop])) in ("meter", "tempo"):
            drop += 1
        body = np.concatenate([body[:1], body[drop:]])
        if crop.transpose:
            body = transpose_tokens(body, v, crop.transpose)
        style = self.style_index(self.pieces[crop.piece]["style"], user_styles)
        header = [v.bos, v.token("style", style), v.token("key", transpose_key(int(key), crop.transpose)),
                  v.token("meter", int(meters[b])), v.token("tempo", int(tempi[b])),
                  v.token("bars", bars_index(len(bar_at) - b))]
        return np.concatenate([np.asarray(header, np.int64), body])

    def transpositions(self, piece: int, transpose: int) -> list[int]:
        """Shifts in [-transpose, transpose] that keep every pitched note in 0..127."""
        if transpose <= 0:
            return [0]
        v = self.vocab
        tokens = self.tokens(piece)
        pitched = pitched_mask(tokens, v)
        if not pitched.any():
            return [0]
        pitches = v.values[tokens[pitched]]
        low, high = int(pitches.min()), int(pitches.max())
        return [s for s in range(-transpose, transpose + 1) if 0 <= low + s and high + s <= 127] or [0]

    # -- batches
    def draw(self, rng: np.random.Generator, *, transpose: int, balance_styles: bool = True,
             first_bar: float = 0.25) -> Crop:
        """One random training crop."""
        if balance_styles:
            style = self.style_names_train[int(rng.integers(len(self.style_names_train)))]
            pool = self.train_by_style[style]
        else:
            pool = self.train_pieces
        weights = self._weights(tuple(pool))
        pick = int(np.searchsorted(weights, rng.random() * weights[-1], side="right"))
        piece = pool[min(pick, len(pool) - 1)]
        bars = len(self.bars(piece)[0])
        bar = 0 if rng.random() < first_bar else int(rng.integers(bars))
        shifts = self.transpositions(piece, transpose)
        return Crop(piece, bar, int(shifts[int(rng.integers(len(shifts)))]))

    @property
    def style_names_train(self) -> list[str]:
        return sorted(self.train_by_style)

    def _weights(self, pool: tuple[int, ...]) -> np.ndarray:
        # Pieces drawn by length (cumulative, cached per pool).
        cache = self.__dict__.setdefault("_weight_cache", {})
        if pool not in cache:
            cache[pool] = np.cumsum([self.pieces[i]["length"] for i in pool], dtype=np.float64)
        return cache[pool]

    def train_row(self, rng: np.random.Generator, *, length: int, transpose: int,
                  user_styles: list[str] | tuple[str, ...] = (), balance_styles: bool = True) -> np.ndarray:
        """`[length + 1]` tokens: crops packed one after another (the last one cut)."""
        parts, total = [], 0
        while total < length + 1:
            crop = self.draw(rng, transpose=transpose, balance_styles=balance_styles)
            tokens = self.crop_tokens(crop, user_styles)
            parts.append(tokens)
            total += len(tokens)
        return np.concatenate(parts)[: length + 1]

    def train_batch(self, *, seed: int, index: int, batch_size: int, length: int, transpose: int,
                    user_styles: list[str] | tuple[str, ...] = (), balance_styles: bool = True) -> np.ndarray:
        """`[B, length + 1]` int64 rows for batch number `index` (a pure function of seed and index)."""
        rows = []
        for i in range(batch_size):
            rng = np.random.default_rng([seed, index, i])
            rows.append(self.train_row(rng, length=length, transpose=transpose, user_styles=user_styles,
                                       balance_styles=balance_styles))
        return np.stack(rows)

    def val_rows(self, *, count: int, length: int, user_styles: list[str] | tuple[str, ...] = ()) -> np.ndarray:
        """`[N, length + 1]`: the first `count` held-out pieces from their first bar, PAD after the end."""
        rows = []
        for piece in self.val_pieces[:count]:
            tokens = self.crop_tokens(Crop(piece, 0, 0), user_styles)[: length + 1]
            row = np.full(length + 1, self.vocab.pad, np.int64)
            row[: len(tokens)] = tokens
            rows.append(row)
        if not rows:
            return np.zeros((0, length + 1), np.int64)
        return np.stack(rows)


def pitched_mask(tokens: np.ndarray, vocab: Vocab) -> np.ndarray:
    """True at Pitch tokens of non-drum notes (the program in force is the last Program token:
    every bar names its program before its first note)."""
    kinds = vocab.kinds[tokens]
    program_kind = vocab.kinds[vocab.range("program")[0]]
    pitch_kind = vocab.kinds[vocab.range("pitch")[0]]
    idx = np.arange(len(tokens))
    last_program = np.maximum.accumulate(np.where(kinds == program_kind, idx, -1))
    programs = np.where(last_program >= 0, vocab.values[tokens[np.maximum(last_program, 0)]], -1)
    return (kinds == pitch_kind) & (programs != DRUMS)


def transpose_tokens(tokens: np.ndarray, vocab: Vocab, semitones: int) -> np.ndarray:
    """Shift every pitched (non-drum) Pitch token; pitches must stay in 0..127."""
    out = np.asarray(tokens, np.int64).copy()
    mask = pitched_mask(out, vocab)
    out[mask] += semitones
    lo, hi = vocab.range("pitch")
    if ((out[mask] < lo) | (out[mask] >= hi)).any():
        raise ValueError("transposition leaves the MIDI pitch range")
    return out


__all__ = ["BAR_COUNTS", "Crop", "DatasetSummary", "EventData", "build_dataset", "encode_piece", "heldout_split",
           "list_sources", "pitched_mask", "transpose_tokens"]
