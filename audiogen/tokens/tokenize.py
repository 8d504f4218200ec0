"""Tokenize an audio folder into a token dataset: `audiogen tokenize AUDIO_DIR --codec C -o DATASET`.

The dataset's layout (index, shards, dtypes, conditioning quantisation) is `audiogen.tokens.format`.

Incremental and resumable: a file whose content hash (and its MIDI's) and the codec's
fingerprint are unchanged is skipped. The index is the truth. Each file's codes (and
conditioning) are appended to the last shard and flushed to disk, and only then is the index
rewritten atomically, so the index never points past the data. On start the shards are made to
say exactly what the index records: bytes past it (a run killed, or out of disk, mid-file) are
cut; without an index (a run killed before its first one), or with another codec, the shards
start afresh. One run per dataset: a second `tokenize` on a folder in use stops at once with one
line. A full disk is one line too ("disk full writing PATH"), with the torn append cut back.
Unreadable or empty files are reported and skipped; the run succeeds for the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import audio
from ..errors import AudiogenError
from ..fileio import ensure_writable_dir, folder_lock, remove_stale_temporaries, write_error, write_json
from ..folders import list_audio, paired_midi
from ..progress import bar
from .format import (
    FORMAT_VERSION,
    INDEX_NAME,
    SHARD_FRAMES,
    check_shard_files,
    codes_dtype,
    quantize_cond,
    read_index,
    shard_bytes,
    shard_files,
    shard_path,
)

# Test hook: after a file's shard bytes are on disk and before the index records them, say so on
# stderr and sleep this many seconds, so a test can SIGKILL a real run inside that window.
PAUSE_ENV = "AUDIOGEN_TEST_PAUSE_BEFORE_INDEX"


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


def _write_error(err: OSError, path: Path) -> Exception:
    """"disk full writing PATH" and the like: one line (`fileio.write_error`)."""
    return write_error(err, path) or err


def _append(path: Path, array: np.ndarray) -> None:
    """Append the rows and make them durable (before any index vouches for them)."""
    try:
        with open(path, "ab") as handle:
            handle.write(np.ascontiguousarray(array).tobytes())
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise _write_error(err, path) from None


def _sync_folder(folder: Path) -> None:
    """Make a new shard file's name durable before an index names it (POSIX; elsewhere a no-op)."""
    with contextlib.suppress(OSError):  # folders cannot be opened for fsync everywhere
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _cut(path: Path, nbytes: int) -> None:
    """Cut `path` to `nbytes` (a file no longer than that is left alone)."""
    try:
        if path.exists() and path.stat().st_size > nbytes:
            with open(path, "rb+") as handle:
                handle.truncate(nbytes)
    except OSError as err:
        raise _write_error(err, path) from None


def _roll_back(marks: list[tuple[Path, int | None]]) -> None:
    """Best effort after a failed append: cut each file back to its size before (None: it did not
    exist). The next run cuts whatever this leaves, so errors here are not worth reporting."""
    for path, size in marks:
        with contextlib.suppress(OSError):
            if size is None:
                path.unlink(missing_ok=True)
            elif path.stat().st_size > size:
                os.truncate(path, size)


def _discard_shards(out: Path, *, keep: int) -> None:
    """Delete the shard files numbered `keep` and up: bytes no index vouches for. (Unlinked, not
    truncated: a reader's memmap of the dataset as it was stays valid.)"""
    for number, path in shard_files(out):
        if number >= keep:
            try:
                path.unlink(missing_ok=True)
            except OSError as err:
                raise _write_error(err, path) from None


def _write_index(out: Path, index: dict[str, Any]) -> None:
    path = out / INDEX_NAME
    try:
        write_json(path, index)  # atomic: a failed write leaves the old index and no temporary file
    except OSError as err:
        raise _write_error(err, path) from None


def _pause_for_tests() -> None:
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        print(f"tokenize: paused before {INDEX_NAME}", file=sys.stderr, flush=True)
        time.sleep(float(seconds))


