"""Token datasets survive interruptions: a SIGKILL before the first index, a full disk, two runs at once,
torn shard tails, a codec of another depth; and a malformed index.json is one error line, not a traceback.

Every recovered dataset is compared, entry by entry (codes and conditioning rows), with a dataset made by
one uninterrupted run, and its shard files must hold exactly what its index records.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from tinymodel import run_main, write_sketch

from audiogen import audio
from audiogen.codec import CodecConfig, EncodecCodec
from audiogen.fileio import folder_lock, is_temporary
from audiogen.tokens.format import COND_DTYPE, INDEX_NAME, codes_dtype, read_index, shard_bytes, shard_files, shard_path
from audiogen.tokens.tokenize import PAUSE_ENV, tokenize

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 8000  # the tiny codec: hop 32, 250 frames/s, 2 codebooks of 64
NAMES = ("a", "b", "c", "d")  # c.wav has no MIDI; the others are paired


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SimpleNamespace:
    """Four 1-second tones (three with MIDI), a primed tiny codec, and the dataset one uninterrupted run makes."""
    root = tmp_path_factory.mktemp("integrity")
    clips = root / "audio"
    clips.mkdir()
    for i, name in enumerate(NAMES):
        t = np.arange(SR) / SR
        sf.write(clips / f"{name}.wav", (0.3 * np.sin(2 * np.pi * (180 + 70 * i) * t)).astype(np.float32), SR)
        if name != "c":
            write_sketch(clips / f"{name}.mid", seconds=1.0, tempo=90 + 20 * i)
    torch.manual_seed(0)
    codec = EncodecCodec(CodecConfig(sample_rate=SR, n_filters=4, dimension=16, ratios=(4, 4, 2), lstm_layers=0,
                                     max_codebooks=2, num_codebooks=2, codebook_size=64))
    with torch.no_grad():  # one training pass runs k-means: codes then differ from file to file
        codec.train()(torch.randn(2, 1, SR) * 0.3)
    codec.eval().save(root / "codec")
    codec = EncodecCodec.load(root / "codec")
    reference = root / "reference"
    summary = tokenize(clips, reference, codec, codec_spec=str(root / "codec"), quiet=True)
    assert summary.encoded == 4 and summary.paired == 3
    stored = contents(reference)
    for name in NAMES:  # the reference holds what the codec makes, and files differ, so comparisons can fail
        wav, sr = audio.load(clips / f"{name}.wav")
        expected = codec.encode(audio.prepare(wav, sr, target_rate=SR, channels=1)[None])[0]
        assert np.array_equal(stored[f"{name}.wav"]["codes"], expected.T.numpy()), name
    assert not np.array_equal(stored["a.wav"]["codes"], stored["b.wav"]["codes"])
    assert not np.array_equal(stored["a.wav"]["cond"], stored["b.wav"]["cond"])
    return SimpleNamespace(audio=clips, codec=root / "codec", reference=reference)


def contents(dataset: Path) -> dict[str, dict[str, Any]]:
    """Each entry's metadata, codes `[T, K]` and conditioning rows `[T, F]` (None without MIDI), read from
    the raw shards; asserts every shard file holds exactly what the index records and nothing else exists."""
    index = read_index(dataset)
    K, dtype = index["num_codebooks"], codes_dtype(index["codebook_size"])
    expected_files = set()
    for number in range(len(index["shards"])):
        for kind in ("codes", "cond"):
            path = shard_path(dataset, kind, number)
            size = path.stat().st_size if path.exists() else 0
            assert size == shard_bytes(index, kind, number), f"{path.name}: {size} bytes"
            if path.exists():
                expected_files.add(path)
    assert {path for _, path in shard_files(dataset)} == expected_files
    out = {}
    for name, entry in index["entries"].items():
        shard = index["shards"][entry["shard"]]
        codes = np.fromfile(shard_path(dataset, "codes", entry["shard"]), dtype=dtype).reshape(-1, K)
        cond = None
        if entry["cond_offset"] is not None:
            rows = np.fromfile(shard_path(dataset, "cond", entry["shard"]), dtype=COND_DTYPE)
            start = entry["cond_offset"]
            cond = rows.reshape(-1, shard["cond_features"])[start: start + entry["frames"]]
        out[name] = {"meta": {k: entry[k] for k in ("hash", "midi", "midi_hash", "frames", "seconds")},
                     "codes": codes[entry["offset"]: entry["offset"] + entry["frames"]], "cond": cond}
    return out


def assert_same(dataset: Path, reference: Path) -> None:
    got, want = contents(dataset), contents(reference)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name]["meta"] == want[name]["meta"], name
        assert np.array_equal(got[name]["codes"], want[name]["codes"]), f"{name}: codes differ"
        if want[name]["cond"] is None:
            assert got[name]["cond"] is None, name
        else:
            assert np.array_equal(got[name]["cond"], want[name]["cond"]), f"{name}: conditioning differs"


def tokenize_cli(corpus: SimpleNamespace, out: Path) -> int:
    return run_main("tokenize", corpus.audio, "--codec", corpus.codec, "-o", out, "--quiet")


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error: "), err
    assert "Traceback" not in err
    return lines[0]


def wait_for_line(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    """Read the process's stderr until a line containing `marker` (fails on exit or timeout)."""
    seen, deadline = b"", time.monotonic() + timeout
    fd = proc.stderr.fileno()
    while marker.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} within {timeout} s: {seen.decode(errors='replace')[-2000:]}"
        ready, _, _ = select.select([fd], [], [], left)
        chunk = os.read(fd, 65536) if ready else b""
        assert chunk or not ready, f"exited {proc.wait()} before {marker!r}: {seen.decode(errors='replace')[-2000:]}"
        seen += chunk


