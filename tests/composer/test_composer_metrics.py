"""Composer metrics on hand-made pieces with known answers, and the report end to end."""

from __future__ import annotations

import math

import numpy as np
import pretty_midi
import pytest
import torch
from composer_helpers import midi_folder, song, tiny_composer

from audiogen.composer.data import Crop, EventData, build_dataset
from audiogen.composer.metrics import (
    Bigram,
    body_mask,
    composer_report,
    first_bars,
    grid_share,
    heldout_nll,
    in_key_share,
    loop_transition,
    pitch_class_distance,
    pitch_class_profile,
    self_similarity,
)
from audiogen.composer.vocab import HEADER_LENGTH, Vocab

pytestmark = pytest.mark.usefixtures("one_thread")
VOCAB = Vocab()


def melody(pitches: list[int], *, step: float = 0.5, offsets: dict[int, float] | None = None,
           drums: list[int] = ()) -> pretty_midi.PrettyMIDI:
    """Quarter notes at 120 bpm (4 a bar); `offsets` moves note i later by that many seconds."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    for i, p in enumerate(pitches):
        start = i * step + (offsets or {}).get(i, 0.0)
        inst.notes.append(pretty_midi.Note(100, p, start, start + step * 0.9))
    pm.instruments.append(inst)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes += [pretty_midi.Note(100, d, i * step, i * step + 0.1) for i, d in enumerate(drums)]
        pm.instruments.append(kit)
    return pm


def test_in_key_share() -> None:
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    assert in_key_share(melody(c_major, drums=[37, 39, 42]), 0) == 1.0  # drums do not count
    assert in_key_share(melody([60, 61, 62, 63, 64, 65, 67, 68]), 0) == 0.625
    assert in_key_share(melody(c_major), 9 + 12) == 1.0  # A minor has the same notes
    assert in_key_share(melody([60, 66]), 2) == 0.5  # D major: F# yes, C no
    assert math.isnan(in_key_share(pretty_midi.PrettyMIDI(), 0))


def test_pitch_class_profiles_and_distance() -> None:
    a = melody([60, 64, 67, 72])
    assert pitch_class_distance(pitch_class_profile(a), pitch_class_profile(a)) == 0.0
    assert pitch_class_distance(pitch_class_profile(a), pitch_class_profile(melody([61, 66]))) == 1.0
    half = pitch_class_distance(pitch_class_profile(melody([60, 62])), pitch_class_profile(melody([60, 64])))
    assert half == pytest.approx(0.5)
    up = melody([62, 66, 69, 74])  # the same in D: apart in absolute terms, equal relative to the key
    assert pitch_class_distance(pitch_class_profile(a), pitch_class_profile(up)) == 1.0
    assert pitch_class_distance(pitch_class_profile(a, key=0), pitch_class_profile(up, key=2)) == 0.0


def test_grid_share() -> None:
    assert grid_share(melody([60] * 5)) == 1.0
    assert grid_share(melody([60] * 5, offsets={2: 0.03})) == 0.8  # 3/4 of a 1/16 step late
    assert grid_share(melody([60] * 4, offsets={1: 0.0625, 3: 0.0625}), steps_per_quarter=8) == 1.0


def test_self_similarity() -> None:
    bar_a, bar_b, bar_c = [60, 62, 64, 65], [67, 69, 71, 72], [48, 50, 52, 53]
    assert self_similarity(melody(bar_a * 4)) == 1.0
    assert self_similarity(melody(bar_a + bar_b + bar_c)) == 0.0
    assert self_similarity(melody(bar_a + bar_b + bar_a + bar_b)) == pytest.approx(2 / 3)
    half = [60, 62, 67, 69]  # shares 2 of 6 distinct onsets with bar_a
    assert self_similarity(melody(bar_a + half)) == pytest.approx(2 / 6)


def test_bigram_and_the_body_mask() -> None:
    bigram = Bigram.fit([[0, 1, 0, 1]], 2, alpha=1.0)
    # counts + 1: 0->1: 3, 0->0: 1; 1->0: 2, 1->1: 1
    assert np.allclose(bigram.token_nll(np.array([[0, 1, 0]])), [[-math.log(3 / 4), -math.log(2 / 3)]])
    v = VOCAB
    head = v.header(style=0, key=0, meter=(4, 4), bpm=120, bars=1)
    rows = np.array([head + [v.bar, v.eos, v.pad, v.pad]])
    mask = body_mask(rows, v)
    assert mask.tolist() == [[False] * (HEADER_LENGTH - 1) + [True, True, False, False]]


def train_on(model, rows: torch.Tensor, steps: int) -> None:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(rows).backward()
        opt.step()
    model.eval()


def test_loop_transition_tells_a_seamless_loop_from_a_broken_one() -> None:
    """A model that has only seen A B A B ... knows B -> A and A -> B, never A -> A."""
    v = VOCAB
    torch.manual_seed(0)
    model = tiny_composer(context=128)

    def bar(pitch: int) -> list[int]:
        return [v.bar, v.token("position", 0), v.token("program", 0), v.token("velocity", 4),
                v.token("pitch", pitch), v.token("duration", 15)]

    head = v.header(style=1, key=0, meter=(4, 4), bpm=120, bars=8)
    a, b = bar(60), bar(67)
    rows = torch.tensor([head + (a + b) * 5, head + (b + a) * 5])[:, :61]  # either bar may come first
    train_on(model, rows, steps=300)  # (it finds "look one bar back" after about 200 steps)
    good = loop_transition(model, head + a + b + a + b + [v.eos])
    bad = loop_transition(model, head + a + b + a + [v.eos])
    assert good["wrap_nll"] < 0.1 * bad["wrap_nll"]
    assert good["inner_nll"] < bad["wrap_nll"] and good["inner_nll_max"] >= good["inner_nll"]
    with pytest.raises(ValueError):
        loop_transition(model, head + a + [v.eos])
    rows = np.array([(head + a + b + [v.eos])])
    scores = heldout_nll(model, rows, bigram=Bigram.fit([rows[0]], v.size))
    assert scores["events"] == 2 * len(a) + 1 and scores["nll_ratio"] == pytest.approx(
        scores["nll"] / scores["bigram_nll"])


def test_composer_report_end_to_end(tmp_path) -> None:
    folder = midi_folder(tmp_path / "midi", count=6)
    build_dataset(tmp_path / "data", music21=False, midi_dir=str(folder), midi_style="folk")
    data = EventData(tmp_path / "data", val_fraction=0.5)
    model = tiny_composer(context=64)
    report = composer_report(model, data, pieces=2, bars=2, loop=True)
    assert report["heldout"]["nll"] > 0 and report["heldout"]["bigram_nll"] > 0
    held = report["heldout_styles"]["folk"]
    assert held["grid"] == 1.0 and 0.5 <= held["in_key"] <= 1.0  # the helper's songs are on the grid, in key
    gen = report["generated_styles"]["folk"]
    assert gen["grid"] == 1.0 and 0 <= gen["in_key"] <= 1 and 0 <= gen["profile_distance_to_heldout"] <= 1
    assert report["loop"]["wrap_nll"] > 0 and report["loop"]["inner_nll"] > 0


def test_composer_report_compares_the_first_bars_and_composes_every_piece_asked_for(tmp_path) -> None:
    """Held-out pieces in C for 2 bars, then 4 bars of C# and Eb only: a composed 2-bar piece is
    compared with their first 2 bars (all in key), not the whole pieces; and a style with one held-out
    piece still gets `pieces` generated ones."""
    folder = tmp_path / "midi"
    folder.mkdir()
    for i in range(4):
        pm = song(seed=i, bars=2, drums=False)
        pm.key_signature_changes.append(pretty_midi.KeySignature(0, 0.0))
        for b in range(2, 6):
            for k in range(4):  # C# Eb C# Eb, quarter notes
                start = b * 2.0 + k * 0.5
                pm.instruments[0].notes.append(pretty_midi.Note(90, 61 + 2 * (k % 2), start, start + 0.5))
        pm.write(str(folder / f"song{i}.mid"))
    build_dataset(tmp_path / "data", music21=False, midi_dir=str(folder), midi_style="folk")
    data = EventData(tmp_path / "data", val_fraction=0.01, min_val_per_style=0)
    assert len(data.val_pieces) == 1
    v = data.vocab
    tokens = data.crop_tokens(Crop(data.val_pieces[0], 0, 0)).tolist()
    cut = first_bars(tokens, 2, v)
    assert cut.count(v.bar) == 2 and cut[-1] == v.eos and cut[:-1] == tokens[: len(cut) - 1]
    assert first_bars(tokens, 50, v) == tokens
    report = composer_report(tiny_composer(context=96), data, pieces=3, bars=2, loop=False)
    assert report["heldout_styles"]["folk"]["in_key"] == 1.0
    assert report["heldout_styles_whole"]["folk"]["in_key"] < 0.7
    assert report["heldout_counts"] == {"folk": 1} and report["generated_styles"]["folk"]["pieces"] == 3
