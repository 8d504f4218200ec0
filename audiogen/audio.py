"""Audio I/O: load anything soundfile reads as float32 `[C, N]`, save WAV atomically.

    wav, sr = load("seed.flac")                        # [C, N] float32 in [-1, 1]
    wav = prepare(wav, sr, target_rate=24000, channels=1)
    wav, sr = load("long.flac", sample_rate=24000, channels=1)   # the same, mixed and resampled while reading
    save("out.wav", wav, 24000, loop=LoopInfo(...))    # temp file + rename; smpl/acid chunks

WAV is written by our own RIFF writer so that loops can carry the `smpl` chunk (loop points,
read by samplers and game engines) and the `acid` chunk (tempo, beats, meter). Other formats
(flac, ogg) go through soundfile; their loops carry `LOOPSTART` / `LOOPLENGTH` (samples) and `BPM`
Vorbis comments (read by RPG Maker, SDL Mixer X, Godot), written with mutagen because libsndfile
writes only a fixed set of tag names.

Long files stream: `load` decodes blocks of `BLOCK_FRAMES`, mixes and resamples each as it comes
(`Resampler`, a polyphase windowed-sinc filter that keeps the input its next outputs need), so memory
holds the result, not the file as float32. The duration a header implies is checked before anything
is allocated (`MAX_SECONDS`). `benchmarks/peak_memory.py` measures the peak for 10-minute files.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch

from .errors import AudiogenError
from .fileio import atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".mp3")
MAX_SECONDS = 3 * 3600  # longer than any prompt or piece: a header implying more (1 Hz on 2 MB: 12 days) is refused
BLOCK_FRAMES = 1 << 16  # frames decoded at a time while streaming
MAX_KERNEL = 1 << 24  # resampling filter taps (64 MB): rates with no common factor (44101 -> 24000) need more
HEADROOM = 1e4  # float samples are clamped here before mixing, so absurd values (1e38) cannot overflow to inf


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


def check_duration(num_samples: int, sample_rate: int, *, name: str = "audio") -> None:
    """A one-line `AudiogenError` when `num_samples` at `sample_rate` last longer than `MAX_SECONDS`."""
    if sample_rate <= 0:
        raise AudiogenError(f"{name}: sample rate must be positive, got {sample_rate}")
    if num_samples > MAX_SECONDS * sample_rate:
        hours = num_samples / sample_rate / 3600
        raise AudiogenError(f"{name}: {hours:,.1f} hours of audio ({num_samples} samples at {sample_rate} Hz); "
                            f"audiogen reads at most {MAX_SECONDS // 3600} hours")


def load(
    path: str | os.PathLike, *, start: float = 0.0, seconds: float | None = None,
    sample_rate: int | None = None, channels: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 `[C, N]` and its sample rate.

    `start`/`seconds` read a window without decoding the whole file (long files, crops).
    `sample_rate`/`channels` mix and resample block by block as the file is decoded (the result equals
    `prepare` on the whole file up to float rounding), so memory holds only the result: a 10-minute
    192 kHz 8-channel file becomes 58 MB of 24 kHz mono, not 3.7 GB of float32 first.
    The duration the header implies is checked before anything is allocated (`MAX_SECONDS`).
    Float files peaking above full scale are scaled down to peak 1 (not clipped later); non-finite
    samples become silence. Empty files, files that are all NaN, and non-audio files raise `AudiogenError`.
    """
    path = Path(path)
    _check_exists(path)
    try:
        handle = sf.SoundFile(str(path))
    except Exception:  # soundfile raises several types for non-audio input
        raise AudiogenError(f"{path}: not a readable audio file") from None
    with handle:
        sr, have = int(handle.samplerate), int(handle.channels)
        first = min(max(0, int(round(start * sr))), handle.frames)
        count = handle.frames - first
        if seconds is not None:
            count = min(count, max(0, int(round(seconds * sr))))
        check_duration(count, sr, name=str(path))
        rate = sr if sample_rate is None else int(sample_rate)
        want = have if channels is None else int(channels)
        if want != have and want != 1 and have != 1 and have < want:
            raise AudiogenError(f"{path}: cannot turn {have} channels into {want}")
        resampler = Resampler(sr, rate, name=str(path)) if rate != sr else None
        # The result is written in place as it comes (no list of blocks to concatenate: one copy, not two).
        # Untouched pages cost nothing, so a header promising more than the file holds wastes no memory.
        wav = torch.empty(want, count if resampler is None else resampler.output_length(count))
        made, peak, finite_seen = 0, 0.0, False
        try:
            left = count
            if first:
                handle.seek(first)
            while left > 0:
                data = handle.read(frames=min(BLOCK_FRAMES, left), dtype="float32", always_2d=True)  # [n, C]
                if data.shape[0] == 0:
                    break  # the header promised more than the file holds
                left -= data.shape[0]
                finite = np.isfinite(data)
                if not finite.all():
                    data = np.where(finite, data, np.float32(0.0))  # a few bad samples: silence them
                    finite_seen = finite_seen or bool(finite.any())
                else:
                    finite_seen = True
                block_peak = float(np.abs(data).max())
                if block_peak > HEADROOM:
                    np.clip(data, -HEADROOM, HEADROOM, out=data)
                peak = max(peak, min(block_peak, HEADROOM))
                block = to_channels(torch.from_numpy(data).T, want)
                made = _place(wav, made, block if resampler is None else resampler.push(block))
        except AudiogenError:
            raise
        except Exception:
            raise AudiogenError(f"{path}: not a readable audio file") from None
    if left == count:
        raise AudiogenError(f"{path}: audio file is empty")
    if not finite_seen:
        raise AudiogenError(f"{path}: audio contains no finite samples (all NaN/inf)")
    if resampler is not None:
        made = _place(wav, made, resampler.finish())
    if made < wav.shape[-1]:  # the file held less than its header said
        wav = wav[:, :made].clone()
    if peak > 1.0:
        wav.mul_(1.0 / peak)
    return wav, rate


