"""Bad input to the codec commands is one line on stderr, exit status 2, no traceback, no file: `codec eval
--max-files -1` (which dropped a file) or 0, a folder whose only file is one sample long, `codec decode` of a
code file whose scale is NaN or whose codes have the wrong shape or type, and a pretrained checkpoint in the
hub cache that is refused (torch's own warnings about what it holds stay quiet).

    .venv/bin/pytest tests/codec/test_codec_bad_input.py -q
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import prime_codec, tiny_codec_config, write_wav
from tinymodel import run_main as run_cli

from audiogen.codec import EncodecCodec
from audiogen.codec.encodec import PRETRAINED

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("codec_inputs")
    torch.manual_seed(0)
    codec = base / "codec"
    prime_codec(EncodecCodec(tiny_codec_config())).save(codec)
    clip = write_wav(base / "clip.wav", 0.5, 24000)
    assert run_cli("codec", "encode", clip, "-o", base / "good.npz", "--codec", codec, "--quiet") == 0
    one = base / "one_sample"
    write_wav(one / "tiny.wav", data=np.full((1, 1), 0.1, np.float32))
    fields = dict(np.load(base / "good.npz"))
    changes = {
        "scale-nan": {"scale": np.float64(np.nan)}, "scale-inf": {"scale": np.float64(np.inf)},
        "scale-negative": {"scale": np.float64(-1.0)},
        "codes-float": {"codes": fields["codes"].astype(np.float32) + 0.5},
        "codes-3d": {"codes": fields["codes"][None]}, "codes-bool": {"codes": fields["codes"] > 3},
        "sample-rate-0": {"sample_rate": np.int64(0)}, "channels-5": {"channels": np.int64(5)},
        "length-negative": {"length": np.int64(-1)}, "sample-rate-array": {"sample_rate": np.arange(3)},
        "bandwidth-inf": {"bandwidth": np.float64(np.inf)}, "identity-list": {"identity": np.str_("[1, 2]")},
    }
    for name, change in changes.items():
        np.savez(base / f"{name}.npz", **{**fields, **change})
    return {"base": base, "codec": codec, "clip": clip, "one": one}


CASES = {
    "eval-max-files-negative": (["codec", "eval", "{base}/one_sample", "--max-files", "-1", "--codec", "{codec}"],
                                "--max-files must be at least 1"),
    "eval-max-files-zero": (["codec", "eval", "{base}/one_sample", "--max-files", "0", "--codec", "{codec}"],
                            "--max-files must be at least 1"),
    "eval-seconds-nan": (["codec", "eval", "{base}/one_sample", "--seconds", "nan", "--codec", "{codec}"],
                         "--seconds must be a positive number"),
    "eval-one-sample-file": (["codec", "eval", "{base}/one_sample", "--no-reference", "--codec", "{codec}"],
                             "too short"),
    **{f"decode-{name}": (["codec", "decode", f"{{base}}/{name}.npz", "-o", "{out}/x.wav"], words)
       for name, words in {
           "scale-nan": "scale must be a positive finite number, got nan",
           "scale-inf": "scale must be a positive finite number, got inf",
           "scale-negative": "scale must be a positive finite number", "codes-float": "not an audiogen code file",
           "codes-3d": "not an audiogen code file", "codes-bool": "not an audiogen code file",
           "sample-rate-0": "not an audiogen code file", "channels-5": "not an audiogen code file",
           "length-negative": "not an audiogen code file", "sample-rate-array": "not an audiogen code file",
           "bandwidth-inf": "bandwidth must be a positive number", "identity-list": "not an audiogen code file",
       }.items()},
}


def _one_line(status: int, err: str, words: str) -> None:
    assert status == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("audiogen: error: ") and words in err, err


@pytest.mark.parametrize("case", list(CASES))
def test_bad_codec_input_is_one_line_and_no_file(inputs, tmp_path, case, capsys):
    argv, words = CASES[case]
    out = tmp_path / "out"
    status = run_cli(*[a.format(out=out, **inputs) for a in argv], "--quiet")
    _one_line(status, capsys.readouterr().err, words)
    assert not out.exists()


@pytest.fixture(scope="module")
def refused_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Files in the place of Meta's encodec_24khz checkpoint that must be refused: sparse tensors (torch warns
    while loading them) and the right tensors full of NaN."""
    base = tmp_path_factory.mktemp("hub")
    sparse = base / "sparse.th"
    torch.save({"encoder.model.0.conv.conv.weight_v": torch.eye(4).to_sparse()}, sparse)
    state = EncodecCodec(PRETRAINED["encodec_24khz"][1]).state_dict()
    nan = base / "nan.th"
    torch.save({k: v.clone().fill_(float("nan")) if v.is_floating_point() else v for k, v in state.items()}, nan)
    return {"sparse": sparse, "nan": nan}


@pytest.mark.parametrize("kind, words", [("sparse", "tensors do not match"), ("nan", "weights are not finite")])
def test_a_refused_hub_checkpoint_is_one_line_and_no_warning(inputs, refused_checkpoints, tmp_path, monkeypatch,
                                                             capsys, kind, words):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / PRETRAINED["encodec_24khz"][0]).write_bytes(refused_checkpoints[kind].read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # torch.hub.get_dir() reads it on each call
    out = tmp_path / "out.npz"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = run_cli("codec", "encode", inputs["clip"], "-o", out, "--codec", "encodec_24khz", "--quiet")
    _one_line(status, capsys.readouterr().err, words)
    assert [str(w.message) for w in caught] == []  # would be printed under the error line outside pytest
    assert not out.exists()
