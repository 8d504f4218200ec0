"""Composer metrics: held-out likelihood beside a bigram, and what generated pieces look like.

    bigram = Bigram.fit(train_sequences, vocab.size);  bigram.nll(rows)     # the baseline
    in_key_share(pm, key)            # share of (non-drum) notes in the key's scale
    pitch_class_distance(a, b)       # total variation between pitch-class histograms (0 same, 1 disjoint)
    grid_share(pm)                   # share of onsets on the 1/16 grid
    self_similarity(pm)              # how much each bar repeats an earlier one (0: never, 1: always)
    loop_transition(model, tokens)   # NLL per event of bar 1 after the last bar, beside bar k+1 after bar k
    first_bars(tokens, 8, vocab)     # a piece cut after its first 8 bars
    composer_report(model, data)     # all of it, for `audiogen eval --composer`

Histograms can be taken relative to the key (`key=`: rotated so the tonic is 0), which is what
comparing styles needs (pieces in different keys are otherwise far apart for no musical reason).

`python -m pytest tests/composer/test_composer_metrics.py` exercises it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pretty_midi
import torch

from .events import grid_notes, midi_to_events, pitch_class_histogram, read_header
from .vocab import HEADER_LENGTH, Vocab, scale_pitch_classes

# ---------------------------------------------------------------------------- likelihood


@dataclasses.dataclass
class Bigram:
    """p(token | previous token) from counts with add-`alpha` smoothing: the baseline NLL."""

    log_probs: np.ndarray  # [V, V]: row = previous token

    @classmethod
    def fit(cls, sequences, vocab_size: int, *, alpha: float = 0.01) -> Bigram:
        counts = np.zeros(vocab_size * vocab_size, np.float64)
        for seq in sequences:
            seq = np.asarray(seq, np.int64)
            if len(seq) > 1:
                counts += np.bincount(seq[:-1] * vocab_size + seq[1:], minlength=vocab_size * vocab_size)
        counts = counts.reshape(vocab_size, vocab_size) + alpha
        return cls(np.log(counts / counts.sum(axis=1, keepdims=True)))

    def token_nll(self, rows: np.ndarray) -> np.ndarray:
        """`rows [B, S + 1]` -> NLL of each target `[B, S]`."""
        rows = np.asarray(rows, np.int64)
        return -self.log_probs[rows[:, :-1], rows[:, 1:]]


def body_mask(rows: np.ndarray | torch.Tensor, vocab: Vocab) -> np.ndarray:
    """`[B, S]` targets that are events: after the header of a row that starts with one, not PAD."""
    rows = np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows, np.int64)
    targets = rows[:, 1:]
    mask = targets != vocab.pad
    mask[:, : HEADER_LENGTH - 1] = False  # targets 0..4 are the header's Style..Bars
    return mask


@torch.no_grad()
def heldout_nll(model, rows: np.ndarray, *, batch_size: int = 16, bigram: Bigram | None = None) -> dict[str, float]:
    """NLL per event (nats) of the model (and the bigram) on held-out rows `[N, S + 1]` (from `EventData.val_rows`)."""
    vocab = model.vocab
    device = next(model.parameters()).device
    total = total_bigram = 0.0
    count = 0
    for start in range(0, len(rows), batch_size):
        chunk = np.asarray(rows[start : start + batch_size])
        mask = body_mask(chunk, vocab)
        nll, _ = model.token_nll(torch.from_numpy(chunk).to(device))
        total += float(nll.double().cpu().numpy()[mask].sum())
        if bigram is not None:
            total_bigram += float(bigram.token_nll(chunk)[mask].sum())
        count += int(mask.sum())
    out = {"nll": total / max(count, 1), "events": float(count)}
    if bigram is not None:
        out["bigram_nll"] = total_bigram / max(count, 1)
        out["nll_ratio"] = out["nll"] / max(out["bigram_nll"], 1e-9)
    return out


# ---------------------------------------------------------------------------- generated pieces


def _pitched(pm: pretty_midi.PrettyMIDI) -> list[pretty_midi.Note]:
    return [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]


def in_key_share(pm: pretty_midi.PrettyMIDI, key: int) -> float:
    """Share of non-drum notes whose pitch class is in the key's scale (`vocab.scale_pitch_classes`)."""
    notes = _pitched(pm)
    if not notes:
        return float("nan")
    scale = set(scale_pitch_classes(key))
    return sum(n.pitch % 12 in scale for n in notes) / len(notes)


def pitch_class_profile(pm: pretty_midi.PrettyMIDI, *, key: int | None = None, weighted: bool = True) -> np.ndarray:
    """`[12]` pitch-class distribution of the non-drum notes (by duration), rotated so the key's tonic is 0."""
    hist = pitch_class_histogram([(n.pitch, n.end - n.start) for n in _pitched(pm)], weighted=weighted)
    if key is not None:
        hist = np.roll(hist, -(key % 12))
    total = hist.sum()
    return hist / total if total > 0 else hist


