"""Composing: constrained sampling of event tokens, decoded to a `pretty_midi.PrettyMIDI`.

    model = load_composer("runs/composer")
    pm = compose(model, bars=8, style="folk", key="D", meter="3/4", bpm=120, seed=1)
    pm = compose(model, bars=8, style="folk", key="D", meter="3/4", bpm=120, prompt="melody.mid", loop=True)
    write_composition("sketch.mid", model, bars=4, ...)     # validates first; nothing written on bad input

Every sampled token is drawn from the model's logits with the illegal tokens masked out
(`vocab.GrammarState` plus the limits of the request), so every output decodes and has:
exactly `bars` bars (Bar tokens are counted: another Bar only while fewer than `bars`, EOS only
after the last, and a bar must hold a note, unless `allow_empty_bars`); the meter asked for (the
header's, with meter changes masked) and its time signature written; the exact `bpm` written
(the header holds the nearest metronome mark); the key signature of `key` written, and with
`in_key` every pitched note in the key's scale; at most `max_notes_per_bar` notes a bar (so a
bar always ends); only `programs` when given.

`prompt`: a MIDI file (or PrettyMIDI) whose notes are placed on the grid of the meter asked for
(its own tempo map gives their beats; its time signatures are ignored) and continued; the output
holds its bars then new ones, `bars` in all (so the prompt must be shorter).

`loop=True`: the last bar must lead back into the first. After bars 1..N are written, the last
bar is sampled again `loop_candidates` times (a batch, from the same context, so bar 1 is in the
context when it is written), and each candidate is scored by the model's log-likelihood of bar 1
following it (header + bars 1..N-1 + candidate + bar 1, teacher-forced); the candidate under
which bar 1 is most likely to come next is kept. `metrics.loop_transition` measures the result.

Bad input raises `AudiogenError` with one line: bars < 1, an unknown style, an impossible meter
or key, a non-positive tempo, a prompt with no notes or as long as the request.

`python -m pytest tests/composer/test_composer_generate.py` exercises it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from ..errors import AudiogenError
from ..generation.sampling import sample
from . import options
from .events import events_to_midi, midi_to_events
from .model import Composer
from .vocab import (
    DRUMS,
    HEADER_LENGTH,
    METERS,
    NUM_PROGRAMS,
    GrammarState,
    Vocab,
    bars_index,
    parse_key,
    parse_meter,
    scale_pitch_classes,
    tempo_index,
)

MAX_BARS = 256
MIN_BPM, MAX_BPM = 10.0, 400.0


def load_composer(directory: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> Composer:
    """A composer model folder (None: the bundled one, `audiogen/default_model/composer`, when present)."""
    if directory is None:
        directory = bundled_composer()
        if directory is None:
            raise AudiogenError("no composer model: pass --model RUN_DIR (train one with "
                                "`audiogen train composer recipes/composer/composer.toml -o RUN_DIR`)")
    return Composer.load(directory, device=device)


def bundled_composer() -> Path | None:
    """The bundled composer's folder (`audiogen/default_model/composer`), or None when this install has none."""
    bundled = Path(__file__).resolve().parent.parent / "default_model" / options.SUBFOLDER
    return bundled if (bundled / "config.json").exists() else None


