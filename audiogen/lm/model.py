"""The multi-codebook Transformer language model, with a ring-buffer KV cache for generation.

    model = LM(LMConfig(num_codebooks=4, codebook_size=1024, cond_features=0))
    loss, per_codebook = model.loss(codes)                 # codes [B, K, T]; training
    model.setup_cache(1, device="cpu", dtype=torch.float32)
    logits = model.prefill(tokens, cond_rows)              # then model.decode_step(...) per step

A decoder-only Transformer over pattern steps (`audiogen.lm.patterns`): the K tokens of a step are
embedded and summed (one table of K * (V + 1) rows, SPECIAL = V included), optional frame-aligned
conditioning is projected and added, pre-norm blocks (RMSNorm, rotary attention, SwiGLU) follow,
and K output heads (one `[K * V, D]` matmul) give logits over the V real codes.

Attention is a sliding window of W = `config.context` positions: query i sees keys
i - W < j <= i. Training on sequences longer than W uses that band mask; the KV cache is a
ring buffer of W slots, so generation costs one step per position for ever and sees exactly the
attention pattern of training on long crops. Rotary angles are computed in float64 from the
absolute position, so position 50,000 is as exact as position 5. `decode_step` runs a fast
path, equal to the module path up to rounding (`model.fast_decode = False` turns it off): on CPU
prepacked weights (`audiogen.lm.decode_cpu`: XNNPACK or oneDNN kernels), on CUDA a fixed-shape step
compiled with CUDA graphs (`audiogen.lm.decode_cuda`).

`python -m pytest tests/lm/` exercises it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint, threads
from ..config import from_dict, to_dict
from ..errors import AudiogenError
from ..runtime import onednn_packable
from . import patterns
from .decode_cpu import PackedDecoder
from .decode_cuda import StaticDecoder
from .rotary import rotary

KIND = "lm"


@dataclasses.dataclass
class LMConfig:
    num_codebooks: int = 4
    codebook_size: int = 1024
    dim: int = 512
    num_layers: int = 8
    num_heads: int = 8
    mlp_ratio: float = 4.0  # SwiGLU hidden = 2/3 * mlp_ratio * dim (rounded up to 64): a GELU MLP's size
    context: int = 750  # attention window W, in pattern steps
    pattern: str = "delay"
    cond_features: int = 0  # F; 0 = unconditional
    cond_lookahead: int = 2  # position s also sees conditioning rows s+1..s+lookahead
    cond_dropout: float = 0.1  # training: probability of replacing an item's condition by the null one
    dropout: float = 0.0
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    # Stated bounds (inclusive), checked before anything is built: a config.json asking for more is a one-line
    # error, not gigabytes allocated first. Generous: the recipes use dim 256, 6 layers, context 500.
    BOUNDS = {"num_codebooks": (1, 64), "codebook_size": (2, 65536), "dim": (1, 8192), "num_layers": (1, 96),
              "num_heads": (1, 128), "mlp_ratio": (0, 16), "context": (1, 65536), "cond_features": (0, 4096),
              "cond_lookahead": (0, 64)}
    MAX_PARAMS = 2**29  # 2 GiB of float32 weights (the bundled model: 3.6 M parameters)

    def validate(self) -> None:
        if self.num_codebooks < 1 or self.codebook_size < 2:
            raise AudiogenError("model: num_codebooks must be at least 1 and codebook_size at least 2")
        if self.dim < 1 or self.num_layers < 1 or self.num_heads < 1:
            raise AudiogenError("model: dim, num_layers and num_heads must be at least 1")
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise AudiogenError("model: dim must be a multiple of num_heads with an even head size")
        if self.mlp_ratio <= 0:
            raise AudiogenError("model: mlp_ratio must be positive")
        if self.context < 1:
            raise AudiogenError("model: context must be at least 1 step")
        if self.pattern not in patterns.PATTERNS:
            raise AudiogenError(f"model: pattern must be one of {', '.join(patterns.PATTERNS)}")
        if self.cond_features < 0 or self.cond_lookahead < 0:
            raise AudiogenError("model: cond_features and cond_lookahead must not be negative")
        if not (0 <= self.cond_dropout < 1 and 0 <= self.dropout < 1):
            raise AudiogenError("model: cond_dropout and dropout must be in [0, 1)")
        if self.rope_base <= 0 or self.norm_eps <= 0:
            raise AudiogenError("model: rope_base and norm_eps must be positive")
        checkpoint.check_bounds(self, self.BOUNDS, where="model")
        if self.num_params > self.MAX_PARAMS:
            raise AudiogenError(f"model: {self.num_params:,} parameters, at most {self.MAX_PARAMS:,} "
                                f"(dim {self.dim}, num_layers {self.num_layers}, codebooks {self.num_codebooks} "
                                f"x {self.codebook_size})")

    @property
    def num_params(self) -> int:
        """The parameters `LM(self)` has, counted from the config (nothing built)."""
        K, V, D = self.num_codebooks, self.codebook_size, self.dim
        layer = 2 * D + 4 * D * D + 3 * D * self.hidden_dim  # two norms, qkv + out, gate_up + down
        cond = (self.cond_width + 2) * D if self.cond_features else 0  # projection, its bias, the null condition
        return K * (V + 1) * D + cond + self.num_layers * layer + D + K * V * D

    @property
    def special(self) -> int:
        """The extra input token (pattern holes and the start step)."""
        return self.codebook_size

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def hidden_dim(self) -> int:
        return 64 * math.ceil(2 * self.mlp_ratio * self.dim / 3 / 64)

    @property
    def cond_width(self) -> int:
        """F' = F * (1 + lookahead): the width of one aligned conditioning row."""
        return self.cond_features * (1 + self.cond_lookahead)


