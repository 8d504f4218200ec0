"""Shared test fixtures: synthetic audio, WAV writers, tiny codec configs and trained-ish codecs.

Everything is made in the test (no downloads):
  * `synth(...)`: a deterministic musical-ish signal `[C, N]`; `write_wav(...)` puts one on disk;
    `audio_dir`: a folder of six short clips;
  * `tiny_codec_config(...)`: a CodecConfig small enough for CPU tests; `prime_codec(...)` /
    `seed_codebooks(...)` give untrained codecs meaningful codebooks; `tiny_codec`: one, primed;
  * `write_recipe(...)` / `tiny_recipe(...)`: a tiny codec training recipe (TOML file or object);
  * `trained_codec` (session-wide): a tiny codec trained for 200 steps (seconds), shared by the
    codec, CLI and training tests;
  * `run_cli(...)`: the real `audiogen` entry point in a subprocess; `run_torchrun(...)`: the same
    under `torchrun` with N processes; `torch_threads(n)` /
    `one_thread`: tiny models run fastest on one thread, and the machine is shared.

Run the suite with `.venv/bin/pytest tests -q`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from audiogen.codec import CodecConfig, EncodecCodec


def synth(seconds: float, sample_rate: int = 24000, channels: int = 1, *, seed: int = 0) -> np.ndarray:
    """Deterministic notes with harmonics, decays and a little noise: float32 `[C, N]` in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * sample_rate)))
    t = np.arange(n) / sample_rate
    out = np.zeros((channels, n), np.float64)
    note_len = 0.25
    for c in range(channels):
        for start in np.arange(0.0, max(seconds, 1e-9), note_len):
            f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
            env = np.where(t >= start, np.exp(-(t - start) * 6.0), 0.0) * (t < start + 2 * note_len)
            for h in range(1, 5):
                out[c] += env * np.sin(2 * math.pi * f0 * h * t + rng.uniform(0, 2 * math.pi)) / h
        out[c] += 0.01 * rng.standard_normal(n)
    peak = np.abs(out).max()
    out = out * (0.5 / peak) if peak > 0 else out
    return out.astype(np.float32)


def write_wav(
    path: str | os.PathLike,
    seconds: float = 1.0,
    sample_rate: int = 24000,
    channels: int = 1,
    *,
    seed: int = 0,
    subtype: str = "PCM_16",
    data: np.ndarray | None = None,
) -> Path:
    """Write `data [C, N]` (or `synth(...)`) with soundfile; the format follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = synth(seconds, sample_rate, channels, seed=seed) if data is None else np.asarray(data, np.float32)
    kw = {} if path.suffix.lower() == ".ogg" else {"subtype": subtype}
    sf.write(str(path), wav.T, sample_rate, **kw)
    return path


def tiny_codec_config(**overrides) -> CodecConfig:
    """A CodecConfig of 37 k parameters at 24 kHz: hop 64 (375 Hz frames), 2 codebooks of 64."""
    base = dict(
        sample_rate=24000, channels=1, n_filters=4, dimension=16, ratios=(4, 4, 4), lstm_layers=1,
        causal=False, max_codebooks=2, num_codebooks=2, codebook_size=64, kmeans_iters=5, name="tiny",
    )
    base.update(overrides)
    return CodecConfig(**base)


@torch.no_grad()
def seed_codebooks(quantizer: torch.nn.Module, latent: torch.Tensor, *, seed: int = 0) -> None:
    """Fill an encodec `ResidualVectorQuantizer`'s codebooks from encoder output `latent [1, D, T]`.

    A fresh encodec quantizer holds all-zero codebooks until k-means runs on its first training
    batch, so every code would be 0. Here each residual stage gets frames of its own input plus a
    little noise, so codes vary with the audio and comparisons mean something (cheaper than k-means).
    """
    generator = torch.Generator().manual_seed(seed)
    residual = latent
    for layer in quantizer.vq.layers:
        frames = residual[0].T  # [T, D]
        spread = float(frames.std(0).mean()) + 1e-6
        book = layer._codebook
        picks = frames[torch.randint(frames.shape[0], (book.codebook_size,), generator=generator)]
        embed = picks + 0.3 * spread * torch.randn(picks.shape, generator=generator)
        book.embed.copy_(embed)
        book.embed_avg.copy_(embed)
        book.inited.fill_(1.0)
        residual = residual - layer.decode(layer.encode(residual))


def prime_codec(codec: EncodecCodec, *, seconds: float = 2.0, seed: int = 0) -> EncodecCodec:
    """Seed a codec's codebooks from its encoder's view of `synth` audio (see `seed_codebooks`)."""
    wav = torch.from_numpy(synth(seconds, codec.sample_rate, codec.channels, seed=seed))[None]
    with torch.no_grad():
        seed_codebooks(codec.quantizer, codec.encoder(wav), seed=seed)
    return codec.eval()


@pytest.fixture
def tiny_codec() -> EncodecCodec:
    torch.manual_seed(0)
    return prime_codec(EncodecCodec(tiny_codec_config()))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test (`pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny model folder (LM + codec, `tests/tinymodel.py`), one per test module."""
    from tinymodel import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def tiny_engine(tiny_model: Path):
    """`tiny_model` loaded on CPU (an `AudioGen`), one per test module."""
    from audiogen import AudioGen

    return AudioGen.load(tiny_model, device="cpu")


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """Six 1-second mono clips at 24 kHz (different notes per file)."""
    folder = tmp_path / "audio"
    for i in range(6):
        write_wav(folder / f"clip{i}.wav", 1.0, 24000, 1, seed=100 + i)
    return folder


