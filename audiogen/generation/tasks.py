"""Generation tasks on a trained LM + codec: continue a recording, render a MIDI sketch, sample freely.

    wav = continue_audio(lm, codec, seed_wav, 44100, seconds=10, keep_prompt=True, sampling=s)
    wav = render_midi(lm, codec, "sketch.mid", prompt=(timbre_wav, sr), sampling=s)

Every task is the same three moves: audio/MIDI in -> codes + conditioning -> `generate_tokens`
(prefill + one cached step per frame, any length: the KV cache is a sliding ring buffer) ->
`codec.decode` of all frames at once, cut to exactly the requested number of samples. Audio is
never re-encoded mid-way, so long outputs have no window seams. Loops live in `audiogen/generation/loops.py`.
Outputs are float32 `[C, N]` at the codec's sample rate. Many items (`iter_generate_audio`, loops) are made in
chunks of `batch_size` and yielded as each chunk finishes, so memory follows the batch size, not the count.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pretty_midi
import torch

from .. import audio
from ..errors import AudiogenError
from ..midi import load_midi, midi_features, midi_seconds
from ..timing import phase
from .options import SamplingConfig, check_batch_size, check_count, show_value
from .token_loop import generate_tokens

MAX_SECONDS = 3600.0  # one hour of output per item: beyond that a typo is more likely than a wish
RENDER_TAIL_SECONDS = 1.0  # let the last notes ring out after the MIDI's final note-off
JOIN_FADE_SECONDS = 0.05  # original seed -> decoded continuation crossfade


def check_seconds(seconds: float, what: str = "--seconds") -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds <= 0:
        raise AudiogenError(f"{what} must be a positive number of seconds, got {show_value(seconds)}")
    if seconds > MAX_SECONDS:
        raise AudiogenError(f"{what} = {seconds:g} is more than the {MAX_SECONDS:g} s limit per item")
    return float(seconds)


def device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def encode_prompt(codec, wav: torch.Tensor, sample_rate: int, *, max_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last whole frames (at most `max_frames`) of `wav [C, N]` as codes `[1, K, Tp]`.

    Returns (codes, the prepared audio `[C, Ns]` at the codec's rate). Only whole frames are
    encoded so the prompt ends exactly where the recording ends (no padded silence before the
    continuation); a seed shorter than one frame is padded at its start.
    """
    prepared = audio.prepare(wav, sample_rate, target_rate=codec.sample_rate, channels=codec.channels)
    hop = codec.hop_length
    frames = max(1, min(prepared.shape[-1] // hop, max_frames))
    tail = prepared[..., -frames * hop :]
    if tail.shape[-1] < frames * hop:
        tail = torch.nn.functional.pad(tail, (frames * hop - tail.shape[-1], 0))
    with phase("codec encode"):
        codes = codec.encode(tail[None].to(device_of(codec)))
    return codes, prepared


def decode(codec, codes: torch.Tensor, *, start_frame: int = 0, samples: int) -> np.ndarray:
    """`codes [B, K, T]` -> float32 `[B, C, samples]` from frame `start_frame` on.

    All frames are decoded together, so the kept part has its real neighbours as context.
    """
    with phase("codec decode"):
        wav = codec.decode(codes.to(device_of(codec)))
    start = start_frame * codec.hop_length
    out = wav[..., start : start + samples].float().cpu()
    if out.shape[-1] < samples:
        out = torch.nn.functional.pad(out, (0, samples - out.shape[-1]))
    return out.clamp(-1, 1).numpy()


def prompt_limit(lm) -> int:
    """Frames of prompt worth feeding: what fits in the attention window (older frames would be evicted)."""
    return max(1, lm.config.context - lm.pattern.max_delay - 1)


def continue_audio(
    lm, codec, wav: torch.Tensor, sample_rate: int, *, seconds: float, keep_prompt: bool = True,
    sampling: SamplingConfig, progress: Any = False,
) -> np.ndarray:
    """Continue `wav [C, N]` for `seconds`; with keep_prompt the output starts with the seed itself.

    A seed longer than the model's context is fine: its last part (what fits the window) is the
    prompt. Output length: round(seconds * sr) samples, plus the seed's length with keep_prompt.

    `sampling.guidance` (not 1) guides toward the prompt against silence of the prompt's length as a
    negative prompt (`generate_tokens`' negative_prompt): on the corpus's 10 held-out files at guidance 3,
    the last 3 s keep 0.38 of the prompt's energy instead of 0.16, the longest quiet stretch is 0.15 s
    instead of 0.55, and 3 of 10 continuations are nearest their own track instead of 2
    (README, "Continuation").
    """
    check_seconds(seconds)
    sr, hop = codec.sample_rate, codec.hop_length
    prompt, prepared = encode_prompt(codec, wav, sample_rate, max_frames=prompt_limit(lm))
    Tp = prompt.shape[-1]
    new_samples = audio.seconds_to_samples(seconds, sr)
    total_frames = Tp + math.ceil(new_samples / hop)
    negative = None
    if sampling.guidance != 1.0 and Tp:
        with phase("codec encode"):
            silence = torch.zeros(1, codec.channels, Tp * hop, device=device_of(codec))
            negative = codec.encode(silence).to(device_of(lm))  # [1, K, Tp]
    codes = generate_tokens(lm, num_frames=total_frames, prompt=prompt.to(device_of(lm)), negative_prompt=negative,
                            sampling=sampling, progress=progress, desc="continue")
    decoded = decode(codec, codes, samples=total_frames * hop)[0]  # [C, total_frames * hop]
    continuation = decoded[:, Tp * hop : Tp * hop + new_samples]
    if not keep_prompt:
        return continuation
    # One output array with the seed copied in once (a 10-minute seed is 58 MB at 24 kHz: copies add up).
    n = prepared.shape[-1]
    out = np.empty((prepared.shape[0], n + continuation.shape[-1]), np.float32)
    out[:, :n], out[:, n:] = prepared.numpy(), continuation
    seed = out[:, :n]  # a view: the fade below writes into the output
    # Fade from the original seed into the codec's rendering of its last moments, so the
    # timbre change at the join is gradual rather than a step.
    fade = min(seed.shape[-1], Tp * hop, int(JOIN_FADE_SECONDS * sr))
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        seed[:, -fade:] = seed[:, -fade:] * (1 - ramp) + decoded[:, Tp * hop - fade : Tp * hop] * ramp
    return out


def require_conditional(lm, task: str) -> None:
    if not lm.config.cond_features:
        raise AudiogenError(f"this model is unconditional: {task} needs a MIDI-conditioned model")


def render_midi(
    lm, codec, midi: str | os.PathLike | pretty_midi.PrettyMIDI, *, seconds: float | None = None,
    prompt: tuple[torch.Tensor, int] | None = None, sampling: SamplingConfig, progress: Any = False,
) -> np.ndarray:
    """Audio for a MIDI sketch, aligned to its timing; `prompt=(wav, sr)` sets the sound.

    Length: `seconds` if given, else the MIDI's last note-off plus a one-second release tail.
    """
    require_conditional(lm, "render")
    pm = load_midi(midi)
    seconds = check_seconds(seconds if seconds is not None else midi_seconds(pm) + RENDER_TAIL_SECONDS)
    sr, hop = codec.sample_rate, codec.hop_length
    samples = audio.seconds_to_samples(seconds, sr)
    T = math.ceil(samples / hop)
    cond = midi_features(pm, frame_rate=codec.frame_rate, num_frames=T + lm.config.cond_lookahead + 1)
    prompt_codes, Tp = None, 0
    if prompt is not None:
        prompt_codes, _ = encode_prompt(codec, prompt[0], prompt[1], max_frames=min(prompt_limit(lm) // 2, T))
        Tp = prompt_codes.shape[-1]
        # The prompt's frames carry no MIDI (the null condition); the sketch starts after them.
        cond = torch.cat([torch.zeros(Tp, cond.shape[1]), cond])
    codes = generate_tokens(lm, num_frames=Tp + T, prompt=prompt_codes, cond=cond[None].to(device_of(lm)),
                            sampling=sampling, progress=progress, desc="render")
    return decode(codec, codes, start_frame=Tp, samples=samples)[0]


@contextlib.contextmanager
def memory_errors(batch_size: int) -> Iterator[None]:
    """Out of memory (CUDA, or an allocation the CPU refuses) while generating `batch_size` items at once is a
    one-line `AudiogenError` that says what to lower, not a traceback."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError):
        raise AudiogenError(f"out of memory generating {batch_size} items at once: lower --batch-size") from None
    except RuntimeError as err:
        text = str(err).lower()
        if "out of memory" not in text and "can't allocate memory" not in text:
            raise
        raise AudiogenError(f"out of memory generating {batch_size} items at once: lower --batch-size") from None


def chunks(count: int, batch_size: int, *, start: int = 0) -> Iterator[tuple[int, int]]:
    """(first item, items) of each chunk of `batch_size` from item `start` (a multiple of batch_size) on."""
    assert start % batch_size == 0, "a resumed run starts at a chunk boundary (same seeds, same items)"
    for first in range(start, count, batch_size):
        yield first, min(batch_size, count - first)


def chunk_sampling(sampling: SamplingConfig, first: int) -> SamplingConfig:
    """The sampling of the chunk whose first item is `first`: seed + first, so a chunk's items do not
    depend on the chunks before it (a resumed run makes the same items)."""
    return SamplingConfig(**{**sampling.__dict__, "seed": sampling.seed + first})


def iter_generate_audio(
    lm, codec, *, seconds: float, count: int = 1, batch_size: int | None = None, sampling: SamplingConfig,
    progress: Any = False, start: int = 0,
) -> Iterator[np.ndarray]:
    """`count` unconditional samples, each float32 `[C, N]`, yielded as each chunk of `batch_size` finishes
    (MIDI-conditioned models use the null condition). None: `batch_size` = `count` (one chunk). Bad
    parameters raise here, before the first sample is asked for.

    Chunk i draws with seed + its first item's index; `start` (a multiple of `batch_size`) skips the chunks before.
    """
    check_seconds(seconds)
    check_count(count)
    batch_size = count if batch_size is None else check_batch_size(batch_size)
    samples = audio.seconds_to_samples(seconds, codec.sample_rate)
    T = math.ceil(samples / codec.hop_length)
    chunk_list = list(chunks(count, batch_size, start=start))  # checks `start` now, not at the first item

    def generate() -> Iterator[np.ndarray]:  # the work, chunk by chunk, as the caller asks
        shared, bar_or_flag = None, progress
        if progress is True and len(chunk_list) > 1:  # one bar with ETA across every chunk
            from ..progress import bar

            shared = bar_or_flag = bar(len(chunk_list) * (T + lm.pattern.max_delay), "generate", unit="step")
        try:
            for first, b in chunk_list:
                with memory_errors(b):
                    codes = generate_tokens(lm, num_frames=T, batch_size=b, sampling=chunk_sampling(sampling, first),
                                            progress=bar_or_flag, desc="generate")
                    wavs = decode(codec, codes, samples=samples)  # [b, C, N]
                del codes
                yield from wavs
        finally:
            if shared is not None:
                shared.close()

    return generate()


def generate_audio(
    lm, codec, *, seconds: float, count: int = 1, batch_size: int | None = None, sampling: SamplingConfig,
    progress: Any = False,
) -> np.ndarray:
    """`count` unconditional samples `[count, C, N]` (see `iter_generate_audio`)."""
    return np.stack(list(iter_generate_audio(lm, codec, seconds=seconds, count=count, batch_size=batch_size,
                                             sampling=sampling, progress=progress)))
