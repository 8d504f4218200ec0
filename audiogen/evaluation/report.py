"""Evaluation reports: `audiogen codec eval AUDIO_DIR` and `audiogen eval --corpus DIR`.

Every figure stands beside a reference, on held-out material:
  * codec: SI-SNR and multi-scale mel distance, and the same for Opus at the same bitrate
    (through ffmpeg, when installed);
  * language model: validation cross-entropy per codebook and bits per second of audio, with
    and without the MIDI (what the conditioning is worth);
  * MIDI renders: chroma cosine similarity to the MIDI and onset F1 (mir_eval, 50 ms), beside
    the same figures for the corpus's own General MIDI synth rendering of that MIDI;
  * loops: the seam score (1 = the wrap is like any other moment of the loop), beside the score
    of the same audio cut at the same length without closing the loop;
  * the real-time factor of every task (audio seconds per wall second; > 1 is faster than real time).
Held-out files are the validation split the recipes use (same hash of the file name, same fraction).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

from .. import audio
from ..errors import AudiogenError
from ..folders import list_audio
from ..progress import bar
from .metrics import high_frequency_ratio, mel_distance, si_snr


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
def codec_figures(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                  prefix: str = "") -> dict[str, float]:
    """SI-SNR, mel distance and the high-frequency ratios above 2 and 4 kHz of one `[C, N]` pair."""
    return {f"{prefix}si_snr": float(si_snr(reference, estimate).mean()),
            f"{prefix}mel": mel_distance(reference, estimate, sample_rate),
            f"{prefix}hf2k": high_frequency_ratio(reference, estimate, sample_rate, 2000.0),
            f"{prefix}hf4k": high_frequency_ratio(reference, estimate, sample_rate, 4000.0)}


@torch.no_grad()
def codec_report(codec, folder: str | Path | list[Path], *, seconds: float = 10.0, max_files: int = 50,
                 device: torch.device | None = None, reference: bool = True, quiet: bool = False,
                 plot_dir: str | Path | None = None) -> dict[str, Any]:
    """Per-file and mean SI-SNR / mel distance / high-frequency ratios of `codec` (and of Opus at the
    same bitrate); with `plot_dir`, a PNG per file of the input's and the output's spectrograms."""
    files = (list(folder) if isinstance(folder, list) else list_audio(folder))[:max_files]
    if not files:
        raise AudiogenError(f"{folder}: no audio files found")
    device = device or torch.device("cpu")
    codec = codec.to(device).eval()
    kbps = codec.kbps
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
        row = {"file": path.name, **codec_figures(wav, out, codec.sample_rate)}
        if reference:
            ref = opus_roundtrip(wav, codec.sample_rate, kbps)
            if ref is not None:
                row.update(codec_figures(wav, ref, codec.sample_rate, prefix="opus_"))
        if plot_dir is not None:
            from ..plots import save_comparison

            save_comparison(Path(plot_dir) / f"{path.stem}.png", wav, out, codec.sample_rate,
                            titles=(f"{path.name}: input", f"{path.name}: codec at {kbps:g} kbps"))
        rows.append(row)
    progress.close()
    if not rows:
        raise AudiogenError(f"{folder}: no readable audio files ({len(skipped)} skipped)")
    keys = [k for k in rows[0] if k != "file"]
    mean = {"file": "MEAN", **{k: _nanmean([r[k] for r in rows if k in r]) for k in keys}}
    return {"kbps": kbps, "rows": rows + [mean], "mean": mean, "skipped": skipped}


def _nanmean(values: list[float]) -> float:
    """Mean of the values that are numbers (a file without highs has no high-frequency ratio)."""
    kept = [v for v in values if v == v]
    return sum(kept) / len(kept) if kept else float("nan")


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


# ---------------------------------------------------------------------- audiogen eval


def held_out_pairs(corpus: str | Path, *, val_fraction: float = 0.05, count: int = 6) -> list[tuple[Path, Path]]:
    """(audio, MIDI) pairs from the validation split of a corpus folder (its audio/ or itself)."""
    from ..folders import paired_midi, split_files

    root = Path(corpus)
    root = root / "audio" if (root / "audio").is_dir() else root
    files = list_audio(root)
    if not files:
        raise AudiogenError(f"{root}: no audio files found")
    _, val = split_files(files, root, val_fraction, 0)
    pairs = [(f, paired_midi(f)) for f in val]
    pairs = [(a, m) for a, m in pairs if m is not None]
    if not pairs:
        raise AudiogenError(f"{root}: no held-out audio with a paired MIDI file")
    return pairs[:count]


def _cut_midi(path: Path, seconds: float):
    from ..midi import load_midi

    pm = load_midi(path, max_seconds=None, require_notes=False)
    for inst in pm.instruments:
        inst.notes = [n for n in inst.notes if n.start < seconds]
        for n in inst.notes:
            n.end = min(n.end, seconds)
    return pm


@torch.no_grad()
def lm_figures(ag, pairs: list[tuple[Path, Path]], *, seconds: float) -> dict[str, float]:
    """Cross-entropy per codebook (nats) and bits per second on held-out files, with and without MIDI."""
    from ..midi import midi_features
    from ..training.lm import bits_per_second

    lm, codec = ag.lm, ag.codec
    device = next(lm.parameters()).device
    totals, totals_null, n = 0.0, 0.0, 0
    for wav_path, midi_path in pairs:
        wav, sr = audio.load(wav_path, seconds=seconds)
        wav = audio.prepare(wav, sr, target_rate=codec.sample_rate, channels=codec.channels)
        codes = codec.encode(wav[None].to(device))
        T = codes.shape[-1]
        cond = None
        if lm.config.cond_features:
            cond = midi_features(midi_path, frame_rate=codec.frame_rate, num_frames=T + lm.config.cond_lookahead,
                                 max_seconds=None)[None].to(device)
        _, ce = lm.loss(codes, cond)
        totals = totals + ce.double().cpu()
        if cond is not None:
            _, ce_null = lm.loss(codes, None)
            totals_null = totals_null + ce_null.double().cpu()
        n += 1
    ce = totals / n
    out = {"val_ce": float(ce.mean()), "bits_per_second": bits_per_second(ce, codec.frame_rate)}
    out.update({f"val_ce_k{k}": float(v) for k, v in enumerate(ce)})
    if lm.config.cond_features:
        out["val_ce_without_midi"] = float((totals_null / n).mean())
    return out


def model_report(ag, corpus: str | Path, *, files: int = 6, seconds: float = 10.0, loops: int = 4,
                 val_fraction: float = 0.05, reference: bool = True, seed: int = 0,
                 quiet: bool = False, plot_dir: str | Path | None = None) -> dict[str, Any]:
    """Everything `audiogen eval` prints (see the module docstring)."""
    import time

    import numpy as np

    from ..generation.loops import loop_length
    from .musicmetrics import chroma_similarity, midi_onsets, onset_f1, seam_score

    pairs = held_out_pairs(corpus, val_fraction=val_fraction, count=files)
    report: dict[str, Any] = {"corpus": str(corpus), "held_out_files": [str(a.name) for a, _ in pairs],
                              "seconds_per_file": seconds}
    codec = codec_report(ag.codec, [a for a, _ in pairs], seconds=seconds, reference=reference, quiet=True,
                         plot_dir=plot_dir)
    report["codec"] = {"kbps": codec["kbps"], **{k: v for k, v in codec["mean"].items() if k != "file"}}
    report["lm"] = lm_figures(ag, pairs, seconds=2 * seconds)
    rtf: dict[str, list[float]] = {"render": [], "continue": [], "loops": []}
    progress = bar(len(pairs) * 2 + loops, "eval", quiet=quiet, unit="task")

    if ag.conditional:
        renders, synth = [], []
        for k, (wav_path, midi_path) in enumerate(pairs):
            pm = _cut_midi(midi_path, seconds)
            start = time.perf_counter()
            out, sr = ag.render_midi(pm, seconds=seconds, seed=seed + k)
            rtf["render"].append(seconds / (time.perf_counter() - start))
            onsets = midi_onsets(pm)
            onsets = onsets[onsets < seconds - 0.05]
            ref_wav, ref_sr = audio.load(wav_path, seconds=seconds)
            renders.append((chroma_similarity(out, sr, pm), onset_f1(out, sr, onsets)["f1"]))
            synth.append((chroma_similarity(ref_wav, ref_sr, pm), onset_f1(ref_wav, ref_sr, onsets)["f1"]))
            progress.update(1)
        report["render"] = {"chroma": float(np.mean([r[0] for r in renders])),
                            "onset_f1": float(np.mean([r[1] for r in renders])),
                            "synth_chroma": float(np.mean([s[0] for s in synth])),
                            "synth_onset_f1": float(np.mean([s[1] for s in synth]))}

    for k, (wav_path, _) in enumerate(pairs):
        seed_wav, sr = audio.load(wav_path, seconds=min(4.0, seconds))
        start = time.perf_counter()
        ag.continue_audio(seed_wav, sr, seconds, keep_prompt=False, seed=seed + k)
        rtf["continue"].append(seconds / (time.perf_counter() - start))
        progress.update(1)

    seams, naive = [], []
    for k in range(loops):
        start = time.perf_counter()
        made, sr = ag.loops(1, 4, 120, seed=seed + k, batch_size=1)
        rtf["loops"].append(made[0].shape[-1] / sr / (time.perf_counter() - start))
        seams.append(seam_score(made[0], sr))
        free, _ = ag.generate(seconds=made[0].shape[-1] / sr + 0.5, seed=seed + k)
        naive.append(seam_score(free[0][:, : loop_length(4, 120, 4, sr)], sr))
        progress.update(1)
    progress.close()
    report["loops"] = {"seam_mean": float(np.mean(seams)), "seam_max": float(np.max(seams)),
                       "uncut_seam_mean": float(np.mean(naive)), "count": loops, "bars": 4, "bpm": 120}
    report["real_time_factor"] = {k: float(np.mean(v)) for k, v in rtf.items() if v}
    return report


def print_model_report(report: dict[str, Any]) -> None:
    rows = []

    def add(section: str, name: str, value: Any, reference: Any = "", note: str = "") -> None:
        rows.append({"section": section, "metric": name, "value": value, "reference": reference, "note": note})

    c = report["codec"]
    add("codec", "SI-SNR dB", c["si_snr"], c.get("opus_si_snr", ""), f"reference: Opus at {c['kbps']:.1f} kbps")
    add("codec", "mel distance", c["mel"], c.get("opus_mel", ""), "lower is better")
    add("codec", "high-frequency ratio > 2 kHz", c["hf2k"], c.get("opus_hf2k", ""), "1 = highs kept")
    add("codec", "high-frequency ratio > 4 kHz", c["hf4k"], c.get("opus_hf4k", ""), "1 = highs kept")
    lm = report["lm"]
    add("lm", "val cross-entropy (nats)", lm["val_ce"], lm.get("val_ce_without_midi", ""), "reference: no MIDI")
    add("lm", "bits per second", lm["bits_per_second"])
    if "render" in report:
        r = report["render"]
        add("render", "chroma similarity", r["chroma"], r["synth_chroma"], "reference: GM synth; chance ~0.4-0.5")
        add("render", "onset F1 (50 ms)", r["onset_f1"], r["synth_onset_f1"], "reference: GM synth")
    lp = report["loops"]
    add("loops", "seam score", lp["seam_mean"], lp["uncut_seam_mean"], "1 = seamless; reference: plain cut")
    for task, value in report["real_time_factor"].items():
        add("speed", f"{task} x real time", value, "", "> 1 is faster than real time")
    print_table(rows, title=f"audiogen eval on {len(report['held_out_files'])} held-out files of {report['corpus']}")
