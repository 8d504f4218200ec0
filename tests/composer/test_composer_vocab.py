"""The event vocabulary: ids, keys and meters, the grammar, and MIDI -> events -> MIDI exact on the grid."""

from __future__ import annotations

import io

import numpy as np
import pretty_midi
import pytest
from composer_helpers import song

from audiogen.composer.events import events_to_midi, grid_notes, midi_bytes, midi_to_events
from audiogen.composer.vocab import (
    DRUMS,
    KINDS,
    METERS,
    GrammarError,
    GrammarState,
    Vocab,
    check_grammar,
    estimate_key,
    parse_key,
    parse_meter,
)
from audiogen.errors import AudiogenError

VOCAB = Vocab()


def notes_of(pm: pretty_midi.PrettyMIDI) -> list[tuple]:
    """(program or DRUMS, pitch, start, end, velocity) of every note, sorted; times rounded to 1 us."""
    out = []
    for inst in pm.instruments:
        program = DRUMS if inst.is_drum else inst.program
        out += [(program, n.pitch, round(n.start, 6), round(n.end, 6), n.velocity) for n in inst.notes]
    return sorted(out)


def round_trip(pm: pretty_midi.PrettyMIDI, style: int = 1, **kwargs) -> tuple[list[int], pretty_midi.PrettyMIDI]:
    encoded = midi_to_events(pm, VOCAB, **kwargs)
    tokens = VOCAB.header(style=style, key=encoded.key, meter=encoded.meter, bpm=encoded.bpm,
                          bars=encoded.bars) + encoded.tokens
    check_grammar(VOCAB, tokens)
    decoded = events_to_midi(tokens, VOCAB)
    # and the file itself parses back
    return tokens, pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(decoded)))


def test_ids_are_contiguous_and_invertible() -> None:
    seen = 0
    for kind in KINDS:
        a, b = VOCAB.range(kind)
        assert a == seen and b > a
        seen = b
        assert VOCAB.kind(a) == kind and VOCAB.value(a) == 0 and VOCAB.value(b - 1) == b - a - 1
    assert seen == VOCAB.size
    assert VOCAB.bar_steps((4, 4)) == 16 and VOCAB.bar_steps((3, 4)) == 12 and VOCAB.bar_steps((6, 8)) == 12
    assert VOCAB.bar_steps((2, 4)) == 8 and VOCAB.max_positions == 32
    assert Vocab(12).bar_steps((6, 8)) == 36  # a grid that also holds triplets
    assert VOCAB.describe([VOCAB.token("meter", METERS.index((6, 8))), VOCAB.token("pitch", 60)]) == \
        ["Meter_6/8", "Pitch_60"]
    assert Vocab().fingerprint == VOCAB.fingerprint != Vocab(12).fingerprint


@pytest.mark.parametrize(("text", "key"), [("C", 0), ("D", 2), ("F#", 6), ("Bb major", 10), ("d minor", 14),
                                           ("Am", 21), ("c#m", 13), ("Eb min", 15), (5, 5)])
def test_parse_key(text, key) -> None:
    assert parse_key(text) == key


@pytest.mark.parametrize("text", ["H", "X#", "", "C dorian", "Cb#", 24, -1])
def test_impossible_keys_and_meters_are_one_line_errors(text) -> None:
    with pytest.raises(AudiogenError) as err:
        parse_key(text)
    assert "\n" not in str(err.value)
    for meter in ("7/3", "abc", "4/0", "0/4", (13, 8)):
        with pytest.raises(AudiogenError, match="meter"):
            parse_meter(meter)
    assert parse_meter("6/8") == (6, 8) and parse_meter(" 3 / 4 ") == (3, 4)


def test_key_finding_uses_the_signature_only_for_accidentals() -> None:
    a_minor = np.zeros(12)
    a_minor[[9, 0, 4]] = [5, 2, 3]  # A, C, E with A strongest
    a_minor[[2, 11, 5, 7]] = 1
    assert estimate_key(a_minor) == 21
    assert estimate_key(a_minor, signature=0) == 21  # a C major signature: A minor shares it
    assert estimate_key(a_minor, signature=2) in (2, 23)  # only D major / B minor considered


