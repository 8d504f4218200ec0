"""Offline paired MIDI + audio corpus: scores rendered with fluidsynth, with augmentations and drums.

    audiogen corpus -o data/corpus --hours 1 --seed 0            # music21's bundled scores
    audiogen corpus -o data/mine --hours 2 --midi-dir my_midis/   # any folder of .mid files

    from audiogen.corpus.build import build_corpus
    summary = build_corpus("data/corpus", hours=1.0, seed=0)

Sources (music21 or a MIDI folder) and their order come from `audiogen.corpus.sources`.

Output: OUT/audio/<name>.wav (mono PCM16) beside OUT/audio/<name>.mid, which is exactly the MIDI
that was rendered (the tokenizer pairs them by stem), and OUT/corpus.json (settings, one entry per
piece: source, programs, tempo factor, transposition, drums, seconds).

Piece i takes its source from a fixed, seed-shuffled schedule that balances the collections
(chorales, renaissance polyphony, folk tunes, classical) and cycles through each collection, and
draws its augmentations (GM programs per part, tempo x0.8..1.25, transposition of up to 5
semitones, velocity jitter, a generated drum part for `drums_fraction` of the pieces) from
`default_rng([seed, i])`: the same seed gives the same pieces and the same MIDI bytes. Pieces are
built in index order until `hours` of audio are done; a re-run skips finished pieces, and every
file is written atomically, so a killed build resumes cleanly.

Every option is checked before any work (`check_options`: a rate fluidsynth renders at, finite hours, ...;
`check_soundfont`: a SoundFont, not a file fluidsynth would silently replace with another; the output
folder, by creating a file in it), and each fluidsynth render is bounded by its MIDI's length (`_render`
stops one whose output outgrows the MIDI's end plus a tail), so a small odd MIDI cannot write gigabytes.
A full disk stops the build in one line (a piece that cannot be rendered is skipped instead).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import multiprocessing
import os
import queue
import shutil
import subprocess
import tempfile
import time
from numbers import Integral
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf

from ..audio import save
from ..errors import AudiogenError
from ..fileio import (
    check_writable,
    ensure_writable_dir,
    is_temporary,
    space_error,
    temporary_file,
    write_bytes,
    write_json,
)
from ..midi import beat_grid
from ..progress import bar
from .drums import add_drums, meter_class
from .sources import Schedule, Source, load_source, midi_sources, music21_sources

FORMAT_VERSION = 1
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts")
SOUNDFONT_NAMES = ("FluidR3_GM.sf2", "TimGM6mb.sf2")
SAMPLE_RATES = (8000, 96000)  # what fluidsynth renders at (synth.sample-rate), inclusive
MAX_WORKERS = 64
MAX_PIECE_SECONDS = (3.0, 3600.0)
RENDER_TAIL_SECONDS = 10.0  # fluidsynth's release tail past the MIDI's end; more than this is a runaway render
RENDER_TIMEOUT_SECONDS = 600.0
WAV_HEADER_BYTES = 4096  # generous: fluidsynth's float WAV header is under 100 bytes


# GM programs by ensemble: (melody programs, bass programs). A piece takes one ensemble, or
# "mixed" (each part from any ensemble).
ENSEMBLES = {
    "strings": ([40, 41, 42, 48, 49, 44, 45, 110], [42, 43, 32]),
    "brass": ([56, 57, 60, 61, 62, 63, 59], [58, 57, 61]),
    "reeds": ([64, 65, 66, 68, 69, 71, 70, 109, 22], [70, 67, 32]),
    "pipes": ([72, 73, 74, 75, 76, 77, 78, 79], [70, 33, 58]),
    "organ": ([16, 17, 18, 19, 20, 21, 23], [19, 16, 32]),
    "keys": ([0, 1, 2, 4, 5, 6, 7, 3], [0, 32, 33]),
    "guitar": ([24, 25, 26, 27, 28, 29, 30, 31, 104, 105, 107, 15], [32, 33, 34, 35, 36, 37]),
    "synth": ([80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 98, 99, 100], [38, 39, 87]),
    "mallets": ([8, 9, 10, 11, 12, 13, 14, 108, 112, 46], [32, 33, 12]),
    "choir": ([52, 53, 54, 91, 94], [52, 43, 32]),
}
ENSEMBLE_WEIGHTS = {"strings": 0.12, "brass": 0.1, "reeds": 0.08, "pipes": 0.06, "organ": 0.07, "keys": 0.12,
                    "guitar": 0.1, "synth": 0.14, "mallets": 0.07, "choir": 0.03, "mixed": 0.11}
DRUM_KITS = {0: 0.55, 8: 0.1, 16: 0.1, 24: 0.05, 25: 0.1, 32: 0.1}  # GM2/GS kits; fluidsynth falls back to 0
MAX_CHANNELS = 15  # 16 MIDI channels less the drum channel


@dataclasses.dataclass
class CorpusSummary:
    files: int
    seconds: float
    skipped: list[str]
    out_dir: Path


@dataclasses.dataclass(frozen=True)
class Job:
    index: int
    name: str
    source: Source
    audio_dir: str
    seed: int
    soundfont: str
    sample_rate: int
    drums_fraction: float
    max_piece_seconds: float


class RenderError(AudiogenError):
    """A piece fluidsynth could not render: the piece is skipped (a full disk, by contrast, stops the build)."""


def check_soundfont(path: str | os.PathLike) -> Path:
    """`path` if it is a SoundFont 2 file (RIFF, form type 'sfbk'): fluidsynth silently falls back to
    another soundfont when given something else."""
    font = Path(path)
    if not font.is_file():
        raise AudiogenError(f"{font}: soundfont not found")
    try:
        with open(font, "rb") as handle:
            head = handle.read(12)
    except OSError as err:
        raise AudiogenError(f"{font}: cannot read the soundfont: {err.strerror or err}") from None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise AudiogenError(f"{font}: not a SoundFont (.sf2: a RIFF file of form 'sfbk')")
    return font


def check_options(*, hours: float, seed: int, sample_rate: int, workers: int, drums_fraction: float,
                  max_piece_seconds: float) -> None:
    """One line for the first impossible option (named as on the command line)."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def integer(value) -> bool:
        return isinstance(value, Integral) and not isinstance(value, bool)

    if not (number(hours) and hours > 0):
        raise AudiogenError(f"--hours must be a positive number, got {hours}")
    if not (integer(seed) and seed >= 0):
        raise AudiogenError(f"--seed must be a non-negative integer, got {seed}")
    if not (integer(sample_rate) and SAMPLE_RATES[0] <= sample_rate <= SAMPLE_RATES[1]):
        raise AudiogenError(f"--sample-rate must be {SAMPLE_RATES[0]} to {SAMPLE_RATES[1]} Hz (what fluidsynth "
                            f"renders at), got {sample_rate}")
    if not (integer(workers) and 1 <= workers <= MAX_WORKERS):
        raise AudiogenError(f"--workers must be 1 to {MAX_WORKERS}, got {workers}")
    if not (number(drums_fraction) and 0.0 <= drums_fraction <= 1.0):
        raise AudiogenError(f"--drums-fraction must be 0 to 1, got {drums_fraction}")
    low, high = MAX_PIECE_SECONDS
    if not (number(max_piece_seconds) and low <= max_piece_seconds <= high):
        raise AudiogenError(f"--max-piece-seconds must be {low:g} to {high:g}, got {max_piece_seconds}")


