"""The `audiogen` command line: parse, call the library, report user errors in one line (exit 2).

    audiogen continue SEED.wav -o OUT.wav --seconds S
    audiogen render SKETCH.mid -o OUT.wav [--prompt TIMBRE.wav]
    audiogen loops -o DIR --count N --bars B --bpm BPM [--midi SKETCH.mid]
    audiogen batch JOBS.jsonl -o DIR [--shard i/n]
    audiogen info
    audiogen codec encode IN.wav -o OUT.npz [--codec DIR|encodec_24khz] [--bandwidth KBPS]
    audiogen codec decode IN.npz -o OUT.wav
    audiogen codec eval AUDIO_DIR [--codec ...]
    audiogen corpus -o CORPUS_DIR --hours H [--midi-dir DIR]
    audiogen tokenize AUDIO_DIR --codec C -o DATASET_DIR
    audiogen train codec|lm RECIPE.toml -o RUN_DIR [--resume] [--section.key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import AudiogenError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line, exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _device(name: str):
    from ..training.loop import resolve_device

    return resolve_device(name)


# ---------------------------------------------------------------------- info


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import encodec
    import torch
    import torchaudio

    from .. import __version__
    from ..codec import PRETRAINED, find_pretrained
    from ..codec.encodec import hub_dir

    print(f"audiogen {__version__}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, torchaudio {torchaudio.__version__}, "
          f"encodec {getattr(encodec, '__version__', '?')}")
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"device: cpu ({torch.get_num_threads()} threads), cuda: {cuda}")
    print(f"pretrained codecs (looked in {hub_dir()}):")
    for name in PRETRAINED:
        found = find_pretrained(name)
        print(f"  {name}: {found if found else 'not found'}")
    try:
        from ..defaults import default_model_dir

        path = default_model_dir()
        print(f"default model: {path if path else 'not bundled'}")
    except ImportError:
        print("default model: not bundled")
    return 0


# ---------------------------------------------------------------------- codec


def _load_codec(spec: str | None, bandwidth: float | None):
    from ..codec import load_codec

    if spec is None:
        from ..defaults import default_codec_dir

        spec = default_codec_dir()
        if spec is None:
            raise AudiogenError("no codec given and no bundled default codec: pass --codec DIR|encodec_24khz")
    return load_codec(spec, bandwidth=bandwidth), str(spec)


def cmd_codec_encode(args: argparse.Namespace) -> int:
    import torch

    from .. import audio
    from ..codec import files

    codec, spec = _load_codec(args.codec, args.bandwidth)
    codec = codec.to(_device(args.device))
    wav, sr = audio.load(args.input)
    length = audio.seconds_to_samples(wav.shape[-1] / sr, codec.sample_rate)
    wav = audio.prepare(wav, sr, target_rate=codec.sample_rate, channels=codec.channels)[None]
    scale = None
    if getattr(codec.config, "normalize", False):
        scale = float(codec.input_scale(wav).flatten()[0])
    with torch.inference_mode():
        codes = codec.encode(wav.to(next(codec.parameters()).device))[0].cpu()
    files.save(args.output, files.CodeFile(
        codes=codes, sample_rate=codec.sample_rate, channels=codec.channels, length=length, codec=spec,
        bandwidth=args.bandwidth, identity=codec.identity, scale=scale), codec.codebook_size)
    if not args.quiet:
        print(f"{args.output}: {codes.shape[0]} codebooks x {codes.shape[1]} frames "
              f"({codec.frame_rate:g} Hz, {getattr(codec.config, 'kbps', 0):.2f} kbps)")
    return 0


def cmd_codec_decode(args: argparse.Namespace) -> int:
    import torch

    from .. import audio
    from ..codec import files

    item = files.load(args.input)
    codec, _ = _load_codec(args.codec or item.codec, item.bandwidth)
    if codec.identity.get("config_hash") != item.identity.get("config_hash"):
        raise AudiogenError(f"{args.input} was made by a different codec ({item.identity.get('name')}); pass --codec")
    if item.codes.shape[0] != codec.num_codebooks:
        raise AudiogenError(f"{args.input}: {item.codes.shape[0]} codebooks, codec uses {codec.num_codebooks}")
    if item.codes.shape[1] == 0 or item.codes.min() < 0 or item.codes.max() >= codec.codebook_size:
        raise AudiogenError(f"{args.input}: codes must be at least one frame of values in [0, {codec.codebook_size})")
    codec = codec.to(_device(args.device))
    with torch.inference_mode():
        wav = codec.decode(item.codes[None].to(next(codec.parameters()).device), length=item.length)[0].cpu()
    if item.scale is not None:
        wav = wav * (item.scale / codec.REFERENCE_RMS)
    audio.save(args.output, wav.clamp(-1, 1), codec.sample_rate)
    if not args.quiet:
        print(f"{args.output}: {wav.shape[-1] / codec.sample_rate:.2f} s at {codec.sample_rate} Hz")
    return 0


def cmd_codec_eval(args: argparse.Namespace) -> int:
    from ..evaluation.report import codec_report, print_table

    codec, spec = _load_codec(args.codec, args.bandwidth)
    report = codec_report(codec, args.audio_dir, seconds=args.seconds, max_files=args.max_files,
                          device=_device(args.device), reference=not args.no_reference, quiet=args.quiet)
    report["codec"] = spec
    print_table(report["rows"], title=f"codec {spec} on {args.audio_dir}")
    if args.json:
        from ..fileio import write_json

        write_json(args.json, report)
    return 0


# ---------------------------------------------------------------------- data


def cmd_tokenize(args: argparse.Namespace) -> int:
    from ..tokens.tokenize import tokenize

    codec, spec = _load_codec(args.codec, args.bandwidth)
    summary = tokenize(args.audio_dir, args.output, codec, codec_spec=spec, device=_device(args.device),
                       with_midi=not args.no_midi, quiet=args.quiet)
    for line in summary.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"{args.output}: {summary.line()}")
    return 0


def cmd_corpus(args: argparse.Namespace) -> int:
    from ..corpus.build import build_corpus

    summary = build_corpus(args.output, hours=args.hours, seed=args.seed, midi_dir=args.midi_dir,
                           soundfont=args.soundfont, sample_rate=args.sample_rate, workers=args.workers,
                           drums_fraction=args.drums_fraction, max_piece_seconds=args.max_piece_seconds,
                           quiet=args.quiet)
    print(f"{summary.out_dir}: {summary.files} files, {summary.seconds / 3600:.2f} h, {len(summary.skipped)} skipped")
    return 0


# ---------------------------------------------------------------------- training


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> int:
    import torch

    from ..config import load_recipe, to_dict
    from ..training import distributed
    from ..training.loop import run

    if args.what == "codec":
        from ..training.codec import CodecRecipe, CodecTask

        recipe = load_recipe(CodecRecipe, args.recipe, overrides)
    else:
        from ..training.lm import LMRecipe, LMTask

        recipe = load_recipe(LMRecipe, args.recipe, overrides)
    cfg = recipe.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg.device if args.device == "auto" else args.device)
    rank, world = distributed.init(device.type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (then broadcast anyway)
    try:
        quiet = args.quiet or rank != 0
        if args.what == "codec":
            task = CodecTask(recipe, device=device, rank=rank, world=world, quiet=quiet)
        else:
            task = LMTask(recipe, device=device, rank=rank, world=world, quiet=quiet)
        if not quiet:
            print(f"{task.describe()}; {world} process(es) on {device}", file=sys.stderr)
        result = run(task, cfg, args.output, device=device, resume=args.resume, quiet=quiet,
                     recipe=to_dict(recipe), desc=f"train {args.what}")
        if rank == 0 and result and not args.quiet:
            print(json.dumps({k: round(v, 4) for k, v in result.items()}))
        # Leave together: a rank that tears its connections down while a peer is still finishing
        # (rank 0 writes the final checkpoint) can make gloo abort the peer.
        distributed.barrier()
    finally:
        distributed.shutdown()
    return 0


# ---------------------------------------------------------------------- generation


def _add_generation(p: argparse.ArgumentParser, *, guidance: bool = False) -> None:
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--seed", type=int, default=0, help="fixes the output on a given device")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=250)
    p.add_argument("--top-p", type=float, default=0.0)
    if guidance:
        p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--batch-size", type=int, default=4, help="items generated together")
    p.add_argument("--plot", action="store_true", help="also write a spectrogram PNG beside each WAV")
    _add_dtype(p)
    _add_common(p)


def _add_dtype(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="the language model's precision: bf16 decodes about 2x faster where the CPU has native "
                        "bf16 (or on CUDA); auto picks it where native (default: fp32)")


def _sampling_kwargs(args: argparse.Namespace) -> dict:
    return {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed}


def _check_output(path: str, *, suffixes=(".wav", ".flac", ".ogg")) -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise AudiogenError(f"{out}: output must end in {', '.join(suffixes)}")
    if out.exists() and out.is_dir():
        raise AudiogenError(f"{out} is a folder")
    return out


def _writable(folder: Path) -> None:
    """Fail before generating when the output folder cannot be made or written."""
    from ..fileio import ensure_writable_dir

    ensure_writable_dir(folder)


def _save(path: Path, wav, sample_rate: int, *, plot: bool, loop=None, quiet: bool) -> None:
    from .. import audio

    audio.save(path, wav, sample_rate, loop=loop)
    if plot:
        from ..plots import save_spectrogram

        save_spectrogram(path.with_suffix(".png"), wav, sample_rate, title=path.name, loop=loop is not None)
    if not quiet:
        print(f"{path}: {wav.shape[-1] / sample_rate:.3f} s at {sample_rate} Hz")


def _engine(args: argparse.Namespace):
    from ..generation.engine import AudioGen

    return AudioGen.load(args.model, device=args.device, dtype=args.dtype)


def cmd_continue(args: argparse.Namespace) -> int:
    from .. import audio
    from ..generation.tasks import check_seconds

    out = _check_output(args.output)
    check_seconds(args.seconds)
    wav, sr = audio.load(args.seed_audio)
    ag = _engine(args)
    _writable(out.parent)
    result, rate = ag.continue_audio(wav, sr, args.seconds, keep_prompt=args.keep_prompt,
                                     progress=not args.quiet, **_sampling_kwargs(args))
    _save(out, result, rate, plot=args.plot, quiet=args.quiet)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .. import audio
    from ..generation.tasks import check_seconds
    from ..midi import load_midi

    out = _check_output(args.output)
    if args.seconds is not None:
        check_seconds(args.seconds)
    midi = load_midi(args.sketch)
    prompt = audio.load(args.prompt) if args.prompt else None
    ag = _engine(args)
    _writable(out.parent)
    result, rate = ag.render_midi(midi, seconds=args.seconds, prompt=None if prompt is None else prompt[0],
                                  prompt_sample_rate=None if prompt is None else prompt[1],
                                  guidance=args.guidance, progress=not args.quiet, **_sampling_kwargs(args))
    _save(out, result, rate, plot=args.plot, quiet=args.quiet)
    return 0


def cmd_loops(args: argparse.Namespace) -> int:
    from .. import audio
    from ..generation.loops import check_loop, loop_info
    from ..midi import load_midi

    check_loop(count=args.count, bars=args.bars, bpm=args.bpm, beats_per_bar=args.beats_per_bar)
    if args.batch_size < 1:
        raise AudiogenError(f"--batch-size must be at least 1, got {args.batch_size}")
    midi = load_midi(args.midi) if args.midi else None
    prompt = audio.load(args.prompt) if args.prompt else None
    ag = _engine(args)
    out = Path(args.output)
    _writable(out)
    loops, rate = ag.loops(args.count, args.bars, args.bpm, beats_per_bar=args.beats_per_bar, midi=midi,
                           prompt=None if prompt is None else prompt[0],
                           prompt_sample_rate=None if prompt is None else prompt[1], guidance=args.guidance,
                           batch_size=args.batch_size, progress=not args.quiet, **_sampling_kwargs(args))
    for i, wav in enumerate(loops):
        info = loop_info(wav.shape[-1], bars=args.bars, bpm=args.bpm, beats_per_bar=args.beats_per_bar)
        name = f"{args.prefix}-{i:02d}.wav"
        _save(out / name, wav, rate, plot=args.plot, loop=info, quiet=args.quiet)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from ..generation.tasks import check_seconds

    check_seconds(args.seconds)
    if args.count < 1:
        raise AudiogenError(f"--count must be at least 1, got {args.count}")
    ag = _engine(args)
    out = Path(args.output)
    _writable(out)
    batch, rate = ag.generate(seconds=args.seconds, count=args.count, progress=not args.quiet,
                              **_sampling_kwargs(args))
    for i, wav in enumerate(batch):
        _save(out / f"{args.prefix}-{i:02d}.wav", wav, rate, plot=args.plot, quiet=args.quiet)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from ..generation.batch import parse_shard, read_jobs, run_batch

    parse_shard(args.shard)
    read_jobs(args.jobs)  # a missing or empty jobs file fails before the model loads
    ag = _engine(args)
    counts = run_batch(ag, args.jobs, args.output, shard=args.shard, plot=args.plot, quiet=args.quiet)
    if not args.quiet:
        print(f"{args.output}: {counts['done']} jobs done, {counts['skipped']} already done, "
              f"{counts['failed']} failed (of {counts['total']} in this shard)")
    return 1 if counts["failed"] else 0


# ---------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    """Render the bundled sketch, continue the bundled seed, make four 4-bar loops; WAV + PNG in OUT."""
    import time

    from .. import audio
    from ..generation.loops import loop_info

    samples = Path(__file__).resolve().parents[1] / "samples"
    sketch = Path(args.sketch) if args.sketch else samples / "sketch.mid"
    seed = Path(args.seed_audio) if args.seed_audio else samples / "seed.wav"
    for path in (sketch, seed):
        if not path.exists():
            raise AudiogenError(f"{path}: demo input not found (run from a clone of the repository, or pass it)")
    ag = _engine(args)
    out = Path(args.output)
    _writable(out)
    made = []
    quiet = args.quiet
    start = time.perf_counter()
    if ag.conditional:
        wav, sr = ag.render_midi(sketch, seed=args.seed, progress=not quiet)
        _save(out / "render.wav", wav, sr, plot=True, quiet=True)
        made.append(("render", out / "render.wav", wav.shape[-1] / sr))
    seed_wav, seed_sr = audio.load(seed)
    wav, sr = ag.continue_audio(seed_wav, seed_sr, args.seconds, seed=args.seed, progress=not quiet)
    _save(out / "continue.wav", wav, sr, plot=True, quiet=True)
    made.append(("continue", out / "continue.wav", wav.shape[-1] / sr))
    loops, sr = ag.loops(4, 4, 112, midi=sketch if ag.conditional else None, seed=args.seed, batch_size=4,
                         progress=not quiet)
    for i, wav in enumerate(loops):
        path = out / "loops" / f"loop-{i:02d}.wav"
        _save(path, wav, sr, plot=True, loop=loop_info(wav.shape[-1], bars=4, bpm=112, beats_per_bar=4), quiet=True)
        made.append((f"loop {i}", path, wav.shape[-1] / sr))
    wall = time.perf_counter() - start
    print(f"audiogen demo with {ag.model_dir}: {len(made)} files in {out}/ ({wall:.0f} s)")
    for what, path, seconds in made:
        print(f"  {what:9s} {path}  ({seconds:.2f} s, spectrogram {path.with_suffix('.png')})")
    return 0


# ---------------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation.report import model_report, print_model_report

    if args.files < 1 or args.seconds <= 0 or args.loops < 1:
        raise AudiogenError("--files, --seconds and --loops must be positive")
    ag = _engine(args)
    report = model_report(ag, args.corpus, files=args.files, seconds=args.seconds, loops=args.loops,
                          val_fraction=args.val_fraction, reference=not args.no_reference, quiet=args.quiet)
    report["model"] = ag.identity
    print_model_report(report)
    if args.json:
        from ..fileio import write_json

        write_json(args.json, report)
    return 0


# ---------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_model, folder_megabytes

    out = export_model(args.lm_dir, args.output, codec_dir=args.codec, dtype=args.dtype)
    if not args.quiet:
        print(f"{out}: {folder_megabytes(out):.1f} MB ({args.dtype})")
    return 0


# ---------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    from ..evaluation.bench import BenchConfig, format_report, run_bench

    try:
        batches = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        raise AudiogenError(f"--batch-sizes must be integers separated by commas, got {args.batch_sizes!r}") from None
    if not batches or min(batches) < 1 or args.steps < 8:
        raise AudiogenError("--batch-sizes must be positive and --steps at least 8")
    cfg = BenchConfig(device=args.device if args.device != "auto" else "cpu", batch_sizes=batches, steps=args.steps,
                      smoke=args.smoke, peer=not args.no_peer, tasks=not args.no_tasks, model=args.model)
    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    report = run_bench(cfg, log=log)
    print(format_report(report))
    if args.json:
        from ..fileio import write_json

        write_json(args.json, report)
    return 0


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="audiogen", description="Raw-audio generation with codec tokens and a Transformer LM.")
    parser.add_argument("--version", action="version", version=f"audiogen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("info", help="versions, device, locally available codecs and models")
    p.set_defaults(func=cmd_info)

    codec = sub.add_parser("codec", help="encode / decode / evaluate with a neural codec")
    csub = codec.add_subparsers(dest="codec_command", required=True, parser_class=_Parser)
    p = csub.add_parser("encode", help="audio file -> codes (.npz)")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--codec", help="codec folder or encodec_24khz / encodec_48khz (default: the bundled codec)")
    p.add_argument("--bandwidth", type=float, help="kbps, pretrained EnCodec only (1.5, 3, 6, 12, 24)")
    _add_common(p)
    p.set_defaults(func=cmd_codec_encode)
    p = csub.add_parser("decode", help="codes (.npz) -> WAV")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--codec", help="override the codec recorded in the .npz")
    _add_common(p)
    p.set_defaults(func=cmd_codec_decode)
    p = csub.add_parser("eval", help="SI-SNR and mel distance of a codec on a folder of audio")
    p.add_argument("audio_dir")
    p.add_argument("--codec")
    p.add_argument("--bandwidth", type=float)
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per file (from the middle)")
    p.add_argument("--max-files", type=int, default=50)
    p.add_argument("--no-reference", action="store_true", help="skip the Opus reference at the same bitrate")
    p.add_argument("--json", help="also write the report as JSON")
    _add_common(p)
    p.set_defaults(func=cmd_codec_eval)

    p = sub.add_parser("continue", help="continue a seed recording")
    p.add_argument("seed_audio", metavar="SEED.wav")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of new audio")
    p.add_argument("--keep-prompt", action=argparse.BooleanOptionalAction, default=True,
                   help="start the output with the seed itself (default) or only the continuation")
    _add_generation(p)
    p.set_defaults(func=cmd_continue)

    p = sub.add_parser("render", help="render a MIDI sketch as audio")
    p.add_argument("sketch", metavar="SKETCH.mid")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seconds", type=float, help="length (default: the MIDI's length plus a 1 s tail)")
    p.add_argument("--prompt", metavar="TIMBRE.wav", help="audio whose sound the render takes on")
    _add_generation(p, guidance=True)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("loops", help="seamless loops of an exact number of bars")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--count", type=int, default=4)
    p.add_argument("--bars", type=int, default=4)
    p.add_argument("--bpm", type=float, default=120.0)
    p.add_argument("--beats-per-bar", type=int, default=4)
    p.add_argument("--midi", metavar="SKETCH.mid", help="a MIDI sketch fitted to the loop's bars")
    p.add_argument("--prompt", metavar="SEED.wav", help="audio whose sound the loops take on")
    p.add_argument("--prefix", default="loop", help="file names: PREFIX-00.wav, ...")
    _add_generation(p, guidance=True)
    p.set_defaults(func=cmd_loops)

    p = sub.add_parser("generate", help="free (unconditional) samples")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--prefix", default="sample")
    _add_generation(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("batch", help="run a JSONL file of loops/continue/render jobs (resumable, shardable)")
    p.add_argument("jobs", metavar="JOBS.jsonl")
    p.add_argument("-o", "--output", required=True, help="output folder (WAVs + manifest.jsonl)")
    p.add_argument("--shard", help="i/n: this process takes jobs j with j %% n == i (default: torchrun rank)")
    _add_generation(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("demo", help="the main jobs on the bundled model: render, continue, four loops -> OUT/")
    p.add_argument("-o", "--output", default="out")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--sketch", help="MIDI sketch (default: samples/sketch.mid)")
    p.add_argument("--seed-audio", help="recording to continue (default: samples/seed.wav)")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of continuation")
    p.add_argument("--seed", type=int, default=0)
    _add_dtype(p)
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="codec, LM, render, loop and speed figures of a model on held-out material")
    p.add_argument("--corpus", default="data/corpus", help="corpus folder (audiogen corpus); its validation split")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--files", type=int, default=6, help="held-out files to use")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per file and per render")
    p.add_argument("--loops", type=int, default=4)
    p.add_argument("--val-fraction", type=float, default=0.05, help="the recipes' validation fraction")
    p.add_argument("--no-reference", action="store_true", help="skip the Opus reference")
    p.add_argument("--json", help="also write the report as JSON")
    _add_dtype(p)
    _add_common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="a self-contained model folder (LM + codec), optionally in fp16")
    p.add_argument("lm_dir")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--codec", help="codec folder to bundle (default: the LM's own codec/)")
    p.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="generation speed vs the machine's limit and vs transformers' MusicGen")
    p.add_argument("--json", help="also write the report as JSON")
    p.add_argument("--batch-sizes", default="1,16,64")
    p.add_argument("--steps", type=int, default=100, help="decode steps per measurement")
    p.add_argument("--model", help="model folder for the default-model rows (default: the bundled one)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, for tests")
    p.add_argument("--no-peer", action="store_true", help="skip transformers' MusicGen")
    p.add_argument("--no-tasks", action="store_true", help="skip end-to-end task timings")
    _add_common(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tokenize", help="encode an audio folder (with paired MIDI) into a token dataset")
    p.add_argument("audio_dir")
    p.add_argument("-o", "--output", required=True, help="dataset folder (created or updated)")
    p.add_argument("--codec", help="codec folder or encodec_24khz (default: the bundled codec)")
    p.add_argument("--bandwidth", type=float, help="kbps, pretrained EnCodec only")
    p.add_argument("--no-midi", action="store_true", help="ignore paired MIDI files")
    _add_common(p)
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("corpus", help="build an offline paired MIDI + audio corpus (music21 scores, fluidsynth)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--midi-dir", help="render this folder of MIDI files instead of music21's corpus")
    p.add_argument("--soundfont", help="General MIDI .sf2 (default: FluidR3_GM, else TimGM6mb)")
    p.add_argument("--sample-rate", type=int, default=24000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--drums-fraction", type=float, default=0.6)
    p.add_argument("--max-piece-seconds", type=float, default=120.0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_corpus)

    p = sub.add_parser("train", help="train a codec or a language model from a TOML recipe")
    p.add_argument("what", choices=["codec", "lm"])
    p.add_argument("recipe", help="TOML recipe; --section.key=value overrides follow")
    p.add_argument("-o", "--output", required=True, help="run folder (checkpoints, logs, final model)")
    p.add_argument("--resume", action="store_true", help="continue the run in OUTPUT exactly where it stopped")
    _add_common(p)
    p.set_defaults(func=cmd_train, takes_overrides=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    overrides = [a for a in rest if a.startswith("--") and "." in a.split("=", 1)[0]]
    unknown = [a for a in rest if a not in overrides]
    if unknown or (overrides and not getattr(args, "takes_overrides", False)):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    try:
        if getattr(args, "takes_overrides", False):
            return args.func(args, overrides)
        return args.func(args)
    except AudiogenError as err:
        print(f"audiogen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("audiogen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout went away (`audiogen demo | head -1`): the work is done; stop printing, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
