"""Batch jobs: `audiogen batch JOBS.jsonl -o DIR [--shard i/n]`.

One job per line of JSON: `{"task": "loops" | "continue" | "render" | "compose", ...the command's
parameters..., "seed": 7, "name": "optional-output-stem"}`. Parameter names are the CLI's long
options with dashes turned into underscores (`bars`, `bpm`, `beats_per_bar`, `count`, `format`, `midi`,
`prompt`, `seed`, `seconds`, `keep_prompt`, `guidance`, `temperature`, `top_k`, `top_p`, ...);
relative paths are resolved against the JOBS file's folder. A field a job leaves out takes the
command's own default (`audiogen.generation.options`: a loops job makes 4 loops, like `audiogen loops`),
and the sampling options given to `audiogen batch` are every job's defaults.

* Every output is written atomically, then a row is appended to DIR/manifest.jsonl with the
  job, its parameters, seed, duration and the model's identity. A job is done when the manifest
  has rows for all its outputs, so a killed run resumes where it stopped and no job is done twice.
* Loops jobs write `format` (wav, ogg or flac) files with loop points and add each file's row to
  DIR/loops.json (loop start and length in samples, BPM, bars, meter, sample rate, format).
* Compose, then render: a `compose` job (`bars`, `style`, `key`, `meter`, `bpm`, `prompt`, `loop`,
  `temperature`, `top_k`; the defaults of `audiogen compose`) writes NAME.mid with the composer. A loops
  job without `midi` composes one sketch per loop (`AudioGen.loop_sketches`: the loop's bars, meter N/4
  and BPM, in `style`) when a composer is available, saves it beside the loop file as NAME-00.mid and
  names it in the manifest row and loops.json ("sketch"); `"compose": false` keeps free loops, and with
  no composer the loops are free, unless the job asks for a `style`.
* A failing job (bad parameters, missing file) is reported on stderr and in DIR/failures.jsonl;
  the others still run; the exit status is 1 if any failed.
* `--shard i/n` (or torchrun's RANK/WORLD_SIZE) takes jobs j with j % n == i: shards are
  disjoint and together complete, on one machine or many.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pretty_midi

from .. import audio
from ..composer import options as compose_options
from ..composer.vocab import parse_key, parse_meter
from ..errors import AudiogenError
from ..fileio import append_line, ensure_writable_dir, remove_stale_temporaries
from ..midi import save_midi
from ..progress import bar
from ..runtime import env_world
from .loops import check_format, check_loop, loop_info, loop_length, loop_meter, record_loop
from .options import (
    BATCH_SIZE,
    BEATS_PER_BAR,
    CONTINUE_SECONDS,
    LOOP_BARS,
    LOOP_BPM,
    LOOP_COUNT,
    LOOP_FORMAT,
    SamplingConfig,
)

TASKS = ("loops", "continue", "render", "compose")
COMMON = {"seed", "temperature", "top_k", "top_p", "name", "task", "plot"}
ALLOWED = {
    "loops": COMMON | {"count", "bars", "bpm", "beats_per_bar", "midi", "prompt", "guidance", "batch_size",
                       "crossfade", "format", "style", "compose"},
    "continue": COMMON | {"seed_audio", "input", "seconds", "keep_prompt"},
    "render": COMMON | {"midi", "input", "seconds", "prompt", "guidance"},
    # the composer's own sampling (temperature, top_k: `audiogen compose`'s defaults, not the audio's)
    "compose": {"task", "name", "seed", "temperature", "top_k", "bars", "style", "key", "meter", "bpm", "prompt",
                "loop"},
}


@dataclasses.dataclass
class Job:
    index: int
    task: str
    params: dict[str, Any]
    name: str

    def outputs(self) -> list[str]:
        if self.task == "loops":
            count, ext = int(self.params.get("count", LOOP_COUNT)), self.params.get("format", LOOP_FORMAT)
            return [f"{self.name}-{j:02d}.{ext}" for j in range(count)] if count > 1 else [f"{self.name}.{ext}"]
        if self.task == "compose":
            return [f"{self.name}.mid"]
        return [f"{self.name}.wav"]


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


def read_jobs(path: str | os.PathLike) -> tuple[list[Job], list[tuple[int, str]]]:
    """(jobs, [(line number, problem)]) — a malformed line is a failed job, not a fatal error."""
    path = Path(path)
    if not path.exists():
        raise AudiogenError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise AudiogenError(f"{path}: not a UTF-8 text file") from None
    jobs, problems, names = [], [], set()
    index = 0
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            job = _parse_job(index, line, path.parent)
            if job.name in names:
                raise AudiogenError(f"duplicate job name {job.name!r}")
            names.add(job.name)
            jobs.append(job)
        except AudiogenError as err:
            problems.append((number, str(err)))
        index += 1
    if not jobs and not problems:
        raise AudiogenError(f"{path}: no jobs")
    return jobs, problems


def _parse_job(index: int, line: str, base: Path) -> Job:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as err:
        raise AudiogenError(f"not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise AudiogenError("a job must be a JSON object")
    task = data.get("task")
    if task not in TASKS:
        raise AudiogenError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    unknown = sorted(set(data) - ALLOWED[task])
    if unknown:
        raise AudiogenError(f"unknown parameter {unknown[0]!r} for task {task}")
    params = {k: v for k, v in data.items() if k not in ("task", "name")}
    for key in ("midi", "prompt", "seed_audio", "input"):
        if key in params and isinstance(params[key], str):
            params[key] = str((base / params[key]).resolve()) if not os.path.isabs(params[key]) else params[key]
    if "seed" in params and not isinstance(params["seed"], int):
        raise AudiogenError("seed must be an integer")
    params.setdefault("seed", index)
    name = str(data.get("name") or f"{index:05d}-{task}")
    if "/" in name or name.startswith("."):
        raise AudiogenError(f"name {name!r} must be a plain file stem")
    if task == "loops":
        check_loop(count=params.setdefault("count", LOOP_COUNT), bars=params.get("bars", LOOP_BARS),
                   bpm=params.get("bpm", LOOP_BPM), beats_per_bar=params.get("beats_per_bar", BEATS_PER_BAR))
        check_format(params.get("format", LOOP_FORMAT))
        compose = params.get("compose")
        if compose is not None and not isinstance(compose, bool):
            raise AudiogenError("compose must be true or false")
        if "style" in params:
            if params.get("midi") is not None or compose is False:
                raise AudiogenError("style is for composed sketches: not with midi or \"compose\": false")
            loop_meter(params.get("beats_per_bar", BEATS_PER_BAR))
    elif task == "compose":
        _check_compose(params)
    elif task == "continue":
        if not (params.get("seed_audio") or params.get("input")):
            raise AudiogenError("a continue job needs seed_audio (the recording to continue)")
        params.setdefault("seconds", CONTINUE_SECONDS)
    elif task == "render":
        if not (params.get("midi") or params.get("input")):
            raise AudiogenError("a render job needs midi (the sketch to render)")
    return Job(index=index, task=task, params=params, name=name)


def _check_compose(params: dict[str, Any]) -> None:
    """What a compose job can be told is wrong without the composer (its style needs the model)."""
    bars = params.get("bars", compose_options.BARS)
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
        raise AudiogenError(f"bars must be a whole number of at least 1, got {bars!r}")
    for key in ("style", "key", "meter"):
        if key in params and not isinstance(params[key], str):
            raise AudiogenError(f"{key} must be a string, got {params[key]!r}")
    parse_meter(params.get("meter", compose_options.METER))
    key = params.get("key", compose_options.KEY)
    if key.strip().lower() != "auto":
        parse_key(key)
    if not isinstance(params.get("loop", False), bool):
        raise AudiogenError("loop must be true or false")
    if not isinstance(params.get("bpm", compose_options.BPM), (int, float)) or isinstance(params.get("bpm"), bool):
        raise AudiogenError(f"bpm must be a number, got {params.get('bpm')!r}")


def read_manifest(out_dir: Path) -> set[str]:
    """Outputs with a manifest row (the record of finished work)."""
    done = set()
    path = out_dir / "manifest.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                done.add(json.loads(line)["output"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last line from a kill: that output is redone
    return done


def estimate_frames(job: Job, frame_rate: float) -> int:
    """Frames a job will generate (for the single progress bar's total)."""
    p = job.params
    if job.task == "loops":
        seconds = p.get("bars", LOOP_BARS) * p.get("beats_per_bar", BEATS_PER_BAR) * 60 / p.get("bpm", LOOP_BPM) + 2.0
        return int(math.ceil(seconds * frame_rate)) * int(p.get("count", LOOP_COUNT))
    if job.task == "continue":
        return int(math.ceil(float(p.get("seconds", CONTINUE_SECONDS)) * frame_rate))
    if job.task == "compose":
        return 0
    seconds = p.get("seconds")
    if seconds is None:
        try:
            from ..midi import midi_seconds

            seconds = midi_seconds(p.get("midi") or p.get("input")) + 1.0
        except AudiogenError:
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


def run_job(ag, job: Job, progress: Any, *, sampling: SamplingConfig | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """Generate one job's outputs: [(wav [C, N] or a compose job's PrettyMIDI, extra manifest fields)]; the job's
    own fields override `sampling`. A composed loop's extra fields hold its sketch (a PrettyMIDI) as "sketch"."""
    p = dict(job.params)
    if job.task == "compose":
        key = p.get("key", compose_options.KEY)
        pm = ag.compose(bars=p.get("bars", compose_options.BARS), style=p.get("style", compose_options.STYLE),
                        key=None if key.strip().lower() == "auto" else key,
                        meter=p.get("meter", compose_options.METER), bpm=p.get("bpm", compose_options.BPM),
                        prompt=p.get("prompt"), loop=bool(p.get("loop", False)), seed=p["seed"],
                        temperature=p.get("temperature", compose_options.TEMPERATURE),
                        top_k=p.get("top_k", compose_options.TOP_K))
        return [(pm, {})]
    sampling = SamplingConfig.from_overrides(
        sampling, **{k: p[k] for k in ("temperature", "top_k", "top_p", "guidance", "seed") if k in p})
    if job.task == "loops":
        count, bars, bpm = int(p.get("count", LOOP_COUNT)), int(p.get("bars", LOOP_BARS)), float(p.get("bpm", LOOP_BPM))
        beats_per_bar = int(p.get("beats_per_bar", BEATS_PER_BAR))
        sketches = ag.loop_sketches(count, bars, bpm, beats_per_bar=beats_per_bar, style=p.get("style"),
                                    seed=sampling.seed,
                                    compose=False if p.get("midi") is not None else p.get("compose"))
        prompt = _load_prompt(p.get("prompt"))
        loops, sr = ag.loops(count, bars, bpm, beats_per_bar=beats_per_bar, midi=sketches or p.get("midi"),
                             prompt=None if prompt is None else prompt[0],
                             prompt_sample_rate=None if prompt is None else prompt[1],
                             batch_size=int(p.get("batch_size", BATCH_SIZE)), sampling=sampling, progress=progress)
        info = loop_info(loops[0].shape[-1], bars=bars, bpm=bpm, beats_per_bar=beats_per_bar)
        assert loops[0].shape[-1] == loop_length(bars, bpm, beats_per_bar, sr)
        return [(w, {"loop": dataclasses.asdict(info), **({} if sketches is None else {"sketch": sketches[i]})})
                for i, w in enumerate(loops)]
    if job.task == "continue":
        wav, sr = audio.load(p.get("seed_audio") or p.get("input"))
        out, _ = ag.continue_audio(wav, sr, float(p["seconds"]), keep_prompt=bool(p.get("keep_prompt", True)),
                                   sampling=sampling, progress=progress)
        return [(out, {})]
    prompt = _load_prompt(p.get("prompt"))
    out, _ = ag.render_midi(p.get("midi") or p.get("input"), seconds=p.get("seconds"),
                            prompt=None if prompt is None else prompt[0],
                            prompt_sample_rate=None if prompt is None else prompt[1], sampling=sampling,
                            progress=progress)
    return [(out, {})]


def _load_prompt(path: str | None):
    return None if path is None else audio.load(path)


def run_batch(ag, jobs_path: str | os.PathLike, out_dir: str | os.PathLike, *, shard: str | None = None,
              sampling: SamplingConfig | None = None, plot: bool = False, quiet: bool = False) -> dict[str, int]:
    """Run (or resume) this shard's jobs; return counts {done, skipped, failed, total}.

    `sampling` (the CLI's options) is every job's default; a job's own fields override it.
    """
    index, count = parse_shard(shard)
    jobs, problems = read_jobs(jobs_path)
    out = ensure_writable_dir(out_dir)
    if count == 1:  # with shards, another process may be writing into the same folder right now
        remove_stale_temporaries(out)
    done = read_manifest(out)
    mine = [j for j in jobs if j.index % count == index]
    pending = [j for j in mine if not all(o in done for o in j.outputs())]
    failures = 0
    for number, problem in problems:
        if (number - 1) % count == index or count == 1:
            failures += 1
            _fail(out, {"line": number}, problem)
    total = sum(estimate_frames(j, ag.frame_rate) for j in pending)
    shared = bar(total, f"batch {index}/{count}" if count > 1 else "batch", quiet=quiet, unit="frame")
    progress = FrameProgress(shared)
    identity = ag.identity
    finished = 0
    try:
        for job in pending:
            started = time.time()
            try:
                results = run_job(ag, job, progress, sampling=sampling)
            except AudiogenError as err:
                failures += 1
                _fail(out, {"job": job.index, "name": job.name}, str(err))
                continue
            wall = time.time() - started
            for output, (result, extra) in zip(job.outputs(), results):
                if output in done:
                    continue
                row = {"output": output, "job": job.index, "name": job.name, "task": job.task,
                       "params": job.params, "seed": job.params.get("seed"), "wall_seconds": round(wall, 3),
                       "shard": f"{index}/{count}"}
                if isinstance(result, pretty_midi.PrettyMIDI):  # a compose job's sketch
                    save_midi(out / output, result)
                    append_line(out / "manifest.jsonl", json.dumps({**row, "seconds": result.get_end_time()},
                                                                   sort_keys=True))
                    continue
                extra = dict(extra)
                sketch = extra.pop("sketch", None)
                if sketch is not None:  # a composed loop: its sketch beside it, named in its rows
                    extra["sketch"] = save_midi((out / output).with_suffix(".mid"), sketch).name
                loop = audio.LoopInfo(**extra["loop"]) if extra.get("loop") else None
                save_output(out / output, result, ag.sample_rate, loop=loop,
                            plot=plot or bool(job.params.get("plot")))
                if loop is not None:  # before the manifest row: a job the manifest calls done is in loops.json
                    record_loop(out / output, loop, sample_rate=ag.sample_rate, sketch=extra.get("sketch"))
                row.update({"seconds": result.shape[-1] / ag.sample_rate, "sample_rate": ag.sample_rate,
                            "model": identity, **extra})
                append_line(out / "manifest.jsonl", json.dumps(row, sort_keys=True))
            finished += 1
    finally:
        shared.close()
    return {"done": finished, "skipped": len(mine) - len(pending), "failed": failures, "total": len(mine)}


def save_output(path: Path, wav: Any, sample_rate: int, *, loop: audio.LoopInfo | None = None,
                plot: bool = False) -> None:
    """Write generated audio (atomically; format from the suffix; loop points when `loop`) and, with `plot`, its
    spectrogram PNG beside it."""
    audio.save(path, wav, sample_rate, loop=loop)
    if plot:
        from ..plots import save_spectrogram

        save_spectrogram(path.with_suffix(".png"), wav, sample_rate, title=path.name, loop=loop is not None)


def _fail(out: Path, where: dict[str, Any], problem: str) -> None:
    label = where.get("name") or f"line {where.get('line')}"
    print(f"audiogen: job {label} failed: {problem}", file=sys.stderr)
    append_line(out / "failures.jsonl", json.dumps({**where, "error": problem, "time": time.time()}))
