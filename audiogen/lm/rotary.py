"""Rotary position embedding: the one rotation the module path and both fast decode steps apply."""

from __future__ import annotations

import torch


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the halves of the last dim of `x [B, P, ..., Dh]` by angles with `cos, sin [P, Dh/2]`.

    Computed in float32 whatever the model's dtype, so bf16 models keep exact relative positions.
    """
    shape = (1, cos.shape[0]) + (1,) * (x.dim() - 3) + (cos.shape[1],)
    cos, sin = cos.view(shape), sin.view(shape)
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)
