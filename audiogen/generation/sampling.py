"""Turning logits into tokens: temperature, top-k, top-p (nucleus) and classifier-free guidance.

    logits = guide(cond_logits, uncond_logits, scale=3.0)
    tokens = sample(logits, temperature=1.0, top_k=250, generator=torch.Generator().manual_seed(0))

Everything works on `[..., V]` logits of any batch shape. Randomness comes only from the explicit
`torch.Generator`, so a seed fixes the output on a given device. Sampling uses the exponential
race (argmax of p / E with E ~ Exp(1) picks index i with probability p_i), which needs no
host-device synchronisation, unlike `torch.multinomial` on CUDA; with top-k it draws among the k
candidates only.
"""

from __future__ import annotations

import torch


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance, `uncond + scale * (cond - uncond)`.

    Written as `cond + (scale - 1) * (cond - uncond)` (the same value), so scale 1 returns the
    conditional logits bit for bit.
    """
    return cond + (scale - 1.0) * (cond - uncond)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches p (at least one)."""
    if p <= 0 or p >= 1:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass of the tokens ranked above each one
    remove_sorted = before >= p
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def _draw(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    probs = torch.softmax(logits / temperature, dim=-1)
    # Exp(1) noise as -log(U), U in [0, 1): never 0, and much cheaper than `exponential_`.
    race = torch.rand(probs.shape, generator=generator, device=probs.device).log_().neg_()
    return (probs / race).argmax(dim=-1)


def sample(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Token ids `[...]` (int64) from `logits [..., V]`; temperature 0 is greedy (argmax).

    `top_k` (0 = off) keeps the k most likely tokens, then `top_p` (0 = off) the nucleus of those.
    """
    if temperature < 0:
        raise ValueError("temperature must not be negative")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    if 0 < top_k < logits.shape[-1]:
        # Draw among the k best only: k random numbers per row instead of V.
        values, indices = torch.topk(logits, top_k, dim=-1, sorted=top_p > 0)
        choice = _draw(top_p_filter(values, top_p), temperature, generator)
        return indices.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
    return _draw(top_p_filter(logits, top_p), temperature, generator)