def test_round_trip_is_exact_on_the_grid_for_pretty_midi_files() -> None:
    pm = song(seed=3, bars=5)
    tokens, back = round_trip(pm)
    assert notes_of(back) == [(p, n, s, e, v) for p, n, s, e, v in
                              [(p, n, s, e, _bucket(v)) for p, n, s, e, v in notes_of(pm)]]
    assert [(ts.numerator, ts.denominator, ts.time) for ts in back.time_signature_changes] == [(4, 4, 0.0)]
    assert back.get_tempo_changes()[1].tolist() == [120.0]
    assert len(back.key_signature_changes) == 1 and back.key_signature_changes[0].key_number == 0
    assert back.get_end_time() == pytest.approx(5 * 2.0)  # 5 bars of 4/4 at 120
    assert tokens.count(VOCAB.bar) == 5


def _bucket(velocity: int) -> int:
    from audiogen.composer.vocab import VELOCITIES

    return VELOCITIES[int(np.argmin([abs(v - velocity) for v in VELOCITIES]))]


def test_meter_and_tempo_changes_long_notes_and_unisons() -> None:
    """3/4 for two bars, then 6/8 at a bar line, a tempo change there, a note held into bar 3, unisons."""
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120)
    pm._tick_scales = [(0, 60 / (120 * 480)), (2 * 3 * 480, 60 / (92 * 480))]  # 92 bpm from bar 3 on
    pm._update_tick_to_time(20 * 480)
    t = lambda quarters: float(pm.tick_to_time(int(round(quarters * 480))))  # noqa: E731
    pm.time_signature_changes += [pretty_midi.TimeSignature(3, 4, 0.0), pretty_midi.TimeSignature(6, 8, t(6))]
    a, b = pretty_midi.Instrument(program=0), pretty_midi.Instrument(program=40)
    a.notes += [pretty_midi.Note(100, 60, t(0), t(1)), pretty_midi.Note(100, 64, t(0), t(8)),  # 8 quarters
                pretty_midi.Note(50, 67, t(3.25), t(3.5)), pretty_midi.Note(100, 72, t(7.5), t(8.25))]
    b.notes += [pretty_midi.Note(90, 60, t(0), t(1)), pretty_midi.Note(90, 62, t(6), t(7.5))]
    pm.instruments += [a, b]
    tokens, back = round_trip(pm)
    names = VOCAB.describe(tokens)
    assert names.count("BAR") == 3 and names[names.index("Meter_6/8") - 1] == "BAR"
    assert names[names.index("Meter_6/8") + 1] == "Tempo_92"
    assert [(ts.numerator, ts.denominator) for ts in back.time_signature_changes] == [(3, 4), (6, 8)]
    assert back.get_tempo_changes()[1].tolist() == pytest.approx([120.0, 92.0], rel=1e-5)  # whole microseconds
    expected = [(p, n, s, e, _bucket(v)) for p, n, s, e, v in notes_of(pm)]
    got = notes_of(back)
    assert [(p, n, v) for p, n, _, _, v in got] == [(p, n, v) for p, n, _, _, v in expected]
    assert np.allclose([(s, e) for _, _, s, e, _ in got], [(s, e) for _, _, s, e, _ in expected], atol=1e-5)


def test_durations_beyond_a_bar_come_back_within_their_bucket() -> None:
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    for k, steps in enumerate([17, 19, 23, 33, 90, 200]):
        inst.notes.append(pretty_midi.Note(100, 60 + k, 0.0, steps * 0.125))
    pm.instruments.append(inst)
    _, back = round_trip(pm)
    got = {n.pitch: round((n.end - n.start) / 0.125) for n in back.instruments[0].notes}
    assert got == {60: 16, 61: 18, 62: 24, 63: 32, 64: 96, 65: 96}  # nearest bucket (ties: shorter), at most 24 q


def test_off_grid_notes_move_to_the_nearest_step_and_are_counted() -> None:
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    inst.notes += [pretty_midi.Note(100, 60, 0.0, 0.25), pretty_midi.Note(100, 62, 0.26, 0.5),
                   pretty_midi.Note(100, 64, 0.55, 0.75)]
    pm.instruments.append(inst)
    encoded = midi_to_events(pm, VOCAB)
    assert encoded.off_grid == 2 and encoded.notes == 3
    _, back = round_trip(pm)
    assert [(n.start, n.end) for n in back.instruments[0].notes] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75)]


