"""Device strings: every spelling a user may type resolves, or fails with one line (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from audiogen.errors import AudiogenError
from audiogen.runtime import resolve_device


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
