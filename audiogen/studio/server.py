"""The studio's HTTP side: one static page and a small JSON API on the standard library's ThreadingHTTPServer.

    server = make_server(Studio(AudioGen.load(), out_dir="studio-out"), host="127.0.0.1", port=7860)
    server.serve_forever()            # `audiogen serve` does this; open http://127.0.0.1:7860

    GET  /                       the page (audiogen/studio/static/: index.html, app.js, style.css)
    GET  /api/info               model facts, limits, every default
    GET  /api/jobs               the queue and the history, newest first
    POST /api/uploads?kind=midi|audio   the file as the raw body, its name in X-Filename (URL-encoded):
                                 {"id", "name", "kind"}, or {"error": "audiogen: error: ..."} (413 over the cap,
                                 415 a type the studio does not take, 400 a file its loader refuses)
    DELETE /api/uploads/ID       give back an upload no job took (the page does when another file is refused)
    POST /api/jobs               {"task", "params", "uploads": {role: id}} -> 202 {"job"}, or 400 {"error"}
    GET  /files/JOB/NAME         a finished job's file (Range supported, so the page's players can seek);
                                 ?download=1 as an attachment

Why no framework: the page needs a dozen routes, one upload at a time and a poll; the standard library does that
with no new dependency to install, pin or patch, and a raw request body needs no multipart parser.
Guarding a localhost server that writes files: the Host header must name this server when it listens on a
loopback address (DNS rebinding), a POST with an Origin must come from this page (cross-site requests), uploads
need a Content-Length within the cap and are refused unread otherwise, and downloads are looked up among the
files the server recorded for a job, never built from the request's path.
"""

from __future__ import annotations

import ipaddress
import json
import mimetypes
import re
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import AudiogenError
from .jobs import Refused, Studio
from .options import HOST, PORT

STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
MAX_REQUEST_BYTES = 64 * 1024  # a job request is a few hundred bytes of JSON
TYPES = {".wav": "audio/wav", ".ogg": "audio/ogg", ".flac": "audio/flac", ".mid": "audio/midi",
         ".png": "image/png", ".json": "application/json"}
# The page loads nothing from elsewhere and runs no inline script.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Content-Security-Policy": "default-src 'self'; img-src 'self'; media-src 'self'; "
                                               "object-src 'none'; frame-ancestors 'none'"}


def _static(name: str) -> bytes:
    return (resources.files("audiogen.studio") / "static" / name).read_bytes()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StudioServer(ThreadingHTTPServer):
    """The HTTP server holding the studio; `url` is where the page is."""

    daemon_threads = True  # a stuck client never keeps the process alive

    def __init__(self, studio: Studio, host: str, port: int):
        self.studio = studio
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), StudioHandler)
        self.host, self.port = host, self.server_address[1]
        self.loopback = _is_loopback(host)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        names = {shown, "localhost", "127.0.0.1", "[::1]"} if self.loopback else set()
        self.allowed_hosts = {f"{name}:{self.port}" for name in names}


    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # a player or a tab that stopped listening mid-answer
            return
        super().handle_error(request, client_address)


def make_server(studio: Studio, *, host: str = HOST, port: int = PORT) -> StudioServer:
    """Bind (port 0: any free port); one line of error when the address cannot be had."""
    try:
        return StudioServer(studio, host, port)
    except OSError as err:
        raise AudiogenError(f"cannot listen on {host}:{port}: {err.strerror or err} (pass another --port)") from None


