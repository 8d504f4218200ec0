"""Composing with constrained decoding: bar counts, meters, keys, prompts, loops and bad input.

A random tiny composer writes anything the grammar lets it, which is what the constraints must
hold against.
"""

from __future__ import annotations

import io

import pretty_midi
import pytest
import torch
from composer_helpers import song, tiny_composer

from audiogen.composer.events import midi_bytes, midi_to_events
from audiogen.composer.generate import (
    _bar_starts,
    _best_last_bar,
    bar_seconds,
    compose,
    compose_tokens,
    write_composition,
)
from audiogen.composer.model import Composer
from audiogen.composer.vocab import DRUMS, HEADER_LENGTH, check_grammar, parse_key, scale_pitch_classes
from audiogen.errors import AudiogenError

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"max_notes_per_bar": 6}  # a random model fills every bar to the limit: keep it small


@pytest.fixture(scope="module")
def model() -> Composer:
    return tiny_composer()


def reparse(pm: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    return pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(pm)))


@pytest.mark.parametrize("meter", ["2/4", "3/4", "4/4", "6/8"])
def test_every_output_parses_and_has_exactly_the_bars_asked_for(model: Composer, meter: str) -> None:
    num, den = (int(x) for x in meter.split("/"))
    for seed in range(6):
        bars = 1 + seed % 4 + (seed // 4) * 3  # 1, 2, 3, 4, 4, 5
        bpm = [60.0, 97.0, 120.0, 143.5, 180.0, 75.0][seed]
        tokens = compose_tokens(model, bars=bars, style="folk", key="Bb", meter=meter, bpm=bpm, seed=seed, **FAST)
        assert check_grammar(model.vocab, tokens).done
        pm = reparse(compose(model, bars=bars, style="folk", key="Bb", meter=meter, bpm=bpm, seed=seed, **FAST))
        end = bars * bar_seconds(meter, bpm)
        assert pm.get_end_time() == pytest.approx(end, abs=1e-4)
        assert [(ts.numerator, ts.denominator, ts.time) for ts in pm.time_signature_changes] == [(num, den, 0.0)]
        assert [ks.key_number for ks in pm.key_signature_changes] == [parse_key("Bb")]
        assert pm.get_tempo_changes()[1] == pytest.approx([bpm], rel=1e-5)
        onsets = [n.start for inst in pm.instruments for n in inst.notes]
        assert onsets and max(onsets) < end
        # Read back on the grid of that meter: the same number of bars, none of them empty.
        assert midi_to_events(pm, model.vocab, meter=(num, den)).bars == bars
        assert tokens.count(model.vocab.bar) == bars


def test_seeds_fix_the_output_and_change_it(model: Composer) -> None:
    a = compose_tokens(model, bars=2, style="chorale", key="G", meter="3/4", seed=5, **FAST)
    assert compose_tokens(model, bars=2, style="chorale", key="G", meter="3/4", seed=5, **FAST) == a
    assert compose_tokens(model, bars=2, style="chorale", key="G", meter="3/4", seed=6, **FAST) != a


def test_in_key_programs_and_the_model_picking_the_key(model: Composer) -> None:
    pm = compose(model, bars=3, style="renaissance", key="E minor", meter="4/4", seed=1, in_key=True,
                 programs=[0, 40, DRUMS], **FAST)
    scale = set(scale_pitch_classes(parse_key("E minor")))
    pitched = [n.pitch for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    assert pitched and all(p % 12 in scale for p in pitched)
    assert {inst.program for inst in pm.instruments if not inst.is_drum} <= {0, 40}
    tokens = compose_tokens(model, bars=2, style="classical", key=None, meter="2/4", seed=2, **FAST)
    key = model.vocab.value(tokens[2])
    assert model.vocab.kind(tokens[2]) == "key"
    pm = compose(model, bars=2, style="classical", key=None, meter="2/4", seed=2, **FAST)
    assert [ks.key_number for ks in pm.key_signature_changes] == [key]


def test_loop_rewrites_only_the_last_bar_choosing_the_best_lead_into_bar_one(model: Composer) -> None:
    kw = dict(bars=4, style="folk", key="D", meter="6/8", bpm=100.0, seed=3, **FAST)
    plain = compose_tokens(model, **kw)
    looped = compose_tokens(model, loop=True, loop_candidates=6, **kw)
    v = model.vocab
    ps, ls = _bar_starts(plain, v), _bar_starts(looped, v)
    assert len(ls) == 4 and looped[: ls[3] + 1] == plain[: ps[3] + 1]  # bars 1-3 (and the 4th Bar) unchanged
    assert check_grammar(v, looped).done
    # The kept last bar makes bar 1 at least as likely to follow as the plain one (a candidate too).
    head, first = looped[: ls[3] + 1], looped[ls[0] : ls[1]]
    plain_last, looped_last = plain[ps[3] + 1 :], looped[ls[3] + 1 :]
    assert looped_last == plain_last or _best_last_bar(model, head, [plain_last, looped_last], first) == 1
    pm = reparse(compose(model, loop=True, **kw))
    assert pm.get_end_time() == pytest.approx(4 * bar_seconds("6/8", 100.0), abs=1e-4)


def test_a_prompt_is_kept_and_continued(model: Composer, tmp_path) -> None:
    prompt = song(seed=1, bars=2, drums=False, bpm=90.0)  # its own tempo: notes keep their beats
    path = tmp_path / "prompt.mid"
    prompt.write(str(path))
    pm = compose(model, bars=4, style="folk", key="C", meter="4/4", bpm=120.0, prompt=path, seed=0, **FAST)
    assert pm.get_end_time() == pytest.approx(8.0)
    beat = 60.0 / 120.0

    def first_two_bars(p: pretty_midi.PrettyMIDI, seconds_per_beat: float) -> set:
        return {(inst.program, n.pitch, round(n.start / seconds_per_beat * 4))
                for inst in p.instruments for n in inst.notes if n.start < 8 * seconds_per_beat - 1e-6}

    assert first_two_bars(prompt, 60.0 / 90.0) <= first_two_bars(pm, beat)
    tokens = compose_tokens(model, bars=3, style="folk", key="C", meter="4/4", prompt=prompt, seed=0, **FAST)
    assert tokens.count(model.vocab.bar) == 3 and check_grammar(model.vocab, tokens).done


def test_bad_input_is_one_line_and_writes_nothing(model: Composer, tmp_path) -> None:
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(0))
    empty.write(str(tmp_path / "empty.mid"))
    cases = [
        dict(bars=0), dict(bars=-2), dict(bars=2.5), dict(style="jazzz"), dict(meter="7/3"), dict(meter="three"),
        dict(key="H"), dict(key="X#"), dict(bpm=0), dict(bpm=float("nan")), dict(prompt=tmp_path / "empty.mid"),
        dict(prompt=tmp_path / "missing.mid"), dict(bars=2, prompt=song(bars=2, drums=False)),
        dict(programs=[200]), dict(temperature=-1.0),
    ]
    for case in cases:
        out = tmp_path / "out.mid"
        args = {"bars": 4, "style": "folk", "key": "C", "meter": "4/4", "bpm": 120.0, **case}
        with pytest.raises(AudiogenError) as err:
            write_composition(out, model, **args)
        assert "\n" not in str(err.value) and str(err.value), case
        assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir()), case
    path = write_composition(tmp_path / "ok.mid", model, bars=2, seed=1, **FAST)
    assert pretty_midi.PrettyMIDI(str(path)).get_end_time() == pytest.approx(4.0)


def test_half_precision_folder_loads(model: Composer, tmp_path) -> None:
    model.save(tmp_path / "half", half=True)
    model.save(tmp_path / "full")
    back = Composer.load(tmp_path / "half")
    full = Composer.load(tmp_path / "full")
    state = model.state_dict()
    assert all(torch.equal(full.state_dict()[k], state[k]) for k in state)
    assert all(torch.equal(back.state_dict()[k], state[k].half().float()) for k in state)
    size = lambda d: sum(f.stat().st_size for f in d.iterdir())  # noqa: E731
    assert size(tmp_path / "half") < 0.6 * size(tmp_path / "full")
    tokens = compose_tokens(back, bars=2, seed=0, **FAST)
    assert tokens[:HEADER_LENGTH] == compose_tokens(model, bars=2, seed=0, **FAST)[:HEADER_LENGTH]
    assert torch.isfinite(back(torch.tensor([tokens])).detach()).all()
