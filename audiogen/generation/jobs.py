"""Batch jobs files: one job per line of JSON, each checked field by field and known by its content.

    jobs, problems = read_jobs("jobs.jsonl")     # problems: lines that are no valid job (each fails alone)
    params, key = jobs[0].resolve(sampling)      # the parameters as run and the job's key (resume)

The format is `audiogen batch`'s (`audiogen.generation.batch`, which runs the jobs). A job's key is a hash of
its task and fields (not its line or name), so editing one line changes no other job; its default name and
seed come from that hash too. Every field's type and range is checked here (`audiogen.generation.options`:
the same checks as the CLI's), and two jobs that would write the same output stem refuse the whole file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ..composer import options as compose_options
from ..composer.vocab import parse_key, parse_meter
from ..errors import AudiogenError
from .loops import check_crossfade, check_format, check_loop, loop_meter
from .options import (
    BEATS_PER_BAR,
    CONTINUE_SECONDS,
    LOOP_BARS,
    LOOP_BPM,
    LOOP_COUNT,
    LOOP_FORMAT,
    MAX_SEED,
    SamplingConfig,
    check_batch_size,
    check_count,
    check_seed,
    check_stem,
    show_value,
)
from .tasks import check_seconds

TASKS = ("loops", "continue", "render", "compose")
COMMON = {"seed", "temperature", "top_k", "top_p", "name", "task", "plot"}
ALLOWED = {
    "loops": COMMON | {"count", "bars", "bpm", "beats_per_bar", "midi", "prompt", "guidance", "batch_size",
                       "crossfade", "format", "style", "compose"},
    "continue": COMMON | {"seed_audio", "input", "seconds", "keep_prompt", "guidance"},
    "render": COMMON | {"midi", "input", "seconds", "prompt", "guidance"},
    # the composer's own sampling (temperature, top_k: `audiogen compose`'s defaults, not the audio's)
    "compose": {"task", "name", "seed", "temperature", "top_k", "bars", "style", "key", "meter", "bpm", "prompt",
                "loop"},
}
# The sampling fields a task takes from `audiogen batch`'s options when the job leaves them out.
INHERITED = {"loops": ("temperature", "top_k", "top_p", "guidance"), "render": ("temperature", "top_k", "top_p",
             "guidance"), "continue": ("temperature", "top_k", "top_p", "guidance"), "compose": ()}
# Defaults written into a job's content (so its key says what it makes, whatever the code's defaults become).
DEFAULTS = {"loops": {"count": LOOP_COUNT, "bars": LOOP_BARS, "bpm": LOOP_BPM, "beats_per_bar": BEATS_PER_BAR,
                      "format": LOOP_FORMAT},
            "continue": {"seconds": CONTINUE_SECONDS}, "render": {}, "compose": {}}
PATHS = ("midi", "prompt", "seed_audio", "input")
FLAGS = ("keep_prompt", "compose", "loop", "plot")
MAX_BATCH_OUTPUTS = 1_000_000  # outputs of one jobs file (each output name is checked against all others)


@dataclasses.dataclass
class Job:
    index: int  # the job's place among the file's jobs (bad lines count): shards split on it
    task: str
    params: dict[str, Any]  # as run: relative paths resolved; inherited sampling and the seed come at run time
    name: str
    line: int = 0  # line number in the jobs file (for messages)
    digest: str = ""  # hash of the job's own fields (its default name and seed)

    def output(self, i: int) -> str:
        """Output i's file name."""
        if self.task == "loops":
            ext = self.params.get("format", LOOP_FORMAT)
            return f"{self.name}-{i:02d}.{ext}" if self.count > 1 else f"{self.name}.{ext}"
        return f"{self.name}.mid" if self.task == "compose" else f"{self.name}.wav"

    @property
    def count(self) -> int:
        return int(self.params.get("count", LOOP_COUNT)) if self.task == "loops" else 1

    def outputs(self) -> list[str]:
        return [self.output(i) for i in range(self.count)]

    def stems(self) -> list[str]:
        """Output stems: besides the file, a loop's sketch (.mid) and a spectrogram (.png) share its stem."""
        return [Path(name).stem for name in self.outputs()]

    def label(self) -> str:
        return f"line {self.line} ({self.name})"

    def resolve(self, sampling: SamplingConfig | None) -> tuple[dict[str, Any], str]:
        """(the parameters as run, the job's key): the sampling fields it leaves out from `sampling` (the CLI's),
        its seed (given, or its hash plus `sampling.seed`), and a hash of all that with the task."""
        sampling = sampling or SamplingConfig()
        params = dict(self.params)
        for field in INHERITED[self.task]:
            params.setdefault(field, getattr(sampling, field))
        if "seed" not in params:
            params["seed"] = (sampling.seed + int(self.digest[12:20], 16)) % (MAX_SEED + 1)
        key = _digest({"task": self.task, "digest": self.digest, **{k: params[k] for k in ("seed",
                       *INHERITED[self.task])}})
        return params, key


