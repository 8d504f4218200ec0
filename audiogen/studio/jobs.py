"""The studio's work: uploads checked and kept, requests turned into batch jobs, one worker running them in order.

    studio = Studio(AudioGen.load(), out_dir="studio-out")
    studio.start()
    upload = studio.store_upload("midi", "sketch.mid", stream, length)     # checked now, or an AudiogenError
    job = studio.submit({"task": "render", "params": {"seed": 3}, "uploads": {"midi": upload["id"]}})
    studio.snapshot()                                                     # the queue and the history
    studio.stop()

A request is a batch job (`audiogen.generation.jobs`: the CLI's long options with underscores, checked by the
same functions) run by `batch.run_job`, so the page makes what `audiogen render / loops / continue / compose`
make and fails with the same one-line errors, shown as the CLI prints them (`audiogen: error: ...`), with the
uploaded file's own name where the message names it.

Files: everything lives under the output folder. An upload is kept as `OUT/uploads/<random hex><suffix>`
(the suffix checked against the allowed types, never the client's name) until its job ends; a job writes
`OUT/<job id>/` (audio with loop points, spectrogram PNGs, MIDI sketches, loops.json) only after its
generation succeeded, and a job that fails leaves neither folder nor upload behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import queue
import re
import secrets
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, BinaryIO

import pretty_midi

from .. import audio
from ..composer import options as compose_options
from ..composer.vocab import STYLES
from ..errors import AudiogenError
from ..fileio import atomic_path, ensure_writable_dir, remove_stale_temporaries
from ..generation import options
from ..generation.batch import run_job, save_output
from ..generation.jobs import Job, parse_job
from ..generation.loops import LOOP_INDEX, check_format, check_loop, loop_meter, record_loop
from ..generation.tasks import check_seconds
from ..midi import load_midi, save_midi
from ..progress import observe
from .options import MAX_QUEUED, MAX_UPLOAD_MB, OUTPUT_DIR, UPLOAD_TTL_SECONDS

TASKS = ("render", "loops", "continue", "compose")
UPLOAD_TYPES = {"midi": (".mid", ".midi"), "audio": (".wav", ".flac", ".ogg", ".mp3")}
UPLOADS = "uploads"

# Upload role -> (kind of file, the batch job field it fills), and the roles each task takes.
ROLES = {"midi": ("midi", "midi"), "seed_audio": ("audio", "seed_audio"), "prompt": ("audio", "prompt"),
         "melody": ("midi", "prompt")}  # compose's prompt is a melody to continue
TASK_ROLES = {"render": ("midi", "prompt"), "continue": ("seed_audio",), "loops": ("midi", "prompt"),
              "compose": ("melody",)}
REQUIRED_ROLE = {"render": "midi", "continue": "seed_audio"}

SAMPLING = ("seed", "temperature", "top_k", "top_p")
PARAMS = {  # what the page sets per task (a subset of the batch job's fields, plus the output format)
    "render": {*SAMPLING, "seconds", "guidance", "format"},
    "continue": {*SAMPLING, "seconds", "keep_prompt", "guidance", "format"},
    "loops": {*SAMPLING, "count", "bars", "bpm", "beats_per_bar", "guidance", "format", "style", "compose"},
    "compose": {"seed", "temperature", "top_k", "bars", "style", "key", "meter", "bpm", "loop"},
}
INTEGERS = {"seed", "top_k", "count", "bars", "beats_per_bar"}
NUMBERS = {"temperature", "top_p", "seconds", "guidance", "bpm"}
FLAGS = {"keep_prompt", "compose", "loop"}
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{16}\.(mid|midi|wav|flac|ogg|mp3)$")


class Refused(AudiogenError):
    """A user error with the HTTP status that says what kind (413 too large, 415 wrong type, 404 unknown)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def display_name(name: str) -> str:
    """The client's file name as shown in messages: its last part, printable, at most 80 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return (base[:77] + "...") if len(base) > 80 else (base or "upload")


@dataclasses.dataclass
class Upload:
    id: str
    kind: str
    path: Path
    name: str  # the client's file name, for messages only
    created: float = dataclasses.field(default_factory=time.time)


@dataclasses.dataclass
class StudioJob:
    """One request: its batch job, its state and, once done, its files."""

    id: str
    task: str
    params: dict[str, Any]  # as requested (the page's fields), for the history
    batch: Job
    uploads: dict[str, Upload]  # role -> upload
    output_format: str | None
    state: str = "queued"  # queued | running | done | failed
    created: float = dataclasses.field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    phase: str = "queued"
    done: float = 0
    total: float | None = None
    items: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)  # every file of the job folder, for downloads
    error: str | None = None

    def observe(self, desc: str, done: float, total: float | None) -> None:
        self.phase, self.done, self.total = desc or self.task, done, total

    def public(self, position: int | None = None) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "params": self.params, "state": self.state,
                "inputs": {role: up.name for role, up in self.uploads.items()}, "position": position,
                "created": self.created, "started": self.started, "finished": self.finished,
                "progress": {"phase": self.phase, "done": self.done, "total": self.total},
                "items": self.items, "files": self.files, "error": self.error}


def _typed(params: dict[str, Any], task: str) -> dict[str, Any]:
    """The request's parameters with their JSON types checked (null or absent: the command's default)."""
    if not isinstance(params, dict):
        raise AudiogenError("params must be a JSON object")
    unknown = sorted(set(params) - PARAMS[task])
    if unknown:
        raise AudiogenError(f"unknown parameter {unknown[0]!r} for task {task}")
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        option = "--" + key.replace("_", "-")
        if key in INTEGERS and (isinstance(value, bool) or not isinstance(value, int)):
            raise AudiogenError(f"{option} must be a whole number, got {options.show_value(value)}")
        if key in NUMBERS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise AudiogenError(f"{option} must be a number, got {options.show_value(value)}")
        if key in FLAGS and not isinstance(value, bool):
            raise AudiogenError(f"{option} must be true or false, got {options.show_value(value)}")
        if key not in INTEGERS | NUMBERS | FLAGS and not isinstance(value, str):
            raise AudiogenError(f"{option} must be text, got {options.show_value(value)}")
        out[key] = float(value) if key in NUMBERS else value  # as argparse's type=float: the same messages
    return out


class Studio:
    """The model, the output folder, the uploads waiting for a job, and the job queue with its one worker."""

    def __init__(self, engine: Any, *, out_dir: str | Path = OUTPUT_DIR, max_upload_mb: float = MAX_UPLOAD_MB,
                 quiet: bool = False):
        if not (math.isfinite(max_upload_mb) and max_upload_mb > 0):
            raise AudiogenError(f"--max-upload-mb must be a positive number, got {max_upload_mb}")
        self.engine = engine
        self.shown_out = str(out_dir)
        self.out = ensure_writable_dir(out_dir).resolve()
        self.uploads_dir = self.out / UPLOADS
        self.max_upload_bytes = int(max_upload_mb * 1e6)
        self.quiet = quiet
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._jobs: dict[str, StudioJob] = {}
        self._queue: queue.Queue[StudioJob | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._clear_uploads()  # a killed server's leftovers

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="audiogen-studio-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 600.0) -> None:
        """Stop after the running job, waiting for it (queued ones are dropped); remove uploads no job has taken."""
        with self._lock:
            self._stopping = True
            running = any(job.state == "running" for job in self._jobs.values())
            for job in self._jobs.values():
                if job.state == "queued":
                    job.state, job.error = "failed", "audiogen: error: the studio stopped before this job ran"
                    self._remove_uploads(job)
        self._queue.put(None)
        if running and self._worker is not None:  # an idle (or warming up) worker is a daemon: nothing to wait for
            self._worker.join(timeout)
        self._clear_uploads()

    def info(self) -> dict[str, Any]:
        """What the page needs: the model's facts, the limits and every default (stated once, in the library)."""
        ag = self.engine
        model = getattr(ag, "model_dir", None)
        return {
            "model": Path(model).name if model else None, "sample_rate": ag.sample_rate, "channels": ag.channels,
            "conditional": bool(ag.conditional), "composer": bool(ag.has_composer),
            "max_upload_bytes": self.max_upload_bytes, "upload_types": UPLOAD_TYPES, "formats": options.LOOP_FORMATS,
            "styles": STYLES, "output_dir": self.shown_out,
            "defaults": {
                "sampling": dataclasses.asdict(options.SamplingConfig()),
                "loops": {"count": options.LOOP_COUNT, "bars": options.LOOP_BARS, "bpm": options.LOOP_BPM,
                          "beats_per_bar": options.BEATS_PER_BAR, "format": options.LOOP_FORMAT,
                          "style": compose_options.STYLE},
                "continue": {"seconds": options.CONTINUE_SECONDS},
                "compose": {"bars": compose_options.BARS, "style": compose_options.STYLE, "key": compose_options.KEY,
                            "meter": compose_options.METER, "bpm": compose_options.BPM, "seed": compose_options.SEED,
                            "temperature": compose_options.TEMPERATURE, "top_k": compose_options.TOP_K},
            },
        }

    # ------------------------------------------------------------------ uploads
    def check_upload(self, kind: str, name: str, length: int) -> None:
        """Refuse an upload before reading it: unknown kind or type (415), empty, or over the cap (413)."""
        shown = display_name(name)
        if kind not in UPLOAD_TYPES:
            raise Refused(f"upload kind must be {' or '.join(UPLOAD_TYPES)}, got {kind!r}", 415)
        allowed = UPLOAD_TYPES[kind]
        if Path(shown).suffix.lower() not in allowed:
            what = "a MIDI sketch" if kind == "midi" else "audio"
            raise Refused(f"{shown}: {what} must be a {', '.join(allowed)} file", 415)
        if length > self.max_upload_bytes:
            raise Refused(f"{shown}: {length / 1e6:.1f} MB is over the {self.max_upload_bytes / 1e6:g} MB upload "
                          "limit", 413)
        if length <= 0:
            raise Refused(f"{shown}: the file is empty")

    def store_upload(self, kind: str, name: str, body: BinaryIO, length: int) -> dict[str, Any]:
        """Read `length` bytes into OUT/uploads/ under a name of ours, check the file is what it claims (the
        library's own loaders), and return {"id", "name", "kind"}; a bad file is removed and raises."""
        self.check_upload(kind, name, length)
        self._sweep()
        shown = display_name(name)
        upload_id = secrets.token_hex(8)
        path = self.uploads_dir / f"{upload_id}{Path(shown).suffix.lower()}"
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            left = length
            while left > 0:
                chunk = body.read(min(left, 1 << 16))
                if not chunk:
                    raise AudiogenError(f"{shown}: the upload ended after {length - left} of {length} bytes")
                handle.write(chunk)
                left -= len(chunk)
        try:
            if kind == "midi":
                load_midi(path)
            else:  # its header and first second: the job reads the rest (a long file is not decoded twice)
                audio.load(path, seconds=1.0)
        except AudiogenError as err:
            path.unlink(missing_ok=True)
            raise AudiogenError(str(err).replace(str(path), shown)) from None
        with self._lock:
            self._uploads[upload_id] = Upload(upload_id, kind, path, shown)
        return {"id": upload_id, "name": shown, "kind": kind}

    def discard_upload(self, upload_id: str) -> bool:
        """Remove an upload no job has taken (the page gives back its other files when one of them is refused)."""
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
        if upload is not None:
            upload.path.unlink(missing_ok=True)
        return upload is not None

    def _sweep(self) -> None:
        """Remove uploads left waiting longer than UPLOAD_TTL_SECONDS (a tab closed between upload and submit)."""
        with self._lock:
            old = [u for u in self._uploads.values() if time.time() - u.created > UPLOAD_TTL_SECONDS]
        for upload in old:
            self.discard_upload(upload.id)

    def _clear_uploads(self) -> None:
        with self._lock:
            for upload in self._uploads.values():
                upload.path.unlink(missing_ok=True)
            self._uploads.clear()
        if self.uploads_dir.is_dir():
            remove_stale_temporaries(self.uploads_dir)
            for entry in self.uploads_dir.iterdir():
                if entry.is_file() and _UPLOAD_NAME.match(entry.name):
                    entry.unlink(missing_ok=True)

    @staticmethod
    def _remove_uploads(job: StudioJob) -> None:
        for upload in job.uploads.values():
            upload.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ jobs
    def submit(self, request: Any) -> StudioJob:
        """Check a request ({"task", "params", "uploads": {role: upload id}}) and queue it; an AudiogenError
        (and its uploads removed) when anything is wrong, before any work."""
        if not isinstance(request, dict):
            raise AudiogenError("a request must be a JSON object")
        roles = request.get("uploads") or {}
        claimed: dict[str, Upload] = {}
        with self._lock:  # uploads a request names are its own from now on, whatever happens next
            if isinstance(roles, dict):
                for role, upload_id in roles.items():
                    upload = self._uploads.pop(upload_id, None) if isinstance(upload_id, str) else None
                    if upload is not None:
                        claimed[role] = upload
        try:
            job = self._make_job(request, roles, claimed)
            with self._lock:
                if sum(j.state == "queued" for j in self._jobs.values()) >= MAX_QUEUED:
                    raise AudiogenError(f"the queue is full ({MAX_QUEUED} jobs waiting): try again when some are done")
                self._jobs[job.id] = job
        except AudiogenError as err:
            for upload in claimed.values():
                upload.path.unlink(missing_ok=True)
            raise AudiogenError(self._shown(str(err), claimed)) from None
        self._queue.put(job)
        return job

    def _make_job(self, request: dict[str, Any], roles: Any, claimed: dict[str, Upload]) -> StudioJob:
        task = request.get("task")
        if task not in TASKS:
            raise AudiogenError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if not isinstance(roles, dict):
            raise AudiogenError("uploads must be a JSON object of role: upload id")
        for role, upload_id in roles.items():
            if role not in TASK_ROLES[task]:
                raise AudiogenError(f"{task} takes no {role} file")
            if role not in claimed:
                raise AudiogenError(f"upload {upload_id!r} is unknown or already used: upload the file again")
            if claimed[role].kind != ROLES[role][0]:
                raise AudiogenError(f"{claimed[role].name}: the {role} file must be {ROLES[role][0]}")
        needed = REQUIRED_ROLE.get(task)
        if needed is not None and needed not in claimed:
            raise AudiogenError(f"{task} needs a {'MIDI sketch' if needed == 'midi' else 'recording'}: upload one")
        params = _typed(request.get("params") or {}, task)
        fields = dict(params)
        fmt = None
        if task == "compose":
            fields.setdefault("seed", compose_options.SEED)
        else:
            # The CLI's own checks in its order (sampling, the task's numbers, the format), naming the options as
            # the CLI does, before the queue: a job that cannot run never waits behind one that can.
            sampling = options.SamplingConfig.from_overrides(**{k: fields.get(k) for k in (*SAMPLING, "guidance")})
            fields.setdefault("seed", sampling.seed)  # the CLI's default seed, as `audiogen render` would use
            if task == "loops":
                beats_per_bar = fields.get("beats_per_bar", options.BEATS_PER_BAR)
                check_loop(count=fields.get("count", options.LOOP_COUNT), bars=fields.get("bars", options.LOOP_BARS),
                           bpm=fields.get("bpm", options.LOOP_BPM), beats_per_bar=beats_per_bar)
                if fields.get("compose") or "style" in fields:  # as `audiogen loops --style`: the meter first
                    loop_meter(beats_per_bar)
            if "seconds" in fields:
                check_seconds(fields["seconds"])
            fmt = check_format(fields.get("format", options.LOOP_FORMAT))
            if task != "loops":
                fields.pop("format", None)  # render/continue files are named here, not by the batch job
        for role, upload in claimed.items():
            fields[ROLES[role][1]] = str(upload.path)
        with self._lock:
            job_id = secrets.token_hex(4)
            while job_id in self._jobs or (self.out / job_id).exists():
                job_id = secrets.token_hex(4)
        batch = parse_job(0, json.dumps({"task": task, "name": task, **fields}), self.out)
        return StudioJob(id=job_id, task=task, params=params, batch=batch, uploads=claimed, output_format=fmt)

    def snapshot(self) -> dict[str, Any]:
        """Every job of this server, newest first; queued jobs with their place in the queue (1 = next)."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created)
        waiting = [j.id for j in jobs if j.state == "queued"]
        return {"jobs": [j.public(waiting.index(j.id) + 1 if j.id in waiting else None) for j in reversed(jobs)]}

    def job(self, job_id: str) -> StudioJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def file(self, job_id: str, name: str) -> Path:
        """A finished job's file: only names the server recorded for that job (no path is built from the
        request's text), inside the output folder; anything else is a 404."""
        job = self.job(job_id)
        if job is None or job.state != "done" or name not in job.files:
            raise Refused("no such file", 404)
        path = (self.out / job.id / name).resolve()
        if not path.is_relative_to(self.out) or not path.is_file():
            raise Refused("no such file", 404)
        return path

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        self._warm_up()
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:  # stop() sees either this job running (and waits for it) or no job at all
                if self._stopping or job.state != "queued":
                    continue
                job.state = "running"
            self._run(job)

    def _warm_up(self) -> None:
        """Load and compile what every job's spectrogram needs (several seconds, once per process) before the first
        job, so the first generation is no slower than the rest."""
        try:
            import numpy as np

            from ..plots import log_mel

            log_mel(np.zeros(self.engine.sample_rate // 4, np.float32), self.engine.sample_rate)
        except Exception:  # noqa: BLE001 - only a head start: the first job does it again and reports any error
            pass

    def _run(self, job: StudioJob) -> None:
        job.started, job.phase = time.time(), "composing" if job.task == "compose" else "starting"
        folder = self.out / job.id
        try:
            with observe(job.observe):  # the generation's own progress bars, counted for the page
                results = run_job(self.engine, job.batch, not self.quiet)
            job.phase, job.total = "saving", None
            job.items = self._save(job, folder, results)
            job.files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
            job.state = "done"
            if not self.quiet:
                print(f"audiogen studio: {job.task} {job.id} done: {', '.join(job.files)} in "
                      f"{self.shown_out}/{job.id}/", file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - a job's failure is the page's one line, never the server's end
            if isinstance(err, AudiogenError):
                job.error = "audiogen: error: " + self._shown(str(err), job.uploads)
            else:
                traceback.print_exc()
                job.error = f"audiogen: internal error: {type(err).__name__}: {err}".splitlines()[0]
            shutil.rmtree(folder, ignore_errors=True)  # the folder is this job's alone (a fresh random name)
            job.state = "failed"
            if not self.quiet:
                print(f"audiogen studio: {job.task} {job.id} failed: {job.error}", file=sys.stderr)
        finally:
            job.finished = time.time()
            self._remove_uploads(job)

    def _save(self, job: StudioJob, folder: Path, results: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Write a job's outputs into its folder the way `audiogen batch` does (atomic files, loop points,
        sketches beside loops, loops.json) plus a spectrogram per audio file; one entry per output for the page."""
        sample_rate = self.engine.sample_rate
        names = (job.batch.outputs() if job.task in ("loops", "compose")
                 else [f"{job.batch.name}.{job.output_format}"])
        items = []
        for output, (result, extra) in zip(names, results, strict=True):
            path = folder / output
            if isinstance(result, pretty_midi.PrettyMIDI):  # a compose job's sketch
                save_midi(path, result)
                items.append({"midi": output, "seconds": round(result.get_end_time(), 3)})
                continue
            extra = dict(extra)
            sketch = extra.pop("sketch", None)
            sketch_name = None if sketch is None else save_midi(path.with_suffix(".mid"), sketch).name
            loop = audio.LoopInfo(**extra["loop"]) if extra.get("loop") else None
            save_output(path, result, sample_rate, loop=loop, plot=True)
            item = {"audio": output, "spectrogram": path.with_suffix(".png").name,
                    "seconds": round(result.shape[-1] / sample_rate, 3), "sample_rate": sample_rate,
                    "channels": int(result.shape[0])}
            if loop is not None:
                row = record_loop(path, loop, sample_rate=sample_rate, sketch=sketch_name)
                item["loop"] = {k: row[k] for k in ("loop_start", "loop_length", "bpm", "bars", "beats_per_bar")}
                item["index"] = LOOP_INDEX
            if sketch_name is not None:
                item["midi"] = sketch_name
            items.append(item)
        return items

    def _shown(self, message: str, uploads: dict[str, Upload]) -> str:
        """A library message as the user would read it: their file names, the output folder as they named it."""
        for upload in uploads.values():
            message = message.replace(str(upload.path), upload.name)
        return message.replace(str(self.out), self.shown_out).replace("\n", " ")
