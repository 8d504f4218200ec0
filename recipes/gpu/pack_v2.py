"""Pack, on the CPU machine, what recipes/gpu/default_v2.sh needs besides the wheels (.whl/, pack.sh):
the token dataset as .gpu/tokens.tar.xz (xz: the MIDI features are mostly zeros, 1 GB -> 11 MB for 12 h) and a subset of the Opus corpus (.gpu/corpus.tar, from pack.sh)
as .gpu/audio.tar, for the decoder fine-tune. The subset keeps every held-out file (the same name
hash as every recipe's `val_fraction = 0.05`) and training files up to --hours, so that it fits the
device tool's 64 MiB carry beside the tokens.

    python3 recipes/gpu/pack_v2.py --tokens data/tokens12 --hours 1.5
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import soundfile as sf

from audiogen.folders import is_validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", required=True, help="token dataset folder (index.json + shards)")
    parser.add_argument("--corpus-tar", default=".gpu/corpus.tar", help="pack.sh's Opus corpus (default: %(default)s)")
    parser.add_argument("--hours", type=float, default=2.0, help="training audio to keep (default: %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    args = parser.parse_args()
    gpu = Path(".gpu")
    with tarfile.open(gpu / "tokens.tar.xz", "w:xz", preset=3) as tar:
        tar.add(args.tokens, arcname=".")
    kept, seconds = 0, 0.0
    with tarfile.open(args.corpus_tar) as source, tarfile.open(gpu / "audio.tar", "w") as out:
        members = {m.name: m for m in source.getmembers() if m.isfile()}
        for name in sorted(n for n in members if n.endswith(".ogg")):
            held_out = is_validation(Path(name).with_suffix(".wav").name, args.val_fraction)
            if not held_out and seconds >= args.hours * 3600:
                continue
            data = source.extractfile(members[name]).read()
            if not held_out:
                seconds += sf.info(io.BytesIO(data)).duration
            out.addfile(members[name], io.BytesIO(data))
            midi = name[: -len(".ogg")] + ".mid"
            if midi in members:
                out.addfile(members[midi], source.extractfile(members[midi]))
            kept += 1
    for path in (gpu / "tokens.tar.xz", gpu / "audio.tar"):
        print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")
    print(f"{kept} audio files, {seconds / 3600:.2f} h for training")


if __name__ == "__main__":
    main()