def default_soundfont() -> Path:
    for name in SOUNDFONT_NAMES:
        for folder in SOUNDFONT_DIRS:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    raise AudiogenError(
        "no General MIDI soundfont found (looked for FluidR3_GM.sf2 / TimGM6mb.sf2 in "
        f"{', '.join(SOUNDFONT_DIRS)}): apt-get install fluid-soundfont-gm, or pass --soundfont"
    )


# ---------------------------------------------------------------- one piece (runs in a worker)


def _pick(rng: np.random.Generator, weights: dict) -> object:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _choose_programs(parts: list[pretty_midi.Instrument], rng: np.random.Generator) -> list[int]:
    """GM programs per pitched part: one ensemble per piece; a low part (median below G3) gets a bass voice."""
    ensemble = _pick(rng, ENSEMBLE_WEIGHTS)
    medians = [float(np.median([n.pitch for n in p.notes])) for p in parts]
    lowest = int(np.argmin(medians)) if len(parts) > 1 else -1
    single = {k: v for k, v in ENSEMBLE_WEIGHTS.items() if k != "mixed"}
    programs = []
    for i, _ in enumerate(parts):
        ens = _pick(rng, single) if ensemble == "mixed" else ensemble
        melody, bass = ENSEMBLES[ens]
        pool = bass if i == lowest and medians[i] < 55 else melody
        programs.append(int(pool[int(rng.integers(len(pool)))]))
    return programs


