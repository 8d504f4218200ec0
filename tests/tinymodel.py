"""A tiny MIDI-conditioned model folder (LM + codec) made in the test, for generation tests.

8 kHz mono codec with hop 32 (250 frames/s, 2 codebooks of 64) and a 2-layer LM with a
64-step window: random weights, so the audio is noise, but every shape, length, seed and file
path goes through the real code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf
import torch

from audiogen.codec import CodecConfig, EncodecCodec
from audiogen.lm.model import LM, LMConfig
from audiogen.midi import NUM_FEATURES

SAMPLE_RATE = 8000


def make_tiny_model(folder: Path, *, conditional: bool = True, context: int = 64, sample_rate: int = SAMPLE_RATE,
                    ratios: tuple[int, ...] = (4, 4, 2)) -> Path:
    """The model folder (LM + `codec/`); `sample_rate` and `ratios` (hop = their product) set the codec."""
    torch.manual_seed(0)
    codec = EncodecCodec(CodecConfig(sample_rate=sample_rate, n_filters=4, dimension=16, ratios=ratios,
                                     lstm_layers=0, max_codebooks=2, num_codebooks=2, codebook_size=64,
                                     name="tiny"))
    with torch.no_grad():  # one training pass runs k-means, so the codebooks (and the audio) mean something
        codec.train()(torch.randn(2, 1, sample_rate) * 0.2)
    codec.eval()
    lm = LM(LMConfig(num_codebooks=2, codebook_size=64, dim=32, num_layers=2, num_heads=2, context=context,
                     cond_features=NUM_FEATURES if conditional else 0))
    lm.save(folder, extra={"codec": {**codec.identity, "fingerprint": codec.fingerprint()}})
    codec.save(folder / "codec")
    return folder


def write_sketch(path: Path, *, seconds: float = 2.0, tempo: float = 100.0) -> Path:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    piano = pretty_midi.Instrument(program=0)
    beat = 60.0 / tempo
    t, pitch = 0.0, 60
    while t < seconds:
        piano.notes.append(pretty_midi.Note(90, pitch, t, t + 0.9 * beat))
        t += beat
        pitch = 60 + (pitch - 57) % 12
    pm.instruments.append(piano)
    pm.write(str(path))
    return path


def write_seed(path: Path, *, seconds: float = 1.0, sample_rate: int = 44100, channels: int = 2) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 330 * t)
    sf.write(path, np.stack([tone] * channels, axis=1).astype(np.float32), sample_rate)
    return path


def run_main(*args) -> int:
    """`audiogen ARGS...` in this process (`audiogen.cli.main`): its exit code. (conftest's `run_cli` runs
    a fresh interpreter instead.)"""
    from audiogen.cli import main

    return main([str(a) for a in args])


def frames_of(path: Path) -> tuple[int, int, int]:
    """(frames, sample rate, channels) of an audio file."""
    info = sf.info(str(path))
    return info.frames, info.samplerate, info.channels


def writer_inputs(base: Path) -> dict[str, Path]:
    """What the output-writing tests feed every command: a tiny model, a seed WAV and its codes, a folder of
    clips, a one-job batch file and a MIDI sketch (all in `base`)."""
    import json

    from conftest import write_wav

    model = make_tiny_model(base / "tiny")
    seed = write_seed(base / "seed.wav", seconds=0.5, sample_rate=8000, channels=1)
    clips = base / "clips"
    write_wav(clips / "a.wav", 0.5, 8000)
    assert run_main("codec", "encode", seed, "-o", base / "seed.npz", "--codec", model / "codec", "--quiet") == 0
    jobs = base / "jobs.jsonl"
    jobs.write_text(json.dumps({"task": "continue", "seed_audio": str(seed), "seconds": 0.25}) + "\n")
    return {"model": model, "seed": seed, "npz": base / "seed.npz", "clips": clips, "jobs": jobs,
            "sketch": write_sketch(base / "sketch.mid")}
