"""The event dataset: a user MIDI folder and music21 scores, the per-piece cache, the split, batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from composer_helpers import midi_folder

from audiogen.composer.data import (
    Crop,
    EventData,
    build_dataset,
    encode_piece,
    heldout_split,
    list_sources,
    pitched_mask,
)
from audiogen.composer.vocab import HEADER_LENGTH, STYLES, GrammarState, check_grammar, transpose_key
from audiogen.errors import AudiogenError
from audiogen.folders import is_validation


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("composer_data")
    folder = midi_folder(root / "midi", count=8)
    (folder / "broken.mid").write_bytes(b"MThd not really")
    summary = build_dataset(root / "data", music21=False, midi_dir=str(folder), midi_style="jigs")
    return root, summary


def test_build_caches_every_piece_and_stores_int16_without_pickles(dataset) -> None:
    root, summary = dataset
    assert summary.pieces == 8 and summary.failed == 1 and summary.parsed == 9 and summary.styles == {"jigs": 8}
    events = np.load(root / "data" / "events.npy", allow_pickle=False)
    assert events.dtype == np.int16 and len(events) == summary.tokens
    index = json.loads((root / "data" / "index.json").read_text())
    assert [p["start"] for p in index["pieces"]] == list(np.cumsum([0] + [p["length"] for p in index["pieces"]])[:-1])
    assert len(list((root / "data" / "pieces").glob("*.err"))) == 1
    again = build_dataset(root / "data", music21=False, midi_dir=str(root / "midi"), midi_style="jigs")
    assert again.parsed == 0 and again.pieces == 8 and again.tokens == summary.tokens  # nothing parsed twice


def test_user_errors(tmp_path) -> None:
    with pytest.raises(AudiogenError, match="midi_style"):
        build_dataset(tmp_path / "d", music21=False, midi_dir=str(tmp_path))
    with pytest.raises(AudiogenError, match="no .mid"):
        build_dataset(tmp_path / "d", music21=False, midi_dir=str(tmp_path), midi_style="x")
    with pytest.raises(AudiogenError, match="not a composer dataset"):
        EventData(tmp_path)


def test_split_by_piece_and_crops_that_follow_the_grammar(dataset) -> None:
    root, _ = dataset
    data = EventData(root / "data", val_fraction=0.25)
    assert set(data.train_pieces).isdisjoint(data.val_pieces) and data.val_pieces
    assert sorted(data.train_pieces + data.val_pieces) == list(range(8))
    assert EventData(root / "data", val_fraction=0.25).val_pieces == data.val_pieces
    v = data.vocab
    for piece in range(len(data.pieces)):
        bar_at, meters, tempi = data.bars(piece)
        assert len(bar_at) == data.pieces[piece]["bars"]
        for bar in range(len(bar_at)):
            tokens = data.crop_tokens(Crop(piece, bar, 0), ["jigs"])
            state = check_grammar(v, tokens)
            assert state.done and state.bars == len(bar_at) - bar
            assert v.value(int(tokens[1])) == len(STYLES)  # the first user slot


def test_transposition_moves_pitched_notes_and_the_key_only(dataset) -> None:
    root, _ = dataset
    data = EventData(root / "data")
    v = data.vocab
    plain = data.crop_tokens(Crop(0, 1, 0), ["jigs"])
    up = data.crop_tokens(Crop(0, 1, 3), ["jigs"])
    check_grammar(v, up)
    pitched = pitched_mask(plain, v)
    drums = (v.kinds[plain] == v.kinds[v.range("pitch")[0]]) & ~pitched
    assert pitched.any() and drums.any()
    assert np.array_equal(up[pitched] - plain[pitched], np.full(pitched.sum(), 3))
    assert np.array_equal(up[~pitched][HEADER_LENGTH:], plain[~pitched][HEADER_LENGTH:])  # drums and the rest
    assert v.value(int(up[2])) == transpose_key(v.value(int(plain[2])), 3)
    assert data.transpositions(0, 5) == list(range(-5, 6))


def test_batches_are_a_pure_function_of_seed_and_index(dataset) -> None:
    root, _ = dataset
    data = EventData(root / "data", val_fraction=0.25)
    kw = dict(batch_size=3, length=80, transpose=4, user_styles=["jigs"])
    a = data.train_batch(seed=1, index=7, **kw)
    assert a.shape == (3, 81) and np.array_equal(a, data.train_batch(seed=1, index=7, **kw))
    assert not np.array_equal(a, data.train_batch(seed=1, index=8, **kw))
    assert not np.array_equal(a, data.train_batch(seed=2, index=7, **kw))
    v = data.vocab
    for row in a:  # packed crops: each starts at BOS and follows the grammar (the last one is cut)
        assert row[0] == v.bos
        starts = list(np.flatnonzero(row == v.bos)) + [len(row)]
        for s, e in zip(starts[:-1], starts[1:]):
            state = GrammarState(v)
            for t in row[s:e]:
                state.advance(int(t))
    val = data.val_rows(count=10, length=80, user_styles=["jigs"])
    assert len(val) == len(data.val_pieces) and (val[:, 0] == v.bos).all()


def test_music21_scores_with_their_style_and_pickup(tmp_path) -> None:
    pytest.importorskip("music21")
    summary = build_dataset(tmp_path / "m21", groups=["chorale"], max_pieces=2)
    assert summary.pieces == 2 and summary.styles == {"chorale": 2}
    data = EventData(tmp_path / "m21", val_fraction=0.0)
    v = data.vocab
    for piece in range(2):
        tokens = data.crop_tokens(Crop(piece, 0, 0))
        assert v.value(int(tokens[1])) == STYLES.index("chorale")
        assert check_grammar(v, tokens).done
    # BWV 66.6 starts with a one-beat pickup: its first note sits on the 4th beat of bar 1.
    music21 = pytest.importorskip("music21")
    tokens = encode_piece(str(music21.corpus.getWork("bach/bwv66.6")), None, "chorales", 4)
    assert v.describe(tokens[:5].tolist()) == ["Key_F#_minor", "Meter_4/4", "Tempo_96", "BAR", "Position_12"]


def test_heldout_split_gives_a_small_style_enough_pieces() -> None:
    names = [f"big/{i}" for i in range(400)] + [f"small/{i}" for i in range(40)] + ["small/0", "tiny/0", "tiny/1"]
    styles = [n.split("/")[0] for n in names]
    plain = [is_validation(n, 0.05) for n in names]
    val = heldout_split(names, styles, 0.05, min_per_style=12)
    big = [i for i, s in enumerate(styles) if s == "big"]
    assert sum(plain[i] for i in big) >= 12 and all(val[i] == plain[i] for i in big)  # enough by hash: unchanged
    small = {n for n, s, v in zip(names, styles, val) if s == "small" and v}
    plain_small = {n for n, s, v in zip(names, styles, plain) if s == "small" and v}
    assert len(plain_small) < 10 and plain_small < small and len(small) == 10  # a quarter of 40 at most
    assert val[names.index("small/0")] == val[len(names) - 3]  # a name's copies stay together
    assert [v for v, s in zip(val, styles) if s == "tiny"] == [v for v, s in zip(plain, styles) if s == "tiny"]
    assert heldout_split(names, styles, 0.05, min_per_style=0) == plain
    assert heldout_split(names, styles, 0.05, min_per_style=12) == val  # a pure function of the names


def test_the_composer_lists_the_large_classical_scores_the_audio_corpus_leaves_out() -> None:
    pytest.importorskip("music21")
    from audiogen.corpus import sources as scores

    audio = scores.music21_sources()
    composer = [s for s, _ in list_sources()]
    added = [s for s in composer if s not in set(audio)]
    assert set(audio) <= set(composer) and added
    assert all(s.group == "classical" and s.tune is None and Path(s.path).stat().st_size > scores.MAX_SCORE_BYTES
               for s in added)
    assert all(Path(s.path).stat().st_size <= scores.MAX_SCORE_BYTES for s in audio if s.tune is None)