def _cut(pm: pretty_midi.PrettyMIDI, limit: float) -> None:
    """End the piece by `limit` seconds on a downbeat: notes there become a short final chord."""
    end = max(n.end for inst in pm.instruments for n in inst.notes)
    if end <= limit:
        return
    beats, downbeats = beat_grid(pm, until=limit)
    bar_len = float(np.median(np.diff(downbeats))) if len(downbeats) > 1 else 2.0
    options = downbeats[(downbeats > 0) & (downbeats + min(bar_len, 2.0) <= limit)]
    cut = float(options[-1]) if len(options) and options[-1] >= limit / 2 else limit
    tail = min(bar_len, 2.0, limit - cut)
    for inst in pm.instruments:
        kept = []
        for n in inst.notes:
            if n.start < cut - 0.02:
                n.end = min(n.end, cut)
            elif n.start <= cut + 0.02 and tail > 0.05:  # the chord on the cut downbeat rings briefly
                n.end = min(n.end, cut + tail)
            else:
                continue
            kept.append(n)
        inst.notes = kept
    pm.instruments = [inst for inst in pm.instruments if inst.notes]
    for inst in pm.instruments:
        inst.control_changes = [c for c in inst.control_changes if c.time <= cut + tail]
        inst.pitch_bends = [b for b in inst.pitch_bends if b.time <= cut + tail]
    pm.time_signature_changes = [t for t in pm.time_signature_changes if t.time < cut]
    pm.key_signature_changes = [k for k in pm.key_signature_changes if k.time < cut]
    pm.lyrics, pm.text_events = [], []


def augment(
    pm: pretty_midi.PrettyMIDI,
    rng: np.random.Generator,
    *,
    drums_fraction: float,
    max_seconds: float,
    keep_programs: float = 0.0,
) -> dict:
    """Apply this piece's augmentations to `pm` in place; returns what was done (for the manifest).

    `keep_programs` is the chance of leaving the parts' own GM programs (user MIDI files have
    meaningful ones; music21's scores do not).
    """
    pitched = [inst for inst in pm.instruments if not inst.is_drum]
    had_drums = any(inst.is_drum for inst in pm.instruments)
    if len(pitched) > MAX_CHANNELS:  # more parts than channels: fold the extras into the first ones
        for k, inst in enumerate(pitched[MAX_CHANNELS:]):
            pitched[k % MAX_CHANNELS].notes.extend(inst.notes)
        pm.instruments = [i for i in pm.instruments if i.is_drum] + pitched[:MAX_CHANNELS]
        pitched = pitched[:MAX_CHANNELS]
    tempo = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    stretch_to = pm.get_end_time() + 1.0
    pm.adjust_times(np.array([0.0, stretch_to]), np.array([0.0, stretch_to / tempo]))
    _cut(pm, max_seconds - 1.0)  # leave a second for the release tail
    pitched = [inst for inst in pm.instruments if not inst.is_drum]
    pitches = [n.pitch for inst in pitched for n in inst.notes]
    lo, hi = (min(pitches), max(pitches)) if pitches else (60, 60)
    shifts = [s for s in range(-5, 6) if lo + s >= 24 and hi + s <= 108] or [0]
    transpose = int(shifts[int(rng.integers(len(shifts)))])
    programs = _choose_programs(pitched, rng)
    if rng.random() < keep_programs:
        programs = [int(inst.program) for inst in pitched]
    period, phase = rng.uniform(6.0, 20.0), rng.uniform(0, 2 * np.pi)  # slow swells, like phrasing
    for inst, program in zip(pitched, programs):
        inst.program = program
        offset = rng.normal(0, 8)
        for n in inst.notes:
            n.pitch += transpose
            swell = 1 + 0.12 * np.sin(2 * np.pi * n.start / period + phase)
            n.velocity = int(np.clip(round(n.velocity * swell + offset + rng.normal(0, 6)), 25, 127))
    wants_drums = rng.random() < drums_fraction
    style = None
    if wants_drums and not had_drums:
        style = add_drums(pm, rng)
        if style is not None:
            pm.instruments[-1].program = 40 if style == "brushy" else int(_pick(rng, DRUM_KITS))
    return {
        "programs": programs, "tempo_factor": round(tempo, 4), "transpose": transpose,
        "drums": bool(had_drums or style), "drum_style": style if style else ("source" if had_drums else None),
        "meter": meter_class(pm),
    }


