"""`audiogen serve [--host 127.0.0.1] [--port 7860] [--model DIR] [--output-dir studio-out]`: the local web studio.

Loads the model once, then serves a page (http://127.0.0.1:7860 by default) for render, loops, continue and
compose: uploads, parameters, a queue with live progress, players, spectrograms and downloads. Every file it
writes is under --output-dir. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import sys

from ..studio import options
from .common import add_common, add_composer, add_dtype, engine


def cmd_serve(args: argparse.Namespace) -> int:
    from ..studio import Studio, make_server

    ag = engine(args)  # a model that cannot load is one line here, before anything listens
    studio = Studio(ag, out_dir=args.output_dir, max_upload_mb=args.max_upload_mb, quiet=args.quiet)
    server = make_server(studio, host=args.host, port=args.port)
    studio.start()
    print(f"audiogen studio: {server.url} (model {ag.model_dir}, files in {args.output_dir}/; Ctrl-C stops it)",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("audiogen studio: stopping (after the running job)", file=sys.stderr)
    finally:
        server.server_close()
        studio.stop()
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The serve command."""
    p = sub.add_parser("serve", help="the local web studio: a page for render, loops, continue and compose",
                       description="Serve a local web page for every generation task: upload a MIDI sketch or a "
                                   "seed recording, set the parameters, follow the queue, listen, download.")
    p.add_argument("--host", default=options.HOST,
                   help="address to listen on; anything but a loopback address opens the studio to your network"
                        " (default: %(default)s)")
    p.add_argument("--port", type=int, default=options.PORT,
                   help="port to listen on; 0 picks a free one (default: %(default)s)")
    p.add_argument("--model", help="model folder (default: the bundled default model)")
    add_composer(p)
    p.add_argument("--output-dir", default=options.OUTPUT_DIR,
                   help="the only folder the studio writes: uploads while their job runs, one subfolder per"
                        " generation (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=options.MAX_UPLOAD_MB,
                   help="largest upload accepted, in megabytes (default: %(default)s)")
    add_dtype(p)
    add_common(p)
    p.set_defaults(func=cmd_serve)
