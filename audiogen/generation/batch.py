"""Batch jobs: `audiogen batch JOBS.jsonl -o DIR [--shard i/n]`.

One job per line of JSON: `{"task": "loops" | "continue" | "render" | "compose", ...the command's
parameters..., "seed": 7, "name": "optional-output-stem"}`. Parameter names are the CLI's long
options with dashes turned into underscores (`bars`, `bpm`, `beats_per_bar`, `count`, `format`, `midi`,
`prompt`, `seed`, `seconds`, `keep_prompt`, `guidance`, `temperature`, `top_k`, `top_p`, ...);
relative paths are resolved against the JOBS file's folder. A field a job leaves out takes the
command's own default (`audiogen.generation.options`: a loops job makes 4 loops, like `audiogen loops`),
and the sampling options given to `audiogen batch` are every job's defaults. `null` is no value: leave a
field out for its default.

* A job is known by its content, not its line (`audiogen.generation.jobs` reads and checks the file): its
  key is a hash of its task and parameters (with the sampling defaults it inherits), so inserting, deleting
  or reordering lines changes no other job. A job without a `name` is named TASK-HASH (12 hex digits of the
  hash of its own fields); a job without a `seed` gets one from that hash plus `--seed`. Two jobs that would
  write the same output stem (`x` with `"count": 2` writes x-00 and x-01, so it collides with a job named
  `x-00`; names compare ignoring case; the same job twice collides too) refuse the whole file in one line,
  before any work. Names are plain file stems (no folders, no control characters, at most 200 bytes). A job
  makes at most `options.MAX_COUNT` (10,000) outputs, a jobs file at most 1,000,000.
* Every output is written atomically as soon as it is made, then a row is appended to DIR/manifest.jsonl
  with the job's key, its parameters as run, seed, duration and the model's identity. A job is done when
  the manifest has rows with its key for all its outputs, so a killed run resumes where it stopped (a
  loops job from its first unfinished chunk of `batch_size`) and no job is done twice; a job whose content
  changed is made again and its files replaced (the last row of an output describes its file).
  Unreadable manifest lines (a kill mid-write, a damaged file) are skipped with a warning: their outputs
  are made again.
* Loops jobs write `format` (wav, ogg or flac) files with loop points and add each file's row to
  DIR/loops.json (loop start and length in samples, BPM, bars, meter, sample rate, format).
* Compose, then render: a `compose` job (`bars`, `style`, `key`, `meter`, `bpm`, `prompt`, `loop`,
  `temperature`, `top_k`; the defaults of `audiogen compose`) writes NAME.mid with the composer. A loops
  job without `midi` composes one sketch per loop (`AudioGen.loop_sketches`: the loop's bars, meter N/4
  and BPM, in `style`) when a composer is available, saves it beside the loop file as NAME-00.mid and
  names it in the manifest row and loops.json ("sketch"); `"compose": false` keeps free loops, and with
  no composer the loops are free, unless the job asks for a `style`.
* A failing job (a bad or missing field, a missing file, even an unexpected error) is reported in one line
  on stderr and in DIR/failures.jsonl; the others still run; the exit status is 1 if any failed. Every
  field is checked before the job runs.
* `--shard i/n` (or torchrun's RANK/WORLD_SIZE) takes jobs j with j % n == i: shards are
  disjoint and together complete, on one machine or many. Each shard holds a lock in DIR
  (.batch-shard-i-of-n.lock, removed when it ends): the same shard started again while it runs, or a
  shard of another split (j/m, m != n) in the same folder, fails at once in one line (no waiting).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pretty_midi

from .. import audio
from ..composer import options as compose_options
from ..errors import AudiogenError
from ..fileio import WriteError, append_line, atomic_path, ensure_writable_dir, folder_lock, remove_stale_temporaries
from ..midi import save_midi
from ..progress import bar
from ..runtime import env_world
from .jobs import Job, Problem, one_line, read_jobs
from .loops import LOOP_INDEX, loop_info, loop_length, record_loop
from .options import (
    BATCH_SIZE,
    BEATS_PER_BAR,
    CONTINUE_SECONDS,
    LOOP_BARS,
    LOOP_BPM,
    SamplingConfig,
)

MANIFEST, FAILURES = "manifest.jsonl", "failures.jsonl"
LOCK_PATTERN = re.compile(r"\.batch-shard-(\d+)-of-(\d+)\.lock")


def parse_shard(text: str | None) -> tuple[int, int]:
    """`i/n` -> (i, n); without one, torchrun's RANK/WORLD_SIZE (or 0/1)."""
    if text is None:
        rank, world, _ = env_world()
        return rank, world
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise AudiogenError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise AudiogenError(f"--shard {text}: need 0 <= i < n")
    return i, n