def _render(midi_path: Path, soundfont: str, sample_rate: int, scratch: Path, *, max_seconds: float) -> np.ndarray:
    """fluidsynth -> float stereo at `sample_rate` -> mono [N]; stopped (a `RenderError`) once its output
    outgrows `max_seconds` of audio or it runs past the time limit."""
    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-O", "float", "-T", "wav",
           "-o", "synth.cpu-cores=1", "-F", str(scratch), soundfont, str(midi_path)]
    limit = WAV_HEADER_BYTES + int(max_seconds * sample_rate) * 2 * 4  # float32 stereo frames
    too_long = f"fluidsynth rendered more than {max_seconds:.1f} s of audio for this MIDI; stopped"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + RENDER_TIMEOUT_SECONDS
            while True:
                try:
                    proc.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if _size(scratch) > limit:
                    raise RenderError(too_long)
                if time.monotonic() > deadline:
                    raise RenderError(f"fluidsynth took more than {RENDER_TIMEOUT_SECONDS:.0f} s; stopped")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        text = log.read().decode("utf-8", errors="replace")
    full = space_error(midi_path.with_suffix(".wav"), tmp=scratch)  # fluidsynth does not say why a write failed
    if full is not None:
        raise full
    if proc.returncode != 0 or _size(scratch) == 0:
        last = text.strip().splitlines()[-1:] or ["no output"]
        raise RenderError(f"fluidsynth failed: {last[0]}")
    if _size(scratch) > limit:
        raise RenderError(too_long)
    data, sr = sf.read(str(scratch), dtype="float32", always_2d=True)
    assert sr == sample_rate, f"fluidsynth rendered {sr} Hz, asked for {sample_rate}"
    return data.mean(axis=1)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _trim(wav: np.ndarray, sample_rate: int, notes_end: float, limit: float) -> np.ndarray:
    """Keep every note, then the release/reverb tail until it falls 50 dB below the peak (2 s at most)."""
    longest = min(len(wav), int((notes_end + 2.0) * sample_rate), int(limit * sample_rate))
    floor = np.abs(wav).max() * 10 ** (-50 / 20)
    loud = np.nonzero(np.abs(wav[:longest]) > floor)[0]
    stop = max(int(notes_end * sample_rate), (int(loud[-1]) if len(loud) else 0) + int(0.05 * sample_rate))
    wav = wav[: min(stop, longest)].copy()
    fade = min(len(wav), int(0.02 * sample_rate))  # no click where the tail is cut
    wav[len(wav) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return wav


def make_piece(job: Job) -> dict:
    """Build one piece (MIDI, then audio); returns its manifest entry, or {"skipped": reason}."""
    try:
        pm = load_source(job.source, max_seconds=job.max_piece_seconds)
    except Exception as err:  # music21 raises many types for scores it cannot read
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        return {"index": job.index, "skipped": f"{job.source.label}: {reason}"}
    rng = np.random.default_rng([job.seed, job.index])
    info = augment(pm, rng, drums_fraction=job.drums_fraction, max_seconds=job.max_piece_seconds,
                   keep_programs=0.3 if job.source.group == "midi" else 0.0)
    buffer = io.BytesIO()
    pm.write(buffer)
    audio_dir = Path(job.audio_dir)
    midi_path = audio_dir / f"{job.name}.mid"
    notes_end = max(n.end for inst in pm.instruments for n in inst.notes)
    render_seconds = max(notes_end, pm.get_end_time()) + RENDER_TAIL_SECONDS
    try:  # the pair is written whole or not at all (a full disk stops the build and leaves no half pair)
        write_bytes(midi_path, buffer.getvalue())
        with temporary_file(audio_dir, name=f"{job.name}.render", suffix=".wav") as scratch:
            try:
                mono = _render(midi_path, job.soundfont, job.sample_rate, scratch, max_seconds=render_seconds)
            except RenderError as err:
                midi_path.unlink(missing_ok=True)
                return {"index": job.index, "skipped": f"{job.source.label}: {err}"}
        peak = float(np.abs(mono).max()) if len(mono) else 0.0
        if peak <= 1e-5:
            midi_path.unlink(missing_ok=True)
            return {"index": job.index, "skipped": f"{job.source.label}: rendered silence"}
        mono = _trim(mono, job.sample_rate, notes_end, job.max_piece_seconds)
        mono *= 10 ** (-1 / 20) / np.abs(mono).max()  # peak at -1 dBFS
        save(audio_dir / f"{job.name}.wav", mono[None], job.sample_rate)
    except BaseException:
        midi_path.unlink(missing_ok=True)
        raise
    source = job.source.path
    if "/music21/corpus/" in source:  # not the venv's path: the score's place in music21's corpus
        source = "music21:" + source.split("/music21/corpus/", 1)[1]
    if job.source.tune is not None:
        source += f"#{job.source.tune}"
    return {
        "index": job.index, "name": job.name, "audio": f"audio/{job.name}.wav", "midi": f"audio/{job.name}.mid",
        "source": source, "group": job.source.group, "seconds": round(len(mono) / job.sample_rate, 3),
        "notes": sum(len(inst.notes) for inst in pm.instruments), **info,
    }


# ---------------------------------------------------------------- the build (main process)


def _settings(seed: int, sample_rate: int, drums_fraction: float, max_piece_seconds: float,
              soundfont: Path, midi_dir: str | None) -> dict:
    return {"seed": seed, "sample_rate": sample_rate, "drums_fraction": drums_fraction,
            "max_piece_seconds": max_piece_seconds, "soundfont": soundfont.name,
            "source": str(Path(midi_dir).resolve()) if midi_dir else "music21"}


def _read_manifest(path: Path, settings: dict) -> dict[int, dict]:
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # unreadable: rebuild the pieces (files are replaced atomically)
    if manifest.get("settings") != settings:
        raise AudiogenError(
            f"{path.parent} was built with other settings ({manifest.get('settings')}); use a new folder"
        )
    return {int(p["index"]): p for p in manifest.get("pieces", [])}


def build_corpus(
    out_dir: str | os.PathLike,
    *,
    hours: float = 1.0,
    seed: int = 0,
    midi_dir: str | None = None,
    soundfont: str | None = None,
    sample_rate: int = 24000,
    workers: int = 2,
    drums_fraction: float = 0.6,
    max_piece_seconds: float = 120.0,
    quiet: bool = False,
) -> CorpusSummary:
    """Render paired MIDI + audio until `hours` of audio exist in `out_dir` (see the module docstring)."""
    check_options(hours=hours, seed=seed, sample_rate=sample_rate, workers=workers, drums_fraction=drums_fraction,
                  max_piece_seconds=max_piece_seconds)
    font = check_soundfont(soundfont) if soundfont else default_soundfont()
    if shutil.which("fluidsynth") is None:
        raise AudiogenError("fluidsynth is not installed (apt-get install fluidsynth)")
    out = check_writable(out_dir, folder=True)
    sources = midi_sources(midi_dir) if midi_dir else music21_sources()
    schedule = Schedule(sources, seed)
    audio_dir = ensure_writable_dir(out / "audio")
    for stale in audio_dir.iterdir():  # scratch files of a killed run
        if is_temporary(stale):
            stale.unlink(missing_ok=True)
    settings = _settings(seed, sample_rate, drums_fraction, max_piece_seconds, font, midi_dir)
    manifest_path = out / "corpus.json"
    known = _read_manifest(manifest_path, settings)

    def finished(index: int) -> dict | None:
        entry = known.get(index)
        if entry and (out / entry["audio"]).exists() and (out / entry["midi"]).exists():
            return entry
        return None

    def job(index: int) -> Job:
        return Job(index, f"{index:06d}-{schedule[index].label}", schedule[index], str(audio_dir), seed,
                   str(font), sample_rate, drums_fraction, max_piece_seconds)

    target = hours * 3600.0
    resumed, first_new = 0.0, 0  # the finished prefix from an earlier run is already on the bar
    while resumed < target and (entry := finished(first_new)) is not None:
        resumed += entry["seconds"]
        first_new += 1
    progress = bar(round(target), "corpus", quiet=quiet, unit="s", initial=min(round(resumed), round(target)))
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    window = 2 * workers if pool is not None else 1
    results: queue.Queue = queue.Queue()
    done: dict[int, dict] = {}  # finished, waiting for the pieces before them
    in_flight: set[int] = set()
    skipped: list[str] = []
    total, built, failures_in_a_row, next_submit, next_consume = 0.0, 0, 0, 0, 0
    mean_seconds, last_write = max_piece_seconds / 2, time.monotonic()

    def receive() -> dict:
        got = results.get()
        if isinstance(got, BaseException):  # a bug in a worker: surface it here
            raise got
        in_flight.discard(got["index"])
        return got

    try:
        while total < target:
            # Submit in index order while the pieces in flight may still be needed.
            while len(in_flight) < window and (not in_flight or total + mean_seconds * len(in_flight) < target):
                i, next_submit = next_submit, next_submit + 1
                in_flight.add(i)
                if (entry := finished(i)) is not None:
                    results.put(entry)
                elif pool is None:
                    results.put(make_piece(job(i)))
                else:
                    pool.apply_async(make_piece, (job(i),), callback=results.put, error_callback=results.put)
            got = receive()
            done[got["index"]] = got
            # Consume in index order, so the corpus is always a prefix of the schedule.
            while next_consume in done and total < target:
                entry = done.pop(next_consume)
                next_consume += 1
                if "skipped" in entry:
                    failures_in_a_row += 1
                    if entry["skipped"] not in skipped:
                        skipped.append(entry["skipped"])
                    if failures_in_a_row >= max(len(schedule), 20):
                        raise AudiogenError(f"no source could be rendered (last: {entry['skipped']})")
                    continue
                failures_in_a_row, built = 0, built + 1
                if entry["index"] >= first_new:
                    progress.update(max(0, min(round(total + entry["seconds"]), round(target)) - progress.n))
                known[entry["index"]] = entry
                total += entry["seconds"]
                mean_seconds = max(total / built, 1.0)
            if time.monotonic() - last_write > 5.0:
                _write_manifest(manifest_path, settings, known, skipped)
                last_write = time.monotonic()
        # Pieces built past the end of the prefix are not part of this corpus: remove them.
        leftovers = list(done.values())
        while in_flight:
            leftovers.append(receive())
        for got in leftovers:
            if "name" in got and got["index"] not in known:
                for key in ("audio", "midi"):
                    (out / got[key]).unlink(missing_ok=True)
    finally:  # also on Ctrl-C: record what was finished so a re-run resumes from it
        progress.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        _write_manifest(manifest_path, settings, known, skipped)
    pieces = [known[i] for i in sorted(known)]
    summary = CorpusSummary(len(pieces), float(sum(p["seconds"] for p in pieces)), skipped, out)
    if not quiet:
        print(f"corpus: {summary.files} pieces, {summary.seconds / 3600:.2f} h of audio in {out} "
              f"({len(skipped)} sources skipped)")
    return summary


def _write_manifest(path: Path, settings: dict, known: dict[int, dict], skipped: list[str]) -> None:
    pieces = [known[i] for i in sorted(known)]
    seconds = sum(p["seconds"] for p in pieces)
    write_json(path, {
        "format_version": FORMAT_VERSION, "settings": settings, "files": len(pieces),
        "seconds": round(seconds, 3), "hours": round(seconds / 3600, 4), "skipped": skipped, "pieces": pieces,
    })


