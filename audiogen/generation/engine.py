"""The Python API: `AudioGen`, the bundled (or any) model ready to generate.

    from audiogen import AudioGen
    ag = AudioGen.load()                                   # bundled default; or AudioGen.load("runs/lm")
    wav, sr = ag.continue_audio(seed, 44100, seconds=8)    # float32 [C, N] and the sample rate
    wav, sr = ag.render_midi("sketch.mid", guidance=3.0)
    loops, sr = ag.loops(count=4, bars=4, bpm=120)         # list of [C, L], L bar-exact
    batch, sr = ag.generate(seconds=5, count=2)            # [count, C, N]
    for i, wav in ag.iter_generate(seconds=5, count=1000): ...   # one at a time: memory follows batch_size
    for i, loop in ag.iter_loops(1000, 4, 120): ...
    pm = ag.compose(bars=8, style="folk", key="D", meter="3/4", bpm=120)   # a pretty_midi.PrettyMIDI sketch
    sketches = ag.loop_sketches(4, 4, 120)                 # one per loop (None without a composer)
    loops, sr = ag.loops(4, 4, 120, midi=sketches)         # compose, then render

Every call takes a `SamplingConfig` (`sampling=`) or any of its fields as keywords (temperature, top_k,
top_p, guidance, seed): the CLI's and batch jobs' defaults, from `audiogen.generation.options`. No call keeps
state between calls: the same arguments give the same audio on a device.

`compose` writes MIDI with the composer (`audiogen.composer`): the one of `AudioGen.load(..., composer=DIR)`,
else the model folder's `composer/` subfolder, else the bundled composer; it is loaded (on the CPU, where it
is fast) at the first `compose` call. `loop_sketches` composes one sketch per loop (the loop's bars, meter
N/4 and BPM, `loop=True`): `audiogen loops` without `--midi`, `loops` batch jobs and `render --compose` use it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import torch

from .. import checkpoint
from ..codec import load_codec
from ..composer import options as compose_options
from ..composer.generate import bundled_composer, load_composer
from ..composer.generate import compose as compose_midi
from ..composer.model import Composer
from ..errors import AudiogenError
from ..lm.model import LM
from ..runtime import DTYPE_NAMES, resolve_device, resolve_dtype
from .loops import DEFAULT_CROSSFADE, check_loop, iter_loops, loop_meter
from .options import (
    BATCH_SIZE,
    BEATS_PER_BAR,
    CONTINUE_SECONDS,
    FREE_COUNT,
    FREE_SECONDS,
    LOOP_BARS,
    LOOP_BPM,
    LOOP_COUNT,
    MAX_BATCH_SIZE,
    SamplingConfig,
    check_batch_size,
)
from .tasks import continue_audio, iter_generate_audio, render_midi


def _to_tensor(wav: Any) -> torch.Tensor:
    wav = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2 or wav.shape[-1] == 0:
        raise AudiogenError("audio must be a non-empty array [C, N] or [N]")
    if not torch.isfinite(wav).all():
        raise AudiogenError("audio contains NaN or infinite samples")
    return wav


class LazySketches(Sequence):
    """`count` items, item i made by `make(i)` when first asked for; the latest 2 * MAX_BATCH_SIZE are kept
    (a chunk of loops and its files ask for the same few), so memory does not grow with the count."""

    def __init__(self, make: Callable[[int], Any], count: int):
        self._count = count
        self.made = 0  # items made so far (an item asked for again after it was dropped is made again)

        def counted(i: int) -> Any:
            self.made += 1
            return make(i)

        self._make = functools.lru_cache(maxsize=2 * MAX_BATCH_SIZE)(counted)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError(index)
        return self._make(index % self._count)


class AudioGen:
    """A language model and its codec on one device."""

    def __init__(self, lm: LM, codec, *, model_dir: Path | None = None,
                 composer: Composer | str | os.PathLike | None = None):
        self.lm = lm.eval()
        self.codec = codec.eval()
        self.model_dir = model_dir
        # A Composer, a composer folder, or None (the model folder's composer/, else the bundled one).
        self._composer = composer

    @classmethod
    def load(cls, model_dir: str | os.PathLike | None = None, *, device: str = "auto",
             dtype: str = "fp32", composer: str | os.PathLike | None = None) -> AudioGen:
        """The bundled default model, or the model folder `model_dir` (made by `audiogen train lm`).

        `composer`: the composer folder `compose` uses (made by `audiogen train composer`); None: the
        model folder's `composer/` subfolder, else the bundled composer.

        `dtype` is the language model's: fp32, bf16 (about twice the decode speed where the CPU
        multiplies bf16 natively, or on CUDA; logits within ~1 % of fp32, so other samples for
        the same seed), auto (bf16 where it is native, else fp32), or int8 (CPU: fp32 weights with
        weight-only int8 copies for the decode steps, `audiogen.lm.decode_cpu`). The codec stays fp32.
        """
        torch_device = resolve_device(device)
        kernels = None
        if dtype == "int8":
            from ..lm.decode_cpu import int8_available

            if torch_device.type != "cpu" or not int8_available():
                raise AudiogenError("--dtype int8 is for CPUs, with PyTorch 2.3 or later (use bf16 on CUDA)")
            dtype, kernels = "fp32", "int8"
        lm_dtype = resolve_dtype(dtype, torch_device)
        if model_dir is None:
            model_dir = checkpoint.default_model_dir()
            if model_dir is None:
                raise AudiogenError("no bundled default model in this install; pass a model folder (--model DIR)")
        path = Path(model_dir)
        lm = LM.load(path, device=torch_device).to(lm_dtype)
        lm.decode_kernels = kernels
        codec = load_codec(checkpoint.model_codec(path, getattr(lm, "meta", {})))
        expected = (getattr(lm, "meta", {}).get("codec") or {}).get("fingerprint")
        if expected and codec.fingerprint() != expected:
            raise AudiogenError(f"{path}: its codec's weights differ from the codec the model was trained with")
        if codec.num_codebooks != lm.config.num_codebooks or codec.codebook_size != lm.config.codebook_size:
            raise AudiogenError(f"{path}: codec and model disagree on codebooks")
        return cls(lm, codec.to(torch_device), model_dir=path, composer=composer)

    # ------------------------------------------------------------------ facts
    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def channels(self) -> int:
        return self.codec.channels

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def context_seconds(self) -> float:
        return self.lm.config.context / self.frame_rate

    @property
    def conditional(self) -> bool:
        return bool(self.lm.config.cond_features)

    @property
    def identity(self) -> dict[str, Any]:
        """What made the audio: model folder and weight hashes (written to batch manifests)."""
        path = self.model_dir
        return {"model": str(path) if path else None,
                "lm_weights": checkpoint.weights_hash(path) if path else None,
                "lm_dtype": "int8" if self.lm.decode_kernels == "int8"
                else DTYPE_NAMES.get(self.lm.heads.weight.dtype, str(self.lm.heads.weight.dtype)),
                "codec": self.codec.identity.get("name"), "codec_fingerprint": self.codec.fingerprint()}

    # ------------------------------------------------------------------ tasks
    # Every task takes `sampling` (a `SamplingConfig`; None: the defaults) and, for convenience, any of its
    # fields as keywords (None: as in `sampling`). The defaults live in `SamplingConfig` alone.
    def generate(self, *, seconds: float = FREE_SECONDS, count: int = FREE_COUNT,
                 sampling: SamplingConfig | None = None, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None, batch_size: int = BATCH_SIZE,
                 progress: Any = False) -> tuple[np.ndarray, int]:
        """`count` free samples, float32 `[count, C, N]`, made `batch_size` at a time (see `iter_generate`)."""
        return np.stack([wav for _, wav in self.iter_generate(
            seconds=seconds, count=count, sampling=sampling, temperature=temperature, top_k=top_k, top_p=top_p,
            seed=seed, batch_size=batch_size, progress=progress)]), self.sample_rate

    def iter_generate(self, *, seconds: float = FREE_SECONDS, count: int = FREE_COUNT,
                      sampling: SamplingConfig | None = None, temperature: float | None = None,
                      top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                      batch_size: int = BATCH_SIZE, progress: Any = False) -> Iterator[tuple[int, np.ndarray]]:
        """(i, sample i) for `count` free samples, each float32 `[C, N]` at `sample_rate`, yielded as each
        chunk of `batch_size` finishes: memory follows `batch_size`, not `count` (write each as it comes).
        Chunk j draws with seed + its first item's index, so one seed and batch size give the same samples."""
        sampling = SamplingConfig.from_overrides(sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                                 seed=seed)
        check_batch_size(batch_size, "--batch-size")
        return enumerate(iter_generate_audio(self.lm, self.codec, seconds=seconds, count=count,
                                             batch_size=batch_size, sampling=sampling, progress=progress))

    def continue_audio(self, wav: Any, sample_rate: int, seconds: float = CONTINUE_SECONDS, *,
                       keep_prompt: bool = True, sampling: SamplingConfig | None = None,
                       guidance: float | None = None, temperature: float | None = None, top_k: int | None = None,
                       top_p: float | None = None, seed: int | None = None,
                       progress: Any = False) -> tuple[np.ndarray, int]:
        """Continue `wav [C, N]` (any rate/channels) for `seconds`; float32 `[C, N]`. `guidance` (not 1)
        guides toward the prompt, against silence (`generation.tasks.continue_audio`)."""
        sampling = SamplingConfig.from_overrides(sampling, guidance=guidance, temperature=temperature, top_k=top_k,
                                                 top_p=top_p, seed=seed)
        out = continue_audio(self.lm, self.codec, _to_tensor(wav), sample_rate, seconds=seconds,
                             keep_prompt=keep_prompt, sampling=sampling, progress=progress)
        return out, self.sample_rate

    def render_midi(self, midi: str | os.PathLike | pretty_midi.PrettyMIDI, *, seconds: float | None = None,
                    prompt: Any = None, prompt_sample_rate: int | None = None, sampling: SamplingConfig | None = None,
                    guidance: float | None = None, temperature: float | None = None, top_k: int | None = None,
                    top_p: float | None = None, seed: int | None = None,
                    progress: Any = False) -> tuple[np.ndarray, int]:
        """Audio for a MIDI sketch (path or PrettyMIDI); `prompt` audio sets the sound."""
        sampling = SamplingConfig.from_overrides(sampling, guidance=guidance, temperature=temperature, top_k=top_k,
                                                 top_p=top_p, seed=seed)
        prompt_pair = self._prompt(prompt, prompt_sample_rate)
        out = render_midi(self.lm, self.codec, midi, seconds=seconds, prompt=prompt_pair, sampling=sampling,
                          progress=progress)
        return out, self.sample_rate

    def loops(self, count: int = LOOP_COUNT, bars: int = LOOP_BARS, bpm: float = LOOP_BPM, *,
              beats_per_bar: int = BEATS_PER_BAR, midi: Any = None, prompt: Any = None,
              prompt_sample_rate: int | None = None, sampling: SamplingConfig | None = None,
              guidance: float | None = None, temperature: float | None = None, top_k: int | None = None,
              top_p: float | None = None, seed: int | None = None, batch_size: int = BATCH_SIZE,
              crossfade: float = DEFAULT_CROSSFADE, progress: Any = False,
              on_loop: Callable[[int, np.ndarray], None] | None = None) -> tuple[list[np.ndarray], int]:
        """`count` seamless loops of exactly `bars` bars at `bpm`, each float32 `[C, L]`.

        `midi`: one sketch for every loop, or a list with one per loop (`loop_sketches`).
        `on_loop(i, loop)` is called as each loop is finished (to write files while the rest generate);
        `iter_loops` yields them instead, keeping none (for counts whose loops would not fit in memory).
        """
        out = []
        for i, loop in self.iter_loops(count, bars, bpm, beats_per_bar=beats_per_bar, midi=midi, prompt=prompt,
                                       prompt_sample_rate=prompt_sample_rate, sampling=sampling, guidance=guidance,
                                       temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                       batch_size=batch_size, crossfade=crossfade, progress=progress):
            out.append(loop)
            if on_loop is not None:
                on_loop(i, loop)
        return out, self.sample_rate

    def iter_loops(self, count: int = LOOP_COUNT, bars: int = LOOP_BARS, bpm: float = LOOP_BPM, *,
                   beats_per_bar: int = BEATS_PER_BAR, midi: Any = None, prompt: Any = None,
                   prompt_sample_rate: int | None = None, sampling: SamplingConfig | None = None,
                   guidance: float | None = None, temperature: float | None = None, top_k: int | None = None,
                   top_p: float | None = None, seed: int | None = None, batch_size: int = BATCH_SIZE,
                   crossfade: float = DEFAULT_CROSSFADE, progress: Any = False,
                   start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(i, loop i) as `loops` makes them, each yielded when its chunk of `batch_size` finishes; `start` (a
        multiple of `batch_size`) skips the loops before it and gives the same later loops."""
        sampling = SamplingConfig.from_overrides(sampling, guidance=guidance, temperature=temperature, top_k=top_k,
                                                 top_p=top_p, seed=seed)
        return iter_loops(self.lm, self.codec, count=count, bars=bars, bpm=bpm, beats_per_bar=beats_per_bar,
                          midi=midi, prompt=self._prompt(prompt, prompt_sample_rate), sampling=sampling,
                          batch_size=batch_size, crossfade=crossfade, progress=progress, start=start)

    def _composer_source(self) -> Composer | str | os.PathLike | None:
        """composer= as given, else the model folder's composer/, else the bundled one; None: there is none."""
        if self._composer is not None:
            return self._composer
        if self.model_dir is not None:
            inner = compose_options.composer_folder(self.model_dir)
            if inner != Path(self.model_dir):
                return inner
        return bundled_composer()

    @property
    def has_composer(self) -> bool:
        """Whether `compose` has a composer: composer= given, the model folder's composer/, or a bundled one."""
        return self._composer_source() is not None

    @property
    def composer(self) -> Composer:
        """The composer `compose` uses, loaded on first use (one-line `AudiogenError` when there is none)."""
        if not isinstance(self._composer, Composer):
            source = self._composer_source()
            if source is None:
                raise AudiogenError("no composer: pass --composer DIR (made by `audiogen train composer`), or keep "
                                    f"one in the model folder's {compose_options.SUBFOLDER}/")
            self._composer = load_composer(source)
        return self._composer

    def loop_sketches(self, count: int = LOOP_COUNT, bars: int = LOOP_BARS, bpm: float = LOOP_BPM, *,
                      beats_per_bar: int = BEATS_PER_BAR, style: str | None = None, seed: int = 0,
                      compose: bool | None = None, lazy: bool = False,
                      **options: Any) -> Sequence[pretty_midi.PrettyMIDI] | None:
        """One composed MIDI sketch per loop, for `loops(midi=...)`; None for free loops.

        Loop i's sketch: `bars` bars of `beats_per_bar`/4 at `bpm`, composed with `loop=True` (its last bar
        leads into its first) and seed `seed + i`, in `style` (None: the composer's default style).
        `compose`: None composes when a composer is available (`has_composer`) and the model is
        MIDI-conditioned, or when a `style` is asked for, else returns None (free loops, no error); True
        needs a composer and a MIDI-conditioned model; False returns None (and refuses a `style`).
        `options`: the rest of `audiogen.composer.compose` (key, temperature, top_k, ...).
        Bad input (bars, BPM, a meter or style the composer lacks) is an `AudiogenError` before anything runs.
        `lazy`: a sequence that composes sketch i when first asked for (sketch 0 now, so bad input still fails
        here) and keeps only the latest, so `iter_loops` over thousands of loops starts at once in bounded memory.
        """
        if compose is False:
            if style is not None:
                raise AudiogenError("a style is for composed sketches: drop --no-compose (or --midi)")
            return None
        check_loop(count=count, bars=bars, bpm=bpm, beats_per_bar=beats_per_bar)
        if compose is None and style is None and not (self.conditional and self.has_composer):
            return None  # free loops: nothing to compose with, or a model that cannot follow a sketch
        if not self.conditional:
            raise AudiogenError("this model is unconditional: composed loops need a MIDI-conditioned model")
        meter = loop_meter(beats_per_bar)
        style = compose_options.STYLE if style is None else style

        def one(i: int) -> pretty_midi.PrettyMIDI:
            return self.compose(bars=bars, style=style, meter=meter, bpm=bpm, loop=True, seed=seed + i, **options)

        if not lazy:
            return [one(i) for i in range(count)]
        sketches = LazySketches(one, count)
        sketches[0]  # noqa: B018 - compose the first now: a style the composer lacks fails before any loop
        return sketches

    def compose(self, *, bars: int = compose_options.BARS, style: str = compose_options.STYLE,
                key: str | int | None = compose_options.KEY, meter: str | tuple[int, int] = compose_options.METER,
                bpm: float = compose_options.BPM, prompt: str | os.PathLike | pretty_midi.PrettyMIDI | None = None,
                loop: bool = False, seed: int = compose_options.SEED,
                temperature: float = compose_options.TEMPERATURE, top_k: int = compose_options.TOP_K,
                **options: Any) -> pretty_midi.PrettyMIDI:
        """A MIDI sketch of exactly `bars` bars in `style`, `key`, `meter` and `bpm` (quarter notes per
        minute), or continuing `prompt`; `loop` makes the last bar lead back into the first. `options`:
        the rest of `audiogen.composer.compose` (in_key, programs, max_notes_per_bar, ...). Pass it to
        `render_midi` or `loops(midi=...)` to hear it.
        """
        return compose_midi(self.composer, bars=bars, style=style, key=key, meter=meter, bpm=bpm, prompt=prompt,
                            loop=loop, seed=seed, temperature=temperature, top_k=top_k, **options)

    @staticmethod
    def _prompt(prompt: Any, sample_rate: int | None) -> tuple[torch.Tensor, int] | None:
        if prompt is None:
            return None
        if sample_rate is None:
            raise AudiogenError("prompt_sample_rate is required with a prompt array")
        return _to_tensor(prompt), int(sample_rate)