def run_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`audiogen ARGS...` in a fresh interpreter (the real entry point), capturing text output."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "audiogen", *map(str, args)], capture_output=True, text=True, cwd=cwd,
        env=env, timeout=timeout,
    )


def sigint_default() -> None:
    """`preexec_fn` for a child that a test interrupts with SIGINT: Ctrl-C's default disposition, so Python
    installs its KeyboardInterrupt handler even when this test run was started with SIGINT ignored (a shell's
    background job, `make test &`, hands its children SIGINT ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_torchrun(*args: str, processes: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=N -m audiogen ARGS...` with one thread per process.

    Raises with the ranks' own error lines (not just torchrun's summary) when it fails.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "audiogen", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        keys = ("error", "terminate", "what()", "exception", "abort", "traceback")
        lines = [line for line in proc.stderr.splitlines() if any(k in line.lower() for k in keys)]
        raise AssertionError(f"torchrun exit {proc.returncode}:\n" + "\n".join(lines[:40]) + "\n---\n"
                             + proc.stderr[-1500:])
    return proc


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with `count` torch threads (tiny models run fastest on one; the machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# A codec recipe small enough to train in seconds on one CPU thread: hop 64 (ratios 8*8, 375 Hz
# frames), 2 codebooks of 64, 0.2 s crops; GAN off unless a test turns it on.
TINY_RECIPE: dict[str, dict[str, Any]] = {
    "data": {"crop_seconds": 0.2, "val_seconds": 0.5, "val_crops": 4},
    "model": {"n_filters": 4, "dimension": 16, "ratios": [8, 8], "lstm_layers": 1, "max_codebooks": 2,
              "num_codebooks": 2, "codebook_size": 64, "kmeans_iters": 5, "name": "tiny"},
    "losses": {"adversarial": 0.0, "feature": 0.0, "disc_filters": 4},
    "train": {"steps": 200, "batch_size": 4, "lr": 5e-3, "warmup_steps": 10, "log_every": 10,
              "eval_every": 50, "checkpoint_every": 200, "device": "cpu", "threads": 1},
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def recipe_sections(root: str | os.PathLike, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """TINY_RECIPE with `data.root = root` and `sections` (e.g. `train={"steps": 3}`) merged in."""
    out = {name: dict(values) for name, values in TINY_RECIPE.items()}
    out["data"]["root"] = str(root)
    for name, values in sections.items():
        out.setdefault(name, {}).update(values)
    return out


def write_recipe(path: str | os.PathLike, root: str | os.PathLike, **sections: dict[str, Any]) -> Path:
    """Write `recipe_sections(root, **sections)` as a TOML recipe file."""
    lines = []
    for name, values in recipe_sections(root, **sections).items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


def tiny_recipe(root: str | os.PathLike, **sections: dict[str, Any]):
    """The same recipe as a `CodecRecipe` object (for in-process training)."""
    from audiogen.config import from_dict, merge, to_dict
    from audiogen.training.codec import CodecRecipe

    return from_dict(CodecRecipe, merge(to_dict(CodecRecipe()), recipe_sections(root, **sections)))


@dataclasses.dataclass
class TrainedCodec:
    directory: Path  # the run folder: config.json + model.safetensors (a loadable codec folder)
    audio_dir: Path  # the clips it was trained on
    before: dict[str, float]  # validation at step 0
    evals: list[dict[str, str]]  # eval_log.csv rows


@pytest.fixture(scope="session")
def trained_codec(tmp_path_factory) -> TrainedCodec:
    """A tiny codec trained for 200 steps on six synthetic clips (about 10 s on one thread)."""
    from audiogen.training.codec import CodecTask
    from audiogen.training.loop import run

    base = tmp_path_factory.mktemp("trained_codec")
    clips = base / "audio"
    for i in range(6):
        write_wav(clips / f"clip{i}.wav", 1.0, 24000, 1, seed=100 + i)
    recipe = tiny_recipe(clips)
    with torch_threads(1):
        torch.manual_seed(0)
        task = CodecTask(recipe, device=torch.device("cpu"))
        task.codec.eval()
        before = task.evaluate()
        run(task, recipe.train, base / "run", device=torch.device("cpu"), quiet=True)
    return TrainedCodec(directory=base / "run", audio_dir=clips, before=before,
                        evals=read_csv(base / "run" / "eval_log.csv"))
