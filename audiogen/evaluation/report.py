"""Evaluation reports: `audiogen codec eval AUDIO_DIR` and `audiogen eval --corpus DIR`.

Every figure stands beside a reference, on held-out material:
  * codec: SI-SNR and multi-scale mel distance, and the same for Opus at the same bitrate
    (through ffmpeg, when installed);
  * language model: validation cross-entropy per codebook and bits per second of audio, with
    and without the MIDI (what the conditioning is worth);
  * MIDI renders: chroma cosine similarity to the MIDI and onset F1 (mir_eval, 50 ms), beside
    the same figures for the corpus's own General MIDI synth rendering of that MIDI;
  * continuations (3 s prompt, the rest of `seconds` continued): own-track retrieval (is each
    continuation's fingerprint nearest its own file's true continuation, passed through the codec so
    the codec's loss does not count?) beside repeating the prompt; the energy of the last 3 s over the
    prompt's; the longest stretch under -50 dBFS;
  * loops: the drop-based seam score and the 0.2 s timbre seam (1 = the wrap is like any other
    moment of the loop), beside the same audio cut at the same length without closing the loop;
    with a composer and a MIDI-conditioned model, composed loops too (what `audiogen loops` makes
    by default), with the chroma similarity of each loop to its own sketch;
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


MIN_SECONDS = 0.1  # a file the codec report measures: longer than the multi-scale mel's largest window


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
        if wav.shape[-1] < MIN_SECONDS * codec.sample_rate:  # under the metrics' largest window
            skipped.append(f"{path}: too short ({wav.shape[-1]} samples, at least {MIN_SECONDS:g} s needed)")
            continue
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
        raise AudiogenError(f"{folder}: no readable audio files ({len(skipped)} skipped"
                            + (f"; {skipped[-1]})" if skipped else ")"))
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


LOOP_BARS, LOOP_BPM, LOOP_BEATS = 4, 120.0, 4  # the loops eval makes: 4 bars of 4/4 at 120 BPM (8 s)
PROMPT_SECONDS = 3.0  # continuations: 3 s of each held-out file (less for short `seconds`), continued for the rest


def continuation_figures(ag, pairs: list[tuple[Path, Path]], *, seconds: float, seed: int = 0,
                         rtf: list[float] | None = None, progress: Any = None) -> dict[str, float]:
    """Continue the first 3 s of each held-out file for `seconds - 3` s and say how well it stays.

    (For `seconds` under 10 the prompt is 0.3 of it, and the energy tail 3 s or what is continued.)

    * `own_track`: share of continuations whose fingerprint (mel statistics and chroma) is nearest the
      true continuation of their own file among every file's, each true continuation passed through
      the model's codec first (so what the codec loses does not count); `own_track_repeat`: the same
      for the prompt simply repeated (what a continuation that only copies scores);
    * `energy_last3s`: mean square of the continuation's last 3 s over the prompt's (mean; min too);
    * `longest_quiet_s`: the longest stretch under -50 dBFS in any continuation of a non-silent prompt.
    """
    import time

    import numpy as np

    from .musicmetrics import energy_ratio, fingerprint, longest_quiet, own_track_hits

    prompt_seconds = min(PROMPT_SECONDS, 0.3 * seconds)
    continued_seconds = seconds - prompt_seconds
    sr = ag.sample_rate
    queries, repeats, references, energies, quiet = [], [], [], [], []
    for k, (wav_path, _) in enumerate(pairs):
        wav, file_sr = audio.load(wav_path, seconds=seconds)
        wav = audio.prepare(wav, file_sr, target_rate=sr, channels=ag.channels)  # [C, N]
        cut = int(round(prompt_seconds * sr))
        prompt, truth = wav[:, :cut], wav[:, cut:]
        start = time.perf_counter()
        out, out_sr = ag.continue_audio(prompt, sr, continued_seconds, keep_prompt=False, seed=seed + k)
        if rtf is not None:
            rtf.append(continued_seconds / (time.perf_counter() - start))
        with torch.no_grad():
            device = next(ag.lm.parameters()).device
            passed = ag.codec.decode(ag.codec.encode(truth[None].to(device)))[0, :, : truth.shape[-1]].cpu()
        queries.append(fingerprint(out, out_sr))
        repeats.append(fingerprint(prompt.repeat(1, math.ceil(truth.shape[-1] / cut))[:, : truth.shape[-1]], sr))
        references.append(fingerprint(passed, sr))
        energies.append(energy_ratio(out, prompt, out_sr, tail=min(3.0, continued_seconds)))
        if float(prompt.pow(2).mean()) > 1e-8:
            quiet.append(longest_quiet(out, out_sr))
        if progress is not None:
            progress.update(1)
    # Retrieval among one file means nothing: NaN then (the other figures stand).
    retrieval = (lambda q: float(np.mean(own_track_hits(q, references)))) if len(pairs) > 1 else (lambda q: math.nan)
    return {"own_track": retrieval(queries), "own_track_repeat": retrieval(repeats),
            "chance": 1.0 / len(pairs), "energy_last3s": float(np.mean(energies)),
            "energy_last3s_min": float(np.min(energies)), "longest_quiet_s": float(max(quiet, default=0.0)),
            "prompt_seconds": prompt_seconds, "continued_seconds": continued_seconds}


def _loop_figures(ag, *, seed: int, compose: bool = False, rtf: list[float] | None = None,
                  progress: Any = None) -> dict[str, float]:
    """One loop (free, or from a sketch the composer writes) and its seams, beside a plain cut."""
    import time

    from ..generation.loops import fit_sketch, loop_length
    from .musicmetrics import chroma_similarity, seam_score, timbre_seam

    sketch = ag.loop_sketches(1, LOOP_BARS, LOOP_BPM, beats_per_bar=LOOP_BEATS, seed=seed)[0] if compose else None
    start = time.perf_counter()
    made, sr = ag.loops(1, LOOP_BARS, LOOP_BPM, beats_per_bar=LOOP_BEATS, midi=sketch, seed=seed, batch_size=1)
    loop = made[0]
    if rtf is not None:
        rtf.append(loop.shape[-1] / sr / (time.perf_counter() - start))
    out = {"seam": seam_score(loop, sr), "timbre_seam": timbre_seam(loop, sr)}
    if sketch is None:  # the same model's audio cut at the loop's length, not closed: the reference
        free, _ = ag.generate(seconds=loop.shape[-1] / sr + 0.5, seed=seed)
        cut = free[0][:, : loop_length(LOOP_BARS, LOOP_BPM, LOOP_BEATS, sr)]
        out.update(uncut_seam=seam_score(cut, sr), uncut_timbre_seam=timbre_seam(cut, sr))
    else:  # does the audio play what the composer wrote? (the sketch on the loop's own grid)
        fitted = fit_sketch(sketch, bars=LOOP_BARS, bpm=LOOP_BPM, beats_per_bar=LOOP_BEATS, preroll_bars=0, cycles=1)
        out["sketch_chroma"] = chroma_similarity(loop, sr, fitted)
    if progress is not None:
        progress.update(1)
    return out


def _mean_figures(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each figure over `rows`, and the worst (max) seam."""
    import numpy as np

    out = {f"{k}_mean" if "seam" in k else k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out.update({f"{k}_max": float(np.max([r[k] for r in rows])) for k in ("seam", "timbre_seam")})
    return out


def model_report(ag, corpus: str | Path, *, files: int = 6, seconds: float = 10.0, loops: int = 4,
                 val_fraction: float = 0.05, reference: bool = True, seed: int = 0,
                 quiet: bool = False, plot_dir: str | Path | None = None) -> dict[str, Any]:
    """Everything `audiogen eval` prints (see the module docstring)."""
    import time

    import numpy as np

    from .musicmetrics import chroma_similarity, midi_onsets, onset_f1

    pairs = held_out_pairs(corpus, val_fraction=val_fraction, count=files)
    report: dict[str, Any] = {"corpus": str(corpus), "held_out_files": [str(a.name) for a, _ in pairs],
                              "seconds_per_file": seconds}
    codec = codec_report(ag.codec, [a for a, _ in pairs], seconds=seconds, reference=reference, quiet=True,
                         plot_dir=plot_dir)
    report["codec"] = {"kbps": codec["kbps"], **{k: v for k, v in codec["mean"].items() if k != "file"}}
    report["lm"] = lm_figures(ag, pairs, seconds=2 * seconds)
    rtf: dict[str, list[float]] = {"render": [], "continue": [], "loops": []}
    compose = ag.conditional and ag.has_composer  # what `audiogen loops` makes by default
    progress = bar(len(pairs) * 2 + loops * (2 if compose else 1), "eval", quiet=quiet, unit="task")

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

    report["continuation"] = continuation_figures(ag, pairs, seconds=seconds, seed=seed, rtf=rtf["continue"],
                                                  progress=progress)

    free = [_loop_figures(ag, seed=seed + k, rtf=rtf["loops"], progress=progress) for k in range(loops)]
    report["loops"] = {**_mean_figures(free), "count": loops, "bars": LOOP_BARS, "bpm": LOOP_BPM}
    if compose:
        composed = [_loop_figures(ag, seed=seed + k, compose=True, progress=progress) for k in range(loops)]
        report["composed_loops"] = {**_mean_figures(composed), "count": loops, "bars": LOOP_BARS, "bpm": LOOP_BPM}
    progress.close()
    report["real_time_factor"] = {k: float(np.mean(v)) for k, v in rtf.items() if v}
    return report


def _table() -> tuple[list[dict[str, Any]], Any]:
    """Rows for `print_table` and the function that adds one: (section, metric, value, reference, note)."""
    rows: list[dict[str, Any]] = []

    def add(section: str, name: str, value: Any, reference: Any = "", note: str = "") -> None:
        rows.append({"section": section, "metric": name, "value": value, "reference": reference, "note": note})

    return rows, add


def print_model_report(report: dict[str, Any]) -> None:
    rows, add = _table()

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
    if "continuation" in report:
        c = report["continuation"]
        add("continue", "own-track retrieval", c["own_track"], c["own_track_repeat"],
            f"reference: the prompt repeated; chance {c['chance']:.2f}")
        add("continue", "energy, last 3 s / prompt", c["energy_last3s"], "", f"min {c['energy_last3s_min']:.3f}")
        add("continue", "longest stretch < -50 dBFS (s)", c["longest_quiet_s"], "", "worst continuation")
    for key, section in (("loops", "loops"), ("composed_loops", "composed loops")):
        if key not in report:
            continue
        lp = report[key]
        reference = (lp["uncut_seam_mean"], lp["uncut_timbre_seam_mean"]) if "uncut_seam_mean" in lp else ("", "")
        add(section, "seam score (drop)", lp["seam_mean"], reference[0], "1 = seamless; reference: plain cut")
        add(section, "timbre seam (0.2 s)", lp["timbre_seam_mean"], reference[1], f"worst {lp['timbre_seam_max']:.2f}")
        if "sketch_chroma" in lp:
            add(section, "chroma vs own sketch", lp["sketch_chroma"], "", "the composer's MIDI")
    for task, value in report["real_time_factor"].items():
        add("speed", f"{task} x real time", value, "", "> 1 is faster than real time")
    print_table(rows, title=f"audiogen eval on {len(report['held_out_files'])} held-out files of {report['corpus']}")


def composer_eval(model_dir: str | Path | None, data_dir: str | Path, *, pieces: int = 16, bars: int = 8,
                  seed: int = 0, val_fraction: float = 0.05, build_pieces: int = 400,
                  quiet: bool = False) -> dict[str, Any]:
    """`audiogen eval --composer`: `composer_report` of a composer on its event dataset's held-out pieces.

    `model_dir`: a composer folder (or a model folder holding one; None: the bundled composer).
    `data_dir`: the dataset `audiogen train composer` builds (index.json + events.npy). When it is
    missing, `build_pieces` scores spread over music21's corpus are parsed into it first (minutes;
    the held-out split is a hash of each piece's name, so it agrees with the training run's).
    """
    import sys

    from ..composer.data import EventData, build_dataset
    from ..composer.generate import load_composer
    from ..composer.metrics import composer_report
    from ..composer.options import composer_folder

    model = load_composer(None if model_dir is None else composer_folder(model_dir))
    data_dir = Path(data_dir)
    if not (data_dir / "index.json").is_file():
        if not quiet:
            print(f"{data_dir}: no composer dataset; parsing {build_pieces} scores of music21's corpus into it",
                  file=sys.stderr)
        build_dataset(data_dir, steps_per_quarter=model.vocab.steps_per_quarter, max_pieces=build_pieces,
                      workers=2, quiet=quiet)
    data = EventData(data_dir, val_fraction=val_fraction)
    if data.vocab.fingerprint != model.vocab.fingerprint:
        raise AudiogenError(f"{data_dir}: built with another event vocabulary than the composer's "
                            "(pass --composer-data with a matching dataset)")
    if not data.val_pieces:
        raise AudiogenError(f"{data_dir}: no held-out pieces (add pieces, or raise --val-fraction)")
    report = composer_report(model, data, pieces=pieces, bars=bars, seed=seed, loop=True)
    report.update(data=str(data_dir), heldout_pieces=len(data.val_pieces), pieces_per_style=pieces, bars=bars)
    return report


def print_composer_report(report: dict[str, Any]) -> None:
    """The composer's figures, each beside its reference (held-out pieces, the bigram)."""
    rows, add = _table()

    h = report["heldout"]
    add("held-out", "NLL per event (nats)", h["nll"], h["bigram_nll"], f"reference: bigram; ratio {h['nll_ratio']:.3f}")
    for style, gen in report["generated_styles"].items():
        held = report["heldout_styles"].get(style, {})
        add(style, "share of notes in key", gen["in_key"], held.get("in_key", ""), "reference: held-out pieces")
        add(style, "pitch-class distance", gen["profile_distance_to_heldout"],
            report["profile_distance_between_styles"], "to held-out; reference: between styles")
        add(style, "onsets on the grid", gen["grid"], held.get("grid", ""))
        add(style, "bar self-similarity", gen["self_similarity"], held.get("self_similarity", ""),
            "repetition structure")
    if "loop" in report:
        add("--loop", "wrap NLL (last -> first bar)", report["loop"]["wrap_nll"], report["loop"]["inner_nll"],
            "reference: inner bar -> next bar")
    print_table(rows, title=f"audiogen eval --composer: {report['heldout_pieces']} held-out pieces of {report['data']},"
                            f" {report['pieces_per_style']} generated pieces of {report['bars']} bars per style")