def _place(out: torch.Tensor, at: int, block: torch.Tensor) -> int:
    out[:, at : at + block.shape[-1]] = block
    return at + block.shape[-1]


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


ZERO_CROSSINGS, ROLLOFF = 6, 0.99  # torchaudio's `resample` defaults (what audiogen used before it streamed)


def _filter_width(orig: int, new: int) -> int:
    """Input samples the filter reaches on each side of an output sample (rates over their gcd)."""
    return math.ceil(ZERO_CROSSINGS * orig / (min(orig, new) * ROLLOFF))


def _sinc_kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    """The polyphase windowed-sinc filter bank `[new, 1, orig + 2 * width]` for `orig -> new` (rates over their
    gcd) and its `width`: Hann window, `ZERO_CROSSINGS` zero crossings, cut-off at `ROLLOFF` of the lower
    Nyquist, the taps computed in float64."""
    base = min(orig, new) * ROLLOFF
    width = _filter_width(orig, new)
    offsets = torch.arange(-width, width + orig, dtype=torch.float64) / orig  # input sample times, [taps]
    phases = -torch.arange(new, dtype=torch.float64)[:, None] / new  # output phase p sits at p / new
    t = ((phases + offsets[None]) * base).clamp(-ZERO_CROSSINGS, ZERO_CROSSINGS)  # in zero crossings
    window = torch.cos(t * math.pi / ZERO_CROSSINGS / 2) ** 2
    return (torch.sinc(t) * window * (base / orig)).float()[:, None], width


