"""Garbage on the generation commands' command lines is refused before any work (issue 17): NaN sampling
options, seeds past 2**63 - 1, batch sizes below 1 or past the bound, counts past `MAX_COUNT`, a --prefix that
leaves the output folder, and batch refusals (colliding names, a folder where a file belongs, the shard already
running). Each case: exit status 2, exactly one stderr line, no traceback, nothing written in or beside -o.

    .venv/bin/pytest tests/generation/test_bad_input.py -q

The commands run in this process (`run_main`); validation comes before the model loads, so each case takes
milliseconds (a case that wrongly passed would load the tiny model and generate, and fail its asserts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tinymodel import make_tiny_model, write_seed, write_sketch
from tinymodel import run_main as run_cli

from audiogen.errors import AudiogenError
from audiogen.generation.batch import shard_lock
from audiogen.generation.options import MAX_BATCH_SIZE, MAX_COUNT, MAX_SEED, SamplingConfig, check_stem

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


BAD_OPTIONS = [
    ("generate", "--temperature", "nan"),
    ("loops", "--temperature", "nan"),
    ("render", "{sketch}", "--guidance", "nan"),
    ("loops", "--guidance", "nan"),
    ("loops", "--guidance", "inf"),
    ("continue", "{seed}", "--temperature", "-1"),
    ("continue", "{seed}", "--temperature", "1e-300"),  # would overflow the scaled logits
    ("generate", "--top-p", "1.5"),
    ("generate", "--top-p", "nan"),
    ("generate", "--top-k", "-1"),
    ("generate", "--seed", str(2**70)),
    ("loops", "--seed", str(MAX_SEED + 1)),
    ("loops", "--seed", "-1"),
    ("generate", "--batch-size", "0"),
    ("generate", "--batch-size", "-5"),
    ("loops", "--batch-size", "0"),
    ("continue", "{seed}", "--batch-size", "0"),
    ("render", "{sketch}", "--batch-size", "-5"),
    ("loops", "--count", "2000", "--batch-size", "2000"),
    ("loops", "--prefix", "../escape"),
    ("loops", "--prefix", "a/b"),
    ("loops", "--prefix", ".hidden"),
    ("generate", "--prefix", "../escape"),
    ("generate", "--prefix", "x" * 300),
    ("loops", "--count", "100000"),
    ("generate", "--count", "100000"),
    ("generate", "--count", "0"),
    ("batch", "{jobs}", "--temperature", "nan"),
    ("batch", "{jobs}", "--batch-size", "0"),
    ("batch", "{jobs}", "--seed", str(2**64)),
]


@pytest.mark.parametrize("args", BAD_OPTIONS, ids=lambda a: " ".join(a)[:40])
def test_bad_option_exit_2_one_line_nothing_written(model: Path, tmp_path: Path, capsys, args: tuple[str, ...]) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    fill = {"seed": write_seed(inputs / "seed.wav", seconds=0.3), "sketch": write_sketch(inputs / "s.mid"),
            "jobs": inputs / "jobs.jsonl"}
    fill["jobs"].write_text(json.dumps({"task": "loops", "bars": 1, "count": 1}) + "\n")
    work = tmp_path / "work"  # -o goes in here: it must stay empty, and so must everything beside it
    work.mkdir()
    before = snapshot(tmp_path)
    argv = [a.format(**fill) for a in args]
    output = work / ("x.wav" if args[0] in ("continue", "render") else "out")
    code = run_cli(*argv, "-o", output, "--model", model, "--quiet")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error:"), err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before  # no file, no folder: not in -o, not beside it, not above it


def jobs_file(folder: Path, jobs: list) -> Path:
    path = folder / "jobs.jsonl"
    path.write_text("".join((j if isinstance(j, str) else json.dumps(j)) + "\n" for j in jobs))
    return path


LOOP = {"task": "loops", "bars": 1, "count": 1}
BAD_BATCHES = {
    "colliding names": ([{**LOOP, "name": "x", "count": 2}, {**LOOP, "name": "x-00"}], "line 1", "line 2"),
    "colliding across tasks": ([{**LOOP, "name": "a"}, {"task": "compose", "name": "a"}], "line 1", "line 2"),
    "names differing in case": ([{**LOOP, "name": "Take"}, {**LOOP, "name": "take"}], "line 1", "line 2"),
    "the same job twice": ([LOOP, {"task": "render", "midi": "s.mid"}, LOOP], "line 1", "line 3"),
    "jobs file is a folder": ("folder", "not a file", ""),
    "no jobs": (["# nothing", ""], "no jobs", ""),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_bad_batch_refused_before_any_work(model: Path, tmp_path: Path, capsys, case: str) -> None:
    jobs, *expected = BAD_BATCHES[case]
    if jobs == "folder":
        path = tmp_path / "jobs.jsonl"
        path.mkdir()
    else:
        path = jobs_file(tmp_path, jobs)
    before = snapshot(tmp_path)
    code = run_cli("batch", path, "-o", tmp_path / "out", "--model", model, "--quiet")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error:"), err
    assert all(word in lines[0] for word in expected), lines[0]  # a collision names both lines
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("record", ["manifest.jsonl", "failures.jsonl", "loops.json"])
def test_a_folder_where_a_batch_record_belongs_is_one_line(model: Path, tmp_path: Path, capsys, record: str) -> None:
    path = jobs_file(tmp_path, [LOOP])
    out = tmp_path / "out"
    (out / record).mkdir(parents=True)
    before = snapshot(tmp_path)
    assert run_cli("batch", path, "-o", out, "--model", model, "--quiet") == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and record in lines[0] and "move it away" in lines[0], err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("other", ["0/1", "1/2"])
def test_a_running_shard_refuses_a_second_run_at_once(model: Path, tmp_path: Path, capsys, other: str) -> None:
    """The lock is a real flock, held here as another process would: the same shard (or another split of the
    jobs) started again fails at once in one line, without loading a model. (test_batch_integrity runs two
    real processes.)"""
    path = jobs_file(tmp_path, [LOOP])
    out = tmp_path / "out"
    out.mkdir()
    index, count = (int(x) for x in other.split("/"))
    with shard_lock(out, index, count):
        before = snapshot(tmp_path)
        assert run_cli("batch", path, "-o", out, "--model", model, "--quiet", "--shard", "0/1") == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "running" in err, err
        assert snapshot(tmp_path) == before
        with pytest.raises(AudiogenError):  # the same process, another thread or call: refused too
            with shard_lock(out, index, count):
                pass
    assert [p.name for p in out.iterdir()] == []  # the lock file goes with the lock


@pytest.mark.parametrize("field,value", [
    ("temperature", float("nan")), ("temperature", "hot"), ("temperature", 1e-9), ("temperature", True),
    ("top_k", 1.5), ("top_k", -1), ("top_p", "x"), ("top_p", 1.01), ("guidance", "x"), ("guidance", float("inf")),
    ("seed", 2**70), ("seed", -1), ("seed", 1.0),
])
def test_sampling_config_refuses_values_outside_its_domain(field: str, value) -> None:
    with pytest.raises(AudiogenError) as err:
        SamplingConfig.from_overrides(**{field: value})
    assert field in str(err.value) and "\n" not in str(err.value)


def test_sampling_config_edges_are_accepted() -> None:
    SamplingConfig.from_overrides(temperature=0, top_k=0, top_p=1.0, guidance=0.0, seed=MAX_SEED)
    assert MAX_COUNT == 10_000 and MAX_BATCH_SIZE == 256  # the documented bounds (README, --help)


@pytest.mark.parametrize("name", ["", "a\0b", "a\nb", "../x", "a/b", "a\\b", ".x", "..", "x" * 201, "é" * 101, 5])
def test_bad_stems(name) -> None:
    with pytest.raises(AudiogenError):
        check_stem(name)
    assert check_stem("x" * 200) and check_stem("take 1 (é)")
