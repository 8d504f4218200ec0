"""The `audiogen` command line: parse, call the library, report user errors in one line (exit 2).

One module per command group, each with its handlers beside its subparsers: `codec`, `generate`
(continue, render, loops, generate, batch, demo), `data` (tokenize, corpus), `train`, `model` (info,
eval, export, bench), `compose` (MIDI from the composer), `serve` (the web studio); `common` holds what
they share. Parsing imports no torch: handlers import the library when they run.

    audiogen continue SEED.wav -o OUT.wav --seconds S
    audiogen render SKETCH.mid -o OUT.wav [--prompt TIMBRE.wav]     (or --compose [--bars 8 --style folk ...])
    audiogen loops -o DIR --count N --bars B --bpm BPM [--midi SKETCH.mid | --style S | --no-compose]
    audiogen batch JOBS.jsonl -o DIR [--shard i/n]
    audiogen info
    audiogen codec encode IN.wav -o OUT.npz [--codec DIR|encodec_24khz] [--bandwidth KBPS]
    audiogen codec decode IN.npz -o OUT.wav
    audiogen codec eval AUDIO_DIR [--codec ...]
    audiogen corpus -o CORPUS_DIR --hours H [--midi-dir DIR]
    audiogen tokenize AUDIO_DIR --codec C -o DATASET_DIR
    audiogen train codec|lm|composer RECIPE.toml -o RUN_DIR [--resume] [--section.key=value ...]
    audiogen compose -o OUT.mid [--bars 8] [--style folk] [--key D] [--meter 3/4] [--prompt MELODY.mid] [--loop]
    audiogen serve [--host 127.0.0.1] [--port 7860] [--model DIR] [--output-dir studio-out]
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import threads
from ..errors import AudiogenError
from . import codec, compose, data, generate, model, serve, train
from .common import Parser

__all__ = ["build_parser", "main"]

# Commands that import torch and load models before their first bar: on a terminal they show a line at once.
STARTUP_LINE = frozenset({"continue", "render", "loops", "generate", "batch", "demo", "compose", "codec", "eval",
                          "tokenize", "corpus", "train", "bench"})


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="audiogen", description="Raw-audio generation with codec tokens and a Transformer LM.")
    parser.add_argument("--version", action="version", version=f"audiogen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    model.add_info(sub)
    codec.add_parsers(sub)
    generate.add_parsers(sub)
    model.add_parsers(sub)
    data.add_parsers(sub)
    train.add_parsers(sub)
    compose.add_parsers(sub)
    serve.add_parsers(sub)
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
        threads.adaptive()  # a bad AUDIOGEN_ADAPTIVE_THREADS is one line before any work
        try:
            if args.command in STARTUP_LINE:
                from ..progress import startup

                startup(args.command, quiet=getattr(args, "quiet", False))
            if getattr(args, "takes_overrides", False):
                return args.func(args, overrides)
            return args.func(args)
        finally:  # before any error line: the start-up line is cleared, so an error stays one line
            if "audiogen.progress" in sys.modules:
                sys.modules["audiogen.progress"].end_startup()
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
    except OSError as err:  # a writer outside fileio.atomic_path on a full disk: still one line
        from ..fileio import WRITE_ERRORS

        if err.errno not in WRITE_ERRORS:
            raise
        where = f"writing {err.filename}" if err.filename else f"({err.strerror})"
        print(f"audiogen: error: {WRITE_ERRORS[err.errno]} {where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
