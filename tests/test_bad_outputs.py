"""Outputs that cannot be written fail before the work, in one line: `-o /proc/out.wav`, `/sys/...`,
`--json /proc/x.json`, a 300-character file name, for every command that writes.

A permission check passes for root on /proc and /sys; the commands create (and remove) a real file where
the output goes before generating (`fileio.check_writable` / `ensure_writable_dir`). The commands run
without --quiet: had the work started, its progress bar would be a second line on stderr.

    .venv/bin/pytest tests/test_bad_outputs.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tinymodel import run_main as run_cli
from tinymodel import writer_inputs

LONG = "n" * 300


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("inputs")
    return writer_inputs(base)


CASES = {
    "continue-proc": ["continue", "{seed}", "-o", "/proc/out.wav", "--model", "{model}", "--seconds", "0.25"],
    "continue-sys": ["continue", "{seed}", "-o", "/sys/out.wav", "--model", "{model}", "--seconds", "0.25"],
    "continue-long-name": ["continue", "{seed}", "-o", "{tmp}/" + LONG + ".wav", "--model", "{model}",
                           "--seconds", "0.25"],
    "render-proc": ["render", "{sketch}", "-o", "/proc/r.wav", "--model", "{model}", "--seconds", "0.25"],
    "loops-proc": ["loops", "-o", "/proc/loops", "--model", "{model}", "--no-compose", "--count", "1"],
    "generate-sys": ["generate", "-o", "/sys/gen", "--model", "{model}", "--seconds", "0.25"],
    "demo-proc": ["demo", "-o", "/proc/demo", "--model", "{model}"],
    "demo-zero-seconds": ["demo", "-o", "{tmp}/demo", "--model", "{model}", "--seconds", "0"],  # wrote render.wav
    "batch-proc": ["batch", "{jobs}", "-o", "/proc/b", "--model", "{model}"],
    "compose-proc": ["compose", "-o", "/proc/x.mid"],
    "compose-long-name": ["compose", "-o", "{tmp}/" + LONG + ".mid"],
    "encode-proc": ["codec", "encode", "{seed}", "-o", "/proc/x.npz", "--codec", "{model}/codec"],
    "encode-long-name": ["codec", "encode", "{seed}", "-o", "{tmp}/" + LONG + ".npz", "--codec", "{model}/codec"],
    "decode-sys": ["codec", "decode", "{npz}", "-o", "/sys/x.wav"],
    "codec-eval-json-proc": ["codec", "eval", "{clips}", "--json", "/proc/x.json", "--codec", "{model}/codec"],
    "codec-eval-plots-sys": ["codec", "eval", "{clips}", "--plots", "/sys/plots", "--codec", "{model}/codec"],
    "tokenize-proc": ["tokenize", "{clips}", "-o", "/proc/ds", "--codec", "{model}/codec"],
    "eval-json-proc": ["eval", "--json", "/proc/x.json", "--model", "{model}"],
    "eval-json-long-name": ["eval", "--json", "{tmp}/" + LONG + ".json", "--model", "{model}"],
    "bench-json-sys": ["bench", "--json", "/sys/x.json", "--smoke"],
    "export-proc": ["export", "{model}", "-o", "/proc/exp"],
    "corpus-proc": ["corpus", "-o", "/proc/corpus", "--hours", "0.001"],
}


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", list(CASES))
def test_an_output_that_cannot_be_written_fails_first_in_one_line(inputs, tmp_path, case, capsys):
    argv = [a.format(tmp=tmp_path, **inputs) for a in CASES[case]]
    before = _tree(inputs["model"].parent)
    status = run_cli(*argv)
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("audiogen: error: "), captured.err
    assert captured.out == ""
    assert _tree(tmp_path) == []  # nothing written, not even a folder
    assert _tree(inputs["model"].parent) == before
