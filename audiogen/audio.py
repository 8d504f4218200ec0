"""Audio I/O: load anything soundfile reads as float32 `[C, N]`, save WAV atomically.

    wav, sr = load("seed.flac")                        # [C, N] float32 in [-1, 1]
    wav = prepare(wav, sr, sample_rate=24000, channels=1)
    save("out.wav", wav, 24000, loop=LoopInfo(...))    # temp file + rename; smpl/acid chunks

WAV is written by our own RIFF writer so that loops can carry the `smpl` chunk (loop points,
read by samplers and game engines) and the `acid` chunk (tempo, beats, meter). Other formats
(flac, ogg) go through soundfile; their loops carry `LOOPSTART` / `LOOPLENGTH` (samples) and `BPM`
Vorbis comments (read by RPG Maker, SDL Mixer X, Godot), written with mutagen because libsndfile
writes only a fixed set of tag names.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .errors import AudiogenError
from .fileio import atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".mp3")


def info(path: str | os.PathLike) -> tuple[int, int, float]:
    """(sample_rate, channels, seconds) without decoding the samples."""
    path = Path(path)
    _check_exists(path)
    try:
        meta = sf.info(str(path))
    except Exception:  # soundfile raises several types for non-audio input
        raise AudiogenError(f"{path}: not a readable audio file") from None
    return int(meta.samplerate), int(meta.channels), float(meta.frames) / float(meta.samplerate)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise AudiogenError(f"{path}: no such file")
    if path.is_dir():
        raise AudiogenError(f"{path}: is a folder, expected an audio file")


def load(
    path: str | os.PathLike, *, start: float = 0.0, seconds: float | None = None
) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 `[C, N]` and its sample rate.

    `start`/`seconds` read a window without decoding the whole file (long files, crops).
    Empty files, files that are all NaN, and non-audio files raise `AudiogenError`.
    """
    path = Path(path)
    _check_exists(path)
    try:
        with sf.SoundFile(str(path)) as handle:
            sr = int(handle.samplerate)
            first = int(round(start * sr))
            if first:
                handle.seek(min(first, handle.frames))
            count = -1 if seconds is None else int(round(seconds * sr))
            data = handle.read(frames=count, dtype="float32", always_2d=True)
    except AudiogenError:
        raise
    except Exception:
        raise AudiogenError(f"{path}: not a readable audio file") from None
    if data.shape[0] == 0:
        raise AudiogenError(f"{path}: audio file is empty")
    finite = np.isfinite(data)
    if not finite.any():
        raise AudiogenError(f"{path}: audio contains no finite samples (all NaN/inf)")
    if not finite.all():
        data = np.where(finite, data, 0.0).astype(np.float32)  # a few bad samples: silence them
    return torch.from_numpy(np.ascontiguousarray(data.T)), sr


def to_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """`[C, N]` -> `[channels, N]`: average down to mono, repeat mono up, else keep the first."""
    assert wav.dim() == 2, f"expected [C, N], got {tuple(wav.shape)}"
    have = wav.shape[0]
    if have == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    if have == 1:
        return wav.expand(channels, -1).contiguous()
    if have > channels:
        return wav[:channels]
    raise AudiogenError(f"cannot turn {have} channels into {channels}")


