"""The CPU decode step: the LM's weights prepacked once for oneDNN, XNNPACK or PyTorch's own mat-vec kernels.

    model.setup_cache(1)                        # on CPU, LM.decode_step then runs PackedDecoder.step
    model.decode_kernels = "onednn"             # force a kernel kind (benchmarks); None picks (`choose_kind`)

Equal to the module path up to rounding: tests/lm/test_model.py and tests/generation/test_token_loop.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .model import LM

KINDS = ("native", "xnnpack", "onednn", "int8")


def _no_decoder() -> None:
    return None


def _packed_linear(x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def _packed_linear_add(y: torch.Tensor, x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """`x + y @ W.T` with the addition fused into the product."""
    return torch.ops.mkldnn._linear_pointwise.binary(y, x, packed, None, "add")


def _linear_add(y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x + F.linear(y, weight)


def int8_available() -> bool:
    """Whether this PyTorch has the CPU kernel for int8 weights times bf16 rows (`_weight_int8pack_mm`)."""
    return hasattr(torch.ops.aten, "_weight_int8pack_mm")


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`weight [N, K]` -> (int8 `[N, K]`, bf16 scales `[N]`): symmetric, one scale per output row, so
    every weight is `q * scale` to within half a step. The scale is rounded to bf16 (the kernel's) before
    quantising, upwards (the 1 + 2^-8), so the row's largest magnitude lands within 127 steps."""
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1).clamp(min=1e-30) / 127 * (1 + 2**-8)).to(torch.bfloat16)
    return (w / scales.float()[:, None]).round().clamp(-127, 127).to(torch.int8).contiguous(), scales


