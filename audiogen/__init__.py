"""audiogen: raw-audio generation with neural-codec tokens and a Transformer language model.

    from audiogen import load_codec
    codec = load_codec("encodec_24khz")        # or a folder audiogen trained
"""

from .codec import load_codec
from .errors import AudiogenError

__version__ = "0.1.0"
__all__ = ["AudiogenError", "load_codec", "__version__"]
