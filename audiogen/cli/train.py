"""`audiogen train codec|lm|composer RECIPE.toml -o RUN [--section.key=value ...]` (also under torchrun)."""

from __future__ import annotations

import argparse
import json

from .common import add_common


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from ..training.launch import train

    result, rank = train(args.what, args.recipe, args.output, overrides=overrides, device=args.device,
                         resume=args.resume, quiet=args.quiet)
    if rank == 0 and result and not args.quiet:
        print(json.dumps({k: round(v, 4) for k, v in result.items()}))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The train command."""
    p = sub.add_parser("train", help="train a codec, a language model or a composer from a TOML recipe")
    p.add_argument("what", choices=["codec", "lm", "composer"],
                   help="codec, lm (the audio language model) or composer (the symbolic MIDI model)")
    p.add_argument("recipe", help="TOML recipe; --section.key=value overrides follow")
    p.add_argument("-o", "--output", required=True, help="run folder (checkpoints, logs, final model)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUTPUT exactly where it stopped: from its newest checkpoint whose "
                        "checksums hold, else the one before it (and say so)")
    add_common(p)
    p.set_defaults(func=cmd_train, takes_overrides=True)
