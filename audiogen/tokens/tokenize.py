"""Tokenize an audio folder into a token dataset: `audiogen tokenize AUDIO_DIR --codec C -o DATASET`.

The dataset's layout (index, shards, dtypes, conditioning quantisation) is `audiogen.tokens.format`.

Incremental and resumable: a file whose content hash (and its MIDI's) and the codec's
fingerprint are unchanged is skipped. Data are appended to the last shard and the index is
rewritten atomically after every file; on start, bytes past the index's recorded end (a run
killed mid-append) are cut off, so a shard is never read past what the index vouches for.
Unreadable or empty files are reported and skipped; the run succeeds for the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import audio
from ..errors import AudiogenError
from ..fileio import ensure_writable_dir, remove_stale_temporaries, write_json
from ..folders import list_audio, paired_midi
from ..progress import bar
from .format import FORMAT_VERSION, INDEX_NAME, SHARD_FRAMES, codes_dtype, quantize_cond, read_index, shard_path


def file_hash(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:24]


@dataclasses.dataclass
class TokenizeSummary:
    files: int  # files in the dataset after this run
    encoded: int  # files encoded in this run
    unchanged: int
    skipped: list[str]
    frames: int
    hours: float
    paired: int  # files with MIDI conditioning

    def line(self) -> str:
        return (f"{self.files} files, {self.hours:.2f} h, {self.frames} frames "
                f"({self.encoded} encoded, {self.unchanged} unchanged, {len(self.skipped)} skipped, "
                f"{self.paired} with MIDI)")


def _trim(path: Path, nbytes: int) -> None:
    """Cut bytes a killed run appended past what the index records."""
    if path.exists() and path.stat().st_size > nbytes:
        with open(path, "rb+") as handle:
            handle.truncate(nbytes)


def _append(path: Path, array: np.ndarray) -> None:
    with open(path, "ab") as handle:
        handle.write(np.ascontiguousarray(array).tobytes())
        handle.flush()
        os.fsync(handle.fileno())


def tokenize(
    audio_dir: str | os.PathLike,
    dataset: str | os.PathLike,
    codec,
    *,
    codec_spec: str,
    device: torch.device | None = None,
    with_midi: bool = True,
    quiet: bool = False,
) -> TokenizeSummary:
    """Encode every audio file under `audio_dir` into the dataset folder (see module docstring)."""
    root = Path(audio_dir)
    files = list_audio(root)
    if not files:
        raise AudiogenError(f"{root}: no audio files found")
    out = ensure_writable_dir(dataset)
    remove_stale_temporaries(out)
    device = device or torch.device("cpu")
    codec = codec.to(device).eval()
    if Path(codec_spec).is_dir():
        codec_spec = str(Path(codec_spec).resolve())  # datasets outlive the working directory
    identity = {**codec.identity, "fingerprint": codec.fingerprint(), "spec": codec_spec}
    K, dtype = codec.num_codebooks, codes_dtype(codec.codebook_size)

    index: dict[str, Any]
    if (out / INDEX_NAME).exists():
        index = read_index(out)
        if index["codec"]["fingerprint"] != identity["fingerprint"]:
            # Codes from another codec are useless with this one: start the entries afresh.
            index["entries"], index["codec"] = {}, identity
    else:
        index = {"format_version": FORMAT_VERSION, "codec": identity, "entries": {}, "shards": []}
    index.update(num_codebooks=K, codebook_size=codec.codebook_size, frame_rate=codec.frame_rate,
                 sample_rate=codec.sample_rate, root=str(root.resolve()), codes_dtype=dtype.name)
    entries: dict[str, dict[str, Any]] = index["entries"]
    shards: list[dict[str, int]] = index["shards"]
    for number, shard in enumerate(shards):  # drop whatever a killed run left past the index
        _trim(shard_path(out, "codes", number), shard["frames"] * K * dtype.itemsize)
        _trim(shard_path(out, "cond", number), shard["cond_frames"] * shard.get("cond_features", 0))

    midi_features = None
    if with_midi:
        from ..midi import NUM_FEATURES, midi_features

    present = {str(f.relative_to(root)) if f != root else f.name for f in files}
    for stale in set(entries) - present:
        del entries[stale]

    todo = []
    for path in files:
        rel = str(path.relative_to(root)) if path != root else path.name
        midi = paired_midi(path) if with_midi else None
        entry = entries.get(rel)
        digest = file_hash(path)
        midi_digest = file_hash(midi) if midi else None
        if entry and entry["hash"] == digest and entry.get("midi_hash") == midi_digest:
            continue
        todo.append((path, rel, digest, midi, midi_digest))

    skipped: list[str] = []
    seconds_total = 0.0
    for path, *_ in todo:
        try:
            seconds_total += audio.info(path)[2]
        except AudiogenError:
            pass
    progress = bar(int(round(seconds_total)), "tokenize", quiet=quiet, unit="s")
    encoded = 0
    for path, rel, digest, midi, midi_digest in todo:
        try:
            wav, sr = audio.load(path)
        except AudiogenError as err:
            skipped.append(str(err))
            entries.pop(rel, None)
            continue
        seconds = wav.shape[-1] / sr
        wav = audio.prepare(wav, sr, target_rate=codec.sample_rate, channels=codec.channels)
        with torch.inference_mode():
            codes = codec.encode(wav[None].to(device))[0].cpu()  # [K, T]
        T = codes.shape[-1]
        cond = None
        if midi is not None:
            try:
                cond = midi_features(midi, frame_rate=codec.frame_rate, num_frames=T, max_seconds=None)
            except AudiogenError as err:
                skipped.append(f"{err} (audio kept without MIDI)")
                midi, midi_digest = None, None
        if not shards or shards[-1]["frames"] + T > SHARD_FRAMES:
            shards.append({"frames": 0, "cond_frames": 0, "cond_features": 0})
        number = len(shards) - 1
        shard = shards[number]
        entry = {"hash": digest, "shard": number, "offset": shard["frames"], "frames": T, "seconds": seconds,
                 "midi": str(midi.relative_to(root)) if midi else None, "midi_hash": midi_digest,
                 "cond_offset": None}
        _append(shard_path(out, "codes", number), codes.T.numpy().astype(dtype))
        shard["frames"] += T
        if cond is not None:
            shard["cond_features"] = NUM_FEATURES
            quantized = quantize_cond(cond)
            _append(shard_path(out, "cond", number), quantized)
            entry["cond_offset"] = shard["cond_frames"]
            shard["cond_frames"] += T
        entries[rel] = entry
        index["cond_features"] = NUM_FEATURES if with_midi else 0
        write_json(out / INDEX_NAME, index)  # the file becomes part of the dataset only now
        encoded += 1
        progress.update(int(round(seconds)))
    progress.close()
    index.setdefault("cond_features", NUM_FEATURES if with_midi else 0)
    index["skipped"] = skipped
    write_json(out / INDEX_NAME, index)
    frames = sum(e["frames"] for e in entries.values())
    return TokenizeSummary(
        files=len(entries), encoded=encoded, unchanged=len(entries) - encoded, skipped=skipped, frames=frames,
        hours=sum(e["seconds"] for e in entries.values()) / 3600,
        paired=sum(1 for e in entries.values() if e["cond_offset"] is not None),
    )
