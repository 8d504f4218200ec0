"""A run folder's checkpoints you can trust: a sha256 per file in a manifest, and the previous state kept.

    saved = Checkpoints(run_dir)
    saved.save(step=40, write_state=lambda path: checkpoint.save_train_state(path, ...))
    choice = Checkpoints(run_dir).choose()   # on --resume: the newest training state whose checksum holds

Layout at the run folder's root (what `--resume`, `eval`, `export` and the recipes' scripts read):
    train_state.safetensors        the newest training state (optimizer, step, RNG: everything resume needs)
    train_state.prev.safetensors   the state before it, kept to fall back to
    checkpoint.json                the manifest: step, bytes and sha256 of each state, and of the exported
                                   model's config.json + model.safetensors
    config.json + model.safetensors  the exported model of the newest checkpoint

A state is intact when its sha256 is listed in the manifest (matched by content, not by name, so every
instant of a save is consistent). A save writes the new state under a temporary name, then the manifest
that lists it (atomically), then moves the newest state aside as the previous one (a hard link: the newest
name never disappears) and renames the new one into place: a run killed at any instant leaves a newest
state that the manifest vouches for. A damaged newest state falls back to the previous one, with a line
that says so; a folder without a manifest (a run from before checksums) resumes its state unverified.
An exported model that does not match the manifest on resume (damaged, or newer than the state a fallback
resumed) is exported again from the resumed state by the loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import checkpoint
from ..errors import AudiogenError
from ..fileio import write_json

MANIFEST_NAME = "checkpoint.json"
STATE_NAME = checkpoint.TRAIN_STATE_NAME
PREVIOUS_NAME = "train_state.prev.safetensors"
# A name fileio.remove_stale_temporaries clears: a new state before the manifest lists it.
STAGING_NAME = ".train_state.next.tmp.safetensors"
MODEL_FILES = (checkpoint.CONFIG_NAME, checkpoint.WEIGHTS_NAME)
MANIFEST_VERSION = 1
KEEP = 3  # manifest entries: the new state, the newest and the previous (until the renames are done)


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe(path: Path) -> dict[str, Any]:
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


@dataclasses.dataclass
class Choice:
    """The training state `--resume` loads, and what to tell the user about it."""

    path: Path
    step: int
    note: str  # one line: which state, verified or not
    verified: bool  # False: a folder without a manifest (saved before checksums)
    fallback: bool  # the newest state was damaged or missing; `path` is the previous one


def read_state_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The `audiogen` metadata of a training-state file, checked: a damaged or foreign header is one line."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("audiogen", "null"))
    except (SafetensorError, OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError too
        raise AudiogenError(f"{path}: not a readable training state ({err})") from None
    problem = None
    if not isinstance(meta, dict):
        problem = "it has no audiogen training metadata"
    elif type(meta.get("step")) is not int or meta["step"] < 0:
        problem = f"its step is {meta.get('step')!r}, not a count of steps"
    elif not isinstance(meta.get("optimizers"), dict) or not all(
            isinstance(o, dict) and isinstance(o.get("state"), dict) and isinstance(o.get("param_groups"), list)
            for o in meta["optimizers"].values()):
        problem = "its optimizer state is malformed"
    elif not isinstance(meta.get("extra", {}), dict):
        problem = "its extra metadata is malformed"
    else:
        fitted = meta.get("extra", {}).get("fitted_steps", 0)
        if type(fitted) is not int or fitted < 0:
            problem = f"its fitted_steps is {fitted!r}, not a count of steps"
    if problem:
        raise AudiogenError(f"{path}: not a valid training state ({problem})")
    return meta


class Checkpoints:
    """Save and choose the training states of run folder `out` (see the module docstring)."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.manifest_path = self.out / MANIFEST_NAME
        self.state_path = self.out / STATE_NAME
        self.previous_path = self.out / PREVIOUS_NAME
        # The newest intact state on disk (the one a save moves aside), once known.
        self.current: dict[str, Any] | None = None
        self.current_name: str | None = None

    def any_state(self) -> bool:
        return self.state_path.exists() or self.previous_path.exists()

    def _manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        problem = f"{self.manifest_path}: not a valid checkpoint manifest, so the training state cannot be " \
                  f"verified (delete it to resume unverified)"
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise AudiogenError(problem) from None
        states = manifest.get("states") if isinstance(manifest, dict) else None
        if not isinstance(states, list) or not all(
                isinstance(s, dict) and isinstance(s.get("sha256"), str) and type(s.get("step")) is int
                for s in states):
            raise AudiogenError(problem)
        return manifest

    def choose(self) -> Choice:
        """The newest intact training state for `--resume`; AudiogenError when there is none."""
        if not self.any_state():
            raise AudiogenError(f"nothing to resume in {self.out} (no {STATE_NAME})")
        manifest = self._manifest()
        if manifest is None:  # saved before checksums existed: adopt the newest state as it is
            if not self.state_path.exists():
                raise AudiogenError(f"nothing to resume in {self.out} (no {STATE_NAME})")
            step = read_state_meta(self.state_path)["step"]
            self.current = {"file": STATE_NAME, "step": step, **_describe(self.state_path)}
            self.current_name = STATE_NAME
            return Choice(self.state_path, step, f"{self.state_path}: no {MANIFEST_NAME} (saved by an older "
                                                 f"audiogen): resuming from step {step} without a checksum",
                          verified=False, fallback=False)
        listed = {s["sha256"]: s for s in manifest["states"]}
        found: dict[str, dict[str, Any]] = {}
        for name in (STATE_NAME, PREVIOUS_NAME):
            path = self.out / name
            if path.exists():
                entry = listed.get(sha256(path))
                if entry is not None:
                    found[name] = entry
        if not found:
            present = [n for n in (STATE_NAME, PREVIOUS_NAME) if (self.out / n).exists()]
            raise AudiogenError(f"no intact training state in {self.out}: {' and '.join(present)} "
                                f"{'does' if len(present) == 1 else 'do'} not match the checksums in "
                                f"{MANIFEST_NAME} (damaged)")
        name = max(found, key=lambda n: (found[n]["step"], n == STATE_NAME))
        self.current, self.current_name = found[name], name
        step = found[name]["step"]
        if name == STATE_NAME:
            return Choice(self.state_path, step, f"resuming from {self.state_path} (step {step}, checksum verified)",
                          verified=True, fallback=False)
        if STATE_NAME in found:
            why = "holds an older step than the previous checkpoint"
        elif self.state_path.exists():
            why = f"does not match its checksum in {MANIFEST_NAME} (damaged)"
        else:
            why = "is missing"
        return Choice(self.previous_path, step, f"{self.state_path} {why}: resuming from the previous checkpoint, "
                                                f"{PREVIOUS_NAME} (step {step})", verified=True, fallback=True)

    def model_matches(self, step: int) -> bool:
        """Whether the exported model at the folder's root is intact and is the one of `step`."""
        manifest = self._manifest() or {}
        model = manifest.get("model")
        if not isinstance(model, dict) or model.get("step") != step or not isinstance(model.get("files"), dict):
            return False
        for name in MODEL_FILES:
            path, entry = self.out / name, model["files"].get(name)
            if not path.exists() or not isinstance(entry, dict) or entry.get("sha256") != sha256(path):
                return False
        return True

    def _write_manifest(self, states: list[dict[str, Any]], model_step: int) -> None:
        files = {name: _describe(self.out / name) for name in MODEL_FILES if (self.out / name).exists()}
        write_json(self.manifest_path, {"format_version": MANIFEST_VERSION, "states": states[:KEEP],
                                        "model": {"step": model_step, "files": files}})

    def record_model(self, step: int) -> None:
        """Rewrite the manifest's model checksums after the model at the root was exported again."""
        manifest = self._manifest() or {"states": []}
        states = manifest["states"]
        if self.current is not None and all(s["sha256"] != self.current["sha256"] for s in states):
            states = [self.current] + states
        self._write_manifest(states, step)

    def save(self, *, step: int, write_state: Callable[[Path], None]) -> None:
        """Write a new training state (after the model was exported) with its checksums; keep the previous one."""
        staging = self.out / STAGING_NAME
        write_state(staging)
        entry = {"file": STATE_NAME, "step": step, **_describe(staging)}
        older = []
        if self.current is not None:
            older.append({**self.current, "file": PREVIOUS_NAME})
            manifest = self._manifest() or {"states": []}
            older += [s for s in manifest["states"] if s["sha256"] != self.current["sha256"]
                      and s["sha256"] != entry["sha256"]]
        self._write_manifest([entry] + older, step)  # from here the new state is vouched for
        if self.current_name == STATE_NAME:  # move the newest aside; its name never disappears
            link = self.out / ".train_state.prev.tmp.safetensors"
            link.unlink(missing_ok=True)
            try:
                os.link(self.state_path, link)
            except OSError:  # a file system without hard links
                shutil.copyfile(self.state_path, link)
            os.replace(link, self.previous_path)
        os.replace(staging, self.state_path)
        self.current, self.current_name = entry, STATE_NAME
