"""The token generation loop: prompt -> prefill -> one cached decode step per pattern step.

    codes = generate_tokens(model, num_frames=750, prompt=prompt_codes, cond=midi_rows,
                            sampling=SamplingConfig(temperature=1.0, top_k=250, guidance=3.0, seed=1))

Tokens of the prompt's frames are teacher-forced wherever the pattern puts them (under the delay
pattern, codebook k of the last prompt frames comes k steps after the prompt's last step); every
other real token is sampled; holes stay SPECIAL. With conditioning and guidance != 1 the
conditional and null-condition passes run as one batch of 2B and their logits are combined.
The KV cache is a ring buffer (`audiogen.lm.model`), so any number of frames costs one decode step
each, far past the model's context. The tasks (continue, render, loops, the Python API) build on
this in `audiogen.generation.tasks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import threads
from ..errors import AudiogenError
from ..lm import patterns
from ..lm.model import LM
from ..progress import bar
from ..timing import phase
from .options import SamplingConfig
from .sampling import guide, sample


def _batch_of(x: torch.Tensor, batch_size: int, what: str) -> torch.Tensor:
    if x.shape[0] == batch_size:
        return x
    if x.shape[0] == 1:
        return x.expand(batch_size, *x.shape[1:])
    raise AudiogenError(f"{what} has batch {x.shape[0]}, expected 1 or {batch_size}")


@torch.inference_mode()
def generate_tokens(
    model: LM,
    *,
    num_frames: int,
    batch_size: int = 1,
    prompt: torch.Tensor | None = None,
    cond: torch.Tensor | None = None,
    negative_prompt: torch.Tensor | None = None,
    sampling: SamplingConfig | None = None,
    logits_hook: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    progress: Any = False,
    desc: str = "generate",
) -> torch.Tensor:
    """Codes `[B, K, num_frames]`, the prompt's `[B, K, Tp]` frames first (unchanged).

    `cond [B, T, F]` needs T >= num_frames (rows past num_frames feed the lookahead). A batch of
    1 in `prompt` or `cond` is shared by all `batch_size` items. `logits_hook(step, logits)` sees
    the (guided) float logits `[B, K, V]` that will sample pattern step `step` (codebook k's row
    is for frame `step - model.pattern.delays[k]`) and returns the logits to sample from.

    `negative_prompt [B, K, Tp]` (with a prompt, without cond): guidance toward the prompt. A second
    row per item starts from these frames instead and then reads the same sampled tokens; the logits
    are pushed from its towards the prompted row's by `sampling.guidance`. Continuation's negative is
    silence (`tasks.continue_audio`): what it pushes away from is the drift into quiet that a prompt's
    row alone follows.
    """
    sampling = sampling or SamplingConfig()
    sampling.validate()
    config = model.config
    K, special = config.num_codebooks, config.special
    pattern = model.pattern
    device = model.heads.weight.device
    if num_frames < 1 or batch_size < 1:
        raise AudiogenError("num_frames and batch_size must be at least 1")
    B = batch_size

    # Steps buffer: prompt tokens where the pattern puts them, SPECIAL elsewhere; `fixed` marks
    # (k, s) that are not sampled (holes and prompt tokens).
    frames = torch.zeros(B, K, num_frames, dtype=torch.long, device=device)
    known = torch.zeros(num_frames, dtype=torch.bool, device=device)
    if prompt is not None:
        if prompt.dim() != 3 or prompt.shape[1] != K:
            raise AudiogenError(f"prompt must be codes [B, {K}, T], got shape {tuple(prompt.shape)}")
        Tp = prompt.shape[2]
        if Tp > num_frames:
            raise AudiogenError(f"the prompt has {Tp} frames, more than num_frames = {num_frames}")
        if Tp and (prompt.min() < 0 or prompt.max() >= config.codebook_size):
            raise AudiogenError(f"prompt codes must be in [0, {config.codebook_size})")
        frames[:, :, :Tp] = _batch_of(prompt.to(device), B, "prompt")
        known[:Tp] = True
    negative_steps = None
    if negative_prompt is not None:
        if prompt is None or cond is not None or negative_prompt.shape[1:] != prompt.shape[1:]:
            raise AudiogenError("negative_prompt needs a prompt of the same shape, and no cond")
        negative = frames.clone()
        negative[:, :, :Tp] = _batch_of(negative_prompt.to(device), B, "negative_prompt")
        negative_steps = pattern.apply(negative, fill=special)  # [B, K, S]: the second rows' known steps
    steps = pattern.apply(frames, fill=special)  # [B, K, S]
    S = steps.shape[2]
    real = pattern.real_mask(num_frames, device=device)
    forced = pattern.apply(known.expand(1, K, -1), fill=False)[0]
    fixed = forced | ~real  # [K, S]
    free_steps = (~fixed).any(dim=0).nonzero().flatten().tolist()
    if not free_steps:
        return pattern.invert(steps)
    first = free_steps[0]  # the first step with something to sample

    rows = drop = None
    use_guidance = negative_steps is not None and sampling.guidance != 1.0
    if cond is not None:
        if not config.cond_features:
            raise AudiogenError("this model is unconditional; it cannot take MIDI conditioning")
        if cond.dim() != 3 or cond.shape[2] != config.cond_features:
            raise AudiogenError(f"cond must be [B, T, {config.cond_features}], got shape {tuple(cond.shape)}")
        if cond.shape[1] < num_frames:
            raise AudiogenError(f"conditioning covers {cond.shape[1]} frames, fewer than num_frames = {num_frames}")
        rows = model.condition_rows(_batch_of(cond.to(device), B, "cond"), S)
        use_guidance = sampling.guidance != 1.0
        if use_guidance:  # one 2B batch: conditional first, null condition second
            rows = torch.cat((rows, rows))
            drop = torch.arange(2 * B, device=device) >= B
    MB = 2 * B if use_guidance else B

    def model_batch(x: torch.Tensor, second: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat((x, x if second is None else second)) if use_guidance else x

    was_training = model.training
    model.eval()
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    model.setup_cache(MB, device=device)
    step_input = torch.empty(MB, K, 1, dtype=torch.long, device=device)
    # `progress` is a flag (own bar) or a shared bar-like object with .update() (batch jobs: one bar for all).
    shared = progress if hasattr(progress, "update") else None
    progress_bar = shared if shared is not None else bar(S - first, desc, quiet=not progress, unit="step")
    try:
        P = first + 1  # positions 0..first: inputs are the start step and known steps 0..first-1
        with phase("prefill"), threads.fitted():
            logits = model.prefill(model_batch(patterns.shift_right(steps[:, :, :P], special),
                                               None if negative_steps is None
                                               else patterns.shift_right(negative_steps[:, :, :P], special)),
                                   None if rows is None else rows[:, :P], drop_cond=drop)
        with model.decode_threads() as refit, phase("decode"):
            for s in range(first, S):
                refit()  # fewer threads while other processes keep cores busy (audiogen.threads)
                logits = logits.float()
                if use_guidance:
                    logits = guide(logits[:B], logits[B:], sampling.guidance)
                if logits_hook is not None:
                    logits = logits_hook(s, logits)
                tokens = sample(logits, temperature=sampling.temperature, top_k=sampling.top_k,
                                top_p=sampling.top_p, generator=generator)  # [B, K]
                tokens = torch.where(fixed[:, s], steps[:, :, s], tokens)
                steps[:, :, s] = tokens
                progress_bar.update(1)
                if s + 1 < S:
                    step_input[:B, :, 0] = tokens
                    if use_guidance:  # the second rows read the same tokens (a negative prompt: its own known steps)
                        step_input[B:, :, 0] = (tokens if negative_steps is None
                                                else torch.where(fixed[:, s], negative_steps[:, :, s], tokens))
                    logits = model.decode_step(step_input, None if rows is None else rows[:, s + 1 : s + 2],
                                               drop_cond=drop, position=s + 1)
    finally:
        if shared is None:
            progress_bar.close()
        model.train(was_training)
    return pattern.invert(steps)
