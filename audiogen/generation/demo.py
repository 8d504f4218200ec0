"""The demo: the main jobs on one model, written as WAV + spectrogram PNG into a folder (`audiogen demo`).

    made, wall = run_demo(AudioGen.load(), Path("out"), sketch=sketch, seed_audio=seed, seconds=8.0, seed=0)

Renders the bundled MIDI sketch (conditional models), continues the bundled seed recording and makes four
4-bar loops at 112 BPM. The inputs live in the repository's `samples/` folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import audio
from ..errors import AudiogenError
from .batch import save_output
from .loops import loop_info

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LOOPS, LOOP_BARS, LOOP_BPM = 4, 4, 112


def demo_inputs(*, sketch: str | None = None, seed_audio: str | None = None) -> tuple[Path, Path]:
    """The demo's MIDI sketch and seed recording (default: the repository's samples/)."""
    sketch_path = Path(sketch) if sketch else SAMPLES / "sketch.mid"
    seed_path = Path(seed_audio) if seed_audio else SAMPLES / "seed.wav"
    for path in (sketch_path, seed_path):
        if not path.exists():
            raise AudiogenError(f"{path}: demo input not found (run from a clone of the repository, or pass it)")
    return sketch_path, seed_path


def run_demo(ag: Any, out: Path, *, sketch: Path, seed_audio: Path, seconds: float, seed: int = 0,
             progress: bool = False) -> tuple[list[tuple[str, Path, float]], float]:
    """Write the demo's files into `out`; return [(what, path, seconds of audio)] and the wall time."""
    made = []
    start = time.perf_counter()
    if ag.conditional:
        wav, sr = ag.render_midi(sketch, seed=seed, progress=progress)
        save_output(out / "render.wav", wav, sr, plot=True)
        made.append(("render", out / "render.wav", wav.shape[-1] / sr))
    seed_wav, seed_sr = audio.load(seed_audio)
    wav, sr = ag.continue_audio(seed_wav, seed_sr, seconds, seed=seed, progress=progress)
    save_output(out / "continue.wav", wav, sr, plot=True)
    made.append(("continue", out / "continue.wav", wav.shape[-1] / sr))
    loops, sr = ag.loops(LOOPS, LOOP_BARS, LOOP_BPM, midi=sketch if ag.conditional else None, seed=seed,
                         batch_size=4, progress=progress)
    for i, wav in enumerate(loops):
        path = out / "loops" / f"loop-{i:02d}.wav"
        info = loop_info(wav.shape[-1], bars=LOOP_BARS, bpm=LOOP_BPM, beats_per_bar=4)
        save_output(path, wav, sr, loop=info, plot=True)
        made.append((f"loop {i}", path, wav.shape[-1] / sr))
    return made, time.perf_counter() - start
