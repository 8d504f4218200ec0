"""Where the bundled default model lives (inside the package, found with no arguments)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent / "default_model"


def default_model_dir() -> Path | None:
    """The bundled language-model folder, or None while none is bundled."""
    path = ROOT / "lm"
    return path if (path / "config.json").exists() else None


def default_codec_dir() -> Path | None:
    path = ROOT / "codec"
    return path if (path / "config.json").exists() else None