def _open_index(out: Path, codec, identity: dict[str, Any]) -> dict[str, Any]:
    """The index to continue from, with every shard file cut to exactly what it records.

    Without an index, shard files hold bytes of files no index ever recorded (a run killed or out
    of disk before its first index): they are deleted. An index from another codec (or the same
    one at another depth) starts afresh: an empty index is written before its shards go, so no
    index on disk ever names a missing shard.
    """
    settings = dict(num_codebooks=codec.num_codebooks, codebook_size=codec.codebook_size,
                    frame_rate=codec.frame_rate, sample_rate=codec.sample_rate,
                    codes_dtype=codes_dtype(codec.codebook_size).name)
    fresh = {"format_version": FORMAT_VERSION, "codec": identity, "entries": {}, "shards": [],
             "cond_features": 0, **settings}
    if not (out / INDEX_NAME).exists():
        _discard_shards(out, keep=0)
        return fresh
    index = read_index(out, check_files=False)
    if (index["codec"]["fingerprint"] != identity["fingerprint"] or index["num_codebooks"] != codec.num_codebooks
            or index["codebook_size"] != codec.codebook_size):
        # Codes from another codec are useless with this one (and may not even be as wide).
        _write_index(out, fresh)
        _discard_shards(out, keep=0)
        return fresh
    check_shard_files(out, index)  # a shard shorter than its index is damage, not something to paper over
    _discard_shards(out, keep=len(index["shards"]))
    for number in range(len(index["shards"])):
        for kind in ("codes", "cond"):
            _cut(shard_path(out, kind, number), shard_bytes(index, kind, number))
    index.update(settings)
    return index


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
    with contextlib.ExitStack() as held:
        try:
            # Fail at once rather than wait: a run can take hours, a silent wait looks like a hang, and
            # once the other run is done there is nothing left for this one to do.
            held.enter_context(folder_lock(out, wait=False))
        except BlockingIOError:
            raise AudiogenError(f"{out}: in use by another audiogen tokenize (one run per dataset; when it "
                                "has finished, run again to add any files it missed)") from None
        return _tokenize(root, files, out, codec, codec_spec=codec_spec, device=device or torch.device("cpu"),
                         with_midi=with_midi, quiet=quiet)


def _tokenize(root: Path, files: list[Path], out: Path, codec, *, codec_spec: str, device: torch.device,
              with_midi: bool, quiet: bool) -> TokenizeSummary:
    remove_stale_temporaries(out)
    codec = codec.to(device).eval()
    if Path(codec_spec).is_dir():
        codec_spec = str(Path(codec_spec).resolve())  # datasets outlive the working directory
    identity = {**codec.identity, "fingerprint": codec.fingerprint(), "spec": codec_spec}
    dtype = codes_dtype(codec.codebook_size)
    index = _open_index(out, codec, identity)
    index.update(codec=identity, root=str(root.resolve()))
    entries: dict[str, dict[str, Any]] = index["entries"]
    shards: list[dict[str, int]] = index["shards"]

    midi_features = None
    if with_midi:
        from ..midi import NUM_FEATURES, midi_features

    base = root if root.is_dir() else root.parent  # `audiogen tokenize ONE.wav` pairs ONE.mid beside it
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
        if wav.shape[-1] == 0:  # a few samples resampled to none: no frame to store (entries hold at least one)
            skipped.append(f"{path}: too short to encode")
            entries.pop(rel, None)
            continue
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
        codes_path, cond_path = shard_path(out, "codes", number), shard_path(out, "cond", number)
        marks = [(p, p.stat().st_size if p.exists() else None) for p in (codes_path, cond_path)]
        try:
            _append(codes_path, codes.T.numpy().astype(dtype))  # [T, K]
            if cond is not None:
                _append(cond_path, quantize_cond(cond))  # [T, F]
        except AudiogenError:
            _roll_back(marks)
            raise
        if any(size is None and file.exists() for file, size in marks):  # a shard file was created
            _sync_folder(out)
        entry = {"hash": digest, "shard": number, "offset": shard["frames"], "frames": T, "seconds": seconds,
                 "midi": str(midi.relative_to(base)) if midi else None, "midi_hash": midi_digest,
                 "cond_offset": None}
        shard["frames"] += T
        if cond is not None:
            shard["cond_features"] = NUM_FEATURES
            entry["cond_offset"] = shard["cond_frames"]
            shard["cond_frames"] += T
        entries[rel] = entry
        index["cond_features"] = NUM_FEATURES if with_midi else 0
        _pause_for_tests()
        _write_index(out, index)  # the file becomes part of the dataset only now
        encoded += 1
        progress.update(int(round(seconds)))
    progress.close()
    index["skipped"] = skipped
    _write_index(out, index)
    frames = sum(e["frames"] for e in entries.values())
    return TokenizeSummary(
        files=len(entries), encoded=encoded, unchanged=len(entries) - encoded, skipped=skipped, frames=frames,
        hours=sum(e["seconds"] for e in entries.values()) / 3600,
        paired=sum(1 for e in entries.values() if e["cond_offset"] is not None),
    )
