"""What the studio's tests share: a studio served in this process on a free port, plain HTTP calls, and
Debian's headless Chromium driven by Playwright.

    with running_studio(engine, tmp_path / "out") as (url, studio):
        status, body = call(url, "/api/info")
    with chromium() as browser:
        page = browser.new_page()

Chromium is the system's (`apt-get install chromium`, which `make test` does); Playwright only drives it and never
downloads a browser. The flags keep it from reaching for the network (the machine has none) and from a GPU.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from audiogen.studio import Studio, make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"]


@contextlib.contextmanager
def running_studio(engine: Any, out_dir: Path, **options: Any) -> Iterator[tuple[str, Studio]]:
    """A studio on 127.0.0.1 and a free port, served from a thread; stopped and closed on exit."""
    studio = Studio(engine, out_dir=out_dir, quiet=True, **options)
    server = make_server(studio, host="127.0.0.1", port=0)
    studio.start()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.url, studio
    finally:
        server.shutdown()
        server.server_close()
        studio.stop()


def call(url: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, dict[str, Any] | bytes]:
    """One request: (status, decoded JSON or raw bytes). `headers` may override Host or Content-Length."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method or ("GET" if body is None else "POST"), path, skip_host="Host" in (headers or {}),
                        skip_accept_encoding=True)
        sent = dict(headers or {})
        if body is not None and "Content-Length" not in sent:
            sent["Content-Length"] = str(len(body))
        for key, value in sent.items():
            conn.putheader(key, value)
        conn.endheaders()
        if body:
            conn.send(body)
        response = conn.getresponse()
        data = response.read()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(data) if kind.startswith("application/json") else data
    finally:
        conn.close()


def upload(url: str, path: Path, kind: str, *, name: str | None = None) -> tuple[int, dict[str, Any]]:
    return call(url, f"/api/uploads?kind={kind}", body=path.read_bytes(), headers={"X-Filename": name or path.name})


def submit(url: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return call(url, "/api/jobs", body=json.dumps(request).encode(), headers={"Content-Type": "application/json"})


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (skips where either is missing: `make test` installs both)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra: make install-dev")
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium: `make test` installs it (apt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