def resample(wav: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's sinc interpolation)."""
    if from_rate == to_rate:
        return wav
    return AF.resample(wav, orig_freq=int(from_rate), new_freq=int(to_rate))


def prepare(wav: torch.Tensor, sample_rate: int, *, target_rate: int, channels: int) -> torch.Tensor:
    """Resample and convert channels so `wav [C, N]` fits a codec."""
    return resample(to_channels(wav, channels), sample_rate, target_rate)


def peak_normalize(wav: torch.Tensor, peak_db: float = -1.0) -> torch.Tensor:
    """Scale so the largest absolute sample is `peak_db` dBFS (silence stays silence)."""
    peak = wav.abs().max()
    if peak <= 0:
        return wav
    return wav * (10 ** (peak_db / 20) / peak)


def loudness_normalize(wav: torch.Tensor, rms_db: float = -20.0, peak_db: float = -1.0) -> torch.Tensor:
    """Scale to an RMS level in dBFS, then limit so no sample exceeds `peak_db`."""
    rms = wav.pow(2).mean().sqrt()
    if rms <= 0:
        return wav
    out = wav * (10 ** (rms_db / 20) / rms)
    peak = out.abs().max()
    limit = 10 ** (peak_db / 20)
    return out * (limit / peak) if peak > limit else out


@dataclasses.dataclass(frozen=True)
class LoopInfo:
    """Loop metadata for the WAV `smpl` and `acid` chunks (sample-exact loop points)."""

    start: int  # first sample of the loop
    end: int  # last sample of the loop (inclusive, as the smpl chunk defines it)
    bpm: float | None = None
    beats: int | None = None
    beats_per_bar: int = 4
    root_note: int = 60


def _smpl_chunk(sample_rate: int, loop: LoopInfo) -> bytes:
    period_ns = int(round(1e9 / sample_rate))
    header = struct.pack(
        "<9I", 0, 0, period_ns, loop.root_note, 0, 0, 0, 1, 0
    )  # manufacturer, product, period, unity note, pitch fraction, SMPTE fmt/offset, loops, extra
    body = struct.pack("<6I", 0, 0, loop.start, loop.end, 0, 0)  # id, forward, start, end, frac, infinite
    data = header + body
    return b"smpl" + struct.pack("<I", len(data)) + data


def _acid_chunk(loop: LoopInfo) -> bytes:
    # ACID: flags (0x01 one-shot off, 0x02 root note set), root note, two reserved fields,
    # number of beats, meter denominator, meter numerator, tempo (float32 BPM).
    flags = 0x02
    data = struct.pack(
        "<IHHfIHHf", flags, loop.root_note, 0x8000, 0.0, int(loop.beats or 0), 4,
        int(loop.beats_per_bar), float(loop.bpm or 0.0),
    )
    return b"acid" + struct.pack("<I", len(data)) + data


def encode_wav(wav: np.ndarray, sample_rate: int, *, subtype: str = "PCM_16", loop: LoopInfo | None = None) -> bytes:
    """RIFF/WAVE bytes for `wav [C, N]` float in [-1, 1]; PCM_16, PCM_24 or FLOAT."""
    channels, frames = wav.shape
    interleaved = np.ascontiguousarray(wav.T)
    if subtype == "FLOAT":
        fmt_tag, bits = 3, 32
        payload = interleaved.astype("<f4").tobytes()
    elif subtype == "PCM_16":
        fmt_tag, bits = 1, 16
        payload = np.clip(np.round(interleaved * 32767.0), -32768, 32767).astype("<i2").tobytes()
    elif subtype == "PCM_24":
        fmt_tag, bits = 1, 24
        ints = np.clip(np.round(interleaved * 8388607.0), -8388608, 8388607).astype("<i4")
        payload = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raise ValueError(f"unsupported WAV subtype {subtype}")
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, sample_rate, sample_rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
    if loop is not None:
        if not (0 <= loop.start <= loop.end < frames):
            raise ValueError(f"loop points {loop.start}..{loop.end} outside {frames} frames")
        chunks += _smpl_chunk(sample_rate, loop) + _acid_chunk(loop)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def _vorbis_file(path: Path, suffix: str):
    from mutagen.flac import FLAC
    from mutagen.oggvorbis import OggVorbis

    return FLAC(str(path)) if suffix == ".flac" else OggVorbis(str(path))


def _write_vorbis_loop(path: Path, suffix: str, loop: LoopInfo) -> None:
    """Add the loop's Vorbis comments to a FLAC or Ogg Vorbis file soundfile just wrote."""
    tagged = _vorbis_file(path, suffix)
    if tagged.tags is None:
        tagged.add_tags()
    tagged["LOOPSTART"] = str(loop.start)
    tagged["LOOPLENGTH"] = str(loop.end - loop.start + 1)
    if loop.bpm:
        tagged["BPM"] = f"{loop.bpm:g}"
    tagged.save()


def _read_vorbis_loop(path: Path, suffix: str) -> LoopInfo | None:
    tags = _vorbis_file(path, suffix).tags
    if tags is None or "LOOPSTART" not in tags or "LOOPLENGTH" not in tags:
        return None
    start, length = int(tags["LOOPSTART"][0]), int(tags["LOOPLENGTH"][0])
    bpm = float(tags["BPM"][0]) if "BPM" in tags else None
    return LoopInfo(start=start, end=start + length - 1, bpm=bpm)


def read_loop_info(path: str | os.PathLike) -> LoopInfo | None:
    """Loop points and tempo: a WAV's `smpl`/`acid` chunks, a FLAC's or Ogg's `LOOPSTART`/`LOOPLENGTH`/`BPM`
    comments (None when the file has no loop)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".flac", ".ogg"):
        return _read_vorbis_loop(Path(path), suffix)
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return None
    pos, smpl, acid = 12, None, None
    while pos + 8 <= len(raw):
        tag, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = raw[pos + 8 : pos + 8 + size]
        if tag == b"smpl":
            smpl = body
        elif tag == b"acid":
            acid = body
        pos += 8 + size + (size % 2)
    if smpl is None or struct.unpack("<I", smpl[28:32])[0] < 1:
        return None
    _, _, start, end, _, _ = struct.unpack("<6I", smpl[36:60])
    root_note = struct.unpack("<I", smpl[12:16])[0]  # the smpl unity note
    bpm = beats = None
    beats_per_bar = 4
    if acid is not None:
        _, _, _, _, beats, _, beats_per_bar, bpm = struct.unpack("<IHHfIHHf", acid[:24])
    # The writer stores "unknown" tempo/beats as 0; read them back as None so LoopInfo round-trips.
    return LoopInfo(start=start, end=end, bpm=bpm or None, beats=beats or None,
                    beats_per_bar=beats_per_bar, root_note=root_note)


def save(
    path: str | os.PathLike,
    wav: torch.Tensor | np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "PCM_16",
    loop: LoopInfo | None = None,
) -> Path:
    """Write `wav [C, N]` (or `[N]`) atomically; WAV via our RIFF writer, other suffixes via soundfile.

    `loop`: the WAV's `smpl`/`acid` chunks, or a FLAC's / Ogg Vorbis's `LOOPSTART`/`LOOPLENGTH`/`BPM` comments.
    """
    data = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
    if data.ndim == 1:
        data = data[None]
    assert data.ndim == 2, f"expected [C, N], got {data.shape}"
    if not np.isfinite(data).all():
        raise ValueError("refusing to write non-finite audio")
    path = Path(path)
    if path.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise AudiogenError(f"{path}: output must end in .wav, .flac or .ogg")
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".wav":
            tmp.write_bytes(encode_wav(data, sample_rate, subtype=subtype, loop=loop))
        else:
            suffix = path.suffix.lower()
            if loop is not None and not (0 <= loop.start <= loop.end < data.shape[1]):
                raise ValueError(f"loop points {loop.start}..{loop.end} outside {data.shape[1]} frames")
            kw = {"format": "OGG", "subtype": "VORBIS"} if suffix == ".ogg" else {"format": "FLAC", "subtype": "PCM_16"}
            sf.write(str(tmp), data.T, sample_rate, **kw)
            if loop is not None:
                _write_vorbis_loop(tmp, suffix, loop)
    return path


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    return int(math.floor(seconds * sample_rate + 0.5))


def as_mono(wav: np.ndarray | torch.Tensor) -> np.ndarray:
    """`[C, N]` or `[N]` (ndarray or tensor) -> float32 mono `[N]`, non-finite samples zeroed."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().float().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=0)
    if wav.ndim != 1:
        raise ValueError(f"expected audio [C, N] or [N], got shape {wav.shape}")
    return np.nan_to_num(wav, nan=0.0, posinf=0.0, neginf=0.0)
