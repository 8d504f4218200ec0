"""`audiogen bench --smoke`: a well-formed table and JSON report in seconds, with and without the peer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tinymodel import make_tiny_model

from audiogen.cli import main
from audiogen.evaluation.bench import BenchConfig, decode_rows, limit_seconds
from audiogen.lm.decode_cpu import int8_available
from audiogen.lm.model import LM, LMConfig
from audiogen.runtime import native_bf16

pytestmark = pytest.mark.usefixtures("one_thread")

DTYPES = ("fp32", "bf16", "int8") if int8_available() else ("fp32", "bf16")  # int8: CPU decode steps
ROW_NUMBERS = ("steps_per_s", "frames_per_s", "audio_x_realtime", "limit_steps_per_s", "fraction_of_limit")


def run_bench(tmp_path: Path, capsys, *args: str) -> tuple[dict, list[str]]:
    out = tmp_path / "bench.json"
    assert main(["bench", "--smoke", "--batch-sizes", "1,2", "--steps", "16", "--quiet", "--json", str(out),
                 *args]) == 0
    table = capsys.readouterr().out.splitlines()
    return json.loads(out.read_text()), table


def check_rows(report: dict, table: list[str], models: set[str]) -> None:
    rows = report["decode"]
    assert {(r["model"], r["dtype"], r["batch"]) for r in rows} == {
        (m, d, b) for m in models for d in DTYPES for b in (1, 2)}
    for row in rows:
        for key in ROW_NUMBERS:
            assert isinstance(row[key], float) and math.isfinite(row[key]) and row[key] > 0, (key, row)
        assert 0 < row["fraction_of_limit"] <= 1.5, row
        assert row["frames_per_s"] == pytest.approx(row["steps_per_s"] * row["batch"])
        assert row["decode_path"] in ("packed", "modules")
        assert row["decode_kernels"] in ({"xnnpack", "onednn", "native", "int8"} if row["decode_path"] == "packed"
                                         else {None})
        assert (row["decode_kernels"] == "int8") == (row["dtype"] == "int8")
    # the table: machine and limit lines, a header, one line per row, the training line
    assert table[0].startswith("machine: cpu") and table[1].startswith("limits: bandwidth")
    header = next(i for i, line in enumerate(table) if line.split()[:3] == ["model", "dtype", "batch"])
    body = table[header + 1 : header + 1 + len(rows)]
    for line, row in zip(body, rows):
        cells = line.split()
        assert cells[:3] == [row["model"], row["dtype"], str(row["batch"])]
        assert float(cells[3]) == pytest.approx(row["steps_per_s"], abs=0.06)
        assert cells[7] == f"{100 * row['fraction_of_limit']:.0f}%"
    assert table[-1].startswith("training (reference size")
    limits, training = report["limits"], report["training"]
    assert all(limits[k] > 0 for k in ("bandwidth_gbs", "fp32_gflops", "bf16_gflops"))
    assert training["tokens_per_s"] > 0 and 0 < training["mfu"] < 1


def test_smoke_with_a_model_folder(tmp_path: Path, capsys) -> None:
    """No peer; the "default" rows, codec and task timings come from a tiny model folder."""
    folder = make_tiny_model(tmp_path / "model")
    report, table = run_bench(tmp_path, capsys, "--no-peer", "--model", str(folder), "--busy")
    check_rows(report, table, {"reference", "default"})
    assert report["default_model"] == str(folder)
    assert not any("musicgen_steps_per_s" in row for row in report["decode"])
    assert all(v > 0 for v in report["codec"].values()) and set(report["codec"]) == {
        "codec_encode_x_realtime", "codec_decode_x_realtime"}
    assert set(report["tasks"]) == {"render_x_realtime", "continue_x_realtime", "loops_x_realtime"}
    assert all(v > 0 for v in report["tasks"].values())
    # each task's time split into phases: every phase the task has took time, and the parts add up to the wall time
    split = report["task_seconds"]
    assert set(split) == {"render", "continue", "loops"}
    for task, spent in split.items():
        assert set(spent) == {"load", "codec encode", "prefill", "decode", "codec decode", "write", "other"}
        assert spent["load"] > 0 and spent["prefill"] > 0 and spent["decode"] > 0 and spent["codec decode"] > 0
        assert spent["write"] > 0 and all(v >= 0 for v in spent.values())
        wall = sum(v for k, v in spent.items() if k != "load")  # the phases and "other" make up the task's wall time
        audio_seconds = {"render": 1.0, "continue": 1.0, "loops": 2.0}[task]  # --smoke: 1 s; one bar at 120 BPM
        assert wall * report["tasks"][f"{task}_x_realtime"] == pytest.approx(audio_seconds, rel=0.02)
    assert split["continue"]["codec encode"] > 0 and split["render"]["codec encode"] == 0  # continue alone has a prompt
    assert any(line.startswith("task time (s), render: load ") for line in table)
    # the same tasks with the LM in bf16, where bf16 is native
    if native_bf16(torch.device("cpu")):
        assert set(report["tasks_bf16"]) == set(report["tasks"]) and all(v > 0 for v in report["tasks_bf16"].values())
        assert any(line.startswith("tasks with --dtype bf16: ") for line in table)
    else:
        assert "tasks_bf16" not in report
    if int8_available():
        assert set(report["tasks_int8"]) == set(report["tasks"]) and all(v > 0 for v in report["tasks_int8"].values())
        assert any(line.startswith("tasks with --dtype int8: ") for line in table)
    assert any(line.startswith("codec: ") for line in table) and any(line.startswith("tasks: ") for line in table)
    # a busy machine: the same figures with a spinning process beside them, adapting threads and not
    for mode in ("adaptive", "fixed"):
        busy = report["busy"][mode]
        assert set(busy["codec"]) == set(report["codec"]) and set(busy["tasks"]) == set(report["tasks"])
        decode = {k for k in busy if k.startswith("decode")}
        assert decode == {"decode_batch_1_steps_per_s", "decode_batch_2_steps_per_s"}
        assert all(v > 0 for v in [*busy["codec"].values(), *busy["tasks"].values()])
    busy_lines = [line for line in table if line.startswith("busy machine")]
    assert len(busy_lines) == 2 and "of idle)" in busy_lines[0] and "AUDIOGEN_ADAPTIVE_THREADS=0" in busy_lines[1]
    # start-up, timed on a pseudo-terminal: the first line comes before the first bar, both before the end
    st = report["startup"]
    assert 0 < st["help_seconds"] and 0 < st["first_line_seconds"] < st["first_bar_seconds"], st
    assert any(line.startswith("start-up (s): --help ") for line in table)
    # the measured model is left as it was (bf16 rows run on a copy)
    lm = LM.load(folder)
    assert lm.heads.weight.dtype == torch.float32


def test_smoke_against_transformers_musicgen(tmp_path: Path, capsys) -> None:
    pytest.importorskip("transformers")
    report, table = run_bench(tmp_path, capsys, "--no-tasks", "--model", str(tmp_path / "missing"))
    check_rows(report, table, {"reference"})
    assert report["default_model"].startswith("not measured")
    for row in report["decode"]:
        assert row["musicgen_steps_per_s"] > 0
        assert row["ours_over_musicgen"] == pytest.approx(row["steps_per_s"] / row["musicgen_steps_per_s"])
    header = next(line for line in table if line.split()[:3] == ["model", "dtype", "batch"])
    assert header.split()[-1] == "ours/musicgen"


def test_limits_and_rows_leave_the_model_alone() -> None:
    """The fastest possible step: weight bytes / bandwidth at batch 1, FLOPs / matmul rate at large batch."""
    torch.manual_seed(0)
    model = LM(LMConfig(num_codebooks=2, codebook_size=32, dim=32, num_layers=1, num_heads=2, context=16)).eval()
    limits = {"bandwidth_gbs": 1.0, "fp32_gflops": 1.0, "bf16_gflops": 2.0}
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    assert limit_seconds(model, 1, torch.float32, limits) == pytest.approx(4 * params / 1e9)
    matrices = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and p.dim() >= 2)
    assert limit_seconds(model, 4096, torch.bfloat16, limits) == pytest.approx(2 * 4096 * matrices / 2e9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = decode_rows("tiny", model, BenchConfig(batch_sizes=(1,), steps=8), torch.device("cpu"), limits, 75.0, {})
    assert [r["dtype"] for r in rows] == list(DTYPES)
    assert limit_seconds(model, 1, "int8", limits) == pytest.approx(params / 1e9)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("nice", ["-1", "20"])
def test_an_impossible_niceness_is_one_line(nice: str, capsys) -> None:
    assert main(["bench", "--smoke", "--busy", nice, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--busy takes a niceness of 0 to 19" in err[0]
