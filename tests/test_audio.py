"""Audio I/O (`audiogen.audio`, `audiogen.fileio`): formats, channels, resampling, levels,
atomic saving, WAV loop chunks and user errors.

    .venv/bin/pytest tests/test_audio.py -q
"""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import synth, write_wav

from audiogen import audio
from audiogen.errors import AudiogenError
from audiogen.fileio import atomic_path, is_temporary


def _sine(freq: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()[None]


def _peak_hz(wav: torch.Tensor, sample_rate: int) -> float:
    spectrum = torch.fft.rfft(wav[0].double()).abs()
    return float(spectrum.argmax()) * sample_rate / wav.shape[-1]


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_load_formats_as_float32_channels_first(tmp_path, suffix):
    data = synth(0.5, 44100, 2, seed=1)
    path = write_wav(tmp_path / f"x{suffix}", sample_rate=44100, data=data)
    wav, sr = audio.load(path)
    assert sr == 44100
    assert wav.dtype == torch.float32 and wav.dim() == 2 and wav.shape[0] == 2
    assert abs(wav.shape[1] - data.shape[1]) <= (0 if suffix != ".ogg" else 64)
    n = min(wav.shape[1], data.shape[1])
    if suffix == ".ogg":  # lossy: the waveform correlates, it is not equal
        corr = np.corrcoef(wav[0, :n].numpy(), data[0, :n])[0, 1]
        assert corr > 0.9
    else:  # PCM_16 quantisation only
        assert np.abs(wav[:, :n].numpy() - data[:, :n]).max() < 1e-4
    assert audio.info(path)[:2] == (44100, 2)


def test_load_window_reads_only_the_requested_span(tmp_path):
    data = synth(2.0, 8000, 1, seed=2)
    path = write_wav(tmp_path / "w.wav", sample_rate=8000, data=data, subtype="FLOAT")
    wav, _ = audio.load(path, start=0.5, seconds=0.25)
    assert wav.shape == (1, 2000)
    assert np.array_equal(wav.numpy(), data[:, 4000:6000])


def test_channel_conversion():
    stereo = torch.stack([torch.ones(10), -torch.ones(10) * 0.5])
    mono = audio.to_channels(stereo, 1)
    assert mono.shape == (1, 10) and torch.allclose(mono, torch.full((1, 10), 0.25))
    up = audio.to_channels(mono, 2)
    assert up.shape == (2, 10) and torch.equal(up[0], up[1])
    three = torch.randn(3, 10)
    assert torch.equal(audio.to_channels(three, 2), three[:2])
    assert audio.to_channels(stereo, 2) is stereo
    with pytest.raises(AudiogenError):
        audio.to_channels(stereo, 3)


def test_resample_keeps_pitch_level_and_expected_length():
    wav = _sine(1000.0, 1.0, 44100)
    out = audio.resample(wav, 44100, 24000)
    assert out.shape == (1, 24000)
    assert abs(_peak_hz(out, 24000) - 1000.0) < 2.0
    rms_in, rms_out = wav.pow(2).mean().sqrt(), out[:, 100:-100].pow(2).mean().sqrt()
    assert abs(float(rms_out / rms_in) - 1) < 0.01
    assert audio.resample(wav, 44100, 44100) is wav
    # odd lengths: ceil(N * new / old)
    assert audio.resample(torch.zeros(1, 44101), 44100, 24000).shape[-1] == math.ceil(44101 * 24000 / 44100)


def test_prepare_stereo_44k_to_mono_24k():
    wav = torch.cat([_sine(440.0, 0.5, 44100), _sine(440.0, 0.5, 44100)])
    out = audio.prepare(wav, 44100, target_rate=24000, channels=1)
    assert out.shape == (1, 12000)
    assert abs(_peak_hz(out, 24000) - 440.0) < 3.0


def test_peak_and_loudness_normalisation():
    wav = _sine(220.0, 0.25, 24000, amplitude=0.1)
    peak = audio.peak_normalize(wav, -1.0)
    assert abs(float(peak.abs().max()) - 10 ** (-1 / 20)) < 1e-6
    loud = audio.loudness_normalize(wav, rms_db=-20.0, peak_db=-1.0)
    assert abs(20 * math.log10(float(loud.pow(2).mean().sqrt())) + 20.0) < 0.01
    # a spiky signal reaches the peak limit before the RMS target: the limiter wins
    spiky = torch.zeros(1, 1000)
    spiky[0, 10] = 0.01
    limited = audio.loudness_normalize(spiky, rms_db=-10.0, peak_db=-1.0)
    assert abs(float(limited.abs().max()) - 10 ** (-1 / 20)) < 1e-6
    silence = torch.zeros(1, 100)
    assert torch.equal(audio.peak_normalize(silence), silence)
    assert torch.equal(audio.loudness_normalize(silence), silence)


def test_atomic_path_failure_leaves_no_final_and_no_temp_file(tmp_path):
    final = tmp_path / "out" / "x.wav"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            assert tmp.parent == final.parent and tmp.suffix == ".wav" and is_temporary(tmp)
            tmp.write_bytes(b"half a file")
            raise RuntimeError("crash while writing")
    assert not final.exists()
    assert list(final.parent.iterdir()) == []
    with pytest.raises(AudiogenError, match="is a folder"):  # a folder in the way is a user error
        with atomic_path(final.parent) as tmp:
            tmp.write_bytes(b"x")
    assert list(final.parent.iterdir()) == []


def test_outputs_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a 0600 temporary file; the published file follows the umask,
    also when the writer recreates the temporary file (safetensors does)."""
    from safetensors.torch import save_file

    umask = os.umask(0)
    os.umask(umask)
    wav, weights = tmp_path / "a.wav", tmp_path / "w.safetensors"
    audio.save(wav, _sine(440.0, 0.1, 24000), 24000)
    with atomic_path(weights) as tmp:
        tmp.unlink()
        save_file({"x": torch.zeros(2)}, str(tmp))
    assert stat.S_IMODE(wav.stat().st_mode) == 0o666 & ~umask != 0o600
    assert stat.S_IMODE(weights.stat().st_mode) == 0o666 & ~umask


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "keep.wav"
    audio.save(path, _sine(440.0, 0.1, 24000), 24000)
    before = path.read_bytes()
    bad = _sine(440.0, 0.1, 24000)
    bad[0, 5] = float("nan")
    with pytest.raises(ValueError):
        audio.save(path, bad, 24000)
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"junk")
            raise RuntimeError
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_save_wav_subtypes_read_back(tmp_path, subtype):
    data = synth(0.31, 24000, 2, seed=3)[:, :7201]
    path = audio.save(tmp_path / "s.wav", data, 24000, subtype=subtype)
    back, sr = sf.read(str(path), dtype="float32", always_2d=True)
    tolerance = {"PCM_16": 1 / 32767, "PCM_24": 1 / 8388607, "FLOAT": 0.0}[subtype]
    assert sr == 24000 and back.shape == (7201, 2)
    assert np.abs(back.T - data).max() <= tolerance + 1e-7
    assert sf.info(str(path)).subtype == subtype
    assert [p.name for p in tmp_path.iterdir()] == ["s.wav"]


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_wav_loop_chunks_round_trip_and_stay_readable(tmp_path, subtype):
    data = synth(0.5, 24000, 1, seed=4)[:, :11999]
    loop = audio.LoopInfo(start=100, end=11998, bpm=120.0, beats=2, beats_per_bar=3, root_note=62)
    path = audio.save(tmp_path / "loop.wav", data, 24000, subtype=subtype, loop=loop)
    assert audio.read_loop_info(path) == loop
    raw = path.read_bytes()
    assert b"smpl" in raw and b"acid" in raw
    back, sr = sf.read(str(path), dtype="float32", always_2d=True)  # soundfile skips the extra chunks
    assert sr == 24000 and back.shape == (11999, 1)
    assert np.abs(back.T - data).max() < 2 / 32767
    wav, _ = audio.load(path)
    assert wav.shape == (1, 11999)


def test_loop_info_absent_or_minimal(tmp_path):
    plain = audio.save(tmp_path / "plain.wav", synth(0.1), 24000)
    assert audio.read_loop_info(plain) is None
    flac = audio.save(tmp_path / "plain.flac", synth(0.1), 24000)
    assert audio.read_loop_info(flac) is None
    minimal = audio.LoopInfo(start=0, end=2399)
    path = audio.save(tmp_path / "min.wav", synth(0.1), 24000, loop=minimal)
    assert audio.read_loop_info(path) == minimal  # no tempo written -> no tempo read back
    with pytest.raises(ValueError):
        audio.save(tmp_path / "bad.wav", synth(0.1), 24000, loop=audio.LoopInfo(start=0, end=2400))
    assert not (tmp_path / "bad.wav").exists()


def test_user_errors_are_one_line_audiogen_errors(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    empty = write_wav(tmp_path / "empty.wav", data=np.zeros((1, 0), np.float32))
    nan = write_wav(tmp_path / "nan.wav", data=np.full((1, 100), np.nan, np.float32), subtype="FLOAT")
    cases = {
        tmp_path / "missing.wav": "no such file",
        text: "not a readable audio file",
        zero_bytes: "not a readable audio file",
        empty: "empty",
        nan: "no finite samples",
        tmp_path: "is a folder",
    }
    for path, words in cases.items():
        with pytest.raises(AudiogenError) as err:
            audio.load(path)
        message = str(err.value)
        assert words in message and str(path) in message and "\n" not in message
    with pytest.raises(AudiogenError):
        audio.info(text)
    with pytest.raises(AudiogenError, match="must end in"):
        audio.save(tmp_path / "x.mp3", synth(0.1), 24000)


def test_a_few_bad_samples_become_silence(tmp_path):
    data = synth(0.1, 24000, 1)
    data[0, 10:20] = np.nan
    data[0, 30] = np.inf
    wav, _ = audio.load(write_wav(tmp_path / "some_nan.wav", data=data, subtype="FLOAT"))
    assert torch.isfinite(wav).all()
    assert torch.all(wav[0, 10:20] == 0) and wav[0, 30] == 0
    assert torch.equal(wav[0, :10], torch.from_numpy(data[0, :10]))
