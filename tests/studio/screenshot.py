"""Write the README's picture of the studio: the bundled default model, driven through the page in headless Chromium.

    .venv/bin/python tests/studio/screenshot.py [docs/studio.png]      (about a minute on 2 cores)

Renders the repository's samples/sketch.mid (8 s), makes two composed 2-bar loops, then starts a continuation of
samples/seed.wav and takes the picture while it runs, so the queue shows live progress beside the history.
Everything the studio writes goes to a temporary folder; only the PNG is kept (at most ~300 KB: quantized
to 256 colours when larger).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from studio_helpers import chromium, running_studio

from audiogen import AudioGen

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 300_000
WAIT_MS = 600_000


def main(target: Path) -> None:
    engine = AudioGen.load()
    target = target.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the page names the output folder as given: "studio-out", as `audiogen serve` would
        shoot(engine, target)
    if target.stat().st_size > MAX_BYTES:
        from PIL import Image

        Image.open(target).convert("RGB").quantize(colors=256).save(target, optimize=True)
    print(f"{target}: {target.stat().st_size / 1000:.0f} KB")


def shoot(engine: AudioGen, target: Path) -> None:
    with running_studio(engine, Path("studio-out")) as (url, _), chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.set_input_files("#render-midi", str(ROOT / "samples" / "sketch.mid"))
        page.fill("#render-seconds", "8")
        page.click("#generate")
        page.wait_for_selector("article[data-task=render][data-state=done]")
        page.click("#tasks button[data-task=loops]")
        for field, value in (("count", "2"), ("bars", "2"), ("bpm", "112")):
            page.fill(f"#loops-{field}", value)
        page.click("#generate")
        page.wait_for_selector("article[data-task=loops][data-state=done]")
        page.click("#tasks button[data-task=continue]")
        page.set_input_files("#continue-seed_audio", str(ROOT / "samples" / "seed.wav"))
        page.fill("#continue-seconds", "12")
        page.click("#generate")
        page.wait_for_function("() => { const p = document.querySelector('#queue progress');"
                               " return p && p.max > 1 && p.value / p.max > 0.3; }")
        page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "studio.png")
