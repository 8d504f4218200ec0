"""Evaluation reports: `audiogen codec eval` (and, later, `audiogen eval`).

Codec quality is SI-SNR and multi-scale mel distance on held-out audio, side by side with a
classical codec at the same bitrate (Opus through ffmpeg, when ffmpeg is installed), so a
figure never stands without a reference.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

from . import audio
from .errors import AudiogenError
from .folders import list_audio
from .metrics import mel_distance, si_snr
from .progress import bar


def opus_roundtrip(wav: torch.Tensor, sample_rate: int, kbps: float) -> torch.Tensor | None:
    """`wav [C, N]` through libopus at `kbps` (None when ffmpeg/libopus is unavailable)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, enc, dec = Path(tmp) / "in.wav", Path(tmp) / "x.ogg", Path(tmp) / "out.wav"
        audio.save(src, wav, sample_rate, subtype="FLOAT")
        rate = max(500, int(kbps * 1000))
        cmd = [ffmpeg, "-v", "error", "-y", "-i", str(src), "-c:a", "libopus", "-b:a", str(rate), str(enc)]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        cmd = [ffmpeg, "-v", "error", "-y", "-i", str(enc), "-ar", str(sample_rate), str(dec)]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        out, _ = audio.load(dec)
    # Opus adds a fixed pre-skip delay; align by cross-correlation over the first second.
    return _align(wav, audio.to_channels(out, wav.shape[0]))


def _align(reference: torch.Tensor, estimate: torch.Tensor, max_shift: int = 2000) -> torch.Tensor:
    n = min(reference.shape[-1], estimate.shape[-1])
    ref = reference.mean(0)[: min(n, 48000)]
    best, best_shift = -math.inf, 0
    for shift in range(0, max_shift, 8):
        seg = estimate.mean(0)[shift : shift + ref.shape[0]]
        if seg.shape[0] < ref.shape[0]:
            break
        score = float((seg * ref).sum())
        if score > best:
            best, best_shift = score, shift
    for shift in range(max(0, best_shift - 8), best_shift + 8):
        seg = estimate.mean(0)[shift : shift + ref.shape[0]]
        if seg.shape[0] == ref.shape[0] and float((seg * ref).sum()) > best:
            best, best_shift = float((seg * ref).sum()), shift
    out = estimate[..., best_shift:]
    if out.shape[-1] < reference.shape[-1]:
        out = torch.nn.functional.pad(out, (0, reference.shape[-1] - out.shape[-1]))
    return out[..., : reference.shape[-1]]


@torch.no_grad()
def codec_report(codec, folder: str | Path, *, seconds: float = 10.0, max_files: int = 50,
                 device: torch.device | None = None, reference: bool = True, quiet: bool = False) -> dict[str, Any]:
    """Per-file and mean SI-SNR / mel distance of `codec` (and of Opus at the same bitrate)."""
    files = list_audio(folder)[:max_files]
    if not files:
        raise AudiogenError(f"{folder}: no audio files found")
    device = device or torch.device("cpu")
    codec = codec.to(device).eval()
    kbps = codec.num_codebooks * math.log2(codec.codebook_size) * codec.frame_rate / 1000
    rows, skipped = [], []
    progress = bar(len(files), "codec eval", quiet=quiet, unit="file")
    for path in files:
        progress.update(1)
        try:
            sr, _, total = audio.info(path)
            start = max(0.0, (total - seconds) / 2)
            wav, sr = audio.load(path, start=start, seconds=seconds)
        except AudiogenError as err:
            skipped.append(str(err))
            continue
        wav = audio.prepare(wav, sr, target_rate=codec.sample_rate, channels=codec.channels)
        codes = codec.encode(wav[None].to(device))
        out = codec.decode(codes, length=wav.shape[-1])[0].cpu()
        if getattr(getattr(codec, "config", None), "normalize", False):
            out = out * (codec.input_scale(wav[None]).flatten()[0] / codec.REFERENCE_RMS)
        row = {"file": path.name, "si_snr": float(si_snr(wav, out).mean()),
               "mel": mel_distance(wav, out, codec.sample_rate)}
        if reference:
            ref = opus_roundtrip(wav, codec.sample_rate, kbps)
            if ref is not None:
                row["opus_si_snr"] = float(si_snr(wav, ref).mean())
                row["opus_mel"] = mel_distance(wav, ref, codec.sample_rate)
        rows.append(row)
    progress.close()
    if not rows:
        raise AudiogenError(f"{folder}: no readable audio files ({len(skipped)} skipped)")
    keys = [k for k in rows[0] if k != "file"]
    mean = {"file": "MEAN", **{k: sum(r[k] for r in rows if k in r) / sum(1 for r in rows if k in r) for k in keys}}
    return {"kbps": kbps, "rows": rows + [mean], "mean": mean, "skipped": skipped}


def print_table(rows: list[dict[str, Any]], *, title: str = "") -> None:
    if title:
        print(title)
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