class Constraints:
    """The grammar and the request's limits -> a boolean mask of allowed next tokens `[V]`."""

    def __init__(self, vocab: Vocab, *, bars: int, key: int | None, in_key: bool, max_notes_per_bar: int,
                 allow_empty_bars: bool, programs: tuple[int, ...] | None):
        self.vocab, self.bars, self.max_notes = vocab, bars, max_notes_per_bar
        self.allow_empty = allow_empty_bars
        self.forbidden = np.zeros(vocab.size, bool)
        for kind in ("pad", "bos", "style", "bars"):  # nothing of the header comes back in the body
            a, b = vocab.range(kind)
            self.forbidden[a:b] = True
        self.body_forbidden = self.forbidden.copy()
        for kind in ("meter", "tempo", "key"):  # the meter and tempo asked for hold throughout
            a, b = vocab.range(kind)
            self.body_forbidden[a:b] = True
        if programs is not None:
            a, _ = vocab.range("program")
            allowed = np.zeros(NUM_PROGRAMS, bool)
            allowed[list(programs)] = True
            self.body_forbidden[a : a + NUM_PROGRAMS] |= ~allowed
        self.out_of_key = np.zeros(vocab.size, bool)
        if in_key and key is not None:
            a, _ = vocab.range("pitch")
            scale = set(scale_pitch_classes(key))
            self.out_of_key[a : a + 128] = [p % 12 not in scale for p in range(128)]

    def mask(self, state: GrammarState) -> np.ndarray:
        v = self.vocab
        allowed = np.zeros(v.size, bool)
        for a, b in state.allowed():
            allowed[a:b] = True
        if state.phase not in ("bos", "style", "key", "meter", "tempo", "bars"):
            allowed &= ~self.body_forbidden
            can_close = self.allow_empty or state.notes_in_bar > 0
            allowed[v.bar] &= state.bars < self.bars and (can_close or state.bars == 0)
            allowed[v.eos] &= state.bars == self.bars and can_close
            if state.notes_in_bar >= self.max_notes and state.slot == "note" and state.phase == "body":
                keep = allowed[[v.bar, v.eos]]
                allowed[:] = False
                allowed[[v.bar, v.eos]] = keep
            if state.program != DRUMS and state.phase == "body":
                filtered = allowed & ~self.out_of_key
                # (a pitch is the only way on after Velocity: keep the grammar's range if the scale empties it)
                if filtered.any():
                    allowed = filtered
        if not allowed.any():
            raise RuntimeError(f"constrained decoding reached a dead end: {state}")
        return allowed


def _check(model: Composer, *, bars: int, style: str, key, meter, bpm: float, temperature: float, top_k: int,
           loop_candidates: int) -> tuple[int, int | None, tuple[int, int]]:
    if isinstance(bars, bool) or not isinstance(bars, (int, np.integer)) or not 1 <= bars <= MAX_BARS:
        raise AudiogenError(f"bars must be a whole number from 1 to {MAX_BARS}, got {bars}")
    style_slot = model.style_index(style)
    key_number = None if key is None else parse_key(key)
    meter = parse_meter(meter)
    if not (isinstance(bpm, (int, float)) and math.isfinite(bpm) and MIN_BPM <= bpm <= MAX_BPM):
        raise AudiogenError(f"bpm must be between {MIN_BPM:g} and {MAX_BPM:g}, got {bpm}")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise AudiogenError(f"temperature must be a number >= 0, got {temperature}")
    if top_k < 0 or loop_candidates < 1:
        raise AudiogenError("top_k must be >= 0 and loop_candidates >= 1")
    return style_slot, key_number, meter


def _prompt_tokens(prompt, vocab: Vocab, meter: tuple[int, int], key: int | None) -> list[int]:
    """The prompt's body (Bar ..., no EOS) on the grid of `meter`, its own meter and tempo marks dropped."""
    from ..midi import load_midi

    pm = load_midi(prompt, max_seconds=None)  # one-line errors: missing, unreadable, no notes
    encoded = midi_to_events(pm, vocab, meter=meter, key=key if key is not None else 0, eos=False)
    return [t for t in encoded.tokens if vocab.kind(t) not in ("meter", "tempo")]


def _sample(logits: torch.Tensor, allowed: np.ndarray, *, temperature: float, top_k: int,
            generator: torch.Generator) -> int:
    masked = logits.float().masked_fill(~torch.from_numpy(allowed).to(logits.device), float("-inf"))
    return int(sample(masked, temperature=temperature, top_k=top_k, generator=generator).item())


