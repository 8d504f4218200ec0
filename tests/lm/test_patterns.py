"""Codebook patterns: exact round trips, holes, the documented matrix, shift-right, condition alignment."""

from __future__ import annotations

import pytest
import torch

from audiogen.lm.patterns import Pattern, align_condition, shift_right

HOLE = -1


@pytest.mark.parametrize("name", ["delay", "parallel"])
@pytest.mark.parametrize("K", [1, 2, 4])
@pytest.mark.parametrize("T", [1, 2, 7])
def test_round_trip(name: str, K: int, T: int) -> None:
    pattern = Pattern(name, K)
    codes = torch.randint(0, 50, (3, K, T))
    steps = pattern.apply(codes, fill=HOLE)
    expected_steps = T + K - 1 if name == "delay" else T
    assert steps.shape == (3, K, expected_steps) == (3, K, pattern.num_steps(T))
    assert pattern.num_frames(expected_steps) == T
    assert torch.equal(pattern.invert(steps), codes)


@pytest.mark.parametrize("name", ["delay", "parallel"])
def test_hole_mask(name: str) -> None:
    K, T = 4, 5
    pattern = Pattern(name, K)
    codes = torch.randint(0, 50, (2, K, T))
    steps = pattern.apply(codes, fill=HOLE)
    real = pattern.real_mask(T)
    assert real.shape == (K, pattern.num_steps(T)) and real.dtype == torch.bool
    assert torch.equal(steps != HOLE, real.expand_as(steps))
    assert real.sum(dim=1).tolist() == [T] * K  # every frame of every codebook appears once
    if name == "delay":  # codebook k starts k steps late and ends K-1-k steps early
        for k in range(K):
            assert real[k].nonzero().flatten().tolist() == list(range(k, k + T))


def test_documented_delay_matrix() -> None:
    # codes[k, t] = 10 * k + t: a0..a3 = 0..3, b0..b3 = 10..13, c0..c3 = 20..23
    codes = (10 * torch.arange(3)[:, None] + torch.arange(4)[None, :])[None]
    steps = Pattern("delay", 3).apply(codes, fill=HOLE)[0]
    assert steps.tolist() == [
        [0, 1, 2, 3, HOLE, HOLE],
        [HOLE, 10, 11, 12, 13, HOLE],
        [HOLE, HOLE, 20, 21, 22, 23],
    ]
    assert torch.equal(Pattern("parallel", 3).apply(codes, fill=HOLE)[0], codes[0])


def test_apply_works_on_bool_masks() -> None:
    valid = torch.tensor([[True, True, False]])[:, None, :].expand(1, 2, 3)
    steps = Pattern("delay", 2).apply(valid, fill=False)[0]
    assert steps.tolist() == [[True, True, False, False], [False, True, True, False]]


def test_shift_right() -> None:
    steps = torch.arange(12).view(1, 2, 6)
    inputs = shift_right(steps, special=99)
    assert inputs.shape == steps.shape
    assert inputs[0, :, 0].tolist() == [99, 99]  # the start step
    assert torch.equal(inputs[:, :, 1:], steps[:, :, :-1])


def test_align_condition() -> None:
    B, T, F, L = 2, 5, 3, 2
    cond = torch.randn(B, T, F)
    S = T + 3  # the delay pattern's tail runs past the last frame
    rows = align_condition(cond, S, lookahead=L)
    assert rows.shape == (B, S, F * (L + 1))
    for s in range(S):
        for j in range(L + 1):
            block = rows[:, s, j * F : (j + 1) * F]
            expected = cond[:, s + j] if s + j < T else torch.zeros(B, F)
            assert torch.equal(block, expected), (s, j)
    # no lookahead: row s is frame s; fewer steps than frames just crops
    assert torch.equal(align_condition(cond, 4, lookahead=0), cond[:, :4])
    # a prefix of the steps sees the same rows (training and generation agree)
    assert torch.equal(align_condition(cond, 3, lookahead=L), rows[:, :3])
