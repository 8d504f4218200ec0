"""`audiogen codec encode | decode | eval`: a neural codec on files and folders.

Bad input (a missing or unreadable file, an impossible option, an output that cannot be written) is one
line on stderr, exit status 2, and no file: outputs are checked before any work (`fileio.check_writable`).
"""

from __future__ import annotations

import argparse
import math

from ..errors import AudiogenError
from .common import Parser, add_common, check_output, device, load_codec_spec, writable_file


def cmd_codec_encode(args: argparse.Namespace) -> int:
    from ..codec import files

    writable_file(args.output)
    codec, spec = load_codec_spec(args.codec, args.bandwidth)
    codec = codec.to(device(args.device))
    item = files.encode_file(codec, args.input, spec=spec, bandwidth=args.bandwidth)
    files.save(args.output, item, codec.codebook_size)
    codes = item.codes
    if not args.quiet:
        print(f"{args.output}: {codes.shape[0]} codebooks x {codes.shape[1]} frames "
              f"({codec.frame_rate:g} Hz, {codec.kbps:.2f} kbps)")
    return 0


def cmd_codec_decode(args: argparse.Namespace) -> int:
    from .. import audio
    from ..codec import files

    writable_file(check_output(args.output))
    item = files.load(args.input)
    codec, _ = load_codec_spec(args.codec or item.codec, item.bandwidth)
    files.check_codec(codec, item, name=args.input)
    codec = codec.to(device(args.device))
    wav = files.decode_file(codec, item)
    audio.save(args.output, wav, codec.sample_rate)
    if not args.quiet:
        print(f"{args.output}: {wav.shape[-1] / codec.sample_rate:.2f} s at {codec.sample_rate} Hz")
    return 0


def cmd_codec_eval(args: argparse.Namespace) -> int:
    from ..evaluation.report import codec_report, print_table
    from ..fileio import check_writable

    if args.max_files < 1:
        raise AudiogenError(f"--max-files must be at least 1, got {args.max_files}")
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise AudiogenError(f"--seconds must be a positive number of seconds, got {args.seconds}")
    writable_file(args.json)
    if args.plots is not None:
        check_writable(args.plots, folder=True)
    codec, spec = load_codec_spec(args.codec, args.bandwidth)
    report = codec_report(codec, args.audio_dir, seconds=args.seconds, max_files=args.max_files,
                          device=device(args.device), reference=not args.no_reference, quiet=args.quiet,
                          plot_dir=args.plots)
    report["codec"] = spec
    print_table(report["rows"], title=f"codec {spec} on {args.audio_dir}")
    if args.json:
        from ..fileio import write_json

        write_json(args.json, report)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`codec` and its subcommands."""
    codec = sub.add_parser("codec", help="encode / decode / evaluate with a neural codec")
    csub = codec.add_subparsers(dest="codec_command", required=True, parser_class=Parser)
    p = csub.add_parser("encode", help="audio file -> codes (.npz)")
    p.add_argument("input", help="audio file to encode (any format soundfile reads)")
    p.add_argument("-o", "--output", required=True, help="codes file to write (.npz) (required)")
    p.add_argument("--codec", help="codec folder or encodec_24khz / encodec_48khz (default: the bundled codec)")
    p.add_argument("--bandwidth", type=float,
                   help="bitrate in kbps: pretrained EnCodec 1.5, 3, 6, 12 or 24; a trained codec the rates "
                        "it was trained for (quantizer dropout) (default: the codec's own)")
    add_common(p)
    p.set_defaults(func=cmd_codec_encode)
    p = csub.add_parser("decode", help="codes (.npz) -> WAV")
    p.add_argument("input", help="codes file (.npz) written by `audiogen codec encode`")
    p.add_argument("-o", "--output", required=True, help="audio file to write: .wav, .flac or .ogg (required)")
    p.add_argument("--codec", help="codec folder or name (default: the codec recorded in the .npz)")
    add_common(p)
    p.set_defaults(func=cmd_codec_decode)
    p = csub.add_parser("eval", help="SI-SNR, mel distance and high-frequency ratios of a codec on a folder of audio")
    p.add_argument("audio_dir", help="folder of audio files to measure on")
    p.add_argument("--codec", help="codec folder or encodec_24khz / encodec_48khz (default: the bundled codec)")
    p.add_argument("--bandwidth", type=float,
                   help="bitrate in kbps: one the codec serves (default: the codec's own)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="seconds per file, from the middle (default: %(default)s)")
    p.add_argument("--max-files", type=int, default=50,
                   help="at most this many files, at least 1 (default: %(default)s)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the Opus reference at the same bitrate (default: include it)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON (default: no file)")
    p.add_argument("--plots", metavar="DIR", help="a PNG per file: input spectrogram above the codec's output"
                                                       " (default: no plots)")
    add_common(p)
    p.set_defaults(func=cmd_codec_eval)