def pitch_class_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance between two pitch-class distributions: 0 equal .. 1 disjoint."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a / max(a.sum(), 1e-12), b / max(b.sum(), 1e-12)
    return 0.5 * float(np.abs(a - b).sum())


def grid_share(pm: pretty_midi.PrettyMIDI, *, steps_per_quarter: int = 4) -> float:
    """Share of note onsets on the grid (`steps_per_quarter` steps a quarter note, via the tempo map)."""
    notes, moved = grid_notes(pm, Vocab(steps_per_quarter))
    return 1.0 - moved / len(notes) if notes else float("nan")


def bar_contents(pm: pretty_midi.PrettyMIDI, vocab: Vocab | None = None) -> list[set[tuple[int, int, int]]]:
    """Each bar as a set of (position, program, pitch) of its onsets (the grid and bars of `midi_to_events`)."""
    vocab = vocab or Vocab()
    tokens = midi_to_events(pm, vocab).tokens
    bars: list[set[tuple[int, int, int]]] = []
    position = program = -1
    for t in tokens:
        kind, value = vocab.kind(t), vocab.value(t)
        if kind == "bar":
            bars.append(set())
            position = program = -1
        elif kind == "position":
            position = value
        elif kind == "program":
            program = value
        elif kind == "pitch":
            bars[-1].add((position, program, value))
    return bars


def similarity_matrix(pm: pretty_midi.PrettyMIDI, vocab: Vocab | None = None) -> np.ndarray:
    """`[bars, bars]` Jaccard similarity of the bars' onset sets (1 on the diagonal; empty bars match empty)."""
    bars = bar_contents(pm, vocab)
    n = len(bars)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            union = bars[i] | bars[j]
            out[i, j] = out[j, i] = len(bars[i] & bars[j]) / len(union) if union else 1.0
    return out


def self_similarity(pm: pretty_midi.PrettyMIDI, vocab: Vocab | None = None) -> float:
    """Mean over bars 2.. of each bar's best Jaccard similarity to an earlier bar (repetition structure)."""
    sim = similarity_matrix(pm, vocab)
    if len(sim) < 2:
        return float("nan")
    return float(np.mean([sim[i, :i].max() for i in range(1, len(sim))]))


# ---------------------------------------------------------------------------- loops


def _split_bars(body: list[int], vocab: Vocab) -> list[list[int]]:
    """Body tokens (Bar ... [EOS]) -> each bar's tokens, starting with its Bar."""
    bars: list[list[int]] = []
    for t in body:
        if t == vocab.eos:
            break
        if t == vocab.bar:
            bars.append([])
        if bars:
            bars[-1].append(int(t))
    return bars


@torch.no_grad()
def loop_transition(model, tokens) -> dict[str, float]:
    """How well the last bar leads back into the first, beside how bars lead into the next.

    For a piece (header + body), NLL per event of bar 1's tokens after header + bar N (the wrap),
    and of bar k+1's after header + bar k (k = 1..N-1, the inner transitions): the same two-bar
    context for both, so the numbers compare. Lower wrap NLL = a smoother loop.
    """
    vocab = model.vocab
    tokens = [int(t) for t in tokens]
    read_header(tokens, vocab)
    header, bars = tokens[:HEADER_LENGTH], _split_bars(tokens[HEADER_LENGTH:], vocab)
    if len(bars) < 2:
        raise ValueError("a loop needs at least two bars")
    pairs = [(bars[-1], bars[0])] + [(bars[k], bars[k + 1]) for k in range(len(bars) - 1)]
    device = next(model.parameters()).device
    scores = []
    for before, after in pairs:
        seq = torch.tensor([header + before + after], device=device)
        nll, _ = model.token_nll(seq)
        first = len(header) + len(before) - 1  # target index of `after`'s first token
        scores.append(float(nll[0, first : first + len(after)].mean()))
    inner = scores[1:]
    return {"wrap_nll": scores[0], "inner_nll": float(np.mean(inner)), "inner_nll_max": float(np.max(inner))}


# ---------------------------------------------------------------------------- the report


def piece_stats(pm: pretty_midi.PrettyMIDI, key: int, *, steps_per_quarter: int = 4) -> dict[str, float]:
    return {"in_key": in_key_share(pm, key), "grid": grid_share(pm, steps_per_quarter=steps_per_quarter),
            "self_similarity": self_similarity(pm, Vocab(steps_per_quarter))}


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def first_bars(tokens, bars: int, vocab: Vocab) -> list[int]:
    """A piece's tokens (header + body) cut after its first `bars` bars (EOS kept; the header's bar count stays)."""
    tokens = [int(t) for t in tokens]
    starts = [i for i, t in enumerate(tokens) if t == vocab.bar]
    return tokens if len(starts) <= bars else tokens[: starts[bars]] + [vocab.eos]


