"""The decode step with fixed shapes, for torch.compile and CUDA graphs: the CUDA fast path.

    model.setup_cache(16, device="cuda")   # on CUDA, decode_step runs this step, compiled
    model.compile_decode = True            # CPU as well (tests; the prepacked CPU step is faster there)

The module path's step changes shape as the cache fills (it attends over the filled slots only)
and takes the position as a Python int, so a compiler would see a new graph at every step. Here
every tensor has the same shape at every position: attention covers all W ring slots, the slots
not written yet masked out (slot j holds a visible position iff j <= position until the ring
wraps, then all do), and the cache slot and rotary angle come from a position held in a device
tensor. torch.compile then builds one graph (`fullgraph=True`, no recompiles as the position
moves); on CUDA `mode="reduce-overhead"` replays it as a CUDA graph, one launch per step instead
of a few hundred kernels (gpt-fast's recipe). The step reads the modules' own weights, so weight
changes need no repacking. If compiling fails, a warning says so and the same step runs uncompiled.

Equal to the module path up to rounding: tests/lm/test_decode_cuda.py (compiled on CPU).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .rotary import rotary

if TYPE_CHECKING:
    from .model import LM


def _no_decoder() -> None:
    return None


class StaticDecoder:
    """One model's fixed-shape decode step over its current KV caches (`LM.setup_cache`)."""

    def __init__(self, model: LM, key: tuple, *, compile: bool):
        self.key = key
        c = model.config
        cache = model.caches[0].kv  # [2, B, H, W, Dh]
        device = cache.device
        self.cuda = device.type == "cuda"
        self.position = torch.zeros((), dtype=torch.long, device=device)  # the step's position, on the device
        self.slots = torch.arange(c.context, device=device)
        self.inv_freq = model._rope_frequencies(device)  # float64 [Dh/2], as the module path's
        self.compiled = compile
        self.fn = self._step
        if compile:
            # One graph per model size, dtype and batch, all from the same code: the default limit
            # of 8 would be spent by a benchmark run (2 models x 2 dtypes x 3 batch sizes).
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            mode = "reduce-overhead" if self.cuda else None
            self.fn = torch.compile(self._step, fullgraph=True, dynamic=False, mode=mode)

    def attach(self, model: LM) -> None:
        """Called whenever the model's caches may be new: a CUDA graph replays fixed addresses, so the
        compiler must treat the caches as static buffers (as it does parameters)."""
        if self.compiled and self.cuda:
            for layer in model.caches:
                torch._dynamo.mark_static_address(layer.kv)

    @property
    def path(self) -> str:
        return "compiled" if self.compiled else "static"

    def __reduce__(self):
        return _no_decoder, ()  # compiled graphs are not copied: a copy of the model builds its own

    def step(self, model: LM, x: torch.Tensor, position: int) -> torch.Tensor:
        """Residual stream `x [B, D]` of `position` (embedded) -> logits `[B, K, V]`; fills the caches."""
        self.position.fill_(position)
        if self.cuda and self.compiled:
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are consumed
        try:
            logits = self.fn(model, x, self.position)
        except Exception as err:  # noqa: BLE001 - any compiler failure: run the same step uncompiled
            if not self.compiled:
                raise
            warnings.warn(f"compiling the decode step failed ({type(err).__name__}: {err}); running it uncompiled",
                          stacklevel=2)
            self.compiled, self.fn = False, self._step
            logits = self.fn(model, x, self.position)
        return logits.clone() if self.compiled else logits  # (a CUDA graph reuses its output buffer)

    def _step(self, model: LM, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        c = model.config
        B, D = x.shape
        H, Dh = c.num_heads, c.head_dim
        angles = position.to(torch.float64) * self.inv_freq  # float64, as `LM._rope`
        cos, sin = angles.cos().float()[None], angles.sin().float()[None]  # [1, Dh/2]
        slot = (position % c.context).view(1)
        visible = (self.slots <= position).view(1, 1, 1, -1)  # [1, 1, 1, W]
        for block, cache in zip(model.blocks, model.caches):
            kv = cache.kv  # [2, B, H, W, Dh]
            qkv = block.attn.qkv(block.attn_norm(x)).view(B, 1, 3, H, Dh)
            qk = rotary(qkv[:, :, :2], cos, sin)[:, 0]  # [B, 2, H, Dh]
            new = torch.stack((qk[:, 1], qkv[:, 0, 2]))  # [2, B, H, Dh]: k, v
            kv.index_copy_(3, slot, new[:, :, :, None].to(kv.dtype))
            q = qk[:, 0, :, None].to(kv.dtype)  # [B, H, 1, Dh]
            y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=visible)
            x = x + block.attn.out(y.view(B, D).to(x.dtype))
            x = x + block.mlp(block.mlp_norm(x))
        return model.heads(model.norm(x)).view(B, c.num_codebooks, c.codebook_size)
