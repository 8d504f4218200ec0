"""`audiogen compose -o OUT.mid [--bars 8] [--style folk] [--key D] [--meter 3/4] [--bpm 120] [--prompt MELODY.mid]
[--loop] [--seed S]`: write a MIDI sketch with the composer (`audiogen.composer`), from nothing or continuing a prompt.

Bad input (an unknown style, an impossible meter or key, --bars 0, a prompt with no notes, a --model folder
that is not a composer) is one line on stderr, exit status 2, and no file: the request is checked before
anything is written (`write_composition` writes atomically).
"""

from __future__ import annotations

import argparse

from ..composer import options
from .common import check_output, writable


def cmd_compose(args: argparse.Namespace) -> int:
    from ..composer.vocab import parse_key, parse_meter

    out = check_output(args.output, suffixes=(".mid", ".midi"))
    key = None if args.key.strip().lower() == "auto" else args.key
    # The meter and key need no model: say what is wrong with them before loading one (compose checks the rest).
    parse_meter(args.meter)
    if key is not None:
        parse_key(key)
    from ..composer.generate import bar_seconds, load_composer, write_composition

    model = load_composer(None if args.model is None else options.composer_folder(args.model))
    writable(out.parent)
    write_composition(out, model, bars=args.bars, style=args.style, key=key, meter=args.meter, bpm=args.bpm,
                      prompt=args.prompt, loop=args.loop, seed=args.seed, temperature=args.temperature,
                      top_k=args.top_k)
    if not args.quiet:
        seconds = args.bars * bar_seconds(args.meter, args.bpm)
        print(f"{out}: {args.bars} bars of {args.meter.strip()} at {args.bpm:g} BPM ({seconds:.3f} s)"
              + (", looping" if args.loop else ""))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The compose command."""
    p = sub.add_parser("compose", help="write a MIDI sketch with the composer (from nothing or continuing a prompt)",
                       description="Compose bars of music as MIDI: a style, key, meter and tempo, or a melody to "
                                   "continue. The bar count, meter and key signature asked for are guaranteed.")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mid", help="the MIDI file to write (.mid or .midi)")
    p.add_argument("--model", metavar="DIR",
                   help="composer folder (made by `audiogen train composer`), or a model folder holding one in "
                        f"{options.SUBFOLDER}/ (default: the bundled composer)")
    p.add_argument("--bars", type=int, default=options.BARS,
                   help=f"bars in the piece, the prompt's included (default: {options.BARS})")
    p.add_argument("--style", default=options.STYLE,
                   help="chorale, folk, renaissance, classical, or a label the model was trained with "
                        f"(default: {options.STYLE})")
    p.add_argument("--key", default=options.KEY,
                   help=f"key signature: C, F#, Bb major, D minor, Am ...; auto lets the model pick "
                        f"(default: {options.KEY})")
    p.add_argument("--meter", default=options.METER,
                   help=f"time signature, e.g. 4/4, 3/4, 6/8, 5/4 (default: {options.METER})")
    p.add_argument("--bpm", type=float, default=options.BPM,
                   help=f"tempo in quarter notes per minute (default: {options.BPM:g})")
    p.add_argument("--prompt", metavar="MELODY.mid",
                   help="a MIDI file to continue: its notes, on the grid of --meter, become the first bars "
                        "(default: none, compose from nothing)")
    p.add_argument("--loop", action="store_true",
                   help="make the last bar lead back into the first, for seamless repeats (default: off)")
    p.add_argument("--seed", type=int, default=options.SEED,
                   help=f"random seed: the same seed and options give the same file (default: {options.SEED})")
    p.add_argument("--temperature", type=float, default=options.TEMPERATURE,
                   help=f"sampling temperature, 0 = always the likeliest event (default: {options.TEMPERATURE:g})")
    p.add_argument("--top-k", type=int, default=options.TOP_K,
                   help=f"sample among the K likeliest events only, 0 = off (default: {options.TOP_K})")
    p.add_argument("--quiet", action="store_true", help="print nothing on success (default: print a summary line)")
    p.set_defaults(func=cmd_compose)