@torch.inference_mode()
def _continue(model: Composer, tokens: list[int], states: list[GrammarState], constraints: Constraints, *,
              temperature: float, top_k: int, generator: torch.Generator) -> list[list[int]]:
    """Sample a batch of continuations of `tokens` (one per state) until EOS; the new tokens of each."""
    B = len(states)
    device = next(model.parameters()).device
    model.setup_cache(B, device=device)
    prefix = torch.tensor([tokens] * B, device=device)
    logits = model.prefill(prefix)
    position = len(tokens)
    out: list[list[int]] = [[] for _ in range(B)]
    with model.decode_threads() as refit:
        while True:
            refit()
            chosen = []
            for b in range(B):
                if states[b].done:
                    chosen.append(model.vocab.pad)
                    continue
                t = _sample(logits[b], constraints.mask(states[b]), temperature=temperature, top_k=top_k,
                            generator=generator)
                states[b].advance(t)
                out[b].append(t)
                chosen.append(t)
            if all(s.done for s in states):
                break
            logits = model.decode_step(torch.tensor(chosen, device=device)[:, None], position=position)
            position += 1
    model.clear_cache()
    return out


def _bar_starts(tokens: list[int], vocab: Vocab) -> list[int]:
    return [i for i, t in enumerate(tokens) if t == vocab.bar]