def composer_report(model, data, *, pieces: int = 16, bars: int = 8, seed: int = 0, loop: bool = True,
                    temperature: float = 1.0, top_k: int = 0) -> dict[str, Any]:
    """Everything `audiogen eval --composer` prints, from a model and an `EventData`.

    Held-out pieces: NLL per event beside the bigram (fitted on the training pieces). Up to `pieces`
    held-out pieces per style, each cut to its first `bars` bars (what a composed piece is: `bars` bars
    from a piece's start, in the header's key; a whole movement modulates away from it, so its in-key
    share is no reference for 8 bars): their in-key share, grid share, self-similarity and key-relative
    pitch-class profile per style (`heldout_styles`; `heldout_styles_whole` has the whole pieces' in-key
    share and self-similarity, for comparison). Generated pieces (`pieces` per style, `bars` long, in
    the key and meter of the style's held-out pieces in turn, each with its own seed): the same, and the
    profile distance to the held-out pieces of their style beside the distance between held-out styles.
    With `loop`, wrap and inner transition NLL of pieces composed with loop=True.
    """
    from .data import Crop
    from .events import events_to_midi
    from .generate import compose_tokens

    vocab = model.vocab
    user = model.config.user_styles
    steps = vocab.steps_per_quarter
    rows = data.val_rows(count=max(pieces * 4, 64), length=model.config.context, user_styles=user)
    bigram = Bigram.fit((data.tokens(i)[3:] for i in data.train_pieces), vocab.size)
    report: dict[str, Any] = {"heldout": heldout_nll(model, rows, bigram=bigram)}

    held: dict[str, list[tuple[pretty_midi.PrettyMIDI, list[int]]]] = {}
    whole: dict[str, list[dict[str, float]]] = {}
    for piece in data.val_pieces:
        style = data.pieces[piece]["style"]
        if len(held.setdefault(style, [])) < pieces:
            tokens = data.crop_tokens(Crop(piece, 0, 0), user).tolist()
            key = read_header(tokens, vocab).key
            whole.setdefault(style, []).append(piece_stats(events_to_midi(tokens, vocab), key, steps_per_quarter=steps))
            start = first_bars(tokens, bars, vocab)
            held[style].append((events_to_midi(start, vocab), start))
    profiles = {s: np.mean([pitch_class_profile(pm, key=read_header(t, vocab).key) for pm, t in items], axis=0)
                for s, items in held.items()}
    styles = sorted(held)
    report["heldout_counts"] = {s: len(held[s]) for s in styles}
    report["heldout_styles"] = {
        s: {k: _mean([piece_stats(pm, read_header(t, vocab).key, steps_per_quarter=steps)[k]
                      for pm, t in held[s]]) for k in ("in_key", "grid", "self_similarity")} for s in styles}
    report["heldout_styles_whole"] = {s: {k: _mean([x[k] for x in whole[s]]) for k in ("in_key", "self_similarity")}
                                      for s in styles}
    between = [pitch_class_distance(profiles[a], profiles[b]) for i, a in enumerate(styles) for b in styles[i + 1 :]]
    report["profile_distance_between_styles"] = _mean(between) if between else float("nan")

    generated: dict[str, Any] = {}
    wraps, inners = [], []
    for s in styles:
        if s not in model.config.styles:
            continue
        stats, pcs = [], []
        for k in range(pieces):
            head = read_header(held[s][k % len(held[s])][1], vocab)
            out = compose_tokens(model, bars=bars, style=s, key=head.key, meter=head.meter,
                                 bpm=120.0, seed=seed + k, temperature=temperature, top_k=top_k, loop=loop)
            pm = events_to_midi(out, vocab)
            stats.append(piece_stats(pm, head.key, steps_per_quarter=steps))
            pcs.append(pitch_class_profile(pm, key=head.key))
            if loop:
                lt = loop_transition(model, out)
                wraps.append(lt["wrap_nll"])
                inners.append(lt["inner_nll"])
        generated[s] = {k: _mean([x[k] for x in stats]) for k in ("in_key", "grid", "self_similarity")}
        generated[s]["profile_distance_to_heldout"] = pitch_class_distance(np.mean(pcs, axis=0), profiles[s])
        generated[s]["pieces"] = len(stats)
    report["generated_styles"] = generated
    if loop and wraps:
        report["loop"] = {"wrap_nll": _mean(wraps), "inner_nll": _mean(inners)}
    return report


__all__ = ["Bigram", "body_mask", "composer_report", "first_bars", "grid_share", "heldout_nll", "in_key_share",
           "loop_transition", "pitch_class_distance", "pitch_class_profile", "self_similarity", "similarity_matrix"]
