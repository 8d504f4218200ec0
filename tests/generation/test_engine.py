"""The Python API (`AudioGen`, `audiogen.generation.engine`): no hidden state between calls, the dtype
option, with a tiny model built in the test.

    .venv/bin/pytest tests/generation/test_engine.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tinymodel import SAMPLE_RATE, frames_of, make_tiny_model, write_sketch
from tinymodel import run_main as run_cli

from audiogen import AudioGen


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def test_api_matches_cli_and_has_no_hidden_state(model: Path, tmp_path: Path) -> None:
    ag = AudioGen.load(model)
    a, sr = ag.generate(seconds=0.5, count=2, seed=3)
    _ = ag.generate(seconds=0.3, count=1, seed=9)  # an unrelated call in between changes nothing
    b, _ = ag.generate(seconds=0.5, count=2, seed=3)
    assert sr == SAMPLE_RATE and a.shape == (2, 1, SAMPLE_RATE // 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    seed = np.random.default_rng(0).standard_normal((2, 22050)).astype(np.float32) * 0.1
    c, _ = ag.continue_audio(seed, 22050, 0.4, keep_prompt=False, seed=2)
    assert c.shape == (1, int(0.4 * SAMPLE_RATE))


def test_bf16_option(model: Path, tmp_path: Path) -> None:
    """--dtype bf16 runs the LM in bf16 (fixed by the seed, recorded in the identity); the codec
    stays fp32; auto picks bf16 exactly where it is native; anything else is a user error."""
    import torch

    from audiogen.errors import AudiogenError
    from audiogen.runtime import native_bf16, resolve_dtype

    fp32 = AudioGen.load(model)
    ag = AudioGen.load(model, dtype="bf16")
    assert ag.lm.heads.weight.dtype == torch.bfloat16 and next(ag.codec.parameters()).dtype == torch.float32
    assert ag.identity["lm_dtype"] == "bf16" and fp32.identity["lm_dtype"] == "fp32"
    check_seeded_and_on_the_cli(ag, model, tmp_path, "bf16")
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == (torch.bfloat16 if native_bf16(cpu) else torch.float32)
    with pytest.raises(AudiogenError, match="dtype must be"):
        AudioGen.load(model, dtype="fp8")


def check_seeded_and_on_the_cli(ag: AudioGen, model: Path, tmp_path: Path, dtype: str) -> None:
    """Two generations with one seed are equal; `render --dtype DTYPE` writes its file."""
    a, _ = ag.generate(seconds=0.5, count=2, seed=3)
    b, _ = ag.generate(seconds=0.5, count=2, seed=3)
    assert np.array_equal(a, b) and a.shape == (2, 1, SAMPLE_RATE // 2) and np.isfinite(a).all()
    out = tmp_path / "r.wav"
    sketch = write_sketch(tmp_path / "s.mid")
    assert run_cli("render", sketch, "-o", out, "--model", model, "--dtype", dtype, "--seconds", "0.5",
                   "--quiet") == 0
    assert frames_of(out) == (SAMPLE_RATE // 2, SAMPLE_RATE, 1)


def test_int8_option(model: Path, tmp_path: Path) -> None:
    """--dtype int8: fp32 weights with int8 copies for the decode steps; seeded, recorded in the identity."""
    import torch

    from audiogen.lm.decode_cpu import int8_available

    if not int8_available():
        pytest.skip("no _weight_int8pack_mm in this PyTorch")
    ag = AudioGen.load(model, dtype="int8")
    assert ag.lm.heads.weight.dtype == torch.float32 and ag.identity["lm_dtype"] == "int8"
    check_seeded_and_on_the_cli(ag, model, tmp_path, "int8")
    assert ag.lm._decoder.kind == "int8"  # the decode steps ran on the int8 copies


def test_continue_guidance_toward_the_seed(model: Path, tmp_path: Path) -> None:
    """continue's guidance pushes toward the seed against silence (a 2-row decode); 1 turns it off; both
    are seeded; the CLI and batch jobs take --guidance / "guidance" for continue too."""
    from tinymodel import write_seed

    ag = AudioGen.load(model)
    seed = write_seed(tmp_path / "seed.wav", seconds=0.5)
    import soundfile as sf

    wav, sr = sf.read(seed, dtype="float32", always_2d=True)
    plain = ag.continue_audio(wav.T, sr, 0.5, keep_prompt=False, guidance=1.0, seed=4)[0]
    assert ag.lm.caches[0].kv.shape[1] == 1  # one row: no negative
    guided = ag.continue_audio(wav.T, sr, 0.5, keep_prompt=False, guidance=3.0, seed=4)[0]
    assert ag.lm.caches[0].kv.shape[1] == 2  # the seed's row and the silence's
    again = ag.continue_audio(wav.T, sr, 0.5, keep_prompt=False, guidance=3.0, seed=4)[0]
    assert np.array_equal(guided, again) and not np.array_equal(plain, guided)
    out = tmp_path / "c.wav"
    assert run_cli("continue", seed, "-o", out, "--model", model, "--seconds", "0.5", "--guidance", "1.5",
                   "--no-keep-prompt", "--quiet") == 0
    assert frames_of(out) == (SAMPLE_RATE // 2, SAMPLE_RATE, 1)
    jobs = tmp_path / "jobs.jsonl"
    job = {"task": "continue", "seed_audio": str(seed), "seconds": 0.5, "guidance": 1.0, "name": "c"}
    jobs.write_text(json.dumps(job) + "\n")
    assert run_cli("batch", jobs, "-o", tmp_path / "batch", "--model", model, "--quiet") == 0
    assert frames_of(tmp_path / "batch" / "c.wav")[0] == SAMPLE_RATE  # the 0.5 s seed, then 0.5 s
