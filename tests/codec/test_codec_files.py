"""The `audiogen` command line for codecs: encode / decode / eval / info, and bad input handling
(exit status 2, exactly one line on stderr, no traceback, no output file left behind).

    .venv/bin/pytest tests/codec/test_codec_files.py -q
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_cli, synth, write_recipe, write_wav

from audiogen import audio, cli
from audiogen.codec import files
from audiogen.evaluation.metrics import si_snr

pytestmark = pytest.mark.usefixtures("one_thread")


def test_encode_decode_round_trip_resamples_44k_stereo_to_the_codec(trained_codec, tmp_path, capsys):
    source = write_wav(tmp_path / "in.wav", 1.3, 44100, 2, seed=21)
    npz, out = tmp_path / "codes.npz", tmp_path / "out.wav"
    encoded = run_cli("codec", "encode", source, "-o", npz, "--codec", trained_codec.directory)
    assert encoded.returncode == 0, encoded.stderr
    length = round(1.3 * 44100 * 24000 / 44100)  # the original duration at the codec's rate
    frames = math.ceil(length / 64)
    assert f"2 codebooks x {frames} frames" in encoded.stdout
    with np.load(npz) as data:
        assert data["codes"].dtype == np.int16 and data["codes"].shape == (2, frames)
        assert int(data["sample_rate"]) == 24000 and int(data["channels"]) == 1 and int(data["length"]) == length
        assert str(data["codec"]) == str(trained_codec.directory)
        assert 0 <= data["codes"].min() and data["codes"].max() < 64
    assert cli.main(["codec", "decode", str(npz), "-o", str(out)]) == 0  # in-process: saves a start-up
    assert f"{out}: {length / 24000:.2f} s at 24000 Hz" in capsys.readouterr().out
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames) == (24000, 1, length)
    # the decoded audio resembles the input (measured 4.5 dB SI-SNR for this tiny codec)
    reference, sr = audio.load(source)
    reference = audio.prepare(reference, sr, target_rate=24000, channels=1)
    back, _ = audio.load(out)
    assert float(si_snr(reference[..., :length], back)) > 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.npz", "in.wav", "out.wav"]


def test_mono_input_at_the_codec_rate_keeps_its_exact_length(trained_codec, tmp_path, capsys):
    source = write_wav(tmp_path / "in.flac", data=synth(0.777, 24000, 1, seed=3))
    n = sf.info(str(source)).frames
    assert cli.main(["codec", "encode", str(source), "-o", str(tmp_path / "c.npz"),
                     "--codec", str(trained_codec.directory), "--quiet"]) == 0
    item = files.load(tmp_path / "c.npz")
    assert item.length == n and item.codes.shape == (2, math.ceil(n / 64)) and item.codes.dtype == torch.int64
    assert cli.main(["codec", "decode", str(tmp_path / "c.npz"), "-o", str(tmp_path / "o.wav"), "--quiet"]) == 0
    assert sf.info(str(tmp_path / "o.wav")).frames == n
    assert capsys.readouterr().out == ""  # --quiet


def test_codec_eval_prints_si_snr_mel_and_the_opus_reference(trained_codec, tmp_path, capsys):
    report = tmp_path / "report.json"
    status = cli.main(["codec", "eval", str(trained_codec.audio_dir), "--codec", str(trained_codec.directory),
                       "--seconds", "0.5", "--max-files", "3", "--json", str(report), "--quiet",
                       "--plots", str(tmp_path / "plots")])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[1].split()
    assert header[:5] == ["file", "si_snr", "mel", "hf2k", "hf4k"]
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["clip0.png", "clip1.png", "clip2.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    has_opus = shutil.which("ffmpeg") is not None
    assert ("opus_si_snr" in header and "opus_mel" in header) == has_opus
    assert [line.split()[0] for line in lines[2:]] == ["clip0.wav", "clip1.wav", "clip2.wav", "MEAN"]
    data = json.loads(report.read_text())
    assert data["kbps"] == pytest.approx(2 * 6 * 375 / 1000)
    mean = data["mean"]
    assert mean["si_snr"] > 2.0 and 0 < mean["mel"] < 1.2  # trained on these clips: measured 5.7 dB, 0.72
    assert 0 < mean["hf2k"] < 10 and 0 < mean["hf4k"] < 100
    if has_opus:
        assert math.isfinite(mean["opus_si_snr"]) and mean["opus_mel"] > 0


def test_info_lists_the_pretrained_codecs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "encodec_24khz: not found" in out and "encodec_48khz: not found" in out
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "encodec_48khz-7e698e3e.th").write_bytes(b"placeholder")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"encodec_48khz: {hub / 'encodec_48khz-7e698e3e.th'}" in out and "encodec_24khz: not found" in out
    assert out.startswith("audiogen ")


def _assert_user_error(status: int, err: str, *words: str) -> None:
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("audiogen: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def _bad_inputs(tmp_path, trained_codec):
    text = tmp_path / "text.wav"
    text.write_text("not audio\n")
    empty = write_wav(tmp_path / "empty.wav", data=np.zeros((1, 0), np.float32))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\x01garbage" * 20)
    zero_npz = tmp_path / "zero.npz"
    zero_npz.write_bytes(b"")
    good = tmp_path / "good.npz"
    assert cli.main(["codec", "encode", str(write_wav(tmp_path / "ok.wav", 0.2)), "-o", str(good),
                     "--codec", str(trained_codec.directory), "--quiet"]) == 0
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:100])
    item = files.load(good)
    item.codes = item.codes.clone()
    item.codes[0, 0] = 64  # outside the 64-entry codebook
    out_of_range = tmp_path / "out_of_range.npz"
    files.save(out_of_range, item, 1024)
    item.codes = item.codes[:, :0]
    no_frames = tmp_path / "no_frames.npz"
    files.save(no_frames, item, 1024)
    recipe = write_recipe(tmp_path / "recipe.toml", tmp_path)
    unknown_key = tmp_path / "unknown.toml"
    unknown_key.write_text(recipe.read_text().replace("[model]\n", "[model]\nfilterz = 3\n"))
    codec = ["--codec", str(trained_codec.directory)]
    out_wav, out_npz = tmp_path / "out" / "o.wav", tmp_path / "out" / "o.npz"
    return [
        (["codec", "encode", str(tmp_path / "missing.wav"), "-o", str(out_npz), *codec], out_npz, "no such file"),
        (["codec", "encode", str(text), "-o", str(out_npz), *codec], out_npz, "not a readable audio file"),
        (["codec", "encode", str(empty), "-o", str(out_npz), *codec], out_npz, "empty"),
        (["codec", "encode", str(good.with_name("ok.wav")), "-o", str(out_npz), "--codec", "encodec_96khz"],
         out_npz, "encodec_96khz"),
        (["codec", "decode", str(garbage), "-o", str(out_wav)], out_wav, "not an audiogen code file"),
        (["codec", "decode", str(zero_npz), "-o", str(out_wav)], out_wav, "not an audiogen code file"),
        (["codec", "decode", str(truncated), "-o", str(out_wav)], out_wav, "not an audiogen code file"),
        (["codec", "decode", str(out_of_range), "-o", str(out_wav)], out_wav, "in [0, 64)"),
        (["codec", "decode", str(no_frames), "-o", str(out_wav)], out_wav, "at least one frame"),
        (["codec", "decode", str(tmp_path / "nope.npz"), "-o", str(out_wav)], out_wav, "no such file"),
        (["codec", "encode", str(good.with_name("ok.wav")), "-o", str(tmp_path / "dirout" / "folder"), *codec],
         tmp_path / "dirout" / "folder" / "x", "is a folder"),
        (["codec", "decode", str(good), "-o", str(tmp_path / "out" / "o.mp3")], tmp_path / "out" / "o.mp3",
         "must end in"),
        (["train", "codec", str(recipe), "-o", str(tmp_path / "out" / "run"), "--train.steps=abc"],
         tmp_path / "out" / "run", "train.steps: expected an integer, got 'abc'"),
        (["train", "codec", str(unknown_key), "-o", str(tmp_path / "out" / "run")], tmp_path / "out" / "run",
         "unknown setting model.filterz"),
        (["train", "codec", str(tmp_path / "no_recipe.toml"), "-o", str(tmp_path / "out" / "run")],
         tmp_path / "out" / "run", "recipe not found"),
    ]


def test_bad_inputs_exit_2_with_one_line_and_no_output(trained_codec, tmp_path, capsys):
    cases = _bad_inputs(tmp_path, trained_codec)
    (tmp_path / "dirout" / "folder").mkdir(parents=True)  # an output path that is a folder
    capsys.readouterr()
    for argv, output, words in cases:
        status = cli.main(argv + ["--quiet"])
        captured = capsys.readouterr()
        _assert_user_error(status, captured.err, words)
        assert not output.exists(), argv
        leftovers = list(output.parent.iterdir()) if output.parent.exists() else []
        assert leftovers == [], (argv, leftovers)


def test_usage_errors_are_one_line_too(tmp_path, capsys):
    for argv in (["codec", "encode", "x.wav"], ["codec", "frobnicate"], ["codec", "decode", "x.npz", "-o", "y.wav",
                                                                         "--train.steps=3"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and "error" in err, (argv, err)


def test_the_real_entry_point_reports_a_missing_input_in_one_line(trained_codec, tmp_path):
    done = run_cli("codec", "encode", tmp_path / "missing.wav", "-o", tmp_path / "o.npz",
                   "--codec", trained_codec.directory)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"audiogen: error: {tmp_path / 'missing.wav'}: no such file\n"
    assert list(tmp_path.iterdir()) == []
