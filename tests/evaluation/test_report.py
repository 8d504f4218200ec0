"""`model_report` (what `audiogen eval` prints) on a tiny corpus folder written by the test: every section
is there with finite figures.

    .venv/bin/pytest tests/evaluation/test_report.py -q
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synth, write_wav
from tinymodel import make_tiny_model, write_sketch

from audiogen import AudioGen
from audiogen.evaluation.report import held_out_pairs, model_report, opus_roundtrip, print_model_report

pytestmark = pytest.mark.usefixtures("one_thread")

# 16 kHz, so the figures above 4 kHz have highs to measure; hop 64: 250 frames/s as the other tiny models.
SAMPLE_RATE = 16000


def write_corpus(root: Path, count: int = 3, seconds: float = 2.0) -> Path:
    """`root/audio/`: `count` WAVs with bright noise (highs above 4 kHz), each with its MIDI beside it."""
    folder = root / "audio"
    rng = np.random.default_rng(0)
    for i in range(count):
        wav = synth(seconds, SAMPLE_RATE, 1, seed=10 + i)
        wav = (wav + 0.05 * rng.standard_normal(wav.shape)).astype(np.float32)
        write_wav(folder / f"piece{i}.wav", sample_rate=SAMPLE_RATE, data=wav)
        write_sketch(folder / f"piece{i}.mid", seconds=seconds, tempo=100.0 + 10 * i)
    return root


def finite(section: dict) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) for v in section.values() if not isinstance(v, int))


def test_every_section_with_finite_figures(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    ag = AudioGen.load(make_tiny_model(tmp_path / "model", sample_rate=SAMPLE_RATE, ratios=(4, 4, 4)), device="cpu")
    assert ag.frame_rate == 250.0 and ag.conditional
    pairs = held_out_pairs(corpus, val_fraction=0.9)
    assert len(pairs) >= 2 and all(m == a.with_suffix(".mid") for a, m in pairs)

    torch.manual_seed(0)
    report = model_report(ag, corpus, files=2, seconds=1.0, loops=1, val_fraction=0.9, quiet=True)
    # the bundled composer serves a conditional model that has none of its own: composed loops too
    assert ag.has_composer
    assert set(report) == {"corpus", "held_out_files", "seconds_per_file", "codec", "lm", "render", "continuation",
                           "loops", "composed_loops", "real_time_factor"}
    assert report["held_out_files"] == [a.name for a, _ in pairs][:2]

    codec = report["codec"]
    assert {"kbps", "si_snr", "mel", "hf2k", "hf4k"} <= set(codec) and finite(codec)
    assert codec["kbps"] == pytest.approx(ag.codec.kbps) and codec["mel"] > 0 and codec["hf4k"] > 0
    if opus_roundtrip(torch.zeros(1, SAMPLE_RATE), SAMPLE_RATE, 6.0) is not None:  # ffmpeg with libopus here
        assert {"opus_si_snr", "opus_mel", "opus_hf2k", "opus_hf4k"} <= set(codec)

    lm = report["lm"]
    assert {"val_ce", "bits_per_second", "val_ce_k0", "val_ce_k1", "val_ce_without_midi"} <= set(lm) and finite(lm)
    # an untrained model is close to chance: about ln(64) nats per token
    assert 0.5 * math.log(64) < lm["val_ce"] < 2 * math.log(64) and lm["bits_per_second"] > 0

    render = report["render"]
    assert set(render) == {"chroma", "onset_f1", "synth_chroma", "synth_onset_f1"} and finite(render)
    assert all(0.0 <= v <= 1.0 for v in render.values())

    cont = report["continuation"]
    assert finite(cont) and cont["chance"] == 0.5 and cont["prompt_seconds"] == pytest.approx(0.3)
    assert cont["own_track"] in (0.0, 0.5, 1.0) and cont["own_track_repeat"] in (0.0, 0.5, 1.0)
    assert cont["energy_last3s"] >= cont["energy_last3s_min"] >= 0 and 0 <= cont["longest_quiet_s"] <= 0.7

    loops = report["loops"]
    assert loops["count"] == 1 and loops["bars"] == 4 and loops["bpm"] == 120 and finite(loops)
    assert loops["seam_max"] >= loops["seam_mean"] > 0 and loops["uncut_seam_mean"] > 0
    assert loops["timbre_seam_max"] >= loops["timbre_seam_mean"] > 0 and loops["uncut_timbre_seam_mean"] > 0
    composed = report["composed_loops"]
    assert finite(composed) and composed["timbre_seam_mean"] > 0 and 0 <= composed["sketch_chroma"] <= 1
    assert "uncut_seam_mean" not in composed

    rtf = report["real_time_factor"]
    assert set(rtf) == {"render", "continue", "loops"} and finite(rtf) and min(rtf.values()) > 0

    print_model_report(report)
    printed = capsys.readouterr().out
    for line in ("SI-SNR dB", "high-frequency ratio > 4 kHz", "bits per second", "onset F1", "seam score",
                 "own-track retrieval", "timbre seam", "chroma vs own sketch", "loops x real time"):
        assert line in printed
