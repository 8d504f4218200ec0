"""Streaming audio loads (`audiogen.audio.load(..., sample_rate=, channels=)`, `Resampler`): the same result as
loading the whole file and resampling it at once, headers that imply absurd lengths refused before anything is
read, and over-range float samples handled without warnings.

    .venv/bin/pytest tests/test_audio_streaming.py -q
"""

from __future__ import annotations

import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from conftest import synth
from tinymodel import run_main

from audiogen import audio
from audiogen.errors import AudiogenError


def _write(path: Path, data: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> Path:
    sf.write(str(path), data.T, sample_rate, subtype=subtype)
    return path


def _whole_file(data: np.ndarray, sample_rate: int, *, rate: int, channels: int) -> torch.Tensor:
    """What `load` + `prepare` did before loads streamed: the whole file, mixed, then torchaudio's resample."""
    wav = audio.to_channels(torch.from_numpy(np.ascontiguousarray(data)), channels)
    return wav if rate == sample_rate else AF.resample(wav, sample_rate, rate)


@pytest.mark.parametrize("sample_rate,have,rate,channels", [
    (44100, 2, 24000, 1), (48000, 2, 24000, 1), (192000, 8, 24000, 1), (96000, 6, 44100, 2),
    (22050, 1, 48000, 2), (8000, 1, 24000, 1), (32000, 2, 32000, 2),
])
def test_streaming_load_equals_the_whole_file_load(tmp_path, monkeypatch, sample_rate, have, rate, channels):
    data = synth(0.4, sample_rate, have, seed=have)  # [C, N], peak 0.5
    path = _write(tmp_path / "x.wav", data, sample_rate)
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 997)  # many blocks, none a multiple of the filter's stride
    wav, got_rate = audio.load(path, sample_rate=rate, channels=channels)
    expected = _whole_file(data, sample_rate, rate=rate, channels=channels)
    assert got_rate == rate and wav.dtype == torch.float32
    assert wav.shape == expected.shape
    assert float((wav - expected).abs().max()) < 2e-5  # float rounding of the filter taps, nothing more
    unstreamed, _ = audio.load(path)  # no target: the file as it is
    assert torch.equal(unstreamed, torch.from_numpy(data))


def test_resampler_output_does_not_depend_on_block_sizes():
    wav = torch.from_numpy(synth(0.1, 44100, 2, seed=3))
    whole = audio.resample(wav, 44100, 24000)
    assert whole.shape[-1] == -(-wav.shape[-1] * 24000 // 44100)  # ceil(N * new / old)
    for sizes in ([1, 146, 147, 148], [5000], [61]):
        resampler, pieces, at = audio.Resampler(44100, 24000), [], 0
        while at < wav.shape[-1]:
            step = sizes[len(pieces) % len(sizes)]
            pieces.append(resampler.push(wav[:, at : at + step]))
            at += step
        pieces.append(resampler.finish())
        assert torch.equal(torch.cat(pieces, dim=-1), whole)


def _wav_header(path: Path, *, sample_rate: int, channels: int, payload: bytes) -> Path:
    """A PCM_16 WAV with any header values (what a broken or hostile file can claim)."""
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * channels * 2, channels * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_header_implying_an_absurd_length_is_refused_before_reading(tmp_path):
    # 2 MB of samples at 1 Hz: 12 days, 96 GB once resampled to 24 kHz. Refused before a sample is decoded:
    # decoding would allocate 4 MB of float32 in numpy alone (traced here), resampling 96 GB.
    path = _wav_header(tmp_path / "one_hz.wav", sample_rate=1, channels=1, payload=bytes(2 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(AudiogenError, match="hours of audio .* at most 3 hours"):
            audio.load(path, sample_rate=24000, channels=1)
        with pytest.raises(AudiogenError, match="hours of audio"):
            audio.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    with pytest.raises(AudiogenError, match="hours of audio"):  # arrays given to the engine: the same bound
        audio.prepare(torch.zeros(1, 2 << 20), 1, target_rate=24000, channels=1)
    # rates that share no factor would need a gigabyte filter bank: one line, not an allocation
    odd = _write(tmp_path / "odd.wav", synth(0.1, 44101), 44101, subtype="PCM_16")
    with pytest.raises(AudiogenError, match="cannot resample 44101 Hz to 24000 Hz"):
        audio.load(odd, sample_rate=24000, channels=1)


def test_absurd_header_through_the_cli_is_one_line(tmp_path, capsys):
    seed = _wav_header(tmp_path / "one_hz.wav", sample_rate=1, channels=1, payload=bytes(2 << 20))
    out = tmp_path / "out"
    out.mkdir()
    commands = [["continue", seed, "-o", out / "x.wav", "--seconds", "0.1", "--quiet"],  # the bundled model
                ["codec", "encode", seed, "-o", out / "x.npz"]]
    for args in commands:
        capsys.readouterr()
        assert run_main(*args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "hours of audio" in err[0], err
    assert list(out.iterdir()) == []


def test_over_range_float_samples_are_scaled_without_warnings(tmp_path):
    data = synth(0.25, 8000, 2, seed=4)
    data[0, ::50] = 1e38  # garbage in a float file
    data[1, 7] = np.nan
    path = _write(tmp_path / "hot.wav", data, 8000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings are errors here
        wav, _ = audio.load(path, sample_rate=24000, channels=1)
        assert torch.isfinite(wav).all() and float(wav.abs().max()) <= 1.01
        wav, _ = audio.load(path)
        assert float(wav.abs().max()) == pytest.approx(1.0) and wav[1, 7] == 0
        audio.save(tmp_path / "out.wav", np.array([[1e38, -1e38, 0.5]], np.float32), 8000)  # clipped, no overflow
    assert sf.read(str(tmp_path / "out.wav"), dtype="int16")[0].tolist() == [32767, -32767, 16384]
