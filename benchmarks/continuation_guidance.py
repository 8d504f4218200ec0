"""Continuation figures of `audiogen eval` at several guidance scales toward the seed (against silence): the
measurement behind continue's default (README, "Continuation").

    .venv/bin/python benchmarks/continuation_guidance.py --corpus data/corpus --files 10 --guidance 1,2,3,4

For each scale, every held-out file's first 3 s is continued for 7 s (`evaluation.report.continuation_figures`,
the same seeds as `audiogen eval`), and the figures are printed as one JSON line: own-track retrieval among the
files (references passed through the codec), the energy of the last 3 s over the prompt's (mean and worst),
and the longest stretch under -50 dBFS. Scale 1 is the continuation without guidance (before 2026-11-27).
"""

from __future__ import annotations

import argparse
import functools
import json

from audiogen import AudioGen
from audiogen.evaluation.report import continuation_figures, held_out_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/corpus")
    parser.add_argument("--files", type=int, default=10, help="held-out files (the corpus holds out 5 %%)")
    parser.add_argument("--guidance", default="1,2,3,4", help="scales, separated by commas")
    parser.add_argument("--model", help="model folder (default: the bundled one)")
    args = parser.parse_args()
    ag = AudioGen.load(args.model, device="cpu")
    pairs = held_out_pairs(args.corpus, count=args.files)
    method = ag.continue_audio
    for scale in (float(g) for g in args.guidance.split(",")):
        ag.continue_audio = functools.partial(method, guidance=scale)  # (the instance's, for this scale)
        figures = continuation_figures(ag, pairs, seconds=10.0)
        print(json.dumps({"guidance": scale, "files": len(pairs), **{k: round(v, 3) for k, v in figures.items()}}),
              flush=True)


if __name__ == "__main__":
    main()
