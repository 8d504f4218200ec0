"""Peak memory of `audiogen codec encode` and `audiogen continue` on long inputs: the figures in the README.

    nice -n 10 .venv/bin/python benchmarks/peak_memory.py              # 10-minute files; a few CPU minutes
    .venv/bin/python benchmarks/peak_memory.py --minutes 1 --formats 24000x1

Writes a file of `--minutes` of PCM_16 audio (a chord plus a little noise, written block by block) at each
format (sample rate x channels: 24 kHz mono, 48 kHz stereo, 192 kHz 8-channel by default; the last is 1.8 GB
for 10 minutes) into a temporary folder, runs each command on it in a fresh process with the bundled model
(`continue --seconds 1` keeps the whole seed, so its output is the 10 minutes plus one second), and reads that
process's peak resident memory (`os.wait4`'s ru_maxrss). Each file is deleted once measured.
`audio.load` streams (decodes blocks, mixes and resamples each), so the peak follows the codec's rate, not
the file's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = ("24000x1", "48000x2", "192000x8")


def write_long_wav(path: Path, *, minutes: float, sample_rate: int, channels: int) -> Path:
    """`minutes` of a quiet chord with noise, PCM_16, written ten seconds at a time (the writer stays small)."""
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * sample_rate)
    block = 10 * sample_rate
    freqs = np.array([220.0, 277.2, 329.6])
    with sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=channels, subtype="PCM_16") as out:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / sample_rate
            tone = (0.1 * np.sin(2 * np.pi * freqs[:, None] * t[None]).sum(axis=0)).astype(np.float32)
            noise = 0.01 * rng.standard_normal((n, channels), dtype=np.float32)
            out.write(tone[:, None] + noise)
    return path


def peak_mb(argv: list[str]) -> tuple[float, float, int]:
    """(peak resident MB, wall seconds, exit status) of one command in a fresh process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block on a full pipe
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not every child's maximum
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code:
            err.seek(0)
            print(f"  failed ({code}): {err.read().decode(errors='replace').strip()[-2000:]}", file=sys.stderr)
    return usage.ru_maxrss / 1024, time.perf_counter() - start, code  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each input (default 10)")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), metavar="RATExCHANNELS",
                        help=f"inputs to measure (default: {' '.join(FORMATS)})")
    parser.add_argument("--dir", help="where to write the inputs (default: a temporary folder)")
    args = parser.parse_args()
    audiogen = [sys.executable, "-c", "import sys; from audiogen.cli import main; sys.exit(main())"]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="peak_memory.") as tmp:
        folder = Path(tmp)
        for spec in args.formats:
            rate, channels = (int(x) for x in spec.lower().split("x"))
            source = write_long_wav(folder / f"in_{rate}x{channels}.wav", minutes=args.minutes, sample_rate=rate,
                                    channels=channels)
            size = source.stat().st_size / 1e6
            for name, command in (("codec encode", ["codec", "encode", source, "-o", folder / "codes.npz",
                                                    "--quiet"]),
                                  ("continue --seconds 1", ["continue", source, "-o", folder / "out.wav",
                                                            "--seconds", "1", "--quiet"])):
                mb, wall, status = peak_mb(audiogen + [str(c) for c in command])
                rows.append((f"{rate / 1000:g} kHz x {channels}", f"{size:,.0f} MB", name,
                             f"{mb:,.0f} MB" if status == 0 else "failed", f"{wall:.0f} s"))
                print(" | ".join(rows[-1]), flush=True)
            source.unlink()
    print(f"\n{args.minutes:g}-minute PCM_16 WAV inputs, peak resident memory of each command (one process each):\n")
    header = ("input", "file", "command", "peak RSS", "wall")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
    return 0 if all(r[3] != "failed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
