"""The composer's request defaults, stated once, and where a model folder keeps its composer.

    from audiogen.composer.options import BARS, STYLE, KEY, METER, BPM
    composer_folder("runs/model")   # runs/model/composer when that holds a composer, else runs/model

`compose()`, `AudioGen.compose` and `audiogen compose` all read these. No torch here: the CLI
builds its parser (and `--help`) from these values without loading anything heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

BARS = 8
STYLE = "folk"
KEY = "C"
METER = "4/4"
BPM = 120.0  # quarter notes per minute (MIDI's tempo)
SEED = 0
TEMPERATURE = 1.0  # 0 = greedy
TOP_K = 0  # 0 = off
SUBFOLDER = "composer"  # a model folder's composer: MODEL_DIR/composer (the bundled one: default_model/composer)


def composer_folder(directory: str | os.PathLike) -> Path:
    """`directory/composer` when it holds a model (config.json), else `directory` itself."""
    path = Path(directory)
    inner = path / SUBFOLDER
    return inner if (inner / "config.json").is_file() else path


__all__ = ["BARS", "BPM", "KEY", "METER", "SEED", "STYLE", "SUBFOLDER", "TEMPERATURE", "TOP_K", "composer_folder"]