# ---------------------------------------------------------------------------------------------- the record
def _record_file(path: Path) -> Path:
    if path.exists() and not path.is_file():
        raise AudiogenError(f"{path} is not a file: move it away (the batch keeps its record there), then run again")
    return path


def _manifest_rows(path: Path) -> Iterator[tuple[bytes, dict[str, Any] | None]]:
    """(raw line, its row or None when unreadable) for each non-blank line, read as a stream."""
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                raw = raw.rstrip(b"\n")
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                except (ValueError, RecursionError):
                    row = None
                ok = isinstance(row, dict) and isinstance(row.get("output"), str)
                yield raw, row if ok else None
    except OSError as err:
        raise AudiogenError(f"{path}: cannot read it ({err.strerror}): move it away to start a new record") from None


def read_manifest(out_dir: Path) -> tuple[dict[str, str | None], int]:
    """({output: the key of its last readable row}, unreadable lines): the record of finished work.

    An unreadable line (torn by a kill mid-write, bytes that are not UTF-8 JSON) is counted and skipped: that
    output is made again. Rows of older versions have no key (None): their outputs are made again too.
    """
    path = _record_file(Path(out_dir) / MANIFEST)
    done: dict[str, str | None] = {}
    bad = 0
    if not path.exists():
        return done, bad
    for _, row in _manifest_rows(path):
        if row is None:
            bad += 1
        else:
            key = row.get("key")
            done[row["output"]] = key if isinstance(key, str) else None
    return done, bad


def _clean_manifest(path: Path) -> None:
    """Keep only the manifest's readable lines (only while no other shard writes into the folder)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        for raw, row in _manifest_rows(path):
            if row is not None:
                handle.write(raw + b"\n")


def _check_loop_index(path: Path) -> None:
    if not _record_file(path).exists():
        return
    try:
        json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError):
        raise AudiogenError(f"{path}: not valid JSON: move it away (loops made from now on are listed in a new "
                            "one)") from None


# ---------------------------------------------------------------------------------------------- the lock
def _held(path: Path) -> bool:
    """Whether another process holds the lock file `path` (call under the folder lock)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the probe's own lock
    return False


def shard_running(out: str | os.PathLike, index: int, count: int) -> bool:
    """Whether shard `index`/`count` is running in the folder `out` now (its lock is held)."""
    out = Path(out)
    path = out / f".batch-shard-{index}-of-{count}.lock"
    if not path.exists():
        return False
    with folder_lock(out):
        return _held(path)


