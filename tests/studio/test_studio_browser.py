"""The studio in a real browser: headless Chromium (Debian's) opens the page `audiogen serve` serves and does what a
person would, on a tiny model made in the test.

    .venv/bin/pytest tests/studio/test_studio_browser.py -q

* a MIDI sketch is uploaded and rendered; the page's <audio> element loads the result (Chromium decoded it), the
  WAV downloaded through the page's link has the length and sample rate asked for, and a screenshot is saved;
* a loop made in the page downloads with its loop points (smpl chunk: start 0, the loop's exact length, its BPM);
* a corrupt MIDI upload, and an impossible BPM, show in the page exactly the line `audiogen render` / `audiogen loops`
  print for the same input, and leave no file in the output folder;
* an upload over the cap is refused in the page with one line; the request's other file, already uploaded, is
  given back, so nothing is left.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import soundfile as sf
from studio_helpers import chromium, files_under, running_studio
from tinymodel import SAMPLE_RATE, run_main, write_sketch

from audiogen import AudioGen, audio
from audiogen.generation.loops import loop_length

TIMEOUT_MS = 60_000  # generous: the machine is shared; a tiny render takes about a second


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def studio(tiny_engine: AudioGen, tmp_path: Path):
    """(url, output folder): a fresh studio per test, so each test sees exactly the files it caused."""
    out = tmp_path / "studio-out"
    with running_studio(tiny_engine, out, max_upload_mb=1.0) as (url, _):
        yield url, out


@pytest.fixture
def page(browser, studio):
    url, _ = studio
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()


def generate(page) -> None:
    page.click("#generate")


def download(page, job_card: str, name: str, folder: Path) -> Path:
    with page.expect_download() as info:
        page.click(f"{job_card} a[download='{name}']")
    path = folder / name
    info.value.save_as(path)
    return path


def assert_empty_soon(folder: Path, timeout: float = 10.0) -> None:
    """No file under `folder` (the page gives uploads back just after it shows the error: allow it a moment)."""
    deadline = time.time() + timeout
    while files_under(folder) and time.time() < deadline:
        time.sleep(0.05)
    assert files_under(folder) == []


def cli_line(capsys, *args: str) -> str:
    """The error line `audiogen ARGS...` prints (run in this process, in the test's folder)."""
    capsys.readouterr()
    assert run_main(*args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_render_a_midi_sketch_in_the_page(page, studio, tmp_path: Path) -> None:
    _, out = studio
    sketch = write_sketch(tmp_path / "sketch.mid", seconds=1.0)
    page.set_input_files("#render-midi", str(sketch))
    page.fill("#render-seconds", "1.5")
    page.fill("#render-seed", "3")
    generate(page)
    card = "article[data-task=render][data-state=done]"
    page.wait_for_selector(f"{card} audio")
    # The browser fetched and decoded the WAV: the player knows its length.
    duration = page.wait_for_function("() => { const a = document.querySelector("
                                      "'article[data-state=done] audio'); return a && a.duration > 0 && a.duration; }")
    assert duration.json_value() == pytest.approx(1.5, abs=0.01)
    page.wait_for_function("() => document.querySelector('article[data-state=done] img').naturalWidth > 0")
    wav = download(page, card, "render.wav", tmp_path)
    info = sf.info(str(wav))
    assert (info.frames, info.samplerate, info.channels) == (int(1.5 * SAMPLE_RATE), SAMPLE_RATE, 1)
    assert wav.read_bytes() == next(out.glob("*/render.wav")).read_bytes()
    assert "sketch.mid" in page.inner_text(card) and page.is_hidden("#error")
    page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
    assert (tmp_path / "studio.png").stat().st_size > 10_000


def test_a_loop_downloads_with_its_loop_points(page, studio, tmp_path: Path) -> None:
    page.click("#tasks button[data-task=loops]")
    for field, value in (("count", "1"), ("bars", "1"), ("bpm", "96"), ("beats_per_bar", "3")):
        page.fill(f"#loops-{field}", value)
    page.select_option("#loops-sketch", "free")
    page.select_option("#loops-format", "wav")
    generate(page)
    card = "article[data-task=loops][data-state=done]"
    page.wait_for_selector(f"{card} audio")
    wav = download(page, card, "loops.wav", tmp_path)
    length = loop_length(1, 96.0, 3, SAMPLE_RATE)
    assert sf.info(str(wav)).frames == length and sf.info(str(wav)).samplerate == SAMPLE_RATE
    loop = audio.read_loop_info(wav)
    assert (loop.start, loop.end, loop.bpm, loop.beats, loop.beats_per_bar) == (0, length - 1, 96.0, 3, 3)
    assert f"loop 0 + {length} samples" in page.inner_text(card)


def test_a_corrupt_midi_shows_the_cli_line_and_leaves_nothing(page, studio, tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    _, out = studio
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd this is not a MIDI file at all")
    monkeypatch.chdir(tmp_path)
    expected = cli_line(capsys, "render", "corrupt.mid", "-o", "out.wav", "--model", "nowhere")
    assert expected == "audiogen: error: corrupt.mid: not a readable MIDI file"
    page.set_input_files("#render-midi", str(corrupt))
    generate(page)
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == expected
    assert_empty_soon(out)


def test_an_impossible_bpm_shows_the_cli_line_and_leaves_nothing(page, studio, tmp_path: Path, capsys,
                                                                 monkeypatch) -> None:
    _, out = studio
    monkeypatch.chdir(tmp_path)
    expected = cli_line(capsys, "loops", "-o", "loops", "--bpm", "1000", "--no-compose")
    page.click("#tasks button[data-task=loops]")
    page.fill("#loops-bpm", "1000")
    page.select_option("#loops-sketch", "free")
    page.set_input_files("#loops-midi", str(write_sketch(tmp_path / "sketch.mid")))  # its upload is removed too
    generate(page)
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == expected == "audiogen: error: --bpm must be between 20 and 400, got 1000.0"
    assert files_under(out) == []
    assert page.query_selector("article.card") is None  # refused before the queue: no job in the history


def test_an_oversized_upload_is_refused_in_the_page(page, studio, tmp_path: Path) -> None:
    _, out = studio
    big = tmp_path / "big.wav"
    big.write_bytes(b"RIFF" + bytes(1_500_000))  # over this studio's 1 MB cap
    # The sketch goes up first and is accepted; the prompt is refused, and the page gives the sketch back.
    page.set_input_files("#render-midi", str(write_sketch(tmp_path / "sketch.mid")))
    page.set_input_files("#render-prompt", str(big))
    generate(page)
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "audiogen: error: big.wav: 1.5 MB is over the 1 MB upload limit"
    assert_empty_soon(out)
