"""Configs are dataclasses with defaults in code; TOML recipes override only what differs.

    recipe = load_recipe(CodecRecipe, "recipes/codec.toml", ["--train.steps=100"])

A recipe file has one table per section (`[data]`, `[model]`, `[train]`); command-line
overrides `--section.key=value` take TOML literals (`--model.ratios=[8,5,4,2]`) or bare
strings (`--data.root=audio/`). Unknown keys and wrong types are user errors with one line.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import AudiogenError

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain JSON/TOML-friendly values; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


class _Literal(str):
    """A command-line override's raw text that TOML also reads as a non-string (`2024`, `true`):
    a string setting takes the text as typed, any other setting the TOML value."""

    parsed: Any


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(value, _Literal) and origin not in (typing.Union, types.UnionType):
        value = str(value) if tp is str else value.parsed
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except AudiogenError as err:
                errors.append(str(err))
        raise AudiogenError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise AudiogenError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise AudiogenError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise AudiogenError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
        item = args[0] if args else Any
        items = [_coerce(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise AudiogenError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise AudiogenError(f"{where}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise AudiogenError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AudiogenError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AudiogenError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = math.inf
        if not math.isfinite(number):  # TOML reads nan and inf: no setting means either
            raise AudiogenError(f"{where} must be a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise AudiogenError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a dict, checking keys and types; missing keys keep defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise AudiogenError(
            f"unknown setting {prefix}{unknown[0]} (known: {', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict update (recipe over defaults, overrides over recipe)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _override_keys(text: str) -> tuple[list[str], str]:
    """(keys, raw value) of `--section.key=value`; each key a name (no empty parts: `--train.=5`)."""
    body = text[2:] if text.startswith("--") else text
    if "=" not in body:
        raise AudiogenError(f"override {text!r} must look like --section.key=value")
    dotted, raw = body.split("=", 1)
    dotted = dotted.strip()
    if not dotted:
        raise AudiogenError(f"override {text!r} has no key")
    keys = dotted.split(".")
    if not all(k.isidentifier() for k in keys):
        raise AudiogenError(f"override {text!r}: {dotted!r} is not a setting name (--section.key=value)")
    return keys, raw


def parse_override(text: str) -> dict[str, Any]:
    """`--section.key=value` (or `section.key=value`) as a nested dict."""
    keys, raw = _override_keys(text)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string such as a path
    else:
        if not isinstance(value, str):  # `--data.root=2024` is a folder name where a string is expected
            literal = _Literal(raw.strip())
            literal.parsed = value
            value = literal
    nested: dict[str, Any] = {keys[-1]: value}
    for key in reversed(keys[:-1]):
        nested = {key: nested}
    return nested


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise AudiogenError(f"recipe not found: {path}") from None
    except OSError as err:  # a folder, no permission, ...
        raise AudiogenError(f"cannot read recipe {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise AudiogenError(f"recipe {path} is not valid TOML: {err}") from None
    except UnicodeDecodeError:  # a binary file
        raise AudiogenError(f"recipe {path} is not valid TOML: not UTF-8 text") from None


def _dataclass_in(tp: Any) -> Any:
    """The dataclass `tp` names (also inside `X | None`), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def check_override(cls: type, text: str) -> None:
    """Refuse an override that does not name one setting of `cls`: an unknown section or key, a key
    below a setting (`--train.steps.x=1`), or a whole table (`--train={}` would reset it to code defaults)."""
    keys, _ = _override_keys(text)
    tp: Any = cls
    for depth, key in enumerate(keys):
        table = _dataclass_in(tp)
        if table is None:
            if typing.get_origin(tp) is dict or tp is Any:
                return  # a free-form table takes any key
            raise AudiogenError(f"override {text!r}: {'.'.join(keys[:depth])} is a setting, not a table")
        names = {f.name for f in dataclasses.fields(table) if f.init}
        if key not in names:
            raise AudiogenError(f"override {text!r}: unknown setting {'.'.join(keys[:depth + 1])} "
                                f"(known: {', '.join(sorted(names))})")
        tp = typing.get_type_hints(table)[key]
    if _dataclass_in(tp) is not None:
        dotted = ".".join(keys)
        raise AudiogenError(f"override {text!r}: {dotted} is a table of settings; set them one at a time "
                            f"(--{dotted}.KEY=VALUE)")


def load_recipe(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Defaults from `cls`, then the TOML file, then `--section.key=value` overrides."""
    for text in overrides or []:  # the command line first: its mistakes are the cheapest to report
        check_override(cls, text)
    # Start from the class's own defaults (including per-recipe default factories), so a
    # recipe section that sets one key keeps the recipe's other defaults.
    data: dict[str, Any] = merge(to_dict(cls()), read_toml(path) if path is not None else {})
    for text in overrides or []:
        data = merge(data, parse_override(text))
    return from_dict(cls, data)