def test_a_meter_change_inside_a_bar_starts_the_next_bar_line() -> None:
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.time_signature_changes += [pretty_midi.TimeSignature(4, 4, 0.0), pretty_midi.TimeSignature(3, 4, 1.0)]
    inst = pretty_midi.Instrument(program=0)
    inst.notes += [pretty_midi.Note(100, 60, 0.0, 0.5), pretty_midi.Note(100, 62, 1.0, 1.5)]
    pm.instruments.append(inst)
    _, back = round_trip(pm)
    assert [round(n.start, 6) for n in back.instruments[0].notes] == [0.0, 2.0]  # moved to the bar line
    assert [(ts.numerator, ts.time) for ts in back.time_signature_changes] == [(4, 0.0), (3, 2.0)]


def test_round_trip_of_a_bach_chorale_from_music21() -> None:
    music21 = pytest.importorskip("music21")
    from music21.midi import translate

    score = music21.corpus.parse("bach/bwv66.6")
    pm = pretty_midi.PrettyMIDI(io.BytesIO(translate.music21ObjectToMidiFile(score).writestr()))
    pickup = 12  # the chorale starts with a quarter-note pickup in 4/4: its downbeat is 3 quarters in
    encoded = midi_to_events(pm, VOCAB, pickup_steps=pickup)
    assert encoded.key == parse_key("F# minor") and encoded.meter == (4, 4) and encoded.off_grid == 0
    tokens, back = round_trip(pm, style=0, pickup_steps=pickup)
    original, _ = grid_notes(pm, VOCAB)
    # the four voices share a program: unisons are one note (the longest), as in the encoding
    merged: dict[tuple[int, int, int], int] = {}
    for n in original:
        key = (n.onset + pickup, n.pitch, n.program)
        merged[key] = max(merged.get(key, 0), n.duration)
    decoded, moved = grid_notes(back, VOCAB)
    assert moved == 0
    assert {(n.onset, n.pitch, n.program): n.duration for n in decoded} == merged
    assert len(merged) > 100
    assert back.key_signature_changes[0].key_number == parse_key("F# minor")


def test_the_grammar_rejects_what_the_encoder_never_writes() -> None:
    v = VOCAB
    head = v.header(style=0, key=0, meter=(3, 4), bpm=120, bars=1)
    note = [v.token("program", 0), v.token("velocity", 3), v.token("pitch", 60), v.token("duration", 3)]
    good = head + [v.bar, v.token("position", 0)] + note + [v.token("position", 4), v.token("pitch", 62),
                                                            v.token("duration", 1), v.eos]
    assert check_grammar(v, good).done
    bad = {
        "position beyond the bar": head + [v.bar, v.token("position", 12)],
        "position going back": head + [v.bar, v.token("position", 4)] + note + [v.token("position", 2)],
        "no program at a bar's first note": head + [v.bar, v.token("position", 0), v.token("pitch", 60)],
        "pitch not rising": head + [v.bar, v.token("position", 0)] + note + [v.token("pitch", 59)],
        "program not rising": head + [v.bar, v.token("position", 0)] + note + [v.token("program", 0)],
        "header out of order": [v.bos, v.token("key", 0)],
        "notes before a bar": head + [v.token("position", 0)],
        "the meter repeated": head + [v.bar, v.token("meter", METERS.index((3, 4)))],
        "a duration without a pitch": head + [v.bar, v.token("position", 0), v.token("program", 0),
                                             v.token("velocity", 1), v.token("duration", 1)],
    }
    for what, tokens in bad.items():
        with pytest.raises(GrammarError):
            check_grammar(v, tokens)
            pytest.fail(what)


def test_allowed_is_never_empty_on_random_walks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        state = GrammarState(VOCAB)
        for _ in range(400):
            ranges = state.allowed()
            if state.done:
                break
            assert ranges and all(a < b for a, b in ranges)
            a, b = ranges[int(rng.integers(len(ranges)))]
            state.advance(int(rng.integers(a, b)))