def test_second_run_is_refused_and_a_kill_before_the_first_index_recovers(corpus, tmp_path, capsys) -> None:
    """A real tokenize, paused after its first file's shard bytes are on disk but before any index.json:
    a second run on the folder exits 2 at once; then the first is SIGKILLed there, and a rerun must not
    pair any entry with another file's codes."""
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "audiogen", "tokenize", str(corpus.audio), "--codec", str(corpus.codec),
           "-o", str(out), "--quiet"]
    env = {**os.environ, PAUSE_ENV: "120", "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_for_line(first, f"paused before {INDEX_NAME}")
        # Two runs at once: the second stops at once, touching nothing.
        assert tokenize_cli(corpus, out) == 2
        assert "in use by another audiogen tokenize" in one_error_line(capsys.readouterr().err)
    finally:
        first.kill()  # SIGKILL
        first.wait()
        first.stderr.close()
    assert first.returncode == -signal.SIGKILL
    # The window of the issue: a.wav's codes and conditioning are on disk, no index vouches for them.
    want = contents(corpus.reference)["a.wav"]
    assert not (out / INDEX_NAME).exists()
    assert (out / "codes-00000.bin").stat().st_size == want["codes"].nbytes
    assert (out / "cond-00000.bin").stat().st_size == want["cond"].nbytes
    assert tokenize_cli(corpus, out) == 0
    assert "(4 encoded, 0 unchanged" in capsys.readouterr().out
    assert_same(out, corpus.reference)


def test_a_held_lock_refuses_a_run(corpus, tmp_path, capsys) -> None:
    """The lock is on the dataset folder itself (flock): held by anyone, tokenize refuses without writing."""
    out = tmp_path / "ds"
    out.mkdir()
    with folder_lock(out):
        assert tokenize_cli(corpus, out) == 2
    assert "in use" in one_error_line(capsys.readouterr().err)
    assert list(out.iterdir()) == []
    assert tokenize_cli(corpus, out) == 0  # released: the run goes ahead
    assert_same(out, corpus.reference)


@pytest.mark.parametrize("keep_index", [True, False], ids=["with-index", "no-index"])
def test_torn_tails_and_stray_shards_are_cut(corpus, tmp_path, capsys, keep_index) -> None:
    """What a killed or out-of-disk run leaves: a torn conditioning row (299 of 325 bytes), half a codes frame,
    a shard the index never recorded; without an index, every shard byte is such a leftover."""
    out = tmp_path / "ds"
    shutil.copytree(corpus.reference, out)
    with open(out / "cond-00000.bin", "ab") as handle:
        handle.write(b"\x05" * 299)
    with open(out / "codes-00000.bin", "ab") as handle:
        handle.write(b"\x7f" * 3)
    (out / "codes-00001.bin").write_bytes(b"\x01" * 40)
    (out / "cond-00001.bin").write_bytes(b"\x01" * 10)
    if not keep_index:
        (out / INDEX_NAME).unlink()
    assert tokenize_cli(corpus, out) == 0
    assert f"({0 if keep_index else 4} encoded" in capsys.readouterr().out
    assert_same(out, corpus.reference)


def test_another_depth_of_the_same_codec_starts_afresh(corpus, tmp_path) -> None:
    """Same weights (same fingerprint) at 1 codebook instead of 2: the old 2-wide frames cannot be continued."""
    out = tmp_path / "ds"
    shutil.copytree(corpus.reference, out)
    one = EncodecCodec.load(corpus.codec, num_codebooks=1)
    assert tokenize(corpus.audio, out, one, codec_spec=str(corpus.codec), quiet=True).encoded == 4
    tokenize(corpus.audio, tmp_path / "fresh", one, codec_spec=str(corpus.codec), quiet=True)
    assert read_index(out)["num_codebooks"] == 1
    assert_same(out, tmp_path / "fresh")


@pytest.fixture
def small_disk(tmp_path):
    """`fill(free_bytes)`: a tmpfs at tmp_path/disk with that much room left (needs root; skipped otherwise);
    `grow()`: make it roomy. Unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = []

    def fill(free: int) -> Path:
        page = os.sysconf("SC_PAGE_SIZE")
        try:
            proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={free + page}", "tmpfs", str(mount)],
                                  capture_output=True, text=True)
        except FileNotFoundError:
            pytest.skip("no mount command here")
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.strip()}")
        mounted.append(mount)
        (mount / ".filler").write_bytes(b"\0" * page)  # tmpfs counts whole pages: a size of 0 means unlimited
        return mount

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)

    yield SimpleNamespace(fill=fill, grow=grow)
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


def pages(nbytes: int) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    return -(-nbytes // page) * page


@pytest.mark.parametrize("fails", ["codes", "cond", "index", "later"])
def test_full_disk_is_one_line_and_a_roomy_rerun_matches(corpus, tmp_path, capsys, small_disk, fails) -> None:
    """A real ENOSPC (a tmpfs with just enough room to fail at the chosen write of the first file, or somewhere
    later): exit 2 with "disk full writing PATH", no temporary file; then, with room, the rerun matches."""
    first = contents(corpus.reference)["a.wav"]
    codes, cond = pages(first["codes"].nbytes), pages(first["cond"].nbytes)
    total = sum(pages(path.stat().st_size) for _, path in shard_files(corpus.reference))
    free = {"codes": 0, "cond": codes + cond // 2, "index": codes + cond, "later": total // 2}[fails]
    out = small_disk.fill(free) / "ds"
    assert tokenize_cli(corpus, out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"audiogen: error: disk full writing {out}{os.sep}")
    if fails != "later":
        target = {"codes": "codes-00000.bin", "cond": "cond-00000.bin", "index": INDEX_NAME}[fails]
        assert line == f"audiogen: error: disk full writing {out / target}"
    assert not [p.name for p in out.iterdir() if is_temporary(p)]
    if fails in ("codes", "cond"):  # the torn append was cut back: no bytes the index cannot vouch for
        assert not shard_files(out) and not (out / INDEX_NAME).exists()
    if fails == "index":  # the state: a.wav's bytes are durable, no index vouches for them
        assert shard_files(out) and not (out / INDEX_NAME).exists()
    if (out / INDEX_NAME).exists():
        index = read_index(out)  # what the index records is intact
        assert 0 < len(index["entries"]) < 4
    small_disk.grow()
    assert tokenize_cli(corpus, out) == 0
    assert_same(out, corpus.reference)


# Changes to a valid index (i), its entry for a.wav (e) and its shard 0 (s).
MALFORMED = {
    "no-codec": lambda i, e, s: i.pop("codec"),
    "codec-a-string": lambda i, e, s: i.update(codec="encodec"),
    "no-shards": lambda i, e, s: i.pop("shards"),
    "shards-an-object": lambda i, e, s: i.update(shards={"0": s}),
    "shard-a-number": lambda i, e, s: i.update(shards=[7]),
    "shard-without-frames": lambda i, e, s: s.pop("frames"),
    "entries-a-list": lambda i, e, s: i.update(entries=list(i["entries"].values())),
    "entry-a-string": lambda i, e, s: i["entries"].update({"a.wav": "codes-00000.bin"}),
    "entry-without-offset": lambda i, e, s: e.pop("offset"),
    "negative-frames": lambda i, e, s: e.update(frames=-5),
    "huge-frames": lambda i, e, s: e.update(frames=10**15),
    "fractional-frames": lambda i, e, s: e.update(frames=250.5),
    "frames-a-string": lambda i, e, s: e.update(frames="250"),
    "frames-true": lambda i, e, s: e.update(frames=True),
    "no-frames-at-all": lambda i, e, s: [entry.update(frames=0) for entry in i["entries"].values()],
    "offset-past-shard": lambda i, e, s: e.update(offset=s["frames"]),
    "shard-out-of-range": lambda i, e, s: e.update(shard=3),
    "cond-past-rows": lambda i, e, s: e.update(cond_offset=s["cond_frames"]),
    "shard-past-its-file": lambda i, e, s: s.update(frames=s["frames"] + 10**6),
    "cond-rows-past-their-file": lambda i, e, s: s.update(cond_frames=s["cond_frames"] + 10),
    "no-num-codebooks": lambda i, e, s: i.pop("num_codebooks"),
    "codebook-size-zero": lambda i, e, s: i.update(codebook_size=0),
    "frame-rate-a-string": lambda i, e, s: i.update(frame_rate="250"),
    "no-format-version": lambda i, e, s: i.pop("format_version"),
}


def lm_recipe(path: Path, dataset: Path) -> Path:
    path.write_text(f'[data]\ndataset = "{dataset}"\ncrop_seconds = 0.1\nval_crops = 2\n[model]\ndim = 16\n'
                    'num_layers = 1\nnum_heads = 1\ncontext = 32\n[train]\nsteps = 1\nbatch_size = 2\n'
                    'threads = 1\ndevice = "cpu"\n')
    return path


def test_the_valid_dataset_trains(corpus, tmp_path) -> None:
    """The control for the cases below: the same recipe on the untouched dataset trains."""
    assert run_main("train", "lm", lm_recipe(tmp_path / "lm.toml", corpus.reference), "-o", tmp_path / "run",
                    "--quiet") == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("case", [*MALFORMED, "not-json", "not-an-object", "codes-file-cut-short"])
def test_malformed_index_is_one_line_for_tokenize_and_train_lm(corpus, tmp_path, capsys, case) -> None:
    out = tmp_path / "ds"
    shutil.copytree(corpus.reference, out)
    path = out / INDEX_NAME
    if case == "not-json":
        path.write_text('{"format_version": 1, "entries": ')
    elif case == "codes-file-cut-short":
        with open(out / "codes-00000.bin", "rb+") as handle:
            handle.truncate(1000)
    elif case == "not-an-object":
        path.write_text(json.dumps([1, 2, 3]))
    else:
        index = json.loads(path.read_text())
        MALFORMED[case](index, index["entries"]["a.wav"], index["shards"][0])
        path.write_text(json.dumps(index))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    recipe = lm_recipe(tmp_path / "lm.toml", out)
    assert run_main("train", "lm", recipe, "-o", tmp_path / "run", "--quiet") == 2
    trained = one_error_line(capsys.readouterr().err)
    assert tokenize_cli(corpus, out) == 2
    tokenized = one_error_line(capsys.readouterr().err)
    for line in (trained, tokenized):
        assert str(out) in line, line  # names the file at fault
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # tokenize changed nothing
    assert not (tmp_path / "run").exists()
