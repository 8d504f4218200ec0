"""Training-time token data: random crops of T frames from a tokenized dataset.

    data = TokenCrops("datasets/bach", crop_frames=300, split="train", seed=0)
    item = data[17]        # {"codes": [K, T] int64, "cond": [T + lookahead, F] float32, "valid": [T] bool}

Crops are a pure function of (seed, index): any DataLoader worker, any DDP rank and a resumed
run produce the same item for the same index, so map-style samplers (DistributedSampler
included) just work. Files are split into train/validation by a hash of their path
(`folders.is_validation`), deterministic and stable as files are added. Shards are opened
as read-only memmaps lazily in each worker process; the index is validated on opening
(`format.read_index`), so a damaged dataset is one error line, not a read past a shard's end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import AudiogenError
from ..folders import is_validation
from .format import COND_DTYPE, codes_dtype, dequantize_cond, read_index, shard_path


class TokenCrops(Dataset):
    """Random crops `[K, crop_frames]` (+ aligned MIDI conditioning) from one split of a dataset."""

    def __init__(
        self,
        dataset: str | os.PathLike,
        *,
        crop_frames: int,
        split: str = "train",
        val_fraction: float = 0.1,
        seed: int = 0,
        length: int | None = None,
        require_cond: bool = False,
        cond_lookahead: int = 0,
    ):
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be train, val or all, not {split!r}")
        if crop_frames < 1:
            raise AudiogenError("crop length must be at least one frame")
        self.root = Path(dataset)
        self.index = read_index(self.root)
        self.crop_frames = crop_frames
        self.cond_lookahead = cond_lookahead  # extra conditioning rows past the crop (the model looks ahead)
        self.seed = seed
        self.num_codebooks = int(self.index["num_codebooks"])
        self.codebook_size = int(self.index["codebook_size"])
        self.frame_rate = float(self.index["frame_rate"])
        self.cond_features = int(self.index.get("cond_features", 0))
        entries = sorted(self.index["entries"].items())
        if require_cond:
            entries = [(k, e) for k, e in entries if e["cond_offset"] is not None]
        if split != "all" and len(entries) > 1:
            val = [(k, e) for k, e in entries if is_validation(k, val_fraction, 0)]
            if not val and val_fraction > 0:
                val = [entries[-1]]
            train = [(k, e) for k, e in entries if (k, e) not in val]
            entries = train if split == "train" else val
        if not entries:
            raise AudiogenError(f"{self.root}: no files in the {split} split")
        self.names = [k for k, _ in entries]
        self.entries = [e for _, e in entries]
        self.frames = np.array([e["frames"] for e in self.entries], dtype=np.float64)
        self.weights = self.frames / self.frames.sum()
        self.length = length if length is not None else max(1, int(self.frames.sum() // crop_frames))
        self._codes: dict[int, np.ndarray] = {}
        self._cond: dict[int, np.ndarray] = {}

    @property
    def has_cond(self) -> bool:
        return self.cond_features > 0 and any(e["cond_offset"] is not None for e in self.entries)

    @property
    def seconds(self) -> float:
        return float(self.frames.sum()) / self.frame_rate

    def __len__(self) -> int:
        return self.length

    def _shard(self, number: int) -> tuple[np.ndarray, np.ndarray | None]:
        # Opened lazily so each DataLoader worker maps the files itself (memmaps don't pickle well).
        if number not in self._codes:
            shard = self.index["shards"][number]
            dtype = codes_dtype(self.codebook_size)
            path = shard_path(self.root, "codes", number)
            self._codes[number] = np.memmap(path, dtype=dtype, mode="r", shape=(shard["frames"], self.num_codebooks))
            cond_path = shard_path(self.root, "cond", number)
            if shard.get("cond_frames") and cond_path.exists():
                self._cond[number] = np.memmap(cond_path, dtype=COND_DTYPE, mode="r",
                                               shape=(shard["cond_frames"], shard["cond_features"]))
        return self._codes[number], self._cond.get(number)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_codes"], state["_cond"] = {}, {}
        return state

    def crop(self, file: int, start: int) -> dict[str, torch.Tensor]:
        """Frames [start, start + crop_frames) of file `file`, zero-padded (valid=False) past its end."""
        entry = self.entries[file]
        codes_map, cond_map = self._shard(entry["shard"])
        T = self.crop_frames
        stop = min(entry["frames"], start + T)
        n = max(0, stop - start)
        codes = torch.zeros(self.num_codebooks, T, dtype=torch.long)
        codes[:, :n] = torch.from_numpy(codes_map[entry["offset"] + start : entry["offset"] + stop].T.astype(np.int64))
        valid = torch.zeros(T, dtype=torch.bool)
        valid[:n] = True
        item = {"codes": codes, "valid": valid}
        if self.cond_features:
            # T + lookahead rows, so the last frames of a crop see the real future MIDI, as in generation.
            cond = torch.zeros(T + self.cond_lookahead, self.cond_features)
            cond_stop = min(entry["frames"], start + T + self.cond_lookahead)
            if entry["cond_offset"] is not None and cond_map is not None and cond_stop > start:
                rows = cond_map[entry["cond_offset"] + start : entry["cond_offset"] + cond_stop]
                cond[: cond_stop - start] = dequantize_cond(rows)
            item["cond"] = cond
            item["has_cond"] = torch.tensor(entry["cond_offset"] is not None)
        return item

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        file = int(rng.choice(len(self.entries), p=self.weights))
        room = int(self.frames[file]) - self.crop_frames
        start = int(rng.integers(0, room + 1)) if room > 0 else 0
        return self.crop(file, start)

    def fixed_crops(self, count: int) -> list[dict[str, torch.Tensor]]:
        """Deterministic evenly spaced crops over all files of the split (validation)."""
        items = []
        per_file = max(1, -(-count // len(self.entries)))
        for file, frames in enumerate(self.frames.astype(int)):
            for j in range(per_file):
                start = int((frames - self.crop_frames) * (j + 0.5) / per_file) if frames > self.crop_frames else 0
                items.append(self.crop(file, start))
        return items[:count] if len(items) > count else items


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}