@dataclasses.dataclass
class Problem:
    """A jobs-file line that is no valid job: it fails alone."""
    index: int
    line: int
    error: str


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def read_jobs(path: str | os.PathLike) -> tuple[list[Job], list[Problem]]:
    """(jobs, problems) — a malformed line or bad field is a failed job, not a fatal error; two jobs that would
    write the same output (or more than MAX_BATCH_OUTPUTS outputs) refuse the whole file."""
    path = Path(path)
    if not path.exists():
        raise AudiogenError(f"{path}: no such file")
    if not path.is_file():
        raise AudiogenError(f"{path}: not a file (the jobs file is JSON lines, one job a line)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise AudiogenError(f"{path}: not a UTF-8 text file") from None
    except OSError as err:
        raise AudiogenError(f"{path}: cannot read it ({err.strerror})") from None
    jobs: list[Job] = []
    problems: list[Problem] = []
    index = 0
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 may sit inside a JSON string
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            jobs.append(parse_job(index, line, path.parent, number=number))
        except AudiogenError as err:
            problems.append(Problem(index, number, one_line(str(err))))
        index += 1
    if not jobs and not problems:
        raise AudiogenError(f"{path}: no jobs")
    check_collisions(path, jobs)
    return jobs, problems


def check_collisions(path: Path, jobs: list[Job]) -> None:
    """One line naming both jobs when two would write the same output stem (compared ignoring case, as some
    file systems do), before any work."""
    seen: dict[str, Job] = {}
    total = 0
    for job in jobs:
        total += job.count
        if total > MAX_BATCH_OUTPUTS:
            raise AudiogenError(f"{path}: more than {MAX_BATCH_OUTPUTS:,} outputs in one jobs file: split it")
        for stem in job.stems():
            other = seen.setdefault(stem.casefold(), job)
            if other is job:
                continue
            if other.digest == job.digest and other.name == job.name:
                raise AudiogenError(f"{path}: line {other.line} and line {job.line} are the same job: give one of "
                                    "them another seed or a name")
            raise AudiogenError(f"{path}: line {other.line} (name {other.name!r}) and line {job.line} (name "
                                f"{job.name!r}) both write {stem}: rename one")


def one_line(text: str) -> str:
    return " ".join(text.split("\n")).strip()


def parse_job(index: int, line: str, base: Path, *, number: int = 0) -> Job:
    """One line of a jobs file (`index`: its job number, `number`: its line) -> a checked Job; relative paths in
    it are under `base`. Bad input is one `AudiogenError` line (the studio builds its jobs through this too)."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as err:  # ValueError: bad JSON, or an integer of thousands of digits
        raise AudiogenError(f"not valid JSON ({getattr(err, 'msg', type(err).__name__)})") from None
    if not isinstance(data, dict):
        raise AudiogenError("a job must be a JSON object")
    task = data.get("task")
    if task not in TASKS:
        raise AudiogenError(f"task must be one of {', '.join(TASKS)}, got {show_value(task)}")
    unknown = sorted(set(data) - ALLOWED[task])
    if unknown:
        raise AudiogenError(f"unknown parameter {show_value(unknown[0])} for task {task}")
    for key, value in data.items():
        _check_field(task, key, value)
    given = {k: v for k, v in data.items() if k not in ("task", "name")}
    content = {**DEFAULTS[task], **given}
    _check_task(task, content)
    digest = _digest({"task": task, **{k: v for k, v in content.items() if k != "seed"},
                      **({"seed": given["seed"]} if "seed" in given else {})})
    name = data["name"] if "name" in data else f"{task}-{digest[:12]}"
    params = dict(content)
    for key in PATHS:
        if key in params and not os.path.isabs(params[key]):
            params[key] = str((base / params[key]).resolve())
    return Job(index=index, task=task, params=params, name=name, line=number, digest=digest)


def _check_field(task: str, key: str, value: Any) -> None:
    """A field's type and range alone (the task's checks of fields together follow)."""
    if value is None and key != "task":
        raise AudiogenError(f"{key} is null: leave it out for its default")
    if key == "name":
        check_stem(value, "name")
    elif key == "seed":
        check_seed(value)
    elif key in ("temperature", "top_k", "top_p", "guidance"):
        SamplingConfig.check_field(key, value)
    elif key == "count":
        check_count(value)
    elif key == "batch_size":
        check_batch_size(value)
    elif key == "crossfade":
        check_crossfade(value)
    elif key == "seconds":
        check_seconds(value, "seconds")
    elif key == "format":
        check_format(value)
    elif key in PATHS:
        if not isinstance(value, str) or not value or "\0" in value:
            raise AudiogenError(f"{key} must be a file path (a string), got {show_value(value)}")
    elif key in FLAGS:
        if not isinstance(value, bool):
            raise AudiogenError(f"{key} must be true or false, got {show_value(value)}")
    elif key in ("style", "key", "meter") and not isinstance(value, str):
        raise AudiogenError(f"{key} must be a string, got {show_value(value)}")


def _check_task(task: str, params: dict[str, Any]) -> None:
    """What a job's fields must be together (all checkable without the model)."""
    if task == "loops":
        check_loop(count=params["count"], bars=params["bars"], bpm=params["bpm"],
                   beats_per_bar=params["beats_per_bar"], cli=False)
        compose = params.get("compose")
        if "style" in params:
            if params.get("midi") is not None or compose is False:
                raise AudiogenError("style is for composed sketches: not with midi or \"compose\": false")
            loop_meter(params["beats_per_bar"])
    elif task == "compose":
        _check_compose(params)
    elif task == "continue":
        if not (params.get("seed_audio") or params.get("input")):
            raise AudiogenError("a continue job needs seed_audio (the recording to continue)")
    elif task == "render":
        if not (params.get("midi") or params.get("input")):
            raise AudiogenError("a render job needs midi (the sketch to render)")


def _check_compose(params: dict[str, Any]) -> None:
    """What a compose job can be told is wrong without the composer (its style needs the model)."""
    bars = params.get("bars", compose_options.BARS)
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
        raise AudiogenError(f"bars must be a whole number of at least 1, got {show_value(bars)}")
    parse_meter(params.get("meter", compose_options.METER))
    key = params.get("key", compose_options.KEY)
    if key.strip().lower() != "auto":
        parse_key(key)
    bpm = params.get("bpm", compose_options.BPM)
    if isinstance(bpm, bool) or not isinstance(bpm, (int, float)) or not math.isfinite(bpm):
        raise AudiogenError(f"bpm must be a number, got {show_value(bpm)}")
