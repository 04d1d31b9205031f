"""Typed config dataclasses: presets, YAML loading that rejects unknown keys, saving.

Each model has one config dataclass whose field defaults are the paper's values. Presets are a
class attribute mapping a preset name to overrides of those defaults:

    @dataclass
    class GazeShiftNetConfig:
        PRESETS: ClassVar[dict[str, dict]] = {"tiny": {"width": 8, "image_size": (32, 32)}}
        width: int = 64
        image_size: tuple[int, int] = (256, 256)   # (height, width), pixels
        lr: float = 1e-5

`"paper"` is always a preset and means "the defaults" (it may be listed to add overrides, but
needs not be). `load_config(cls, source, preset)` applies the preset, then `source` (a YAML file
or a dict), checking every key against the fields and every value against the field's type.

Supported field types: bool, int, float (an int is accepted and converted), str, `X | None`,
`Literal[...]`, `tuple[X, ...]`, `tuple[X, Y]`, `list[X]`, `dict[str, X]` and nested config
dataclasses (given as a dict). YAML has no tuples, so tuples are written as lists and turned back
into tuples when read.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

__all__ = ["load_config", "config_from_dict", "config_to_dict", "save_config", "presets_of"]

C = TypeVar("C")


def load_config(cls: type[C], source: str | os.PathLike | dict | None = None, preset: str = "paper") -> C:
    """A `cls` instance: the defaults, then `cls.PRESETS[preset]`, then the overrides in `source`.

    `source` is a YAML file path, a dict, or None. Raises ValueError for an unknown preset, an
    unknown key (naming it and the valid keys) or a value of the wrong type.
    """
    presets = presets_of(cls)
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r} for {cls.__name__}; known presets: {', '.join(sorted(presets))}")
    values = dict(presets[preset])
    if source is not None:
        if isinstance(source, dict):
            overrides = source
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"config file {path} does not exist")
            overrides = yaml.safe_load(path.read_text()) or {}
            if not isinstance(overrides, dict):
                raise ValueError(f"config file {path} must hold a mapping of field: value, got {type(overrides).__name__}")
        values = _merge(values, overrides)
    return config_from_dict(cls, values)


def presets_of(cls: type) -> dict[str, dict]:
    """The presets of a config class, always including "paper" (the defaults)."""
    presets = dict(getattr(cls, "PRESETS", {}) or {})
    presets.setdefault("paper", {})
    return presets


def config_from_dict(cls: type[C], values: dict) -> C:
    """A `cls` instance from a dict of field values (missing fields keep their defaults).

    Raises ValueError naming an unknown key and the valid ones, or a value of the wrong type.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(values, dict):
        raise ValueError(f"{cls.__name__} must be given a mapping, got {type(values).__name__}: {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields:
            raise ValueError(
                f"unknown key {key!r} for {cls.__name__}; valid keys: {', '.join(sorted(fields))}"
            )
    kwargs = {key: _coerce(value, hints[key], f"{cls.__name__}.{key}") for key, value in values.items()}
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict:
    """A plain dict (YAML- and `torch.load(weights_only=True)`-safe) of a config dataclass."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a config dataclass instance, got {cfg!r}")
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write `cfg` as YAML to `path` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)
    return path


# -- helpers ---------------------------------------------------------------------------------------


def _merge(base: dict, overrides: dict) -> dict:
    """`base` updated by `overrides`, merging nested dicts (for nested config dataclasses)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against the type `hint` (and converted where lossless); ValueError if not."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ValueError:
                continue
        raise ValueError(f"{where} = {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where} = {value!r} must be one of {list(args)}")
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return config_from_dict(hint, value)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"{where} = {value!r} must be a {origin.__name__}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ValueError(f"{where} = {value!r} must have {len(args)} items")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        return origin(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} = {value!r} must be a mapping")
        key_t, val_t = args if args else (Any, Any)
        return {_coerce(k, key_t, where): _coerce(v, val_t, f"{where}[{k!r}]") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} = {value!r} must be a bool (true/false)")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} = {value!r} must be an int")
        return value
    if hint is float:
        if isinstance(value, str):  # PyYAML reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} = {value!r} must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} = {value!r} must be a string")
        return value
    return value  # a type this module does not check: accepted as given
