"""Render figures of `audiogen eval` (chroma similarity to the MIDI, onset F1) at several guidance scales and
temperatures: the measurement behind render's defaults (README, "The bundled default model").

    .venv/bin/python benchmarks/render_sampling.py --corpus data/corpus --files 10 --guidance 2,3,5 --temperature 1,0.8

Every held-out file's MIDI, cut to 10 s, is rendered with seed k for the k-th file (as `audiogen eval` does)
for each pair of settings, and the means are printed as one JSON line per pair.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from audiogen import AudioGen
from audiogen.evaluation.musicmetrics import chroma_similarity, midi_onsets, onset_f1
from audiogen.evaluation.report import _cut_midi, held_out_pairs

SECONDS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/corpus")
    parser.add_argument("--files", type=int, default=10, help="held-out files (the corpus holds out 5 %%)")
    parser.add_argument("--guidance", default="3", help="scales, separated by commas")
    parser.add_argument("--temperature", default="1", help="temperatures, separated by commas")
    parser.add_argument("--model", help="model folder (default: the bundled one)")
    args = parser.parse_args()
    ag = AudioGen.load(args.model, device="cpu")
    pairs = held_out_pairs(args.corpus, count=args.files)
    for guidance in (float(g) for g in args.guidance.split(",")):
        for temperature in (float(t) for t in args.temperature.split(",")):
            rows = []
            for k, (_, midi_path) in enumerate(pairs):
                pm = _cut_midi(midi_path, SECONDS)
                out, sr = ag.render_midi(pm, seconds=SECONDS, seed=k, guidance=guidance, temperature=temperature)
                onsets = midi_onsets(pm)
                rows.append((chroma_similarity(out, sr, pm), onset_f1(out, sr, onsets[onsets < SECONDS - 0.05])["f1"]))
            chroma, f1 = np.mean(rows, axis=0)
            print(json.dumps({"guidance": guidance, "temperature": temperature, "files": len(pairs),
                              "chroma": round(float(chroma), 3), "onset_f1": round(float(f1), 3)}), flush=True)


if __name__ == "__main__":
    main()
