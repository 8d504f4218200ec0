"""Device strings and torchrun's environment: every spelling a user may type resolves, or fails with one
line (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from audiogen.errors import AudiogenError
from audiogen.runtime import env_world, resolve_device


def test_cpu_and_auto_resolve_on_a_cpu_machine() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:", "cuda:-1", "CPU", ""])
def test_unknown_device_strings_are_refused(name: str) -> None:
    with pytest.raises(AudiogenError, match="unknown device"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_one_clear_error(name: str) -> None:
    with pytest.raises(AudiogenError, match="no CUDA device"):
        resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bare_cuda_gets_an_index() -> None:
    # torch.cuda.set_device and the CUDA RNG-state calls refuse an index-less device.
    assert resolve_device("cuda") == torch.device("cuda:0")


def test_cli_refuses_cuda_on_a_cpu_machine_with_one_line(tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine accepts the device")
    seed = tmp_path / "seed.wav"
    import numpy as np
    import soundfile as sf

    sf.write(seed, (0.1 * np.sin(np.arange(24000) / 10)).astype("float32"), 24000)
    result = subprocess.run([sys.executable, "-m", "audiogen", "codec", "encode", str(seed), "-o",
                             str(tmp_path / "x.npz"), "--device", "cuda"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no CUDA device" in result.stderr and not (tmp_path / "x.npz").exists()


TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.mark.parametrize("env, expected", [
    ({}, (0, 1, 0)),
    ({"RANK": "0", "WORLD_SIZE": "1"}, (0, 1, 0)),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, (3, 4, 1)),
])
def test_env_world_reads_what_torchrun_sets(monkeypatch, env, expected) -> None:
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert env_world() == expected


@pytest.mark.parametrize("env, variable", [
    ({"RANK": "abc"}, "RANK"), ({"RANK": "-1"}, "RANK"), ({"RANK": "5", "WORLD_SIZE": "2"}, "RANK"),
    ({"RANK": "1"}, "RANK"), ({"RANK": "1.0", "WORLD_SIZE": "2"}, "RANK"), ({"WORLD_SIZE": "0"}, "WORLD_SIZE"),
    ({"WORLD_SIZE": "-2"}, "WORLD_SIZE"), ({"WORLD_SIZE": ""}, "WORLD_SIZE"), ({"LOCAL_RANK": "-1"}, "LOCAL_RANK"),
    ({"LOCAL_RANK": "2", "RANK": "0", "WORLD_SIZE": "2"}, "LOCAL_RANK"),
])
def test_env_world_refuses_what_no_torchrun_sets(monkeypatch, env, variable) -> None:
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(AudiogenError) as err:
        env_world()
    assert str(err.value).startswith(f"environment variable {variable}=") and "\n" not in str(err.value)