def _int8_linear(x: torch.Tensor, packed: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.ops.aten._weight_int8pack_mm(x.to(torch.bfloat16), packed[0], packed[1])


def _int8_linear_add(y: torch.Tensor, x: torch.Tensor, packed: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return x + _int8_linear(y, packed)  # (bf16 product, added in the residual stream's own dtype)


XNNPACK_MAX_BATCH = 8  # fp32 decode on one XNNPACK thread up to this batch (see `PackedDecoder`)


def choose_kind(dtype: torch.dtype, batch: int, *, xnnpack_max_batch: int = XNNPACK_MAX_BATCH) -> str:
    """The kernels a step of this dtype and batch runs on here (measurements in `PackedDecoder`)."""
    if batch == 1 and dtype == torch.bfloat16:
        return "native"
    if dtype == torch.float32 and batch <= xnnpack_max_batch and torch.get_num_threads() <= 2 and _xnnpack():
        return "xnnpack"
    return "onednn"


def _xnnpack() -> bool:
    """Whether this PyTorch build has XNNPACK's prepacked fp32 linear (x86 and ARM wheels do)."""
    return torch._C._is_xnnpack_enabled() and hasattr(torch.ops.prepacked, "linear_clamp_prepack")


def _xnnpack_linear(x: torch.Tensor, packed) -> torch.Tensor:
    return torch.ops.prepacked.linear_clamp_run(x, packed)


def _xnnpack_linear_add(y: torch.Tensor, x: torch.Tensor, packed) -> torch.Tensor:
    return x + torch.ops.prepacked.linear_clamp_run(y, packed)


class PackedDecoder:
    """The CPU decode step's weights, prepacked once, and the step itself.

    A plain `F.linear` on CPU hands its weight to oneDNN, which re-lays it out on every call;
    with a few rows per step that costs about as much as the product. Prepacked once, the
    products of a reference-size step (d 512, 8 layers) take about 0.55x the time in bf16 at
    batch 1-32 (0.8x in fp32). Each RMSNorm's gain is folded into the matrix after it (rows are
    normalised without a gain), the attention scale into the queries' rotary table, and the
    residual additions into the products (oneDNN post-ops), so a step also makes fewer operator
    calls than the module path. The packs are a second copy of the weights (the module's own
    weights stay as they are, for training and saving); `LM.clear_cache()` frees them.

    Which kernels (`kind`), measured on the 2-core machine at the reference size:
      * "native", bf16 at batch 1: PyTorch's own mat-vec kernel (reached with oneDNN switched
        off for the step) streams the weights faster than oneDNN's: 0.83x the step time.
      * "xnnpack", fp32 at batch 1-8 in a process of at most 2 threads: XNNPACK's prepacked
        products on ONE thread (`threads`; `LM.decode_threads()` sets it for a generation loop)
        beat oneDNN's on two: 1.1-1.4x the steps/s of whole generations (batch 2, a guided item:
        174 vs 121; benchmarks/decode_kernels.py). XNNPACK's pool on two threads, with or
        without OpenMP's beside it, is 10x slower on this VM, hence one thread; and switching
        threads at every step costs more than it saves.
      * "onednn" otherwise.
      * "int8", only when asked for (`LM.decode_kernels = "int8"`, `--dtype int8`): weight-only int8
        (one bf16 scale per output row, `quantize_int8`) times bf16 rows in PyTorch's
        `_weight_int8pack_mm`, a quarter of fp32's weight bytes; the residual stream, attention and
        the KV cache stay fp32. It changes the logits (by the quantisation), so it is never picked
        on its own: README, "int8 decoding", has its speed and its `audiogen eval` figures.
    Tested against the module path in tests/lm/test_model.py and tests/generation/test_token_loop.py.
    """

    path = "packed"

    def __init__(self, model: LM, batch: int, key: tuple, *, kind: str | None = None):
        self.key = key
        dtype = model.heads.weight.dtype
        if kind is not None and kind not in KINDS:
            raise ValueError(f"decode kernels must be one of {', '.join(KINDS)} or None, not {kind!r}")
        self.kind = kind or choose_kind(dtype, batch)
        if self.kind == "int8" and not int8_available():
            raise ValueError("int8 decoding needs PyTorch's _weight_int8pack_mm (PyTorch 2.3 or later)")
        self.threads = 1 if self.kind == "xnnpack" else None  # the decode loop's thread count (None: as is)

        # fp32 oneDNN products of 4-64 rows run about 3x slower when the output width is a multiple
        # of 1024 (the K heads of 1024 codes: 2.2 ms instead of 0.7 ms at batch 16, a sixth of the
        # step), likely cache-set aliasing in oneDNN's packed layout. 16 zero rows of padding
        # avoid it; the products whose outputs are sliced (qkv, gate_up, heads) take it.
        pad = 16 if dtype == torch.float32 and 4 <= batch <= 64 and self.kind == "onednn" else 0
        self.padded = 0  # how many products got the padding

        def pack(weight: torch.Tensor, sliced: bool = False) -> torch.Tensor:
            weight = weight.detach()
            if self.kind == "native":
                return weight
            if self.kind == "int8":
                return quantize_int8(weight)
            if self.kind == "xnnpack":
                return torch.ops.prepacked.linear_clamp_prepack(weight.contiguous(), None)
            if sliced and pad and weight.shape[0] % 1024 == 0:
                weight = torch.cat((weight, weight.new_zeros(pad, weight.shape[1])))
                self.padded += 1
            return torch.ops.mkldnn._reorder_linear_weight(weight, batch)

        def fold(linear: nn.Linear, norm: nn.RMSNorm) -> torch.Tensor:
            return pack((linear.weight.float() * norm.weight.float()).to(linear.weight.dtype), sliced=True)

        self.layers = [(fold(b.attn.qkv, b.attn_norm), pack(b.attn.out.weight), fold(b.mlp.gate_up, b.mlp_norm),
                        pack(b.mlp.down.weight)) for b in model.blocks]
        self.heads = fold(model.heads, model.norm)
        # Rotary tables for q (times the attention scale), k and v (identity): [cos, sin] rows
        # become C = coef * [cos, cos] + base and S = coef * [-sin, sin] (see `step`).
        c = model.config
        ref = model.heads.weight
        self.coef = torch.tensor([c.head_dim**-0.5, 1.0, 0.0], device=ref.device).view(1, 3, 1, 1)
        self.base = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]], device=ref.device).view(2, 3, 1, 1)

    def __reduce__(self):
        return _no_decoder, ()  # packs cannot be copied or pickled: copies of the model repack

    def step(self, model: LM, x: torch.Tensor, position: int) -> torch.Tensor:
        """Residual stream `x [B, D]` of `position` (embedded) -> logits `[B, K, V]`; fills the caches."""
        c = model.config
        Dh = c.head_dim
        cos, sin = model._rope(position, 1, x.device)  # float32 [1, Dh/2] from float64 angles
        tables = torch.addcmul(self.base, torch.cat((cos, cos, -sin, sin), dim=-1).view(2, 1, 1, Dh), self.coef)
        rot_c, rot_s = tables[0], tables[1]  # [3, 1, Dh]: broadcast over [B, 3, H, Dh]
        slot, visible = position % c.context, min(position + 1, c.context)
        if self.kind == "onednn":
            return self._layers(model, x, rot_c, rot_s, slot, visible, _packed_linear, _packed_linear_add)
        if self.kind == "int8":
            return self._layers(model, x, rot_c, rot_s, slot, visible, _int8_linear, _int8_linear_add)
        if self.kind == "xnnpack":
            # Inside a generation loop the threads are set already (a no-op here); a lone step (as
            # prefill's of one position) switches for itself: on two threads the pools would contend.
            with model.decode_threads():
                return self._layers(model, x, rot_c, rot_s, slot, visible, _xnnpack_linear, _xnnpack_linear_add)
        mkldnn = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False  # (process-wide: another thread's products meanwhile only run slower)
        try:
            return self._layers(model, x, rot_c, rot_s, slot, visible, F.linear, _linear_add)
        finally:
            torch.backends.mkldnn.enabled = mkldnn

    def _layers(self, model: LM, x, rot_c, rot_s, slot: int, visible: int, linear, linear_add) -> torch.Tensor:
        c = model.config
        B, D = x.shape
        H, Dh, eps, hidden = c.num_heads, c.head_dim, c.norm_eps, c.hidden_dim
        for (qkv_w, out_w, gate_up_w, down_w), cache in zip(self.layers, model.caches):
            h = F.rms_norm(x, (D,), None, eps)
            qkv = linear(h, qkv_w)[:, : 3 * D].view(B, 3, H, Dh)  # (a padded product has extra columns)
            # Rotate halves (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) in float32: roll swaps the halves.
            r = qkv * rot_c + qkv.roll(Dh // 2, -1) * rot_s  # [B, 3, H, Dh]: q (scaled), k, v
            cache.kv[:, :, :, slot] = r[:, 1:].transpose(0, 1)
            keys, values = cache.kv[:, :, :, :visible]  # every visible slot is in the window (see KVCache)
            scores = torch.matmul(r[:, 0, :, None], keys.transpose(2, 3))  # [B, H, 1, n]
            y = torch.matmul(scores.softmax(dim=-1), values).view(B, D).to(x.dtype)
            x = linear_add(y, x, out_w)
            gate, up = linear(F.rms_norm(x, (D,), None, eps), gate_up_w)[:, : 2 * hidden].chunk(2, dim=-1)
            x = linear_add(F.silu(gate) * up, x, down_w)
        logits = linear(F.rms_norm(x, (D,), None, eps), self.heads)[:, : c.num_codebooks * c.codebook_size]
        return logits.view(B, c.num_codebooks, c.codebook_size)
