"""`audiogen export LM_DIR -o OUT [--codec DIR] [--dtype fp16]`: a self-contained model folder.

Copies a trained LM and its codec (the LM's own `codec/`, or `--codec`, e.g. a decoder
fine-tuned later: it must produce the same codes, i.e. have the same fingerprint) into OUT,
optionally storing the weights in fp16 to halve the size (they load back into fp32 modules).
This is how the bundled default model in `audiogen/default_model/` is made.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from . import checkpoint
from .codec import EncodecCodec
from .errors import AudiogenError
from .lm.model import LM
from .runtime import DTYPES


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def export_model(lm_dir: str | os.PathLike, out: str | os.PathLike, *, codec_dir: str | os.PathLike | None = None,
                 dtype: str = "fp16") -> Path:
    if dtype not in DTYPES:
        raise AudiogenError(f"--dtype must be one of {', '.join(DTYPES)}")
    lm_dir, out = Path(lm_dir), Path(out)
    lm = LM.load(lm_dir)
    source = Path(codec_dir) if codec_dir else lm_dir / checkpoint.CODEC_DIR
    codec = EncodecCodec.load(source)
    identity = dict(lm.meta.get("codec") or {})
    if identity.get("fingerprint") and identity["fingerprint"] != codec.fingerprint():
        raise AudiogenError(f"{source}: produces other codes than the codec {lm_dir} was trained with")
    torch_dtype = DTYPES[dtype]
    codec_meta = checkpoint.read_config(source)
    checkpoint.save_model(out / checkpoint.CODEC_DIR, kind=codec_meta["kind"], config=codec_meta["config"],
                          state_dict=_cast(codec.state_dict(), torch_dtype),
                          extra={"stored_dtype": dtype})
    stored = EncodecCodec.load(out / checkpoint.CODEC_DIR)
    # Rounding the encoder's weights can flip a rare code; record the codec as stored.
    identity.update(stored.identity, fingerprint=stored.fingerprint(), spec=checkpoint.CODEC_DIR)
    meta = {k: v for k, v in lm.meta.items() if k != "codec"}
    meta.update(codec=identity, stored_dtype=dtype, exported_from=str(lm_dir))
    checkpoint.save_model(out, kind="lm", config=checkpoint.read_config(lm_dir)["config"],
                          state_dict=_cast(lm.state_dict(), torch_dtype), extra=meta)
    return out


def folder_megabytes(path: str | os.PathLike) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6
