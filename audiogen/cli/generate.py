"""`audiogen continue | render | loops | generate | batch | demo`: generation with a trained model.

Compose, then render: `audiogen loops` without `--midi` composes one sketch per loop when a composer is
available (`--composer DIR`, the model folder's composer/, or the bundled one; `--no-compose` and no
composer: free loops) and saves it beside the loop as NAME.mid; `audiogen render --compose` writes its
sketch beside the output as OUT.mid. Bad input is one line, exit status 2, nothing written: every option is
checked (`audiogen.generation.options`: NaN, out-of-range seeds, batch sizes, counts past MAX_COUNT, a --prefix
that is not a plain file name) before a model loads. `loops` and `generate` make `--batch-size` items at a
time and write each file as soon as it is made, so memory follows the batch size and Ctrl-C keeps every file
finished so far.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..composer import options as compose_options
from ..errors import AudiogenError
from ..generation.options import (
    BEATS_PER_BAR,
    CONTINUE_SECONDS,
    FREE_COUNT,
    FREE_SECONDS,
    LOOP_BARS,
    LOOP_BPM,
    LOOP_COUNT,
    LOOP_FORMAT,
    LOOP_FORMATS,
    MAX_COUNT,
)
from .common import (
    add_common,
    add_composer,
    add_dtype,
    add_generation,
    check_output,
    engine,
    sampling,
    save,
    writable,
)


def checked_sampling(args: argparse.Namespace):
    """The command's sampling options and --batch-size, checked before anything loads or is written."""
    from ..generation.options import check_batch_size

    check_batch_size(args.batch_size, "--batch-size")
    return sampling(args)


def cmd_continue(args: argparse.Namespace) -> int:
    from .. import audio
    from ..generation.tasks import check_seconds

    options = checked_sampling(args)
    out = check_output(args.output)
    check_seconds(args.seconds)
    audio.info(args.seed_audio)  # a missing or unreadable seed fails before the model loads
    ag = engine(args)
    # Streamed at the codec's rate and channels: a long seed of any format costs only its codec-rate copy.
    wav, sr = audio.load(args.seed_audio, sample_rate=ag.sample_rate, channels=ag.channels)
    writable(out.parent)
    result, rate = ag.continue_audio(wav, sr, args.seconds, keep_prompt=args.keep_prompt,
                                     sampling=options, progress=not args.quiet)
    save(out, result, rate, plot=args.plot, quiet=args.quiet)
    return 0


COMPOSE_OPTIONS = ("bars", "style", "key", "meter", "bpm", "composer")  # render's, only with --compose


def compose_request(args: argparse.Namespace) -> dict | None:
    """render's composer request (None without --compose), its meter and key checked before any model loads."""
    given = [f"--{name}" for name in COMPOSE_OPTIONS if getattr(args, name) is not None]
    if not args.compose:
        if args.sketch is None:
            raise AudiogenError("render needs SKETCH.mid, or --compose to write one")
        if given:
            raise AudiogenError(f"{given[0]} is for --compose (a sketch of your own sets its own bars and tempo)")
        return None
    if args.sketch is not None:
        raise AudiogenError("--compose writes its own sketch: give SKETCH.mid or --compose, not both")
    from ..composer.vocab import parse_key, parse_meter

    key = compose_options.KEY if args.key is None else args.key
    key = None if key.strip().lower() == "auto" else key
    meter = compose_options.METER if args.meter is None else args.meter
    parse_meter(meter)
    if key is not None:
        parse_key(key)
    return {"bars": compose_options.BARS if args.bars is None else args.bars,
            "style": compose_options.STYLE if args.style is None else args.style, "key": key, "meter": meter,
            "bpm": compose_options.BPM if args.bpm is None else args.bpm, "seed": args.seed}


