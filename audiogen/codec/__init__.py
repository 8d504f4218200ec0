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
    if bandwidth is None:
        return EncodecCodec.load(text)
    return EncodecCodec.load(text, num_codebooks=trained_depth(text, bandwidth))


def trained_depth(directory: str | os.PathLike, bandwidth: float) -> int:
    """How many codebooks of a trained codec give `bandwidth` kbps: one of the depths it was trained
    on (its `codebook_choices` with quantizer dropout; only its own depth without)."""
    from .. import checkpoint
    from ..config import from_dict
    from .base import kbps

    config = from_dict(CodecConfig, checkpoint.read_config(directory, kind="codec")["config"])
    depths = config.codebook_choices if config.quantizer_dropout else (config.num_codebooks,)
    rates = {round(kbps(k, config.codebook_size, config.sample_rate / config.hop_length), 3): k for k in depths}
    if round(float(bandwidth), 3) not in rates:
        raise AudiogenError(f"{directory} serves {', '.join(f'{r:g}' for r in sorted(rates))} kbps, not {bandwidth:g}")
    return rates[round(float(bandwidth), 3)]
