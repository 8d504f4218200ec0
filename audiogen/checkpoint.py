"""Model directories and training state, all in safetensors (nothing is ever unpickled).

A model directory holds `config.json` (`format_version`, `kind`, the model's config and any
extra identity such as the codec an LM was trained with) and `model.safetensors`. It loads
with no training code: `read_config(dir)` + `load_weights(dir)`.

Training state for `--resume` (`train_state.safetensors`) keeps every module's weights, every
optimizer's state, the step and the RNG states in one file, written atomically, so a run
killed at any instant resumes from a consistent snapshot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import AudiogenError
from .fileio import atomic_path, write_json

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TRAIN_STATE_NAME = "train_state.safetensors"


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or strided storage; copies cost nothing at our sizes.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    with atomic_path(path) as tmp:
        save_file(_plain(tensors), str(tmp), metadata=metadata)


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise AudiogenError(f"{path}: not a readable safetensors file ({err})") from None


def save_model(
    directory: str | os.PathLike,
    *,
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `config.json` + `model.safetensors` (weights first, each file atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / WEIGHTS_NAME, state_dict)
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "config": config}
    meta.update(extra or {})
    write_json(directory / CONFIG_NAME, meta)
    return directory


def read_config(directory: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """The parsed `config.json` of a model directory, checked for version and kind."""
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise AudiogenError(f"{directory}: no such model folder")
    if not path.exists() or not (directory / WEIGHTS_NAME).exists():
        raise AudiogenError(f"{directory}: not a model folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AudiogenError(f"{path}: not valid JSON") from None
    if not isinstance(meta, dict) or "config" not in meta:
        raise AudiogenError(f"{path}: not an audiogen model config")
    # The entries loaders index into: a null or a number there is one line, not a traceback.
    if not isinstance(meta["config"], dict):
        raise AudiogenError(f'{path}: "config" must be a JSON object, got {_json_type(meta["config"])}')
    if meta.get("codec") is not None and not isinstance(meta["codec"], dict):
        raise AudiogenError(f'{path}: "codec" must be a JSON object, got {_json_type(meta["codec"])}')
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise AudiogenError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    if kind is not None and meta.get("kind") != kind:
        raise AudiogenError(f"{directory}: is a {meta.get('kind')!r} model, expected a {kind!r} model")
    return meta


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {int: "a number", float: "a number", str: "a string", list: "a list"}.get(type(value), type(value).__name__)


def check_bounds(config: Any, bounds: dict[str, tuple[float, float]], *, where: str) -> None:
    """A one-line `AudiogenError` unless every float setting of the dataclass `config` is finite and every setting
    named in `bounds` (a number, or each number of a list) lies in its inclusive range: a config.json asking for
    absurd sizes (`dim` 1e9, `num_layers` 1e6) fails here, before a module is built."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise AudiogenError(f"{where}: {field.name} must be a finite number, got {value}")
    for name, (low, high) in bounds.items():
        value = getattr(config, name)
        if not all(low <= v <= high for v in (value if isinstance(value, (list, tuple)) else [value])):
            raise AudiogenError(f"{where}: {name} must be in {low:g}..{high:g}, got {value}")


def load_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    return load_tensors(Path(directory) / WEIGHTS_NAME)


