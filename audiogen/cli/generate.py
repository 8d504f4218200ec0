"""`audiogen continue | render | loops | generate | batch | demo`: generation with a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AudiogenError
from ..generation.options import (
    BEATS_PER_BAR,
    CONTINUE_SECONDS,
    FREE_COUNT,
    FREE_SECONDS,
    LOOP_BARS,
    LOOP_BPM,
    LOOP_COUNT,
)
from .common import add_common, add_dtype, add_generation, check_output, engine, sampling, save, writable


def cmd_continue(args: argparse.Namespace) -> int:
    from .. import audio
    from ..generation.tasks import check_seconds

    out = check_output(args.output)
    check_seconds(args.seconds)
    wav, sr = audio.load(args.seed_audio)
    ag = engine(args)
    writable(out.parent)
    result, rate = ag.continue_audio(wav, sr, args.seconds, keep_prompt=args.keep_prompt,
                                     sampling=sampling(args), progress=not args.quiet)
    save(out, result, rate, plot=args.plot, quiet=args.quiet)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .. import audio
    from ..generation.tasks import check_seconds
    from ..midi import load_midi

    out = check_output(args.output)
    if args.seconds is not None:
        check_seconds(args.seconds)
    midi = load_midi(args.sketch)
    prompt = audio.load(args.prompt) if args.prompt else None
    ag = engine(args)
    writable(out.parent)
    result, rate = ag.render_midi(midi, seconds=args.seconds, prompt=None if prompt is None else prompt[0],
                                  prompt_sample_rate=None if prompt is None else prompt[1],
                                  sampling=sampling(args), progress=not args.quiet)
    save(out, result, rate, plot=args.plot, quiet=args.quiet)
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
    ag = engine(args)
    out = Path(args.output)
    writable(out)
    loops, rate = ag.loops(args.count, args.bars, args.bpm, beats_per_bar=args.beats_per_bar, midi=midi,
                           prompt=None if prompt is None else prompt[0],
                           prompt_sample_rate=None if prompt is None else prompt[1], sampling=sampling(args),
                           batch_size=args.batch_size, progress=not args.quiet)
    for i, wav in enumerate(loops):
        info = loop_info(wav.shape[-1], bars=args.bars, bpm=args.bpm, beats_per_bar=args.beats_per_bar)
        name = f"{args.prefix}-{i:02d}.wav"
        save(out / name, wav, rate, plot=args.plot, loop=info, quiet=args.quiet)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from ..generation.tasks import check_seconds

    check_seconds(args.seconds)
    if args.count < 1:
        raise AudiogenError(f"--count must be at least 1, got {args.count}")
    ag = engine(args)
    out = Path(args.output)
    writable(out)
    batch, rate = ag.generate(seconds=args.seconds, count=args.count, sampling=sampling(args),
                              progress=not args.quiet)
    for i, wav in enumerate(batch):
        save(out / f"{args.prefix}-{i:02d}.wav", wav, rate, plot=args.plot, quiet=args.quiet)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from ..generation.batch import parse_shard, read_jobs, run_batch

    parse_shard(args.shard)
    read_jobs(args.jobs)  # a missing or empty jobs file fails before the model loads
    ag = engine(args)
    counts = run_batch(ag, args.jobs, args.output, shard=args.shard, sampling=sampling(args), plot=args.plot,
                       quiet=args.quiet)
    if not args.quiet:
        print(f"{args.output}: {counts['done']} jobs done, {counts['skipped']} already done, "
              f"{counts['failed']} failed (of {counts['total']} in this shard)")
    return 1 if counts["failed"] else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Render the bundled sketch, continue the bundled seed, make four 4-bar loops; WAV + PNG in OUT."""
    from ..generation.demo import demo_inputs, run_demo

    sketch, seed = demo_inputs(sketch=args.sketch, seed_audio=args.seed_audio)
    ag = engine(args)
    out = Path(args.output)
    writable(out)
    made, wall = run_demo(ag, out, sketch=sketch, seed_audio=seed, seconds=args.seconds, seed=args.seed,
                          progress=not args.quiet)
    print(f"audiogen demo with {ag.model_dir}: {len(made)} files in {out}/ ({wall:.0f} s)")
    for what, path, seconds in made:
        print(f"  {what:9s} {path}  ({seconds:.2f} s, spectrogram {path.with_suffix('.png')})")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The generation commands."""
    p = sub.add_parser("continue", help="continue a seed recording")
    p.add_argument("seed_audio", metavar="SEED.wav")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seconds", type=float, default=CONTINUE_SECONDS, help="seconds of new audio")
    p.add_argument("--keep-prompt", action=argparse.BooleanOptionalAction, default=True,
                   help="start the output with the seed itself (default) or only the continuation")
    add_generation(p)
    p.set_defaults(func=cmd_continue)

    p = sub.add_parser("render", help="render a MIDI sketch as audio")
    p.add_argument("sketch", metavar="SKETCH.mid")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seconds", type=float, help="length (default: the MIDI's length plus a 1 s tail)")
    p.add_argument("--prompt", metavar="TIMBRE.wav", help="audio whose sound the render takes on")
    add_generation(p, guidance=True)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("loops", help="seamless loops of an exact number of bars")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--count", type=int, default=LOOP_COUNT)
    p.add_argument("--bars", type=int, default=LOOP_BARS)
    p.add_argument("--bpm", type=float, default=LOOP_BPM)
    p.add_argument("--beats-per-bar", type=int, default=BEATS_PER_BAR)
    p.add_argument("--midi", metavar="SKETCH.mid", help="a MIDI sketch fitted to the loop's bars")
    p.add_argument("--prompt", metavar="SEED.wav", help="audio whose sound the loops take on")
    p.add_argument("--prefix", default="loop", help="file names: PREFIX-00.wav, ...")
    add_generation(p, guidance=True)
    p.set_defaults(func=cmd_loops)

    p = sub.add_parser("generate", help="free (unconditional) samples")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--seconds", type=float, default=FREE_SECONDS)
    p.add_argument("--count", type=int, default=FREE_COUNT)
    p.add_argument("--prefix", default="sample")
    add_generation(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("batch", help="run a JSONL file of loops/continue/render jobs (resumable, shardable)")
    p.add_argument("jobs", metavar="JOBS.jsonl")
    p.add_argument("-o", "--output", required=True, help="output folder (WAVs + manifest.jsonl)")
    p.add_argument("--shard", help="i/n: this process takes jobs j with j %% n == i (default: torchrun rank)")
    add_generation(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("demo", help="the main jobs on the bundled model: render, continue, four loops -> OUT/")
    p.add_argument("-o", "--output", default="out")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--sketch", help="MIDI sketch (default: samples/sketch.mid)")
    p.add_argument("--seed-audio", help="recording to continue (default: samples/seed.wav)")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of continuation")
    p.add_argument("--seed", type=int, default=0)
    add_dtype(p)
    add_common(p)
    p.set_defaults(func=cmd_demo)
