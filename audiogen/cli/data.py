"""`audiogen tokenize | corpus`: token datasets and the offline paired corpus.

Bad options and outputs that cannot be written are one line on stderr, exit status 2, before any work.
"""

from __future__ import annotations

import argparse
import sys

from .common import add_common, device, load_codec_spec


def cmd_tokenize(args: argparse.Namespace) -> int:
    from ..fileio import check_writable
    from ..tokens.tokenize import tokenize

    check_writable(args.output, folder=True)
    codec, spec = load_codec_spec(args.codec, args.bandwidth)
    summary = tokenize(args.audio_dir, args.output, codec, codec_spec=spec, device=device(args.device),
                       with_midi=not args.no_midi, quiet=args.quiet)
    for line in summary.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"{args.output}: {summary.line()}")
    return 0


def cmd_corpus(args: argparse.Namespace) -> int:
    from ..corpus.build import build_corpus

    summary = build_corpus(args.output, hours=args.hours, seed=args.seed, midi_dir=args.midi_dir,
                           soundfont=args.soundfont, sample_rate=args.sample_rate, workers=args.workers,
                           drums_fraction=args.drums_fraction, max_piece_seconds=args.max_piece_seconds,
                           quiet=args.quiet)
    print(f"{summary.out_dir}: {summary.files} files, {summary.seconds / 3600:.2f} h, {len(summary.skipped)} skipped")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The data commands."""
    p = sub.add_parser("tokenize", help="encode an audio folder (with paired MIDI) into a token dataset")
    p.add_argument("audio_dir", help="folder of audio files (searched recursively), MIDI files beside them")
    p.add_argument("-o", "--output", required=True, help="dataset folder (created or updated) (required)")
    p.add_argument("--codec", help="codec folder or encodec_24khz (default: the bundled codec)")
    p.add_argument("--bandwidth", type=float,
                   help="codec bitrate in kbps: one the codec serves (default: the codec's own)")
    p.add_argument("--no-midi", action="store_true", help="ignore paired MIDI files (default: use them)")
    add_common(p)
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("corpus", help="build an offline paired MIDI + audio corpus (music21 scores, fluidsynth)")
    p.add_argument("-o", "--output", required=True,
                   help="corpus folder (audio/*.wav + *.mid pairs, corpus.json); a re-run resumes it (required)")
    p.add_argument("--hours", type=float, default=1.0,
                   help="hours of audio to render, more than 0 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed for the pieces' order and augmentations, 0 or more (default: %(default)s)")
    p.add_argument("--midi-dir", help="render this folder of MIDI files instead of music21's corpus")
    p.add_argument("--soundfont", help="General MIDI SoundFont (.sf2) (default: FluidR3_GM, else TimGM6mb)")
    p.add_argument("--sample-rate", type=int, default=24000,
                   help="sample rate of the rendered audio in Hz, 8000 to 96000 (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2,
                   help="processes rendering at once, 1 to 64; 1 = in this process (default: %(default)s)")
    p.add_argument("--drums-fraction", type=float, default=0.6,
                   help="share of pieces, 0 to 1, given a generated drum part (default: %(default)s)")
    p.add_argument("--max-piece-seconds", type=float, default=120.0,
                   help="longest piece in seconds, 3 to 3600; longer scores are cut (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="print no progress bars (default: off)")
    p.set_defaults(func=cmd_corpus)
