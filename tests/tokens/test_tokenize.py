"""Tokenizing folders into shards: layout, skipping bad files, incremental re-runs, kill safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiogen import audio
from audiogen.codec import CodecConfig, EncodecCodec
from audiogen.tokens.crops import TokenCrops
from audiogen.tokens.format import read_index
from audiogen.tokens.tokenize import tokenize

TINY = dict(sample_rate=8000, n_filters=4, dimension=16, ratios=(4, 4, 2), lstm_layers=0,
            max_codebooks=2, num_codebooks=2, codebook_size=64)


def tiny_codec(tmp_path: Path) -> tuple[EncodecCodec, str]:
    torch.manual_seed(0)
    codec = EncodecCodec(CodecConfig(**TINY)).eval()
    folder = tmp_path / "codec"
    codec.save(folder)
    return EncodecCodec.load(folder), str(folder)


def write_tone(path: Path, seconds: float, freq: float, sr: int = 8000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)


def make_folder(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    write_tone(root / "a.wav", 1.0, 220)
    write_tone(root / "sub" / "b.wav", 0.5, 330)
    sf.write(root / "c.flac", (0.2 * np.random.default_rng(0).standard_normal((4000, 2))).astype(np.float32), 16000)
    (root / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    sf.write(root / "empty.wav", np.zeros((0,), np.float32), 8000)


def test_tokenize_layout_codes_and_skips(tmp_path: Path) -> None:
    audio_dir, out = tmp_path / "audio", tmp_path / "ds"
    make_folder(audio_dir)
    codec, spec = tiny_codec(tmp_path)
    summary = tokenize(audio_dir, out, codec, codec_spec=spec, with_midi=False, quiet=True)
    assert summary.files == 3 and summary.encoded == 3 and len(summary.skipped) == 2
    assert any("broken.wav" in s for s in summary.skipped) and any("empty.wav" in s for s in summary.skipped)
    index = read_index(out)
    assert set(index["entries"]) == {"a.wav", "sub/b.wav", "c.flac"}
    assert index["codec"]["fingerprint"] == codec.fingerprint()
    # The stored codes are exactly what the codec produces for each file.
    data = TokenCrops(out, crop_frames=1, split="all")
    for name, entry in zip(data.names, data.entries):
        wav, sr = audio.load(audio_dir / name)
        wav = audio.prepare(wav, sr, target_rate=codec.sample_rate, channels=1)
        expected = codec.encode(wav[None])[0]
        whole = TokenCrops(out, crop_frames=entry["frames"], split="all")
        assert torch.equal(whole.crop(whole.names.index(name), 0)["codes"], expected), name
    assert summary.frames == sum(e["frames"] for e in index["entries"].values())


def test_rerun_skips_unchanged_and_reencodes_changed(tmp_path: Path) -> None:
    audio_dir, out = tmp_path / "audio", tmp_path / "ds"
    make_folder(audio_dir)
    codec, spec = tiny_codec(tmp_path)
    tokenize(audio_dir, out, codec, codec_spec=spec, with_midi=False, quiet=True)
    again = tokenize(audio_dir, out, codec, codec_spec=spec, with_midi=False, quiet=True)
    assert again.encoded == 0 and again.unchanged == 3
    write_tone(audio_dir / "a.wav", 1.5, 440)  # content changed
    (audio_dir / "c.flac").unlink()  # removed
    third = tokenize(audio_dir, out, codec, codec_spec=spec, with_midi=False, quiet=True)
    assert third.encoded == 1 and third.files == 2
    assert read_index(out)["entries"]["a.wav"]["frames"] == codec.num_frames(int(1.5 * 8000))
    # A different codec (other weights) invalidates every entry.
    torch.manual_seed(1)
    other = EncodecCodec(CodecConfig(**TINY)).eval()
    fourth = tokenize(audio_dir, out, other, codec_spec="other", with_midi=False, quiet=True)
    assert fourth.encoded == 2


def test_garbage_past_the_index_is_cut(tmp_path: Path) -> None:
    audio_dir, out = tmp_path / "audio", tmp_path / "ds"
    make_folder(audio_dir)
    codec, spec = tiny_codec(tmp_path)
    tokenize(audio_dir, out, codec, codec_spec=spec, with_midi=False, quiet=True)
    shard = out / "codes-00000.bin"
    size = shard.stat().st_size
    with open(shard, "ab") as handle:  # what a run killed mid-append leaves behind
        handle.write(b"\x7f" * 1000)
    write_tone(audio_dir / "d.wav", 0.25, 500)
    tokenize(audio_dir, out, codec, codec_spec=spec, with_midi=False, quiet=True)
    entry = read_index(out)["entries"]["d.wav"]
    assert entry["offset"] * 2 * 2 == size  # appended right after the vouched-for bytes
    assert shard.stat().st_size == size + entry["frames"] * 2 * 2


def test_one_file_with_its_midi(tmp_path: Path) -> None:
    """`audiogen tokenize ONE.wav` pairs ONE.mid beside it (its path is stored relative to that folder)."""
    from tinymodel import write_sketch

    write_tone(tmp_path / "one.wav", 0.5, 220)
    write_sketch(tmp_path / "one.mid", seconds=0.5)
    codec, spec = tiny_codec(tmp_path)
    summary = tokenize(tmp_path / "one.wav", tmp_path / "ds", codec, codec_spec=spec, quiet=True)
    assert summary.paired == 1
    assert read_index(tmp_path / "ds")["entries"]["one.wav"]["midi"] == "one.mid"


@pytest.mark.slow
def test_killed_run_resumes_without_reencoding(tmp_path: Path) -> None:
    audio_dir, out = tmp_path / "audio", tmp_path / "ds"
    audio_dir.mkdir()
    for i in range(40):
        write_tone(audio_dir / f"f{i:02d}.wav", 3.0, 200 + 10 * i)
    codec, spec = tiny_codec(tmp_path)
    cmd = [sys.executable, "-m", "audiogen", "tokenize", str(audio_dir), "--codec", spec, "-o", str(out),
           "--no-midi", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    done = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            done = len(json.loads((out / "index.json").read_text())["entries"])
        except (OSError, ValueError):
            done = 0
        if done >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("tokenize finished before it could be killed")
    finished = len(read_index(out)["entries"])
    assert 3 <= finished < 40
    summary = tokenize(audio_dir, out, codec, codec_spec=spec, with_midi=False, quiet=True)
    assert summary.encoded == 40 - finished and summary.files == 40
    data = TokenCrops(out, crop_frames=codec.num_frames(3 * 8000), split="all")
    for name in ("f00.wav", "f39.wav"):
        wav, sr = audio.load(audio_dir / name)
        expected = codec.encode(wav[None])[0]
        assert torch.equal(data.crop(data.names.index(name), 0)["codes"], expected)
