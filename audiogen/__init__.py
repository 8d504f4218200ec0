"""audiogen: raw-audio generation with neural-codec tokens and a Transformer language model.

    from audiogen import AudioGen
    ag = AudioGen.load()                       # the bundled default model (or a model folder)
    loops, sr = ag.loops(count=4, bars=4, bpm=120)

    from audiogen import load_codec
    codec = load_codec("encodec_24khz")        # or a codec folder audiogen trained

The exports load on first use (PEP 562), so `import audiogen` (and `audiogen --help`) needs no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AudioGen": "audiogen.generation.engine",
    "SamplingConfig": "audiogen.generation.options",
    "load_codec": "audiogen.codec",
    "AudiogenError": "audiogen.errors",
}

__all__ = ["AudioGen", "AudiogenError", "SamplingConfig", "load_codec", "__version__"]

if TYPE_CHECKING:
    from .codec import load_codec
    from .errors import AudiogenError
    from .generation.engine import AudioGen
    from .generation.options import SamplingConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'audiogen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # (the next access is a plain attribute)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
