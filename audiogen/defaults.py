"""Where the bundled default model lives (inside the package, found with no arguments).

`audiogen/default_model/` is an exported model folder (`audiogen export ... -o audiogen/default_model`):
the LM's `config.json` + `model.safetensors` at its root and its codec in `codec/`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent / "default_model"


def default_model_dir() -> Path | None:
    """The bundled language-model folder, or None while none is bundled."""
    return ROOT if (ROOT / "config.json").exists() else None


def default_codec_dir() -> Path | None:
    path = ROOT / "codec"
    return path if (path / "config.json").exists() else None