def cmd_render(args: argparse.Namespace) -> int:
    from .. import audio
    from ..generation.tasks import check_seconds
    from ..midi import load_midi, save_midi

    options = checked_sampling(args)
    out = check_output(args.output)
    request = compose_request(args)
    if args.seconds is not None:
        check_seconds(args.seconds)
    midi = load_midi(args.sketch) if request is None else None
    if args.prompt:
        audio.info(args.prompt)
    ag = engine(args)
    prompt = audio.load(args.prompt, sample_rate=ag.sample_rate, channels=ag.channels) if args.prompt else None
    if request is not None:
        midi = ag.compose(**request)  # bad bars, style, BPM: an error here, before anything is written
    writable(out.parent)
    result, rate = ag.render_midi(midi, seconds=args.seconds, prompt=None if prompt is None else prompt[0],
                                  prompt_sample_rate=None if prompt is None else prompt[1],
                                  sampling=options, progress=not args.quiet)
    if request is not None:
        sketch = save_midi(out.with_suffix(".mid"), midi)
        if not args.quiet:
            print(f"{sketch}: {request['bars']} bars of {request['meter']} at {request['bpm']:g} BPM, composed")
    save(out, result, rate, plot=args.plot, quiet=args.quiet)
    return 0


def loops_compose(args: argparse.Namespace) -> bool | None:
    """Whether `loops` composes its sketches: False with --midi or --no-compose, True with --style or
    --composer, None (when a composer is available) otherwise."""
    given = [f"--{name}" for name in ("style", "composer") if getattr(args, name) is not None]
    if args.midi or args.no_compose:
        if given:
            raise AudiogenError(f"{given[0]} is for composed sketches: not with "
                                + ("--midi" if args.midi else "--no-compose"))
        return False
    if given:  # composing was asked for: an impossible meter fails before any model loads
        from ..generation.loops import loop_meter

        loop_meter(args.beats_per_bar)
        return True
    return None


