"""Neural audio codecs: one interface (`Codec`), EnCodec-architecture backends, and `load_codec`.

    codec = load_codec("encodec_24khz", bandwidth=6.0)   # pretrained, from a local file/hub cache
    codec = load_codec("runs/codec")                      # a codec audiogen trained
    codes = codec.encode(wav)                             # [B, C, N] -> [B, K, T]
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import AudiogenError
from .base import Codec
from .encodec import PRETRAINED, CodecConfig, EncodecCodec, find_pretrained, load_pretrained

__all__ = ["Codec", "CodecConfig", "EncodecCodec", "load_codec", "load_pretrained", "find_pretrained", "PRETRAINED"]


def load_codec(
    spec: str | os.PathLike, *, bandwidth: float | None = None, path: str | os.PathLike | None = None
) -> Codec:
    """A codec from a model directory or a pretrained name (`encodec_24khz`, `encodec_48khz`)."""
    text = str(spec)
    if text in PRETRAINED:
        return load_pretrained(text, bandwidth=bandwidth, path=path)
    if not Path(text).exists():
        raise AudiogenError(f"codec {text!r}: no such folder (or pretrained name: {', '.join(PRETRAINED)})")
    if bandwidth is not None:
        raise AudiogenError("--bandwidth applies to pretrained EnCodec only; a trained codec has a fixed bitrate")
    return EncodecCodec.load(text)
