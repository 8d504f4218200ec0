"""Where and in what precision models run: device choice, dtype names, and what this machine multiplies natively.

    device = resolve_device("auto")             # cuda when available, else cpu (cuda:LOCAL_RANK under torchrun)
    dtype = resolve_dtype("auto", device)       # bf16 where it is native, else fp32

Inference and training both read these; nothing here imports a model, a task or a training loop.
`env_world()` is the one reader of torchrun's RANK / WORLD_SIZE / LOCAL_RANK (training's process group
and batch jobs' default shard).
"""

from __future__ import annotations

import os

import torch

from .errors import AudiogenError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
LM_DTYPES = ("fp32", "bf16", "auto")  # what a language model runs in (`--dtype`); fp16 is for storage only


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise AudiogenError(f"environment variable {name}={raw!r} is not an integer "
                            f"(torchrun sets it; unset it to run alone)") from None


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment (0, 1, 0 when run alone).

    Values that no torchrun would set (not integers, WORLD_SIZE < 1, RANK or LOCAL_RANK outside
    0..WORLD_SIZE-1) are one line naming the variable: run on, they would do nothing, quietly, or the wrong share.
    """
    rank, world, local = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    if world < 1:
        raise AudiogenError(f"environment variable WORLD_SIZE={world} must be at least 1")
    for name, value in (("RANK", rank), ("LOCAL_RANK", local)):
        if not 0 <= value < world:
            raise AudiogenError(f"environment variable {name}={value} must be in 0..{world - 1} "
                                f"(WORLD_SIZE={os.environ.get('WORLD_SIZE', '1, unset')})")
    return rank, world, local


def resolve_device(name: str) -> torch.device:
    """`auto | cpu | cuda | cuda:N` -> a torch device; CUDA always with its index.

    A bare `cuda` becomes `cuda:LOCAL_RANK` (0 when run alone): `torch.cuda.set_device` and the
    CUDA RNG state calls refuse an index-less device.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if name.startswith("cuda:") and not index.isdigit():
            raise AudiogenError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)")
        if not torch.cuda.is_available():
            raise AudiogenError(f"device {name} requested but no CUDA device is available")
        if not index:
            index = str(env_world()[2])
        if int(index) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise AudiogenError(f"device cuda:{index} requested but only {count} CUDA device(s) exist")
        name = f"cuda:{int(index)}"
    elif name != "cpu":
        raise AudiogenError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)")
    return torch.device(name)


def onednn_packable(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether oneDNN can prepack linear weights of this dtype here (CPU; bf16 needs native support)."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return dtype == torch.float32 or (dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 products are native here: CUDA with bf16, or a CPU oneDNN runs bf16 on (AVX512-BF16, AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return onednn_packable(torch.bfloat16, device)


def resolve_dtype(name: str, device: torch.device, *, choices: tuple[str, ...] = LM_DTYPES) -> torch.dtype:
    """A dtype name of `choices` (auto: bf16 where it is native, else fp32) -> the torch dtype."""
    if name not in choices:
        raise AudiogenError(f"dtype must be {', '.join(choices[:-1])} or {choices[-1]}, not {name!r}")
    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return DTYPES[name]