@torch.inference_mode()
def _best_last_bar(model: Composer, head: list[int], last_bars: list[list[int]], first_bar: list[int]) -> int:
    """Index of the candidate (the last bar's tokens after its Bar, then EOS) after which `first_bar`
    (its Bar included) is most likely."""
    seqs = [head + bar[:-1] + first_bar for bar in last_bars]
    length = max(map(len, seqs))
    rows = torch.full((len(seqs), length), model.vocab.pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        rows[i, : len(s)] = torch.tensor(s)
    device = next(model.parameters()).device
    nll, _ = model.token_nll(rows.to(device))
    scores = []
    for i, bar in enumerate(last_bars):
        first = len(head) + len(bar) - 2  # target index of first_bar[0]
        scores.append(float(nll[i, first : first + len(first_bar)].sum()))
    return int(np.argmin(scores))


def compose_tokens(
    model: Composer,
    *,
    bars: int = options.BARS,
    style: str = options.STYLE,
    key: str | int | None = options.KEY,
    meter: str | tuple[int, int] = options.METER,
    bpm: float = options.BPM,
    prompt: str | os.PathLike | pretty_midi.PrettyMIDI | None = None,
    loop: bool = False,
    seed: int = options.SEED,
    temperature: float = options.TEMPERATURE,
    top_k: int = options.TOP_K,
    in_key: bool = False,
    programs: list[int] | tuple[int, ...] | None = None,
    max_notes_per_bar: int = 32,
    allow_empty_bars: bool = False,
    loop_candidates: int = 8,
) -> list[int]:
    """The composed tokens (header, then Bar ... EOS); `compose` decodes them. `key=None`: the model picks it."""
    style_slot, key_number, meter = _check(model, bars=bars, style=style, key=key, meter=meter, bpm=bpm,
                                           temperature=temperature, top_k=top_k, loop_candidates=loop_candidates)
    vocab = model.vocab
    if programs is not None:
        programs = tuple(int(p) for p in programs)
        if not programs or any(not 0 <= p < NUM_PROGRAMS for p in programs):
            raise AudiogenError(f"programs must be GM programs 0-127 (or {DRUMS} for drums), got {list(programs)}")
    generator = torch.Generator().manual_seed(int(seed))
    constraints = Constraints(vocab, bars=bars, key=key_number, in_key=in_key, max_notes_per_bar=max_notes_per_bar,
                              allow_empty_bars=allow_empty_bars, programs=programs)
    state = GrammarState(vocab)
    tokens = [vocab.bos, vocab.token("style", style_slot)]
    for t in tokens:
        state.advance(t)
    if key_number is None:  # the model picks the key for the style
        model.setup_cache(1)
        logits = model.prefill(torch.tensor([tokens]))
        key_token = _sample(logits[0], constraints.mask(state), temperature=temperature, top_k=top_k,
                            generator=generator)
        model.clear_cache()
        key_number = vocab.value(key_token)
        constraints = Constraints(vocab, bars=bars, key=key_number, in_key=in_key,
                                  max_notes_per_bar=max_notes_per_bar, allow_empty_bars=allow_empty_bars,
                                  programs=programs)
    rest = [vocab.token("key", key_number), vocab.token("meter", METERS.index(meter)),
            vocab.token("tempo", tempo_index(bpm)), vocab.token("bars", bars_index(bars))]
    if prompt is not None:
        body = _prompt_tokens(prompt, vocab, meter, key_number)
        prompt_bars = body.count(vocab.bar)
        if prompt_bars >= bars:
            raise AudiogenError(f"the prompt already fills {prompt_bars} bars of {meter[0]}/{meter[1]}: "
                                f"ask for more than {prompt_bars} bars")
        rest += body
    for t in rest:
        state.advance(t)
    tokens += rest
    tokens += _continue(model, tokens, [state], constraints, temperature=temperature, top_k=top_k,
                        generator=generator)[0]
    if loop and bars >= 2:
        # The last bar again, loop_candidates - 1 more times from the same context (its Bar included);
        # keep the one (the first draw among them) after which bar 1 is most likely.
        starts = _bar_starts(tokens, vocab)
        head = tokens[: starts[bars - 1] + 1]
        state = GrammarState(vocab)
        for t in head:
            state.advance(t)
        candidates = [tokens[len(head) :]]
        if loop_candidates > 1:
            candidates += _continue(model, head, [state.copy() for _ in range(loop_candidates - 1)], constraints,
                                    temperature=temperature, top_k=top_k, generator=generator)
        first_bar = tokens[starts[0] : starts[1]]
        tokens = head + candidates[_best_last_bar(model, head, candidates, first_bar)]
    return tokens


def compose(
    model: Composer,
    *,
    bars: int = options.BARS,
    style: str = options.STYLE,
    key: str | int | None = options.KEY,
    meter: str | tuple[int, int] = options.METER,
    bpm: float = options.BPM,
    prompt: str | os.PathLike | pretty_midi.PrettyMIDI | None = None,
    loop: bool = False,
    seed: int = options.SEED,
    temperature: float = options.TEMPERATURE,
    top_k: int = options.TOP_K,
    in_key: bool = False,
    programs: list[int] | tuple[int, ...] | None = None,
    max_notes_per_bar: int = 32,
    allow_empty_bars: bool = False,
    loop_candidates: int = 8,
) -> pretty_midi.PrettyMIDI:
    """Write `bars` bars in a style, key, meter and tempo (or continue `prompt`); see the module docstring.

    `bpm` is quarter notes per minute (MIDI's tempo; a 6/8 bar lasts 3 quarters). The result's
    `get_end_time()` is exactly `bars` bars.
    """
    tokens = compose_tokens(model, bars=bars, style=style, key=key, meter=meter, bpm=bpm, prompt=prompt, loop=loop,
                            seed=seed, temperature=temperature, top_k=top_k, in_key=in_key, programs=programs,
                            max_notes_per_bar=max_notes_per_bar, allow_empty_bars=allow_empty_bars,
                            loop_candidates=loop_candidates)
    return events_to_midi(tokens, model.vocab, bpm=float(bpm))


def write_composition(path: str | os.PathLike, model: Composer, **kwargs) -> Path:
    """`compose(model, **kwargs)` written to `path` atomically (an error leaves nothing behind)."""
    from ..midi import save_midi

    return save_midi(path, compose(model, **kwargs))


def bar_seconds(meter: str | tuple[int, int], bpm: float) -> float:
    """Length of one bar of `meter` at `bpm` quarter notes per minute."""
    num, den = parse_meter(meter)
    return num * 4.0 / den * 60.0 / bpm


__all__ = ["HEADER_LENGTH", "bar_seconds", "bundled_composer", "compose", "compose_tokens", "load_composer",
           "write_composition"]