def load_into(module: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Copy a folder's weights into `module` (built from its config.json; stored fp16/bf16 weights take the
    module's dtype); weights that do not fit the config are one clear line, not a 60-line traceback."""
    state = load_weights(directory)
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError:  # same names, different shapes
        raise AudiogenError(f"{directory}: weights do not match config.json (tensor shapes differ)") from None
    if missing or unexpected:
        raise AudiogenError(f"{directory}: weights do not match config.json "
                            f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")


def config_hash(config: dict[str, Any]) -> str:
    """A short stable identity for a config (used to tell codecs apart in datasets)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def weights_hash(directory: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(Path(directory) / WEIGHTS_NAME, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- training state (resume)


def _flatten_optimizer(prefix: str, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Tensors of an optimizer state_dict go to `tensors`; the rest is returned as JSON-able."""
    plain_state: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        plain_state[str(index)] = {}
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{key}"] = value
            else:
                plain_state[str(index)][key] = value
    return {"state": plain_state, "param_groups": state["param_groups"]}


def _unflatten_optimizer(prefix: str, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, tensor in tensors.items():
        if name.startswith(prefix + "/"):
            index, key = name[len(prefix) + 1 :].split("/", 1)
            state.setdefault(int(index), {})[key] = tensor
    return {"state": state, "param_groups": meta["param_groups"]}


def save_train_state(
    path: str | os.PathLike,
    *,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    tensors: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """One file with every module, optimizer, extra tensor (RNG states) and the step."""
    out: dict[str, torch.Tensor] = {f"extra/{k}": v for k, v in (tensors or {}).items()}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            out[f"module/{name}/{key}"] = value
    opt_meta = {}
    for name, optimizer in optimizers.items():
        opt_meta[name] = _flatten_optimizer(f"optim/{name}", optimizer.state_dict(), out)
    meta = {"step": step, "optimizers": opt_meta, "extra": extra or {}, "format_version": FORMAT_VERSION}
    save_tensors(path, out, metadata={"audiogen": json.dumps(meta)})


def load_train_state(
    path: str | os.PathLike,
    *,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> tuple[int, dict[str, Any], dict[str, torch.Tensor]]:
    """Restore modules and optimizers in place; return (step, extra, extra tensors)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise AudiogenError(f"nothing to resume: {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("audiogen", "{}"))
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        raise AudiogenError(f"{path}: not a readable training state ({err})") from None
    tensors = load_tensors(path)
    try:
        for name, module in modules.items():
            prefix = f"module/{name}/"
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(_unflatten_optimizer(f"optim/{name}", meta["optimizers"][name], tensors))
    except (RuntimeError, KeyError, ValueError):  # the recipe's model or losses changed since the save
        raise AudiogenError(f"{path}: the saved training state does not fit this recipe's model and losses") from None
    extra_tensors = {k[len("extra/") :]: v for k, v in tensors.items() if k.startswith("extra/")}
    return int(meta["step"]), meta.get("extra", {}), extra_tensors


# ---------------------------------------------------------------------------- the model folder
# A model folder (what `audiogen train lm` and `audiogen export` write and `AudioGen.load` reads): the LM's
# config.json + model.safetensors at its root, its codec's folder in `codec/`. The bundled default model is
# one, inside the package (package data: audiogen/default_model/).
CODEC_DIR = "codec"
DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"


def default_model_dir() -> Path | None:
    """The bundled language-model folder, or None while none is bundled."""
    return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / CONFIG_NAME).exists() else None


def default_codec_dir() -> Path | None:
    path = DEFAULT_MODEL_DIR / CODEC_DIR
    return path if (path / CONFIG_NAME).exists() else None


def model_codec(model_dir: str | os.PathLike, meta: dict[str, Any]) -> str | Path:
    """What loads a model folder's codec: its `codec/` folder, else the spec its config.json names (`meta`)."""
    folder = Path(model_dir) / CODEC_DIR
    if (folder / CONFIG_NAME).exists():
        return folder
    spec = (meta.get("codec") or {}).get("spec")
    if not spec:
        raise AudiogenError(f"{model_dir}: the model names no codec (expected a codec/ folder inside it)")
    return spec


def bundle_codec(directory: Path, spec: str) -> None:
    """Copy the codec folder beside the LM (once) so the model folder is self-contained."""
    target = directory / CODEC_DIR
    source = Path(spec)
    if not spec or not source.is_dir() or (target / CONFIG_NAME).exists():
        return
    if source.resolve() == target.resolve():
        return
    tmp = directory / ".codec.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copy2(source / name, tmp / name)
    tmp.rename(target)
