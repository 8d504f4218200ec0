"""What every command group shares: the one-line-error parser, common options, device, engine and output helpers.

Nothing here imports torch at import time: `audiogen --help` and `audiogen CMD --help` stay fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AudiogenError
from ..generation.options import BATCH_SIZE, SamplingConfig


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line, exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="print no progress bars (default: off)")
    p.add_argument("--device", default="auto",
                   help="where to run: auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default: auto)")


def device(name: str):
    from ..runtime import resolve_device

    return resolve_device(name)


def load_codec_spec(spec: str | None, bandwidth: float | None):
    from ..codec import load_codec

    if spec is None:
        from ..checkpoint import default_codec_dir

        spec = default_codec_dir()
        if spec is None:
            raise AudiogenError("no codec given and no bundled default codec: pass --codec DIR|encodec_24khz")
    return load_codec(spec, bandwidth=bandwidth), str(spec)


def add_generation(p: argparse.ArgumentParser, *, guidance: bool = False) -> None:
    defaults = SamplingConfig()  # the one set of sampling defaults (also AudioGen's and batch jobs')
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help="random seed, an integer: the same seed gives the same output on a given device"
                        " (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=defaults.temperature,
                   help="sampling temperature: 0 = greedy, higher = more varied (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=defaults.top_k,
                   help="sample each token from the K most likely codes; 0 = off (default: %(default)s)")
    p.add_argument("--top-p", type=float, default=defaults.top_p,
                   help="nucleus sampling, after top-k: keep the likeliest codes whose probabilities add up to P"
                        " (0 to 1); 0 = off (default: %(default)s)")
    if guidance:
        p.add_argument("--guidance", type=float, default=defaults.guidance,
                       help="classifier-free guidance scale: how strongly the output follows the MIDI (continue: "
                            "the seed, against silence); 1 = off (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help="items generated together: more is faster per item, uses more memory (default: %(default)s)")
    p.add_argument("--plot", action="store_true",
                   help="also write a spectrogram PNG beside each audio file (default: off)")
    add_dtype(p)
    add_common(p)


def add_dtype(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "auto", "int8"],
                   help="the language model's precision: bf16 decodes about 2x faster where the CPU has native "
                        "bf16 (or on CUDA); auto picks it where native; int8: int8 weights for the decode steps "
                        "(CPU) (default: fp32)")


def sampling(args: argparse.Namespace) -> SamplingConfig:
    """The command's sampling options (a command without --guidance keeps the default)."""
    return SamplingConfig.from_overrides(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                         guidance=getattr(args, "guidance", None), seed=args.seed)


def check_output(path: str, *, suffixes=(".wav", ".flac", ".ogg")) -> Path:
    """The output file's name checked (suffix, not a folder, a name the file system takes): nothing is created."""
    from ..fileio import check_file_name

    out = check_file_name(path)  # first: a name too long for the file system makes even exists() raise
    if out.suffix.lower() not in suffixes:
        raise AudiogenError(f"{out}: output must end in {', '.join(suffixes)}")
    if out.exists() and out.is_dir():
        raise AudiogenError(f"{out} is a folder")
    return out


def writable(folder: Path) -> None:
    """Fail before generating when the output folder cannot be made or a file cannot really be created in it
    (`fileio.ensure_writable_dir` creates and removes one: /proc, /sys, a read-only or full disk fail here)."""
    from ..fileio import ensure_writable_dir

    ensure_writable_dir(folder)


def writable_file(path: str | Path | None) -> None:
    """Fail before the work unless the file `path` (--json, -o) can really be written; None: nothing to check."""
    if path is not None:
        from ..fileio import check_writable

        check_writable(path)


def save(path: Path, wav, sample_rate: int, *, plot: bool, loop=None, quiet: bool) -> None:
    from ..generation.batch import save_output

    save_output(path, wav, sample_rate, loop=loop, plot=plot)
    if not quiet:
        print(f"{path}: {wav.shape[-1] / sample_rate:.3f} s at {sample_rate} Hz")


def add_composer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--composer", metavar="DIR",
                   help="composer folder (made by `audiogen train composer`) for composed sketches, or a model "
                        "folder holding one in composer/ (default: the model folder's composer/, else the bundled "
                        "one)")


def engine(args: argparse.Namespace):
    from ..composer.options import composer_folder
    from ..generation.engine import AudioGen
    from ..progress import startup_stage

    startup_stage("loading the model")

    composer = getattr(args, "composer", None)
    return AudioGen.load(args.model, device=args.device, dtype=args.dtype,
                         composer=None if composer is None else composer_folder(composer))