def cmd_loops(args: argparse.Namespace) -> int:
    from .. import audio
    from ..generation.batch import interrupts_deferred
    from ..generation.loops import check_loop, loop_info, record_loop
    from ..generation.options import check_stem
    from ..midi import load_midi, save_midi

    options = checked_sampling(args)
    check_loop(count=args.count, bars=args.bars, bpm=args.bpm, beats_per_bar=args.beats_per_bar)
    check_stem(args.prefix, "--prefix")
    compose = loops_compose(args)
    midi = load_midi(args.midi) if args.midi else None
    if args.prompt:
        audio.info(args.prompt)
    ag = engine(args)
    prompt = audio.load(args.prompt, sample_rate=ag.sample_rate, channels=ag.channels) if args.prompt else None
    sketches = ag.loop_sketches(args.count, args.bars, args.bpm, beats_per_bar=args.beats_per_bar,
                                style=args.style, seed=args.seed, compose=compose, lazy=True)
    loops = ag.iter_loops(args.count, args.bars, args.bpm, beats_per_bar=args.beats_per_bar, midi=sketches or midi,
                          prompt=None if prompt is None else prompt[0],
                          prompt_sample_rate=None if prompt is None else prompt[1], sampling=options,
                          batch_size=args.batch_size, progress=not args.quiet)  # checks all now; makes loops lazily
    out = Path(args.output)
    writable(out)
    for i, wav in loops:  # as each loop finishes: its sketch, the file, then its row in loops.json
        info = loop_info(wav.shape[-1], bars=args.bars, bpm=args.bpm, beats_per_bar=args.beats_per_bar)
        path = out / f"{args.prefix}-{i:02d}.{args.format}"
        with interrupts_deferred():  # Ctrl-C keeps this loop whole, with its sketch and its row, or none of it
            sketch = None if sketches is None else save_midi(path.with_suffix(".mid"), sketches[i])
            save(path, wav, ag.sample_rate, plot=args.plot, loop=info, quiet=args.quiet)
            record_loop(path, info, sample_rate=ag.sample_rate, sketch=None if sketch is None else sketch.name)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from ..generation.batch import interrupts_deferred
    from ..generation.options import check_count, check_stem
    from ..generation.tasks import check_seconds

    options = checked_sampling(args)
    check_seconds(args.seconds)
    check_count(args.count, "--count")
    check_stem(args.prefix, "--prefix")
    ag = engine(args)
    samples = ag.iter_generate(seconds=args.seconds, count=args.count, sampling=options, batch_size=args.batch_size,
                               progress=not args.quiet)
    out = Path(args.output)
    writable(out)
    for i, wav in samples:  # each file as soon as its chunk is made
        with interrupts_deferred():  # Ctrl-C keeps this file whole (and its spectrogram), or none of it
            save(out / f"{args.prefix}-{i:02d}.wav", wav, ag.sample_rate, plot=args.plot, quiet=args.quiet)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from ..generation.batch import parse_shard, read_jobs, run_batch

    options = checked_sampling(args)
    parse_shard(args.shard)
    read_jobs(args.jobs)  # a missing, empty or colliding jobs file fails before the model loads
    # The model loads once the shard's lock is held: the same shard running already fails at once.
    counts = run_batch(lambda: engine(args), args.jobs, args.output, shard=args.shard, sampling=options,
                       plot=args.plot, quiet=args.quiet)
    # The outcome, --quiet or not (it drops progress bars): what was made, what failed.
    print(f"{args.output}: {counts['done']} jobs done, {counts['skipped']} already done, "
          f"{counts['failed']} failed (of {counts['total']} in this shard)")
    return 1 if counts["failed"] else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Render the bundled sketch, continue the bundled seed, make four 4-bar loops; WAV + PNG in OUT."""
    from ..generation.demo import demo_inputs, run_demo
    from ..generation.options import check_seed
    from ..generation.tasks import check_seconds

    check_seconds(args.seconds)  # before any work: the demo writes render.wav before it continues
    check_seed(args.seed, "--seed")
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
    p.add_argument("seed_audio", metavar="SEED.wav", help="the recording to continue (any format soundfile reads)")
    p.add_argument("-o", "--output", required=True, help="output file: .wav, .flac or .ogg (required)")
    p.add_argument("--seconds", type=float, default=CONTINUE_SECONDS,
                   help="seconds of new audio (default: %(default)s)")
    p.add_argument("--keep-prompt", action=argparse.BooleanOptionalAction, default=True,
                   help="start the output with the seed itself (default) or only the continuation")
    add_generation(p, guidance=True)
    p.set_defaults(func=cmd_continue)

    p = sub.add_parser("render", help="render a MIDI sketch as audio (or compose one and render it: --compose)")
    p.add_argument("sketch", metavar="SKETCH.mid", nargs="?",
                   help="the MIDI file to render (leave it out with --compose)")
    p.add_argument("-o", "--output", required=True,
                   help="output file: .wav, .flac or .ogg; with --compose the sketch goes beside it as OUT.mid"
                        " (required)")
    p.add_argument("--seconds", type=float, help="length in seconds (default: the MIDI's length plus a 1 s tail)")
    p.add_argument("--prompt", metavar="TIMBRE.wav", help="audio whose sound the render takes on (default: none)")
    p.add_argument("--compose", action="store_true",
                   help="compose the sketch with the composer (its seed is --seed), save it as OUT.mid and render it"
                        " (default: off, render SKETCH.mid)")
    p.add_argument("--bars", type=int, help=f"with --compose: bars to compose (default: {compose_options.BARS})")
    p.add_argument("--style", help="with --compose: chorale, folk, renaissance, classical, or a label the composer"
                                   f" was trained with (default: {compose_options.STYLE})")
    p.add_argument("--key", help="with --compose: key signature, e.g. D, Bb major, A minor; auto lets the composer"
                                 f" pick (default: {compose_options.KEY})")
    p.add_argument("--meter", help=f"with --compose: time signature, e.g. 3/4, 6/8 (default: {compose_options.METER})")
    p.add_argument("--bpm", type=float,
                   help=f"with --compose: tempo in quarter notes per minute (default: {compose_options.BPM:g})")
    add_composer(p)
    add_generation(p, guidance=True)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("loops", help="seamless loops of an exact number of bars")
    p.add_argument("-o", "--output", required=True,
                   help="output folder: the loop files and loops.json (each file's loop start and length in samples,"
                        " BPM, bars, meter) (required)")
    p.add_argument("--count", type=int, default=LOOP_COUNT,
                   help=f"how many loops to make, 1 to {MAX_COUNT} (default: %(default)s)")
    p.add_argument("--bars", type=int, default=LOOP_BARS, help="length of each loop in bars (default: %(default)s)")
    p.add_argument("--bpm", type=float, default=LOOP_BPM,
                   help="tempo in beats per minute, 20 to 400 (default: %(default)s)")
    p.add_argument("--beats-per-bar", type=int, default=BEATS_PER_BAR,
                   help="the meter: beats in a bar, 1 to 32 (default: %(default)s)")
    p.add_argument("--format", default=LOOP_FORMAT, choices=LOOP_FORMATS,
                   help="file format: wav (loop points in smpl/acid chunks), ogg (Vorbis) or flac (both with"
                        " LOOPSTART/LOOPLENGTH comments, in samples) (default: %(default)s)")
    p.add_argument("--midi", metavar="SKETCH.mid",
                   help="a MIDI sketch fitted to the loop's bars (default: none: with a composer, one sketch composed"
                        " per loop at its bars, meter N/4 and BPM, saved beside it as NAME.mid; else free loops)")
    p.add_argument("--no-compose", action="store_true",
                   help="free (unconditioned) loops even when a composer is available (default: compose)")
    p.add_argument("--style",
                   help="style of the composed sketches: chorale, folk, renaissance, classical, or a label the"
                        f" composer was trained with (default: {compose_options.STYLE})")
    add_composer(p)
    p.add_argument("--prompt", metavar="SEED.wav", help="audio whose sound the loops take on (default: none)")
    p.add_argument("--prefix", default="loop", help="file names: PREFIX-00.FORMAT, PREFIX-01.FORMAT, ..."
                                                    " (default: %(default)s)")
    add_generation(p, guidance=True)
    p.set_defaults(func=cmd_loops)

    p = sub.add_parser("generate", help="free (unconditional) samples")
    p.add_argument("-o", "--output", required=True, help="output folder (required)")
    p.add_argument("--seconds", type=float, default=FREE_SECONDS,
                   help="length of each sample in seconds (default: %(default)s)")
    p.add_argument("--count", type=int, default=FREE_COUNT,
                   help=f"how many samples to make, 1 to {MAX_COUNT} (default: %(default)s)")
    p.add_argument("--prefix", default="sample", help="file names: PREFIX-00.wav, ... (default: %(default)s)")
    add_generation(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("batch", help="run a JSONL file of loops/continue/render/compose jobs (resumable, shardable)")
    p.add_argument("jobs", metavar="JOBS.jsonl",
                   help='one job per line, e.g. {"task": "loops", "bars": 4, "bpm": 120, "style": "folk"} or'
                        ' {"task": "compose", "bars": 8, "style": "folk", "key": "D"}')
    p.add_argument("-o", "--output", required=True,
                   help="output folder (audio files, manifest.jsonl, failures.jsonl, loops.json) (required)")
    p.add_argument("--shard", help="i/n: this process takes jobs j with j %% n == i (default: torchrun's rank/world,"
                                   " else 0/1: all jobs)")
    add_composer(p)
    add_generation(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("demo", help="the main jobs on the bundled model: render, continue, four loops -> OUT/")
    p.add_argument("-o", "--output", default="out", help="output folder (default: %(default)s)")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--sketch", help="MIDI sketch (default: samples/sketch.mid)")
    p.add_argument("--seed-audio", help="recording to continue (default: samples/seed.wav)")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of continuation (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed, an integer: the same seed gives the same files (default: %(default)s)")
    add_dtype(p)
    add_common(p)
    p.set_defaults(func=cmd_demo)
