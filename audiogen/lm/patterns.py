"""Codebook interleaving patterns, the model's shift-right, and frame-aligned conditioning.

A codec gives `K` token streams per frame (`codes [B, K, T]`). The language model predicts one
*step* per position, a step holding one token per codebook; a pattern decides which frame each
codebook's token in step `s` belongs to. Both patterns here are "codebook k is delayed by d_k
steps", so one class serves them (`Pattern("delay", K)` / `Pattern("parallel", K)`):

    delay (d_k = k), K = 3, T = 4  ->  S = T + K - 1 = 6 steps; `.` = SPECIAL (a hole)

        step s:   0    1    2    3    4    5
        k = 0:   a0   a1   a2   a3    .    .
        k = 1:    .   b0   b1   b2   b3    .
        k = 2:    .    .   c0   c1   c2   c3

    parallel (d_k = 0)  ->  S = T, no holes

        step s:   0    1    2    3
        k = 0:   a0   a1   a2   a3
        k = 1:   b0   b1   b2   b3
        k = 2:   c0   c1   c2   c3

(a, b, c are codebooks 0, 1, 2; the digit is the frame.) Under the delay pattern codebook k of
frame t is predicted after codebooks 0..k-1 of the same frame, which is what makes the residual
codebooks predictable one position at a time.

The vocabulary has one extra token, SPECIAL = codebook_size, which fills holes and the start
step. The model's input at position s is step s - 1 (`shift_right`; position 0 holds the
all-SPECIAL start step) and its output at position s predicts step s.

Conditioning `cond [B, T, F]` is frame-aligned (row t = frame t). `align_condition` is the one
place that maps it onto positions, for training and generation alike: position s gets the row
of frame s (whose codebook-0 token it predicts; later codebooks of frame s come at s + d_k and
see it causally) concatenated with the next `lookahead` rows, since MIDI is known in advance.
Rows past the end of `cond` are zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PATTERNS = ("delay", "parallel")


class Pattern:
    """Codebook k of frame t sits at step t + delays[k]; every other (k, s) is a hole."""

    def __init__(self, name: str, num_codebooks: int):
        if name not in PATTERNS:
            raise ValueError(f"unknown pattern {name!r} (known: {', '.join(PATTERNS)})")
        if num_codebooks < 1:
            raise ValueError("num_codebooks must be at least 1")
        self.name = name
        self.num_codebooks = num_codebooks
        self.delays = tuple(range(num_codebooks)) if name == "delay" else (0,) * num_codebooks
        self.max_delay = max(self.delays)

    def __repr__(self) -> str:
        return f"Pattern({self.name!r}, {self.num_codebooks})"

    def num_steps(self, num_frames: int) -> int:
        """S for T frames."""
        return num_frames + self.max_delay

    def num_frames(self, num_steps: int) -> int:
        """T for S steps (inverse of `num_steps`)."""
        return num_steps - self.max_delay

    def _delays(self, device: torch.device | str | None) -> torch.Tensor:
        return torch.tensor(self.delays, dtype=torch.long, device=device)[:, None]  # [K, 1]

    def real_mask(self, num_frames: int, *, device: torch.device | str | None = None) -> torch.Tensor:
        """`[K, S]` bool: True where step s of codebook k holds a real token (not a hole)."""
        steps = torch.arange(self.num_steps(num_frames), device=device)[None, :]
        frame = steps - self._delays(device)
        return (frame >= 0) & (frame < num_frames)

    def apply(self, codes: torch.Tensor, fill: int | bool | float) -> torch.Tensor:
        """`codes [B, K, T]` (any dtype) -> `steps [B, K, S]`, holes set to `fill`."""
        B, K, T = codes.shape
        assert K == self.num_codebooks and T >= 1, f"expected [B, K, T >= 1], got {tuple(codes.shape)}"
        real = self.real_mask(T, device=codes.device)  # [K, S]
        frame = torch.arange(real.shape[1], device=codes.device)[None, :] - self._delays(codes.device)
        index = frame.clamp(0, T - 1).expand(B, K, -1)
        gathered = codes.gather(2, index)
        return torch.where(real, gathered, torch.full_like(gathered, fill))

    def invert(self, steps: torch.Tensor) -> torch.Tensor:
        """`steps [B, K, S]` -> `codes [B, K, T]` with T = S - max_delay (exact inverse of `apply`)."""
        B, K, S = steps.shape
        T = self.num_frames(S)
        assert K == self.num_codebooks and T >= 1, f"expected [B, K, S > {self.max_delay}], got {tuple(steps.shape)}"
        index = (torch.arange(T, device=steps.device)[None, :] + self._delays(steps.device)).expand(B, K, -1)
        return steps.gather(2, index)


def shift_right(steps: torch.Tensor, special: int) -> torch.Tensor:
    """Model inputs for `steps [B, K, S]`: position s holds step s - 1, position 0 the SPECIAL start."""
    return F.pad(steps[:, :, :-1], (1, 0), value=special)


def align_condition(cond: torch.Tensor, num_steps: int, *, lookahead: int) -> torch.Tensor:
    """`cond [B, T, F]` (row t = frame t) -> rows per position `[B, S, F * (1 + lookahead)]`.

    Position s gets rows s, s+1, ..., s+lookahead of `cond`, concatenated (frame s first); rows
    at or past T are zeros. Pass every row you know (e.g. a few frames past a training crop, or
    the whole score in generation) so lookahead sees the real future.
    """
    B, T, Fdim = cond.shape
    need = num_steps + lookahead
    padded = F.pad(cond[:, :need], (0, 0, 0, max(0, need - T)))  # [B, S + L, F]
    views = [padded[:, j : j + num_steps] for j in range(lookahead + 1)]
    return torch.cat(views, dim=2) if lookahead else views[0]
