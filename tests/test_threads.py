"""Thread counts that fit the machine's load (audiogen/threads.py): reading /proc/stat, the count chosen for
a load, a real busy-looping process seen and answered, the count restored, the off switch, and that the
tokens a seed gives do not depend on the thread count a decode loop ran on.

    .venv/bin/pytest tests/test_threads.py -q
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from audiogen import threads
from audiogen.errors import AudiogenError
from audiogen.generation.options import SamplingConfig
from audiogen.generation.token_loop import generate_tokens
from audiogen.lm.model import LM, LMConfig

linux = pytest.mark.skipif(threads.read_stat() is None, reason="no /proc/stat here")

STAT = """cpu  100 50 30 1000 7 2 3 5 0 0
cpu0 60 20 15 500 3 1 2 3 0 0
cpu1 40 30 15 500 4 1 1 2 0 0
intr 12345
"""


def test_read_stat_counts_busy_time_and_cpus():
    busy, cpus = threads.read_stat(STAT)
    assert cpus == 2
    # user + nice + system + irq + softirq + steal, in clock ticks -> seconds
    assert busy == pytest.approx((100 + 50 + 30 + 2 + 3 + 5) / threads._TICK)


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu  a b c d\n", "cpu  1 2\n"])
def test_read_stat_refuses_what_it_cannot_read(text):
    assert threads.read_stat(text) is None


@pytest.mark.parametrize(("others", "cpus", "ceiling", "want"), [
    (0.0, 2, 2, 2), (0.45, 2, 2, 2), (0.55, 2, 2, 1), (1.0, 2, 2, 1), (1.9, 2, 2, 1), (3.0, 2, 2, 1),
    (0.0, 8, 4, 4), (3.0, 8, 8, 5), (0.0, 2, 1, 1),
])
def test_threads_for_leaves_the_cores_others_use(others, cpus, ceiling, want):
    assert threads.threads_for(others, cpus, ceiling) == want


@pytest.fixture
def hog():
    """A process spinning on one core (what a busy laptop has), at the test's own priority."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@linux
def test_a_spinning_process_is_seen_and_costs_a_thread(hog, two_threads, monkeypatch):
    monkeypatch.setenv(threads.ENV, "1")
    load = threads.LoadMonitor()
    time.sleep(0.4)
    others = load.read()
    assert others is not None and others >= 0.6, others  # the hog's core (our own time is left out)
    governor = threads.Governor(2, load=load)
    time.sleep(0.2)
    chosen = governor()
    assert chosen == threads.threads_for(load.others, load.cpus, 2)
    assert torch.get_num_threads() == chosen
    if load.cpus == 2:
        assert chosen == 1


@linux
def test_fitted_restores_the_count_and_the_switch_turns_it_off(hog, two_threads, monkeypatch):
    monkeypatch.setenv(threads.ENV, "0")
    time.sleep(0.2)
    with threads.fitted() as refit:
        assert refit() == 2 and torch.get_num_threads() == 2  # off: the hog changes nothing
    monkeypatch.setenv(threads.ENV, "1")
    time.sleep(0.2)
    with threads.fitted():
        inside = torch.get_num_threads()
    assert torch.get_num_threads() == 2
    if threads.monitor().cpus == 2:
        assert inside == 1


@pytest.mark.parametrize("value", ["2", "yes", "", "-1"])
def test_a_bad_switch_is_one_line(value, monkeypatch, capsys):
    from audiogen.cli import main

    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(AudiogenError, match=threads.ENV):
        threads.adaptive()
    assert main(["info"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and threads.ENV in err[0], err


def _tokens(model: LM, batch: int) -> torch.Tensor:
    model.clear_cache()
    return generate_tokens(model, num_frames=40, batch_size=batch, sampling=SamplingConfig(seed=3, top_k=20),
                           progress=False)


@linux
@pytest.mark.parametrize("batch", [1, 16])
def test_tokens_do_not_depend_on_the_thread_count(batch, two_threads, monkeypatch):
    """The decode loop's products split rows over threads, never one sum: one thread, two, or a count that
    changes mid-loop under load give the same tokens (oneDNN kernels at batch 16, XNNPACK's at 1)."""
    torch.manual_seed(0)
    model = LM(LMConfig(num_codebooks=4, codebook_size=64, dim=64, num_layers=2, num_heads=2, context=32)).eval()
    monkeypatch.setenv(threads.ENV, "0")
    two = _tokens(model, batch)
    if batch == 16:
        assert model._decoder.kind == "onednn"  # the kernels that run on every thread given
    torch.set_num_threads(1)
    one = _tokens(model, batch)
    torch.set_num_threads(2)
    monkeypatch.setenv(threads.ENV, "1")
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        governed = _tokens(model, batch)
    finally:
        proc.kill()
        proc.wait()
    assert torch.equal(two, one)
    assert torch.equal(two, governed)


@linux
def test_the_codec_output_does_not_depend_on_the_load(two_threads, monkeypatch):
    """The codec's convolutions round differently on one thread than on two, so it keeps the count it is
    given: with adapting on and a core taken by another process, decode and encode are bitwise the idle ones."""
    from audiogen.codec import CodecConfig, EncodecCodec

    torch.manual_seed(0)
    codec = EncodecCodec(CodecConfig(n_filters=4, dimension=16, ratios=[4, 4], num_codebooks=2,
                                     max_codebooks=2, codebook_size=32, sample_rate=8000)).eval()
    codes = torch.randint(0, 32, (2, 2, 400))
    wav = torch.randn(2, 1, 8000) * 0.1
    monkeypatch.setenv(threads.ENV, "0")
    idle_wav, idle_codes = codec.decode(codes), codec.encode(wav)
    torch.set_num_threads(1)
    assert not torch.equal(codec.decode(codes), idle_wav)  # what a count chosen by the load would change
    torch.set_num_threads(2)
    monkeypatch.setenv(threads.ENV, "1")
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert torch.equal(codec.decode(codes), idle_wav) and torch.equal(codec.encode(wav), idle_codes)
    finally:
        proc.kill()
        proc.wait()
