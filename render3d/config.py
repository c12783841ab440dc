"""Typed configs: dataclasses filled from YAML mappings and ``key=value`` overrides.

Every key is checked against the dataclass: an unknown key raises ValueError naming where
it was found and listing the valid keys there; values are checked against the field types
(int, float, bool, str, None, tuples and lists of them, nested dataclasses). Floats must be
finite.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp, value, path: str):
    """`value` checked (and, for tuples and dataclasses, built) as type `tp`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _convert(option, value, path)
            except ValueError:
                continue
        raise ValueError(f"{path}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if tp is type(None):
        if value is not None:
            raise ValueError(f"{path}: expected null, got {value!r}")
        return None
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, path=path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ValueError(f"{path}: expected {len(args)} values, got {len(value)}: {value!r}")
            items = [_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item = args[0] if args else Any
            items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            value = float(value)                        # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):                    # YAML's .inf and .nan, or 1e400: no setting means them
            raise ValueError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: expected an int, got {value!r}")
        return value
    if tp in (bool, str) and not isinstance(value, tp):
        raise ValueError(f"{path}: expected {tp.__name__}, got {value!r}")
    return value


def valid_keys(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def from_dict(cls, data: dict, *, path: str = "config"):
    """An instance of dataclass `cls` from a mapping; missing keys take the defaults."""
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = [key for key in data if key not in hints]
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r}; valid keys: {', '.join(valid_keys(cls))}")
    values = {key: _convert(hints[key], value, f"{path}.{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except ValueError as error:     # its own checks name a field as "<cls>: argument 'field'"
        restate_fields(error, cls, path)
        raise


def restate_fields(error: ValueError, cls, path: str) -> None:
    """Raise `error` again said with the key ``<path>.<field>:`` for the field of dataclass `cls`
    that it names as an argument (`render3d._checks.restate`), as the config's own checks say
    theirs; return if it names none, for the caller to re-raise it as it is, traceback and all."""
    from render3d._checks import restate

    said = restate(error, {f.name: f"{path}.{f.name}:" for f in dataclasses.fields(cls)})
    if said != str(error):
        raise ValueError(said) from None


def to_dict(config) -> dict:
    """A dataclass as plain data (tuples become lists), ready for JSON or YAML."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> (["a", "b"], value parsed as YAML: numbers, booleans, null, lists)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r}: expected key=value (e.g. batch=8, generator.feature_dim=32)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ValueError(f"override {text!r}: the value is not valid YAML: {error}") from None
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """A copy of the mapping `data` with each ``key=value`` set (nested keys with dots).
    Keys are checked later, against the dataclass, by `from_dict`."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {text!r}: {'.'.join(keys[:depth + 1])} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return data


def load_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ValueError(f"config {path}: cannot read it: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"config {path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config {path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
