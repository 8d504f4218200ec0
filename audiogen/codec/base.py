"""The codec interface every backend implements, and chunked encode/decode for long audio.

Frame arithmetic (all backends): a codec with hop length H (samples per frame) turns N
samples into T = ceil(N / H) frames; decoding T frames gives T * H samples, which
`decode(codes, length=N)` trims back to N. `frame_rate = sample_rate / H`.

Long inputs are processed in chunks of `chunk_frames` frames with `context_frames` of real
audio on each side that is encoded and thrown away, so memory stays bounded (a 10-minute file
uses the memory of one chunk) and chunk edges see the same neighbourhood they would see in one
pass. The encoder/decoder LSTMs make the result match a single pass closely, not bitwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import sys

import torch
from torch import nn


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


def release_freed_memory() -> None:
    """Give the memory freed since the last call back to the system (glibc `malloc_trim`; elsewhere a no-op).

    glibc keeps freed blocks in its heaps, and the next chunk's large activations often fit none of the holes: without
    this, a 10-minute encode peaked 100-200 MB higher, and varied by as much from run to run.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


LONG_INPUT_SECONDS = 60.0  # inputs longer than this release freed memory as they go (`release_freed_memory`)


def kbps(num_codebooks: int, codebook_size: int, frame_rate: float) -> float:
    """The bitrate of K codebooks of V codes at `frame_rate` frames per second: K * log2(V) * frame_rate / 1000."""
    return num_codebooks * math.log2(codebook_size) * frame_rate / 1000


class Codec(nn.Module):
    """Waveform `[B, C, N]` <-> integer codes `[B, K, T]` (int64)."""

    sample_rate: int
    channels: int
    hop_length: int
    num_codebooks: int
    codebook_size: int
    chunk_frames: int = 750  # 10 s at 75 Hz: bounded memory, few seams
    context_frames: int = 50

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def kbps(self) -> float:
        return kbps(self.num_codebooks, self.codebook_size, self.frame_rate)

    def num_frames(self, num_samples: int) -> int:
        """T = ceil(N / hop_length)."""
        return math.ceil(num_samples / self.hop_length)

    @property
    def identity(self) -> dict:
        """What makes codes from this codec interchangeable (stored in datasets and LM configs)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Hash of what makes the codes (encoder + quantizer; the decoder is left out, so a
        decoder fine-tuned later keeps the fingerprint): equal fingerprints, identical codes."""
        import hashlib

        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            if name.startswith("decoder."):
                continue
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    # Backends implement these two on a single chunk.
    def _encode_chunk(self, wav: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode_chunk(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _long(self, frames: int) -> bool:
        """Whether `frames` is long enough to trim between chunks too (every call trims once at its start).
        (Trimming after every layer as well halved the codec's real-time factor at every length, for 50-70 MB
        less peak; a trim per call or per 10 s chunk costs about 1 %.)"""
        return frames > LONG_INPUT_SECONDS * self.frame_rate

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """`wav [B, C, N]` float -> `codes [B, K, T]` int64, T = ceil(N / hop_length)."""
        assert wav.dim() == 3 and wav.shape[1] == self.channels, (
            f"expected [B, {self.channels}, N], got {tuple(wav.shape)}"
        )
        B, C, N = wav.shape
        T = self.num_frames(N)
        trim = self._long(T)  # a long input also gives freed memory back between chunks
        release_freed_memory()  # what reading and resampling the input left behind (one call: about 2 ms)
        # The codec keeps the thread count it is given (no `threads.fitted()`): oneDNN's convolutions sum in an
        # order that depends on the thread count (outputs up to 1e-7 apart: a 16-bit sample's last bit, in
        # principle a code), so adapting to the machine's load would let a seeded WAV depend on what else ran.
        codes = self._encode_chunks(wav, T, trim)
        assert codes.shape == (B, self.num_codebooks, T), f"{tuple(codes.shape)} != {(B, self.num_codebooks, T)}"
        return codes.long()

    def _encode_chunks(self, wav: torch.Tensor, T: int, trim: bool) -> torch.Tensor:
        H = self.hop_length
        if T <= self.chunk_frames + 2 * self.context_frames:
            codes = self._encode_chunk(self._pad_to(wav, T * H))
        else:
            pieces = []
            for f0 in range(0, T, self.chunk_frames):
                if trim:
                    release_freed_memory()  # the previous chunk's activations
                f1 = min(T, f0 + self.chunk_frames)
                c0, c1 = max(0, f0 - self.context_frames), min(T, f1 + self.context_frames)
                piece = self._pad_to(wav[..., c0 * H : c1 * H], (c1 - c0) * H)
                pieces.append(self._encode_chunk(piece)[..., f0 - c0 : f1 - c0])
            codes = torch.cat(pieces, dim=-1)
        return codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """`codes [B, K, T]` -> `wav [B, C, T * hop_length]` (or `length` samples when given)."""
        assert codes.dim() == 3 and codes.shape[1] == self.num_codebooks, (
            f"expected [B, {self.num_codebooks}, T], got {tuple(codes.shape)}"
        )
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size})")
        B, K, T = codes.shape
        H = self.hop_length
        trim = self._long(T)  # a long input also gives freed memory back between chunks
        release_freed_memory()
        # The thread count stays as given, as in encode (a seeded WAV must not depend on the machine's load).
        wav = self._decode_chunks(codes, T, trim)
        assert wav.shape[-1] == T * H
        return wav if length is None else wav[..., :length]

    def _decode_chunks(self, codes: torch.Tensor, T: int, trim: bool) -> torch.Tensor:
        H = self.hop_length
        if T <= self.chunk_frames + 2 * self.context_frames:
            wav = self._decode_chunk(codes)
        else:
            pieces = []
            for f0 in range(0, T, self.chunk_frames):
                if trim:
                    release_freed_memory()
                f1 = min(T, f0 + self.chunk_frames)
                c0, c1 = max(0, f0 - self.context_frames), min(T, f1 + self.context_frames)
                out = self._decode_chunk(codes[..., c0:c1])
                pieces.append(out[..., (f0 - c0) * H : (f1 - c0) * H])
            wav = torch.cat(pieces, dim=-1)
        return wav

    @staticmethod
    def _pad_to(wav: torch.Tensor, length: int) -> torch.Tensor:
        missing = length - wav.shape[-1]
        return torch.nn.functional.pad(wav, (0, missing)) if missing > 0 else wav
