"""The local web studio (`audiogen serve`): a page for continue, render, loops and compose on one loaded model.

    from audiogen import AudioGen
    from audiogen.studio import Studio, make_server
    studio = Studio(AudioGen.load(), out_dir="studio-out")
    studio.start()
    server = make_server(studio, host="127.0.0.1", port=7860)
    server.serve_forever()                     # then open http://127.0.0.1:7860

`jobs` holds the work (uploads, the queue, one worker running batch jobs), `server` the HTTP side, `options` the
defaults, `static/` the page. The exports load on first use, so the CLI's parser can read `options` without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"Studio": "audiogen.studio.jobs", "StudioServer": "audiogen.studio.server",
            "make_server": "audiogen.studio.server"}
__all__ = ["Studio", "StudioServer", "make_server"]

if TYPE_CHECKING:
    from .jobs import Studio
    from .server import StudioServer, make_server


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'audiogen.studio' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
