"""`audiogen info | eval | export | bench`: what is installed, how good and how fast a model is, and bundling one.

Impossible options and outputs (--json, --plots, -o) that cannot be written are one line, exit status 2,
before any work.
"""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import AudiogenError
from .common import add_common, add_dtype, engine, writable_file


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
        from ..checkpoint import default_model_dir

        path = default_model_dir()
        print(f"default model: {path if path else 'not bundled'}")
    except ImportError:
        print("default model: not bundled")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    writable_file(args.json)  # before any work: an output that cannot be written fails now, in one line
    if args.composer is not None:
        return _eval_composer(args)
    from ..evaluation.report import model_report, print_model_report
    from ..fileio import check_writable

    if args.files < 1 or not (math.isfinite(args.seconds) and args.seconds > 0) or args.loops < 1:
        raise AudiogenError("--files, --seconds and --loops must be positive")
    if not 0.0 <= args.val_fraction < 1.0:
        raise AudiogenError(f"--val-fraction must be at least 0 and below 1, got {args.val_fraction}")
    if args.plots is not None:
        check_writable(args.plots, folder=True)
    ag = engine(args)
    report = model_report(ag, args.corpus, files=args.files, seconds=args.seconds, loops=args.loops,
                          val_fraction=args.val_fraction, reference=not args.no_reference, quiet=args.quiet,
                          plot_dir=args.plots)
    report["model"] = ag.identity
    print_model_report(report)
    if args.json:
        from ..fileio import write_json

        write_json(args.json, report)
    return 0


def _eval_composer(args: argparse.Namespace) -> int:
    """`eval --composer [DIR]`: the composer's figures instead of the audio model's."""
    if args.pieces < 1 or args.build_pieces < 2 or not 0 < args.val_fraction < 1:
        raise AudiogenError("--pieces must be positive, --build-pieces at least 2, --val-fraction between 0 and 1")
    from ..evaluation.report import composer_eval, print_composer_report

    model_dir = args.composer or args.model  # --composer alone: the --model folder's composer, else the bundled one
    report = composer_eval(model_dir, args.composer_data, pieces=args.pieces, val_fraction=args.val_fraction,
                           build_pieces=args.build_pieces, quiet=args.quiet)
    print_composer_report(report)
    if args.json:
        from ..fileio import write_json

        write_json(args.json, report)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_model, folder_megabytes
    from ..fileio import check_writable

    check_writable(args.output, folder=True)
    out = export_model(args.lm_dir, args.output, codec_dir=args.codec, dtype=args.dtype)
    if not args.quiet:
        print(f"{out}: {folder_megabytes(out):.1f} MB ({args.dtype})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ..evaluation.bench import BenchConfig, format_report, run_bench

    try:
        batches = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        raise AudiogenError(f"--batch-sizes must be integers separated by commas, got {args.batch_sizes!r}") from None
    if args.busy is not None and not 0 <= args.busy <= 19:
        raise AudiogenError(f"--busy takes a niceness of 0 to 19, not {args.busy}")
    if not batches or min(batches) < 1 or args.steps < 8:
        raise AudiogenError("--batch-sizes must be positive and --steps at least 8")
    writable_file(args.json)
    cfg = BenchConfig(device=args.device if args.device != "auto" else "cpu", batch_sizes=batches, steps=args.steps,
                      smoke=args.smoke, peer=not args.no_peer, tasks=not args.no_tasks, model=args.model,
                      busy=args.busy, startup=not args.no_startup)
    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    report = run_bench(cfg, log=log)
    print(format_report(report))
    if args.json:
        from ..fileio import write_json

        write_json(args.json, report)
    return 0


def add_info(sub: argparse._SubParsersAction) -> None:
    """The info command (listed first)."""
    p = sub.add_parser("info", help="versions, device, locally available codecs and models")
    p.set_defaults(func=cmd_info)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """eval, export and bench."""
    p = sub.add_parser("eval", help="codec, LM, render, loop and speed figures of a model on held-out material")
    p.add_argument("--corpus", default="data/corpus",
                   help="corpus folder (audiogen corpus); its validation split is used (default: %(default)s)")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--files", type=int, default=6, help="held-out files to use (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="seconds per file and per render (default: %(default)s)")
    p.add_argument("--loops", type=int, default=4, help="loops to make and score (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.05,
                   help="the recipes' validation fraction, 0 to 1 (default: %(default)s)")
    p.add_argument("--no-reference", action="store_true", help="skip the Opus reference (default: include it)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON (default: no file)")
    p.add_argument("--plots", metavar="DIR", help="a PNG per held-out file: input spectrogram above the codec's"
                                                       " output (default: no plots)")
    p.add_argument("--composer", nargs="?", const="", metavar="DIR",
                   help="evaluate the composer instead: DIR, or with no DIR the --model folder's composer, else the "
                        "bundled one (default: evaluate the audio model)")
    p.add_argument("--composer-data", default="data/composer", metavar="DIR",
                   help="with --composer: the event dataset `audiogen train composer` builds; held-out pieces come "
                        "from it, and it is built from --build-pieces scores when missing (default: %(default)s)")
    p.add_argument("--pieces", type=int, default=16,
                   help="with --composer: pieces to compose per style, and held-out pieces per style to compare "
                        "with (default: %(default)s)")
    p.add_argument("--build-pieces", type=int, default=400,
                   help="with --composer and no dataset yet: scores of music21's corpus to parse, spread over it "
                        "(about 0.4 s each) (default: %(default)s)")
    add_dtype(p)
    add_common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="a self-contained model folder (LM + codec), optionally in fp16")
    p.add_argument("lm_dir", help="trained model folder (config.json + model.safetensors)")
    p.add_argument("-o", "--output", required=True, help="folder to write the self-contained model to (required)")
    p.add_argument("--codec", help="codec folder to bundle (default: the LM's own codec/)")
    p.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16"],
                   help="precision of the stored weights (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success (default: off)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="generation speed vs the machine's limit and vs transformers' MusicGen")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON (default: no file)")
    p.add_argument("--batch-sizes", default="1,16,64",
                   help="batch sizes to measure, separated by commas (default: %(default)s)")
    p.add_argument("--steps", type=int, default=100,
                   help="decode steps per measurement, at least 8 (default: %(default)s)")
    p.add_argument("--model", help="model folder for the default-model rows (default: the bundled one)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, for tests (default: off)")
    p.add_argument("--no-peer", action="store_true", help="skip transformers' MusicGen (default: include it)")
    p.add_argument("--no-tasks", action="store_true", help="skip end-to-end task timings (default: include them)")
    p.add_argument("--busy", nargs="?", type=int, const=0, metavar="NICE",
                   help="also measure the codec, decoding and the tasks with a process spinning on one core "
                        "beside them (at niceness NICE, 0-19; 0 when not given), with adapting thread counts "
                        "and without (CPU; default: off)")
    p.add_argument("--no-startup", action="store_true",
                   help="skip timing --help and a render's first line and bar on a terminal (default: include)")
    add_common(p)
    p.set_defaults(func=cmd_bench)
