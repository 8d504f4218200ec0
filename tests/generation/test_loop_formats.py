"""Loop files every engine reads: `--format wav|ogg|flac` on `audiogen loops` and batch loops jobs.

    .venv/bin/pytest tests/generation/test_loop_formats.py -q

A tiny model made in the test writes loops in each format; each file is exactly the bars asked for,
its loop points read back (WAV: our smpl chunk reader; Ogg and FLAC: mutagen, a real tag reader)
equal start 0 and the loop's length, and loops.json beside them says the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.oggvorbis import OggVorbis
from tinymodel import SAMPLE_RATE, make_tiny_model

from audiogen import AudioGen, audio
from audiogen.cli import main
from audiogen.generation.loops import loop_length


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def vorbis_loop_points(path: Path) -> tuple[int, int]:
    """(LOOPSTART, LOOPLENGTH) as a tag reader sees them."""
    tags = (FLAC(str(path)) if path.suffix == ".flac" else OggVorbis(str(path))).tags
    return int(tags["LOOPSTART"][0]), int(tags["LOOPLENGTH"][0])


def loop_points(path: Path) -> tuple[int, int]:
    """(start, length) from the file itself, whatever its format."""
    if path.suffix == ".wav":
        info = audio.read_loop_info(path)
        assert info is not None
        return info.start, info.end - info.start + 1
    return vorbis_loop_points(path)


def index_rows(folder: Path) -> dict[str, dict]:
    rows = json.loads((folder / "loops.json").read_text())["loops"]
    return {r["file"]: r for r in rows}


@pytest.mark.parametrize("fmt", ["wav", "ogg", "flac"])
def test_loops_in_each_format_carry_their_loop_points(model: Path, tmp_path: Path, fmt: str) -> None:
    bars, bpm, beats = 2, 151.0, 3
    out = tmp_path / "loops"
    assert run_cli("loops", "-o", out, "--count", "3", "--bars", bars, "--bpm", bpm, "--beats-per-bar", beats,
                   "--batch-size", "2", "--format", fmt, "--model", model, "--no-compose", "--quiet") == 0
    expected = loop_length(bars, bpm, beats, SAMPLE_RATE)
    assert expected == round(bars * beats * 60 / bpm * SAMPLE_RATE)
    files = sorted(out.glob(f"loop-*.{fmt}"))
    assert [f.name for f in files] == [f"loop-{i:02d}.{fmt}" for i in range(3)]
    assert {f.name for f in out.iterdir()} == {f.name for f in files} | {"loops.json"}  # no temp files
    rows = index_rows(out)
    assert sorted(rows) == [f.name for f in files]
    for f in files:
        meta = sf.info(str(f))
        assert (meta.frames, meta.samplerate, meta.channels) == (expected, SAMPLE_RATE, 1)
        assert meta.format == {"wav": "WAV", "ogg": "OGG", "flac": "FLAC"}[fmt]
        assert loop_points(f) == (0, expected)
        info = audio.read_loop_info(f)  # the package's own reader agrees, tempo included
        assert info is not None and (info.start, info.end) == (0, expected - 1) and abs(info.bpm - bpm) < 1e-3
        assert rows[f.name] == {"file": f.name, "format": fmt, "loop_start": 0, "loop_length": expected,
                                "bpm": bpm, "bars": bars, "beats_per_bar": beats, "sample_rate": SAMPLE_RATE}
    # Running again into the same folder replaces the rows instead of adding more.
    assert run_cli("loops", "-o", out, "--count", "2", "--bars", bars, "--bpm", bpm, "--beats-per-bar", beats,
                   "--format", fmt, "--model", model, "--no-compose", "--quiet") == 0
    assert sorted(index_rows(out)) == [f.name for f in files]


def test_each_loop_is_handed_over_as_it_finishes(model: Path) -> None:
    ag = AudioGen.load(model, device="cpu")
    seen: list[tuple[int, np.ndarray]] = []
    loops, sr = ag.loops(3, 1, 120, seed=2, batch_size=2, on_loop=lambda i, wav: seen.append((i, wav.copy())))
    assert [i for i, _ in seen] == [0, 1, 2]
    assert all(np.array_equal(w, loop) for (_, w), loop in zip(seen, loops))
    assert sr == SAMPLE_RATE


def test_batch_loops_jobs_take_a_format(model: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"task": "loops", "bars": 1, "bpm": 100, "count": 2, "format": "ogg", "name": "a"},
             {"task": "loops", "bars": 2, "bpm": 130, "beats_per_bar": 3, "count": 1, "format": "flac", "name": "b"},
             {"task": "loops", "bars": 1, "count": 1, "name": "c"},  # the default: WAV
             {"task": "loops", "bars": 1, "count": 1, "format": "mp3", "name": "bad"}]  # reported, not run
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out"
    assert run_cli("batch", jobs, "-o", out, "--model", model, "--quiet") == 1
    manifest = [json.loads(x)["output"] for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(manifest) == ["a-00.ogg", "a-01.ogg", "b.flac", "c.wav"]
    assert "format must be one of wav, ogg, flac" in (out / "failures.jsonl").read_text()
    rows = index_rows(out)
    assert sorted(rows) == sorted(manifest)
    for name, (bars, bpm, beats) in {"a-00.ogg": (1, 100, 4), "a-01.ogg": (1, 100, 4), "b.flac": (2, 130, 3),
                                     "c.wav": (1, 120, 4)}.items():
        expected = loop_length(bars, bpm, beats, SAMPLE_RATE)
        assert sf.info(str(out / name)).frames == expected
        assert loop_points(out / name) == (0, expected)
        row = rows[name]
        assert (row["loop_start"], row["loop_length"], row["bars"], row["beats_per_bar"], row["bpm"]) == (
            0, expected, bars, beats, bpm)
        assert row["format"] == name.rsplit(".", 1)[1] and row["sample_rate"] == SAMPLE_RATE
    # A resumed run finds everything done and leaves loops.json as it was.
    before = (out / "loops.json").read_bytes()
    assert run_cli("batch", jobs, "-o", out, "--model", model, "--quiet") == 1
    assert (out / "loops.json").read_bytes() == before


def test_save_writes_vorbis_loop_comments(tmp_path: Path) -> None:
    wav = (np.random.default_rng(0).standard_normal((2, 5000)) * 0.1).astype(np.float32)
    loop = audio.LoopInfo(start=100, end=4099, bpm=90.0, beats=8)
    for suffix in (".flac", ".ogg"):
        path = audio.save(tmp_path / f"x{suffix}", wav, 22050, loop=loop)
        assert vorbis_loop_points(path) == (100, 4000)
        assert sf.info(str(path)).frames == 5000
        plain = audio.save(tmp_path / f"plain{suffix}", wav, 22050)
        assert audio.read_loop_info(plain) is None
        with pytest.raises(ValueError):
            audio.save(tmp_path / f"bad{suffix}", wav, 22050, loop=audio.LoopInfo(start=0, end=5000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.flac", "plain.ogg", "x.flac", "x.ogg"]