class Resampler:
    """Band-limited resampling of a stream of `[C, n]` blocks (`push` each, then `finish`).

    Output sample `j = i * new + p` is the dot product of filter phase `p` with input samples
    `i * orig - width ...` (rates divided by their gcd), the input padded with `width` zeros before the first
    sample and `width + orig` after the last, so the blocks' outputs concatenated equal the whole signal
    resampled at once (`resample`), `ceil(N * new / orig)` samples, whatever the block sizes.
    """

    def __init__(self, from_rate: int, to_rate: int, *, name: str = "audio"):
        if from_rate <= 0 or to_rate <= 0:
            raise AudiogenError(f"{name}: sample rates must be positive, got {from_rate} -> {to_rate}")
        g = math.gcd(int(from_rate), int(to_rate))
        self.orig, self.new = int(from_rate) // g, int(to_rate) // g
        taps = self.new * (self.orig + 2 * _filter_width(self.orig, self.new))
        if taps > MAX_KERNEL:
            raise AudiogenError(f"{name}: cannot resample {from_rate} Hz to {to_rate} Hz (the rates share no common "
                                f"factor: a {taps * 4 / 2**20:,.0f} MB filter); convert it to a standard rate first")
        self.kernel, self.width = _sinc_kernel(self.orig, self.new)
        self.pending: torch.Tensor | None = None  # input not yet fully used, from a multiple of `orig` on
        self.fed = 0  # input samples pushed
        self.made = 0  # output samples returned

    def _run(self, final: bool) -> torch.Tensor:
        x = self.pending
        taps = self.kernel.shape[-1]
        count = (x.shape[-1] - taps) // self.orig + 1 if x.shape[-1] >= taps else 0  # whole filter positions
        if count == 0:
            return x.new_zeros(x.shape[0], 0)
        used = (count - 1) * self.orig + taps
        kernel = self.kernel.to(x.device, x.dtype)
        out = torch.nn.functional.conv1d(x[:, None, :used], kernel, stride=self.orig)  # [C, new, count]
        self.pending = x[:, count * self.orig :]
        out = out.transpose(1, 2).reshape(x.shape[0], -1)
        if final:
            out = out[:, : max(0, self.output_length(self.fed) - self.made)]
        self.made += out.shape[-1]
        return out

    def output_length(self, num_samples: int) -> int:
        """Output samples for `num_samples` input samples: ceil(N * new / orig)."""
        return -(-num_samples * self.new // self.orig)

    def push(self, block: torch.Tensor) -> torch.Tensor:
        """The next `[C, n]` input samples -> the output samples they complete, `[C, m]`."""
        assert block.dim() == 2, f"expected [C, n], got {tuple(block.shape)}"
        if self.pending is None:
            self.pending = block.new_zeros(block.shape[0], self.width)
        self.pending = torch.cat([self.pending, block], dim=-1)
        self.fed += block.shape[-1]
        return self._run(final=False)

    def finish(self) -> torch.Tensor:
        """The remaining output `[C, m]` (the input's end padded with zeros, as one whole-signal pass does)."""
        assert self.pending is not None, "push at least one block before finish"
        self.pending = torch.nn.functional.pad(self.pending, (0, self.width + self.orig))
        return self._run(final=True)


def resample(wav: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (`Resampler` in one pass): `[..., N]` -> `[..., ceil(N * to /
    from)]`."""
    if from_rate == to_rate:
        return wav
    check_duration(wav.shape[-1], int(from_rate))
    lead = wav.shape[:-1]
    flat = wav.reshape(-1, wav.shape[-1])
    resampler = Resampler(int(from_rate), int(to_rate))
    out = torch.cat([resampler.push(flat), resampler.finish()], dim=-1)
    return out.reshape(*lead, out.shape[-1])


def prepare(wav: torch.Tensor, sample_rate: int, *, target_rate: int, channels: int) -> torch.Tensor:
    """Resample and convert channels so `wav [C, N]` fits a codec (what `load(..., sample_rate=, channels=)` does
    while reading)."""
    check_duration(wav.shape[-1], int(sample_rate))
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


def _pcm(wav: np.ndarray, full_scale: float) -> np.ndarray:
    """Float samples as rounded integers of `full_scale`, clipped to [-1, 1] first (so 1e38 cannot overflow)."""
    out = np.clip(wav, -1.0, 1.0)
    out *= full_scale
    return np.round(out, out=out)


WAV_SUBTYPES = {"PCM_16": (1, 16), "PCM_24": (1, 24), "FLOAT": (3, 32)}  # format tag, bits per sample


def _wav_payload(interleaved: np.ndarray, subtype: str) -> bytes:
    """The data bytes of float samples `[n, C]` (frames, then channels within a frame)."""
    if subtype == "FLOAT":
        return interleaved.astype("<f4").tobytes()
    if subtype == "PCM_16":
        return _pcm(interleaved, 32767.0).astype("<i2").tobytes()
    ints = _pcm(interleaved, 8388607.0).astype("<i4")
    return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def write_wav(handle: BinaryIO, wav: np.ndarray, sample_rate: int, *, subtype: str = "PCM_16",
              loop: LoopInfo | None = None) -> None:
    """RIFF/WAVE of `wav [C, N]` float in [-1, 1] (PCM_16, PCM_24 or FLOAT) to a binary file, the samples
    converted `BLOCK_FRAMES` at a time (a long file needs no whole-file copies)."""
    if subtype not in WAV_SUBTYPES:
        raise ValueError(f"unsupported WAV subtype {subtype}")
    channels, frames = wav.shape
    if loop is not None and not (0 <= loop.start <= loop.end < frames):
        raise ValueError(f"loop points {loop.start}..{loop.end} outside {frames} frames")
    fmt_tag, bits = WAV_SUBTYPES[subtype]
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, sample_rate, sample_rate * block, block, bits)
    size = frames * block
    tail = (b"\0" if size % 2 else b"") + (b"" if loop is None else _smpl_chunk(sample_rate, loop) + _acid_chunk(loop))
    riff = 4 + 8 + len(fmt) + 8 + size + len(tail)
    handle.write(b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
                 + b"data" + struct.pack("<I", size))
    for start in range(0, frames, BLOCK_FRAMES):
        handle.write(_wav_payload(np.ascontiguousarray(wav[:, start : start + BLOCK_FRAMES].T), subtype))
    handle.write(tail)


def encode_wav(wav: np.ndarray, sample_rate: int, *, subtype: str = "PCM_16", loop: LoopInfo | None = None) -> bytes:
    """RIFF/WAVE bytes for `wav [C, N]` float in [-1, 1]; PCM_16, PCM_24 or FLOAT (`write_wav` into memory)."""
    buffer = io.BytesIO()
    write_wav(buffer, wav, sample_rate, subtype=subtype, loop=loop)
    return buffer.getvalue()


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
            with open(tmp, "wb") as handle:
                write_wav(handle, data, sample_rate, subtype=subtype, loop=loop)
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
