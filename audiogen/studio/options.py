"""The studio's defaults, stated once (no torch here: `audiogen serve --help` reads them)."""

from __future__ import annotations

HOST = "127.0.0.1"  # loopback: the studio is for this machine unless told otherwise
PORT = 7860
OUTPUT_DIR = "studio-out"
MAX_UPLOAD_MB = 50.0
MAX_QUEUED = 20  # a stuck tab resubmitting should not queue hours of work
UPLOAD_TTL_SECONDS = 3600.0  # an upload no job took (a tab closed between upload and submit) is removed after this
