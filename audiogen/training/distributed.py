"""Process-group helpers: the same code runs alone or under `torchrun` (DDP, gloo or nccl).

Gradients are averaged with one all-reduce per optimizer after accumulation instead of
wrapping modules in DistributedDataParallel: codec training backpropagates through a
discriminator twice per step and updates codebook buffers in place, which DDP's hooks
do not allow; a flat all-reduce serves every task the same way and keeps ranks bitwise equal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist

from ..errors import AudiogenError
from ..runtime import env_world


def check_env() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment, checked: more than one process also needs
    the rendezvous torchrun sets (MASTER_ADDR, MASTER_PORT); anything else is one line."""
    rank, world, _ = env_world()
    if world > 1:
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
        if missing:
            raise AudiogenError(f"WORLD_SIZE={world} but {' and '.join(missing)} "
                                f"{'is' if len(missing) == 1 else 'are'} not set: start multi-process runs "
                                f"with torchrun (or unset RANK and WORLD_SIZE to run alone)")
        port = os.environ["MASTER_PORT"]
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise AudiogenError(f"environment variable MASTER_PORT={port!r} must be a port number (1..65535)")
    return rank, world


def init(device_kind: str) -> tuple[int, int]:
    """Join the process group torchrun describes; return (rank, world_size)."""
    rank, world = check_env()
    if world > 1 and not dist.is_initialized():
        try:
            dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        except (RuntimeError, ValueError) as err:  # no peer, port taken, ... (DistError is a RuntimeError)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise AudiogenError(f"cannot join the process group as rank {rank} of {world} at "
                                f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}: {first}") from None
    return rank, world


def is_main() -> bool:
    return rank() == 0


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (identical starting points)."""
    if world_size() == 1:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average gradients over ranks with one flat all-reduce (missing grads count as zero)."""
    world = world_size()
    if world == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params or all(p.grad is None for p in params):  # e.g. a discriminator not started yet
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n


def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (EMA codebooks) so ranks never drift apart."""
    if world_size() == 1:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for b in buffers:
        n = b.numel()
        b.copy_(flat[offset : offset + n].view_as(b))
        offset += n


def average_scalars(values: dict[str, float], device: torch.device) -> dict[str, float]:
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= world_size()
    return dict(zip(keys, t.tolist()))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (a collective decision, e.g. to stop)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_int(value: int, device: torch.device) -> int:
    """Rank 0's `value` on every rank."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


def gather_tensor(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped tensor (RNG states for exact resume)."""
    if world_size() == 1:
        return [tensor]
    out = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(out, tensor)
    return out