@contextlib.contextmanager
def shard_lock(out: Path, index: int, count: int, *, tidy: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold shard `index`/`count`'s lock in `out` (flock on .batch-shard-i-of-n.lock, removed at the end).

    Fails at once (one-line AudiogenError, no waiting) when that shard already runs there or when a shard of
    another split does (its jobs would overlap). Yields whether this is the folder's only shard running; then
    `tidy()` runs first, still under the folder's lock (so no other shard can start writing meanwhile): the
    place to remove a killed run's temporaries. Taking and dropping locks happens under the folder's lock,
    so a lock file is never removed while another process is about to lock it. Without flock (not POSIX)
    nothing is locked, `tidy` does not run and this yields False.
    """
    try:
        import fcntl
    except ImportError:
        yield False
        return
    path = out / f".batch-shard-{index}-of-{count}.lock"
    with folder_lock(out):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AudiogenError(f"{out}: shard {index}/{count} is already running there (another process): wait "
                                "for it to end, then run again to resume") from None
        running = []
        for other in sorted(out.glob(".batch-shard-*-of-*.lock")):
            match = LOCK_PATTERN.fullmatch(other.name)
            if other == path or match is None:
                continue
            if _held(other):
                running.append((int(match[1]), int(match[2])))
            else:
                other.unlink(missing_ok=True)  # left by a killed run
        try:
            clash = [(i, n) for i, n in running if n != count]
            if clash:
                i, n = clash[0]
                raise AudiogenError(f"{out}: shard {i}/{n} is running there: shards writing into one folder must "
                                    f"split the jobs alike (--shard i/{n})")
            if not running and tidy is not None:
                tidy()
        except BaseException:
            path.unlink(missing_ok=True)
            os.close(fd)
            raise
    try:
        yield not running
    finally:
        try:
            with folder_lock(out):
                path.unlink(missing_ok=True)
                os.close(fd)
        except OSError:  # the folder went away: closing still releases the lock
            with contextlib.suppress(OSError):
                os.close(fd)


# ---------------------------------------------------------------------------------------------- running jobs
def estimate_frames(job: Job, frame_rate: float) -> int:
    """Frames a job will generate (for the single progress bar's total)."""
    p = job.params
    if job.task == "loops":
        seconds = p.get("bars", LOOP_BARS) * p.get("beats_per_bar", BEATS_PER_BAR) * 60 / p.get("bpm", LOOP_BPM) + 2.0
        return int(math.ceil(seconds * frame_rate)) * job.count
    if job.task == "continue":
        return int(math.ceil(float(p.get("seconds", CONTINUE_SECONDS)) * frame_rate))
    if job.task == "compose":
        return 0
    seconds = p.get("seconds")
    if seconds is None:
        try:
            from ..midi import midi_seconds

            seconds = midi_seconds(p.get("midi") or p.get("input")) + 1.0
        except Exception:  # noqa: BLE001 - only a progress total: the job reports its own error when it runs
            seconds = 0.0
    return int(math.ceil(float(seconds) * frame_rate))


class FrameProgress:
    """Adapter handed to the generator: counts decode steps into one shared bar."""

    def __init__(self, shared):
        self.shared = shared

    def update(self, n: int = 1) -> None:
        self.shared.update(n)

    def close(self) -> None:
        pass


def iter_job(ag, job: Job, progress: Any, *, params: dict[str, Any] | None = None,
             sampling: SamplingConfig | None = None, start: int = 0) -> Iterator[tuple[int, Any, dict[str, Any]]]:
    """(i, output i: wav [C, N] or a compose job's PrettyMIDI, extra manifest fields) as each is made.

    `params`: the job's parameters as run (`Job.resolve`; None: resolved against `sampling`). A loops job makes
    its loops from `start` on (a multiple of its batch size: a resumed job). A composed loop's extra fields hold
    its sketch (a PrettyMIDI) as "sketch".
    """
    p = job.resolve(sampling)[0] if params is None else params
    if job.task == "compose":
        key = p.get("key", compose_options.KEY)
        pm = ag.compose(bars=p.get("bars", compose_options.BARS), style=p.get("style", compose_options.STYLE),
                        key=None if key.strip().lower() == "auto" else key,
                        meter=p.get("meter", compose_options.METER), bpm=p.get("bpm", compose_options.BPM),
                        prompt=p.get("prompt"), loop=bool(p.get("loop", False)), seed=p["seed"],
                        temperature=p.get("temperature", compose_options.TEMPERATURE),
                        top_k=p.get("top_k", compose_options.TOP_K))
        yield 0, pm, {}
        return
    job_sampling = SamplingConfig.from_overrides(
        sampling, **{k: p[k] for k in ("temperature", "top_k", "top_p", "guidance", "seed") if k in p})
    if job.task == "loops":
        count, bars, bpm = job.count, int(p["bars"]), float(p["bpm"])
        beats_per_bar = int(p["beats_per_bar"])
        sketches = ag.loop_sketches(count, bars, bpm, beats_per_bar=beats_per_bar, style=p.get("style"),
                                    seed=job_sampling.seed,
                                    compose=False if p.get("midi") is not None else p.get("compose"), lazy=True)
        prompt = _load_prompt(p.get("prompt"))
        loops = ag.iter_loops(count, bars, bpm, beats_per_bar=beats_per_bar, midi=sketches or p.get("midi"),
                              prompt=None if prompt is None else prompt[0],
                              prompt_sample_rate=None if prompt is None else prompt[1],
                              batch_size=int(p.get("batch_size", BATCH_SIZE)), sampling=job_sampling,
                              progress=progress, start=start, **({} if "crossfade" not in p else
                                                                 {"crossfade": float(p["crossfade"])}))
        for i, wav in loops:
            assert wav.shape[-1] == loop_length(bars, bpm, beats_per_bar, ag.sample_rate)
            info = loop_info(wav.shape[-1], bars=bars, bpm=bpm, beats_per_bar=beats_per_bar)
            yield i, wav, {"loop": dataclasses.asdict(info), **({} if sketches is None else {"sketch": sketches[i]})}
        return
    if job.task == "continue":
        wav, sr = audio.load(p.get("seed_audio") or p.get("input"))
        out, _ = ag.continue_audio(wav, sr, float(p["seconds"]), keep_prompt=bool(p.get("keep_prompt", True)),
                                   sampling=job_sampling, progress=progress)
        yield 0, out, {}
        return
    prompt = _load_prompt(p.get("prompt"))
    out, _ = ag.render_midi(p.get("midi") or p.get("input"), seconds=p.get("seconds"),
                            prompt=None if prompt is None else prompt[0],
                            prompt_sample_rate=None if prompt is None else prompt[1], sampling=job_sampling,
                            progress=progress)
    yield 0, out, {}


def run_job(ag, job: Job, progress: Any, *, sampling: SamplingConfig | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """All of a job's outputs at once: [(wav [C, N] or a PrettyMIDI, extra manifest fields)] (see `iter_job`)."""
    return [(result, extra) for _, result, extra in iter_job(ag, job, progress, sampling=sampling)]


def _load_prompt(path: str | None):
    return None if path is None else audio.load(path)


def run_batch(ag: Any, jobs_path: str | os.PathLike, out_dir: str | os.PathLike, *, shard: str | None = None,
              sampling: SamplingConfig | None = None, plot: bool = False, quiet: bool = False) -> dict[str, int]:
    """Run (or resume) this shard's jobs; return counts {done, skipped, failed, total}.

    `ag`: the `AudioGen`, or a function that loads it (called once the jobs are read and the shard's lock is
    held, so a bad jobs file or a shard already running fails before a model loads). `sampling` (the CLI's
    options) is every job's default; a job's own fields override it. Refusals (a bad jobs file, colliding
    names, the shard already running, an unusable output folder) are one-line `AudiogenError`s before any job
    runs and leave no folder behind that was not there; a failing job is counted and reported, the others run.
    """
    index, count = parse_shard(shard)
    jobs, problems = read_jobs(jobs_path)
    if sampling is not None:
        sampling.validate()
    created = not Path(out_dir).exists()
    out = ensure_writable_dir(out_dir)
    mine = [j for j in jobs if j.index % count == index]
    dropped: list[int] = []

    def tidy() -> None:  # no other shard runs here, and none can start until this returns
        remove_stale_temporaries(out)
        _, unreadable = read_manifest(out)
        if unreadable:
            _clean_manifest(out / MANIFEST)
            dropped.append(unreadable)

    started = False
    try:
        with shard_lock(out, index, count, tidy=tidy):
            for name in (MANIFEST, FAILURES):
                _record_file(out / name)
            if any(j.task == "loops" for j in mine):
                _check_loop_index(out / LOOP_INDEX)
            if callable(ag):
                ag = ag()
            started = True
            if dropped:
                print(f"audiogen: warning: {out / MANIFEST}: {dropped[0]} unreadable line(s) dropped (a killed run "
                      "or a damaged file); their outputs are made again", file=sys.stderr)
            return _run_shard(ag, out, mine, [p for p in problems if p.index % count == index],
                              shard=(index, count), sampling=sampling, plot=plot, quiet=quiet)
    except BaseException:
        if created and not started:  # refused before any work: leave no folder behind
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _run_shard(ag, out: Path, mine: list[Job], problems: list[Problem], *, shard: tuple[int, int],
               sampling: SamplingConfig | None, plot: bool, quiet: bool) -> dict[str, int]:
    index, count = shard
    done, unreadable = read_manifest(out)
    if unreadable:  # left as they are while other shards write here (dropped by the next run alone)
        print(f"audiogen: warning: {out / MANIFEST}: {unreadable} unreadable line(s) skipped (a killed run or a "
              "damaged file); their outputs are made again", file=sys.stderr)
    failures = 0
    for problem in problems:
        failures += 1
        _fail(out, {"line": problem.line, "job": problem.index}, problem.error, label=f"line {problem.line}")
    resolved = {id(j): j.resolve(sampling) for j in mine}
    pending = [j for j in mine if not all(done.get(o) == resolved[id(j)][1] for o in j.outputs())]
    total = sum(estimate_frames(j, ag.frame_rate) for j in pending)
    shared = bar(total, f"batch {index}/{count}" if count > 1 else "batch", quiet=quiet, unit="frame")
    progress = FrameProgress(shared)
    identity = ag.identity
    finished = 0
    try:
        for job in pending:
            params, key = resolved[id(job)]
            try:
                _make(ag, job, params, key, done, out, progress=progress, sampling=sampling, identity=identity,
                      plot=plot, shard=f"{index}/{count}")
            except WriteError:
                raise  # a full disk or a refused write stops the batch: the next job would fail the same way
            except AudiogenError as err:
                failures += 1
                _fail(out, {"line": job.line, "job": job.index, "name": job.name, "key": key}, str(err),
                      label=job.label())
                continue
            except Exception as err:  # noqa: BLE001 - one job's unexpected error must not stop the others
                failures += 1
                _fail(out, {"line": job.line, "job": job.index, "name": job.name, "key": key},
                      f"unexpected {type(err).__name__}: {err} (a bug: please report it)", label=job.label())
                continue
            finished += 1
    finally:
        shared.close()
    return {"done": finished, "skipped": len(mine) - len(pending), "failed": failures,
            "total": len(mine) + len(problems)}


def _make(ag, job: Job, params: dict[str, Any], key: str, done: dict[str, str | None], out: Path, *,
          progress: Any, sampling: SamplingConfig | None, identity: dict[str, Any], plot: bool, shard: str) -> None:
    """Make one job's outputs not yet done, writing each (then its manifest row) as soon as it is made."""
    outputs = job.outputs()
    start = 0
    if job.task == "loops":  # resume from the first chunk with an output not done (same seeds, same loops)
        first_missing = next((i for i, o in enumerate(outputs) if done.get(o) != key), len(outputs))
        batch_size = int(params.get("batch_size", BATCH_SIZE))
        start = first_missing // batch_size * batch_size
    started = time.time()
    for i, result, extra in iter_job(ag, job, progress, params=params, sampling=sampling, start=start):
        output = outputs[i]
        if done.get(output) == key:
            continue
        with interrupts_deferred():  # Ctrl-C: this output whole, with its rows, or not at all
            row = {"output": output, "key": key, "job": job.index, "line": job.line, "name": job.name,
                   "task": job.task, "params": params, "seed": params["seed"],
                   "wall_seconds": round(time.time() - started, 3), "shard": shard}
            if isinstance(result, pretty_midi.PrettyMIDI):  # a compose job's sketch
                save_midi(out / output, result)
                append_line(out / MANIFEST, json.dumps({**row, "seconds": result.get_end_time()}, sort_keys=True))
                continue
            extra = dict(extra)
            sketch = extra.pop("sketch", None)
            if sketch is not None:  # a composed loop: its sketch beside it, named in its rows
                extra["sketch"] = save_midi((out / output).with_suffix(".mid"), sketch).name
            loop = audio.LoopInfo(**extra["loop"]) if extra.get("loop") else None
            save_output(out / output, result, ag.sample_rate, loop=loop, plot=plot or bool(params.get("plot")))
            if loop is not None:  # before the manifest row: a job the manifest calls done is in loops.json
                record_loop(out / output, loop, sample_rate=ag.sample_rate, sketch=extra.get("sketch"))
            row.update({"seconds": result.shape[-1] / ag.sample_rate, "sample_rate": ag.sample_rate,
                        "model": identity, **extra})
            append_line(out / MANIFEST, json.dumps(row, sort_keys=True))
        started = time.time()


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) waits until the block ends, then raises KeyboardInterrupt: an output, its sketch and its
    rows (loops.json, the manifest) are written together, and no temporary file is caught half-way. Only in
    the main thread (where Python handles signals); elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def save_output(path: Path, wav: Any, sample_rate: int, *, loop: audio.LoopInfo | None = None,
                plot: bool = False) -> None:
    """Write generated audio (atomically; format from the suffix; loop points when `loop`) and, with `plot`, its
    spectrogram PNG beside it."""
    audio.save(path, wav, sample_rate, loop=loop)
    if plot:
        from ..plots import save_spectrogram

        save_spectrogram(path.with_suffix(".png"), wav, sample_rate, title=path.name, loop=loop is not None)


def _fail(out: Path, where: dict[str, Any], problem: str, *, label: str) -> None:
    problem = one_line(problem)
    if len(problem) > 500:  # an unexpected error's text can be a whole tensor
        problem = problem[:497] + "..."
    print(f"audiogen: job {label} failed: {problem}", file=sys.stderr)
    append_line(out / FAILURES, json.dumps({**where, "error": problem, "time": time.time()}))