# ---------------------------------------------------------------------------- building blocks


class KVCache:
    """Keys and values of the last W positions in a ring: position p lives in slot p % W."""

    def __init__(self, batch: int, heads: int, window: int, head_dim: int, *, device, dtype):
        self.window = window
        # Keys and values in one [2, B, H, W, Dh] tensor, so a decode step stores both with one copy.
        self.kv = torch.zeros(2, batch, heads, window, head_dim, device=device, dtype=dtype)
        self.k, self.v = self.kv[0], self.kv[1]

    def matches(self, batch: int, device: torch.device, dtype: torch.dtype) -> bool:
        return self.k.shape[0] == batch and self.k.device == device and self.k.dtype == dtype

    def history(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached `[B, H, n, Dh]` of positions [start - n, start), n = min(start, W - 1), in order."""
        n = min(start, self.window - 1)
        slots = torch.arange(start - n, start, device=self.k.device) % self.window
        return self.k.index_select(2, slots), self.v.index_select(2, slots)

    def write(self, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store `k, v [B, H, P, Dh]` of positions start..start+P-1 (the last W of them)."""
        P = k.shape[2]
        n = min(P, self.window)
        if n == 1:
            slot = (start + P - 1) % self.window
            self.k[:, :, slot] = k[:, :, -1]
            self.v[:, :, slot] = v[:, :, -1]
            return
        slots = torch.arange(start + P - n, start + P, device=k.device) % self.window
        self.k.index_copy_(2, slots, k[:, :, P - n :].to(self.k.dtype))
        self.v.index_copy_(2, slots, v[:, :, P - n :].to(self.v.dtype))

    def visible(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """After writing `position`: the slots holding positions (position - W, position].

        Attention does not care about key order (rotary is applied before caching), so until the
        ring has wrapped the first position + 1 slots are the window, and afterwards all of them.
        """
        n = min(position + 1, self.window)
        return self.k[:, :, :n], self.v[:, :, :n]


class Attention(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.out = nn.Linear(config.dim, config.dim, bias=False)
        self.dropout = config.dropout

    def forward(self, x, rope, *, mask, causal: bool, cache: KVCache | None, start: int):
        B, P, _ = x.shape
        qkv = self.qkv(x).view(B, P, 3, self.num_heads, self.head_dim)
        qk = rotary(qkv[:, :, :2], *rope).transpose(1, 3)  # [B, H, 2, P, Dh]
        q, k, v = qk[:, :, 0], qk[:, :, 1], qkv[:, :, 2].transpose(1, 2)
        if cache is not None and P == 1:
            cache.write(start, k, v)
            k, v = cache.visible(start)
            # One query: plain matmuls beat the CPU flash kernel, whose per-call cost is large.
            scores = torch.matmul(q.to(k.dtype), k.transpose(2, 3)).float().mul_(self.head_dim**-0.5)
            y = torch.matmul(scores.softmax(dim=-1).to(v.dtype), v).to(x.dtype)
            return self.out(y.transpose(1, 2).reshape(B, P, -1))
        if cache is not None:
            old_k, old_v = cache.history(start)
            cache.write(start, k, v)
            if old_k.shape[2]:
                k, v = torch.cat((old_k.to(k.dtype), k), dim=2), torch.cat((old_v.to(v.dtype), v), dim=2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(B, P, -1))


class MLP(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.gate_up = nn.Linear(config.dim, 2 * config.hidden_dim, bias=False)
        self.down = nn.Linear(config.hidden_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout) if config.dropout else nn.Identity()

    def forward(self, x, rope, *, mask, causal, cache, start):
        x = x + self.drop(self.attn(self.attn_norm(x), rope, mask=mask, causal=causal, cache=cache, start=start))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


def band_mask(q_start: int, num_q: int, k_start: int, num_k: int, window: int, device) -> torch.Tensor:
    """`[num_q, num_k]` bool: query position i may see key position j iff i - window < j <= i."""
    qp = torch.arange(q_start, q_start + num_q, device=device)[:, None]
    kp = torch.arange(k_start, k_start + num_k, device=device)[None, :]
    return (kp <= qp) & (kp > qp - window)


# ---------------------------------------------------------------------------- the model


class LM(nn.Module):
    """Decoder-only Transformer over codebook pattern steps; see the module docstring."""

    def __init__(self, config: LMConfig):
        super().__init__()
        config.validate()
        self.config = config
        K, V, D = config.num_codebooks, config.codebook_size, config.dim
        self.pattern = patterns.Pattern(config.pattern, K)
        self.embed = nn.Embedding(K * (V + 1), D)
        self.register_buffer("offsets", torch.arange(K)[:, None] * (V + 1), persistent=False)  # [K, 1]
        if config.cond_features:
            self.cond_proj = nn.Linear(config.cond_width, D)
            self.cond_null = nn.Parameter(torch.zeros(D))  # the learned "no condition" (for guidance)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.RMSNorm(D, eps=config.norm_eps)
        self.heads = nn.Linear(D, K * V, bias=False)  # all K heads in one matmul (fast in bf16 too)
        self.caches: list[KVCache] | None = None
        # decode_step's fast paths: on CPU the prepacked step (`PackedDecoder`), on CUDA the fixed-shape
        # compiled one (`audiogen.lm.decode_cuda`); False: the modules. `compile_decode` None: compile on
        # CUDA only; True: on CPU too (instead of the prepacked step); False: never.
        self.fast_decode = True
        self.compile_decode: bool | None = None
        # The prepacked CPU step's kernels: None picks by dtype and batch (`decode_cpu.choose_kind`);
        # "onednn", "xnnpack" or "native" force one (benchmarks compare them).
        self.decode_kernels: str | None = None
        self._decoder: PackedDecoder | StaticDecoder | None = None
        self.meta: dict[str, Any] = {}  # config.json's other entries after `load` (e.g. the codec)
        self._inv_freq: dict[torch.device, torch.Tensor] = {}
        self._init_weights()

    def _init_weights(self) -> None:
        # nanoGPT: small normal init, residual projections scaled down by depth.
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("attn.out.weight") or name.endswith("mlp.down.weight"):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.num_layers))
            elif p.dim() >= 2 or name == "cond_null":
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ shared pieces
    def _rope_frequencies(self, device: torch.device) -> torch.Tensor:
        """float64 `[Dh/2]` rotary frequencies (cached per device)."""
        inv_freq = self._inv_freq.get(device)
        if inv_freq is None:
            Dh = self.config.head_dim
            exponent = torch.arange(0, Dh, 2, dtype=torch.float64, device=device) / Dh
            inv_freq = self._inv_freq[device] = self.config.rope_base ** -exponent
        return inv_freq

    def _rope(self, start: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 `cos, sin [length, Dh/2]` of absolute positions start.., the angles taken in float64
        (a float32 angle at position 50,000 would be off by milliradians)."""
        positions = torch.arange(start, start + length, dtype=torch.float64, device=device)
        angles = positions[:, None] * self._rope_frequencies(device)
        return angles.cos().float(), angles.sin().float()

    def condition_rows(self, cond: torch.Tensor, num_steps: int) -> torch.Tensor:
        """`cond [B, T, F]` -> `[B, S, F']` per position: the one alignment (`patterns.align_condition`)."""
        if cond.dim() != 3 or cond.shape[2] != self.config.cond_features:
            raise ValueError(f"cond must be [B, T, {self.config.cond_features}], got {tuple(cond.shape)}")
        return patterns.align_condition(cond, num_steps, lookahead=self.config.cond_lookahead)

    def _condition(self, rows: torch.Tensor | None, drop: torch.Tensor | None, B: int, S: int, dtype):
        if not self.config.cond_features:
            if rows is not None:
                raise ValueError("this model is unconditional (cond_features = 0) but conditioning was given")
            return None
        null = self.cond_null.to(dtype)
        if rows is None:
            return null.expand(B, S, -1)
        expected = (B, S, self.config.cond_width)
        assert rows.shape == expected, f"cond rows {tuple(rows.shape)} != {expected}"
        emb = self.cond_proj(rows.to(dtype))
        if drop is not None:
            emb = torch.where(drop.view(B, 1, 1), null, emb)
        return emb

    def _run(self, tokens, rows, drop, *, start: int, use_cache: bool, last_only: bool) -> torch.Tensor:
        B, K, S = tokens.shape
        want = self.config.num_codebooks
        assert K == want, f"tokens must be [B, {want}, S], got {tuple(tokens.shape)}"
        x = self.embed(tokens + self.offsets).sum(dim=1)  # [B, S, D]
        cond = self._condition(rows, drop, B, S, x.dtype)
        if cond is not None:
            x = x + cond
        rope = self._rope(start, S, x.device)
        W = self.config.context
        if use_cache and self.caches is None:
            raise RuntimeError("call setup_cache() before prefill/decode_step")
        history = min(start, W - 1) if use_cache else 0
        mask, causal = None, False
        if use_cache and S == 1:
            pass  # decode: every visible cache slot is in the window
        elif history == 0 and S <= W:
            causal = True
        else:
            mask = band_mask(start, S, start - history, history + S, W, x.device)
        for i, block in enumerate(self.blocks):
            cache = self.caches[i] if use_cache else None
            x = block(x, rope, mask=mask, causal=causal, cache=cache, start=start)
        x = self.norm(x[:, -1:] if last_only else x)
        B, S, _ = x.shape
        return self.heads(x).view(B, S, K, -1).transpose(1, 2)  # [B, K, S, V]

    # ------------------------------------------------------------------ training
    def forward(
        self, tokens: torch.Tensor, cond: torch.Tensor | None = None, *, drop_cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`tokens [B, K, S]` (input steps, SPECIAL allowed), `cond [B, T, F]` -> logits `[B, K, S, V]`.

        `drop_cond [B]` bool replaces those items' condition by the learned null condition; a
        conditional model given `cond=None` uses the null condition for every item.
        """
        rows = None if cond is None else self.condition_rows(cond, tokens.shape[2])
        return self._run(tokens, rows, drop_cond, start=0, use_cache=False, last_only=False)

    def loss(
        self,
        codes: torch.Tensor,
        cond: torch.Tensor | None = None,
        *,
        valid: torch.Tensor | None = None,
        drop_cond: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy over real tokens and per codebook `[K]`, for `codes [B, K, T]`.

        `cond [B, T', F]` (T' >= T; rows past T feed the lookahead), `valid [B, T]` marks frames
        to learn from (False past a file's end: those frames become holes, in the input too, as
        after the last frame of a generation). `drop_cond [B]` forces the null condition (items
        without MIDI); in training mode `cond_dropout` drops more at random.
        """
        B, K, T = codes.shape
        special = self.config.special
        if cond is not None and cond.shape[1] < T:
            raise ValueError(f"cond has {cond.shape[1]} rows for {T} frames")
        real = self.pattern.real_mask(T, device=codes.device).expand(B, -1, -1)  # [B, K, S]
        if valid is not None:
            real = real & self.pattern.apply(valid[:, None, :].expand(B, K, T), fill=False)
        steps = torch.where(real, self.pattern.apply(codes, fill=special), special)
        if self.training and self.config.cond_features and self.config.cond_dropout > 0 and cond is not None:
            dropped = torch.rand(B, device=codes.device) < self.config.cond_dropout
            drop_cond = dropped if drop_cond is None else drop_cond | dropped
        logits = self(patterns.shift_right(steps, special), cond, drop_cond=drop_cond)
        V = self.config.codebook_size
        targets = steps.masked_fill(~real, -100)
        ce = F.cross_entropy(logits.float().reshape(-1, V), targets.reshape(-1), reduction="none").view(B, K, -1)
        weight = real.to(ce.dtype)
        per_codebook = (ce * weight).sum(dim=(0, 2)) / weight.sum(dim=(0, 2)).clamp_min(1)
        return (ce * weight).sum() / weight.sum().clamp_min(1), per_codebook

    # ------------------------------------------------------------------ inference with the KV cache
    @torch.inference_mode()
    def setup_cache(self, batch_size: int, *, device=None, dtype=None) -> None:
        """Allocate (or reuse) a ring-buffer KV cache of W = context slots per layer.

        The cache dtype defaults to the model's, except on CPU where it is float32: there bf16
        batched mat-vec products over part of the ring (one query against the filled slots) run
        2-3x slower than float32 ones at batch 1-2 or with under 100 cached positions; they win
        (1.3-1.7x) only at batch 16 with long histories. On CPU (float32 cache, fp32 or bf16
        weights, eval mode, `fast_decode`) it also prepares the prepacked decode step
        (`PackedDecoder`); prefill checks it again, so weights changed between generations are
        repacked (weights changed between the decode steps of one generation are not seen).
        """
        ref = self.heads.weight
        device = torch.device(device) if device is not None else ref.device
        dtype = dtype or (torch.float32 if device.type == "cpu" else ref.dtype)
        if not (self.caches and self.caches[0].matches(batch_size, device, dtype)):
            # (a reused cache needs no reset: slots are always written before they are read)
            c = self.config
            self.caches = [KVCache(batch_size, c.num_heads, c.context, c.head_dim, device=device, dtype=dtype)
                           for _ in range(c.num_layers)]
        self._prepare_decoder()

    def clear_cache(self) -> None:
        self.caches = None
        self._decoder = None

    @contextlib.contextmanager
    def decode_threads(self) -> Iterator[Callable[[], int]]:
        """Run a loop of decode steps on the thread count the decode step wants (`PackedDecoder.threads`),
        or, where it wants none, on as many as the machine's load leaves free: call the yielded `refit()`
        once per step (`audiogen.threads.fitted`)."""
        want, before = getattr(self._decoder, "threads", None), torch.get_num_threads()
        if want is None:
            with threads.fitted() as refit:
                yield refit
            return
        torch.set_num_threads(want)  # (per step it would cost more than it saves: set once per loop)
        try:
            yield threads.current
        finally:
            torch.set_num_threads(before)

    def _prepare_decoder(self) -> None:
        cache = self.caches[0] if self.caches else None
        ref = self.heads.weight
        if cache is None or not self.fast_decode or self.training or cache.kv.device != ref.device:
            self._decoder = None
            return
        compile_decode = self.compile_decode if self.compile_decode is not None else ref.device.type == "cuda"
        if compile_decode:
            # The step reads the live weights: only new caches (or a new dtype) need a new one.
            key = ("static", id(self.caches), ref.dtype)
            if self._decoder is None or self._decoder.key != key:
                self._decoder = StaticDecoder(self, key, compile=True)
            self._decoder.attach(self)
            return
        if cache.kv.dtype != torch.float32 or not onednn_packable(ref.dtype, ref.device):
            self._decoder = None
            return
        batch = cache.kv.shape[1]
        # Any change of the weights (in place: optimizer steps, load_state_dict; or new storage:
        # .to()) changes a data pointer or a version counter. (Weights made under
        # torch.inference_mode() have no version counter: only new storage is seen for them.)
        key = (batch, ref.dtype, self.decode_kernels, tuple((p.data_ptr(), 0 if p.is_inference() else p._version)
                                       for p in self.parameters()))
        if self._decoder is None or self._decoder.key != key:
            self._decoder = None  # free the old packs first
            self._decoder = PackedDecoder(self, batch, key, kind=self.decode_kernels)

    @torch.inference_mode()
    def prefill(
        self,
        tokens: torch.Tensor,
        cond_rows: torch.Tensor | None = None,
        *,
        drop_cond: torch.Tensor | None = None,
        start_position: int = 0,
    ) -> torch.Tensor:
        """Run positions start..start+P-1 (`tokens [B, K, P]`), fill the cache; logits of the last `[B, K, V]`.

        `cond_rows [B, P, F']` are those positions' rows of `condition_rows(cond, S)`. Any P works
        (longer than the window too); `start_position > 0` continues a cache filled up to there.
        """
        self._prepare_decoder()
        if tokens.shape[2] == 1 and self._decoder is not None:  # one position is a decode step
            return self.decode_step(tokens, cond_rows, drop_cond=drop_cond, position=start_position)
        return self._run(tokens, cond_rows, drop_cond, start=start_position, use_cache=True, last_only=True)[:, :, 0]

    @torch.inference_mode()
    def decode_step(
        self,
        tokens: torch.Tensor,
        cond_row: torch.Tensor | None = None,
        *,
        drop_cond: torch.Tensor | None = None,
        position: int,
    ) -> torch.Tensor:
        """One position: `tokens [B, K, 1]` (step position - 1), `cond_row [B, 1, F']` -> logits `[B, K, V]`."""
        decoder = self._decoder
        if decoder is None or not self.fast_decode or self.training:
            return self._run(tokens, cond_row, drop_cond, start=position, use_cache=True, last_only=True)[:, :, 0]
        B, K, _ = tokens.shape
        assert K == self.config.num_codebooks and tokens.shape[2] == 1, f"tokens {tuple(tokens.shape)}"
        assert self.caches[0].kv.shape[1] == B, "setup_cache() was given another batch size"
        x = self.embed(tokens + self.offsets).sum(dim=1)  # [B, 1, D], as in `_run`
        cond = self._condition(cond_row, drop_cond, B, 1, x.dtype)
        if cond is not None:
            x = x + cond
        return decoder.step(self, x.view(B, -1), position)

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
        """A model folder (config.json: this config + `extra`, e.g. the codec identity)."""
        return checkpoint.save_model(directory, kind=KIND, config=to_dict(self.config),
                                     state_dict=self.state_dict(), extra=extra)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, device: str | torch.device = "cpu") -> LM:
        """The model of a folder, in eval mode; `model.meta` holds config.json's other entries."""
        meta = checkpoint.read_config(directory, kind=KIND)
        model = cls(from_dict(LMConfig, meta["config"], "model"))
        checkpoint.load_into(model, directory)
        model.meta = {k: v for k, v in meta.items() if k not in ("config", "format_version", "kind")}
        return model.to(device).eval()
