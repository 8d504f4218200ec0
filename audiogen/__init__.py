"""audiogen: raw-audio generation with neural-codec tokens and a Transformer language model.

    from audiogen import AudioGen
    ag = AudioGen.load()                       # the bundled default model (or a model folder)
    loops, sr = ag.loops(count=4, bars=4, bpm=120)

    from audiogen import load_codec
    codec = load_codec("encodec_24khz")        # or a codec folder audiogen trained
"""

__version__ = "0.1.0"

from .codec import load_codec  # noqa: E402
from .errors import AudiogenError  # noqa: E402
from .generation.engine import AudioGen  # noqa: E402

__all__ = ["AudioGen", "AudiogenError", "load_codec", "__version__"]
