"""`export_model`: a self-contained model folder (LM + codec) in fp16 that loads and generates, and a
codec that would make other codes refused with one line.

    .venv/bin/pytest tests/test_export.py -q
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tinymodel import SAMPLE_RATE, make_tiny_model

from audiogen import AudioGen, checkpoint
from audiogen.cli import main
from audiogen.codec import EncodecCodec
from audiogen.errors import AudiogenError
from audiogen.export import export_model
from audiogen.lm.model import LM

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("export") / "lm")


def test_fp16_export_loads_and_generates(model: Path, tmp_path: Path) -> None:
    out = export_model(model, tmp_path / "bundle", dtype="fp16")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["codec/config.json", "codec/model.safetensors", "config.json", "model.safetensors"]
    # the weights are stored in fp16 (integer buffers as they were) and the folders say so
    for folder in (out, out / "codec"):
        stored = load_file(str(folder / "model.safetensors"))
        assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
        assert checkpoint.read_config(folder)["stored_dtype"] == "fp16"
    meta = checkpoint.read_config(out, kind="lm")
    assert meta["exported_from"] == str(model)
    assert meta["codec"]["fingerprint"] == EncodecCodec.load(out / "codec").fingerprint()

    # the LM's weights are the source's up to fp16 rounding
    source, exported = LM.load(model).state_dict(), LM.load(out).state_dict()
    assert source.keys() == exported.keys()
    for name, value in source.items():
        assert exported[name].dtype == value.dtype
        torch.testing.assert_close(exported[name], value, rtol=1e-3, atol=1e-4, msg=name)

    ag = AudioGen.load(out, device="cpu")
    assert ag.model_dir == out and ag.conditional and ag.sample_rate == SAMPLE_RATE
    wav, sr = ag.generate(seconds=0.1, count=2, seed=3)
    again, _ = ag.generate(seconds=0.1, count=2, seed=3)
    assert sr == SAMPLE_RATE and wav.shape == (2, 1, round(0.1 * SAMPLE_RATE)) and wav.dtype == np.float32
    assert np.isfinite(wav).all() and np.abs(wav).max() > 0 and np.array_equal(wav, again)


def test_a_fine_tuned_decoder_is_taken(model: Path, tmp_path: Path) -> None:
    # Only the decoder changed: the same codes (same fingerprint), so --codec may bundle it.
    codec = EncodecCodec.load(model / "codec")
    with torch.no_grad():
        for p in codec.decoder.parameters():
            p.mul_(1.5)
    codec.save(tmp_path / "decoder_tuned")
    out = export_model(model, tmp_path / "bundle", codec_dir=tmp_path / "decoder_tuned", dtype="fp32")
    bundled = EncodecCodec.load(out / "codec")
    tuned = next(bundled.decoder.parameters())
    assert torch.equal(tuned, next(codec.decoder.parameters()))  # fp32: stored as it was
    assert AudioGen.load(out, device="cpu").codec.fingerprint() == codec.fingerprint()


def test_a_codec_with_another_fingerprint_is_refused(model: Path, tmp_path: Path, capsys) -> None:
    codec = EncodecCodec.load(model / "codec")
    with torch.no_grad():
        next(codec.encoder.parameters()).add_(0.05)  # another encoder: other codes
    codec.save(tmp_path / "other")
    target = tmp_path / "bundle"
    with pytest.raises(AudiogenError, match="produces other codes") as err:
        export_model(model, target, codec_dir=tmp_path / "other")
    assert "\n" not in str(err.value)
    assert not target.exists()

    # through the CLI: exit 2, one line on stderr, nothing written
    assert main(["export", str(model), "-o", str(target), "--codec", str(tmp_path / "other"), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogen: error:") and "produces other codes" in lines[0]
    assert not target.exists()


def test_unknown_dtype_is_refused(model: Path, tmp_path: Path) -> None:
    with pytest.raises(AudiogenError, match="--dtype must be one of"):
        export_model(model, tmp_path / "bundle", dtype="int8")
    assert not (tmp_path / "bundle").exists()
