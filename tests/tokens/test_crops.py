"""Training-time token crops: determinism, splits, padding, DataLoader workers, DDP samplers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from audiogen.fileio import write_json
from audiogen.tokens.crops import TokenCrops, collate
from audiogen.tokens.format import FORMAT_VERSION


def fake_dataset(root: Path, lengths: list[int], K: int = 3, V: int = 50, F: int = 4) -> dict[str, np.ndarray]:
    """A dataset written directly in the on-disk format (codes = known pattern per file)."""
    root.mkdir(parents=True)
    entries, arrays, offset = {}, {}, 0
    codes_all, cond_all = [], []
    for i, T in enumerate(lengths):
        codes = (np.arange(T)[:, None] * (i + 1) + np.arange(K)[None]) % V  # [T, K]
        cond = np.full((T, F), i + 1, dtype=np.int8)
        name = f"f{i}.wav"
        entries[name] = {"hash": str(i), "shard": 0, "offset": offset, "frames": T, "seconds": T / 10,
                         "midi": None, "midi_hash": None, "cond_offset": offset if i % 2 == 0 else None}
        arrays[name] = codes.T
        codes_all.append(codes.astype(np.int16))
        cond_all.append(cond)
        offset += T
    np.concatenate(codes_all).tofile(root / "codes-00000.bin")
    np.concatenate(cond_all).tofile(root / "cond-00000.bin")
    write_json(root / "index.json", {
        "format_version": FORMAT_VERSION, "codec": {"fingerprint": "x"}, "entries": entries,
        "shards": [{"frames": offset, "cond_frames": offset, "cond_features": F}], "num_codebooks": K,
        "codebook_size": V, "frame_rate": 10.0, "sample_rate": 8000, "cond_features": F,
    })
    return arrays


def test_crops_are_deterministic_and_match_the_source(tmp_path: Path) -> None:
    arrays = fake_dataset(tmp_path / "ds", [100, 57, 300, 12, 80])
    a = TokenCrops(tmp_path / "ds", crop_frames=20, split="all", seed=3)
    b = TokenCrops(tmp_path / "ds", crop_frames=20, split="all", seed=3)
    c = TokenCrops(tmp_path / "ds", crop_frames=20, split="all", seed=4)
    for i in range(20):
        assert torch.equal(a[i]["codes"], b[i]["codes"])
    assert any(not torch.equal(a[i]["codes"], c[i]["codes"]) for i in range(20))
    # Every crop is a contiguous slice of its source file.
    for i in range(30):
        item = a[i]
        codes = item["codes"].numpy()
        n = int(item["valid"].sum())
        matches = [name for name, src in arrays.items()
                   if any(np.array_equal(src[:, s : s + n], codes[:, :n]) for s in range(src.shape[1] - n + 1))]
        assert matches, f"crop {i} is not a slice of any file"


def test_short_files_are_padded_with_invalid_frames(tmp_path: Path) -> None:
    fake_dataset(tmp_path / "ds", [12])
    data = TokenCrops(tmp_path / "ds", crop_frames=20, split="all")
    item = data[0]
    assert item["valid"].tolist() == [True] * 12 + [False] * 8
    assert (item["codes"][:, 12:] == 0).all()
    assert item["cond"].shape == (20, 4) and torch.allclose(item["cond"][:12], torch.full((12, 4), 1 / 127))
    assert item["has_cond"]


def test_condition_rows_follow_their_file(tmp_path: Path) -> None:
    fake_dataset(tmp_path / "ds", [50, 50, 50])
    data = TokenCrops(tmp_path / "ds", crop_frames=10, split="all")
    for file in range(3):
        item = data.crop(file, 5)
        if file % 2 == 0:
            assert torch.allclose(item["cond"], torch.full((10, 4), (file + 1) / 127))
        else:  # no MIDI for this file: zeros, flagged
            assert not item["has_cond"] and (item["cond"] == 0).all()


def test_train_and_validation_split_by_file(tmp_path: Path) -> None:
    fake_dataset(tmp_path / "ds", [40] * 30)
    train = TokenCrops(tmp_path / "ds", crop_frames=10, split="train", val_fraction=0.2)
    val = TokenCrops(tmp_path / "ds", crop_frames=10, split="val", val_fraction=0.2)
    assert set(train.names).isdisjoint(val.names)
    assert set(train.names) | set(val.names) == {f"f{i}.wav" for i in range(30)}
    assert 1 <= len(val.names) <= 15
    with pytest.raises(ValueError):
        TokenCrops(tmp_path / "ds", crop_frames=10, split="test")


def test_dataloader_workers_and_distributed_sampler(tmp_path: Path) -> None:
    fake_dataset(tmp_path / "ds", [100, 200, 300])
    data = TokenCrops(tmp_path / "ds", crop_frames=16, split="all", seed=1, length=24)
    direct = torch.stack([data[i]["codes"] for i in range(24)])
    loader = DataLoader(data, batch_size=4, num_workers=2, collate_fn=collate)
    via_workers = torch.cat([batch["codes"] for batch in loader])
    assert torch.equal(direct, via_workers)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=0)
        indices = list(sampler)
        seen.append(set(indices))
        batch = next(iter(DataLoader(data, batch_size=len(indices), sampler=sampler, collate_fn=collate)))
        assert torch.equal(batch["codes"], torch.stack([data[i]["codes"] for i in indices]))
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(24))
