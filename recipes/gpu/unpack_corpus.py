"""Unpack the corpus that recipes/gpu/pack.sh made (Opus + MIDI in .gpu/corpus.tar) into DIR/audio as
16-bit WAV under the same names, so the same files are held out as on the CPU machine.

    python3 recipes/gpu/unpack_corpus.py DATA_DIR [--keep N]    (--keep: the first N files only, to rehearse)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf


def decode(path: Path) -> None:
    wav, sr = sf.read(path, dtype="int16")
    sf.write(path.with_suffix(".wav"), wav, sr, subtype="PCM_16")
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="folder that receives audio/ (WAV + MIDI)")
    parser.add_argument("--tar", default=".gpu/corpus.tar", help="the packed corpus (default: %(default)s)")
    parser.add_argument("--keep", type=int, default=0, help="keep only the first N files (default: all)")
    args = parser.parse_args()
    data = Path(args.data_dir)
    audio = data / "audio"
    if (audio / ".done").exists():
        return
    shutil.rmtree(audio, ignore_errors=True)
    data.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.tar) as tar:
        tar.extractall(data, filter="data")
    (data / "corpus" / "audio").rename(audio)
    (data / "corpus").rmdir()
    files = sorted(audio.glob("*.ogg"))
    if args.keep:  # a rehearsal tests the scripts, not the model
        for path in files[args.keep :]:
            path.unlink()
            path.with_suffix(".mid").unlink(missing_ok=True)
        files = files[: args.keep]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(decode, files))
    (audio / ".done").touch()
    print(f"{len(files)} files decoded into {audio}")


if __name__ == "__main__":
    main()