class StudioHandler(BaseHTTPRequestHandler):
    server: StudioServer
    protocol_version = "HTTP/1.1"  # keep-alive: the page polls
    timeout = 120  # seconds a connection may sit idle or stall mid-upload before its thread lets go
    server_version = "audiogen-studio"
    sys_version = ""

    # ------------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 - http.server's API
        self._get(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._get(head=True)

    def _get(self, *, head: bool) -> None:
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            return self._bytes(200, _static("index.html"), STATIC["index.html"], head=head)
        if path.startswith("/static/") and path[len("/static/"):] in STATIC:
            name = path[len("/static/"):]
            return self._bytes(200, _static(name), STATIC[name], head=head)
        if path == "/api/info":
            return self._json(200, self.server.studio.info(), head=head)
        if path == "/api/jobs":
            return self._json(200, self.server.studio.snapshot(), head=head)
        match = re.fullmatch(r"/files/([0-9a-f]{8})/([^/]+)", path)
        if match:
            try:
                file = self.server.studio.file(match.group(1), unquote(match.group(2)))
            except Refused as err:
                return self._error(err.status, str(err), head=head)
            download = parse_qs(url.query).get("download") == ["1"]
            return self._file(file, download=download, head=head)
        self._error(404, f"no such page: {path}", head=head)

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok() or not self._origin_ok():
            return
        url = urlsplit(self.path)
        if url.path == "/api/uploads":
            return self._upload(parse_qs(url.query).get("kind", [""])[0])
        if url.path == "/api/jobs":
            return self._submit()
        self.close_connection = True  # the body is left unread
        self._error(404, f"no such endpoint: {url.path}")

    def do_DELETE(self) -> None:  # noqa: N802
        if not self._host_ok() or not self._origin_ok():
            return
        match = re.fullmatch(r"/api/uploads/([0-9a-f]{16})", urlsplit(self.path).path)
        if match is None or not self.server.studio.discard_upload(match.group(1)):
            return self._error(404, "no such upload")
        self._bytes(204, b"", "text/plain")

    def _upload(self, kind: str) -> None:
        studio = self.server.studio
        name = unquote(self.headers.get("X-Filename", ""))
        length = self._length()
        if length is None:
            return
        try:
            studio.check_upload(kind, name, length)
        except Refused as err:
            if err.status == 413:
                self.close_connection = True  # refused unread: never take in more than the cap
            else:  # within the cap: read it (and drop it) so the browser surely gets the answer
                self._drain(length)
            return self._error(err.status, str(err))
        try:
            upload = studio.store_upload(kind, name, self.rfile, length)
        except AudiogenError as err:
            self.close_connection = True  # (the body may be only partly read)
            return self._error(400, str(err))
        except OSError:  # the client went quiet or away mid-upload: nothing was kept, no one to answer
            self.close_connection = True
            return
        self._json(201, upload)

    def _submit(self) -> None:
        length = self._length()
        if length is None:
            return
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            return self._error(413, f"a job request is at most {MAX_REQUEST_BYTES} bytes")
        try:
            request = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error(400, "the request is not valid JSON")
        try:
            job = self.server.studio.submit(request)
        except AudiogenError as err:
            return self._error(400, str(err))
        self._json(202, {"job": job.public()})

    # ------------------------------------------------------------------ guards
    def _host_ok(self) -> bool:
        if self.server.loopback and self.headers.get("Host", "") not in self.server.allowed_hosts:
            self.close_connection = True
            self._error(403, "this studio answers only requests addressed to it (Host)")
            return False
        return True

    def _origin_ok(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            self.close_connection = True
            self._error(403, "cross-site requests are refused")
            return False
        return True

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _length(self) -> int | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(411, "the request needs a Content-Length")
            return None
        return length

    # ------------------------------------------------------------------ responses
    def _headers(self, status: int, content_type: str, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        for key, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _bytes(self, status: int, body: bytes, content_type: str, *, head: bool = False) -> None:
        self._headers(status, content_type, len(body))
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, *, head: bool = False) -> None:
        self._bytes(status, json.dumps(obj).encode(), "application/json", head=head)

    def _error(self, status: int, message: str, *, head: bool = False) -> None:
        """The error as the CLI prints it: one line."""
        self._json(status, {"error": f"audiogen: error: {message}"}, head=head)

    def _file(self, path: Path, *, download: bool, head: bool) -> None:
        size = path.stat().st_size
        start, end = 0, size - 1
        status = 200
        wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if wanted and (wanted.group(1) or wanted.group(2)):
            if wanted.group(1):
                start = int(wanted.group(1))
                end = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
            else:  # the last N bytes
                start = max(0, size - int(wanted.group(2)))
            if start > end or start >= size:
                return self._headers(416, "text/plain", 0, {"Content-Range": f"bytes */{size}"})
            status = 206
        extra = {"Accept-Ranges": "bytes"}
        if status == 206:
            extra["Content-Range"] = f"bytes {start}-{end}/{size}"
        if download:
            extra["Content-Disposition"] = f'attachment; filename="{path.name}"'
        kind = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._headers(status, kind, end - start + 1, extra)
        if head:
            return
        with open(path, "rb") as handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = handle.read(min(left, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's API
        """Quiet: the page polls twice a second; job lines and errors are what the terminal shows."""

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.server.studio.quiet:
            print(f"audiogen studio: {format % args}", file=sys.stderr)
