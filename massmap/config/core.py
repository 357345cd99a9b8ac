"""Typed configuration machinery: frozen dataclasses filled from YAML and ``--set key=value``.

Every section of the schema is a frozen dataclass whose fields carry type hints. This module turns
nested dicts (parsed YAML) and dotted overrides into instances of those dataclasses, checking every
key and every type, and turns instances back into plain dicts for provenance. Unknown keys are
rejected with the list of valid ones.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml


from massmap.errors import ConfigError  # noqa: E402  (re-exported: massmap.config.ConfigError)


INT_LIMIT = 2**31  # integer config values are counts and sizes: |value| < INT_LIMIT (the seed: 32 bits)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (tuple, list):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in get_args(tp))}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML) to the annotated type ``tp`` or raise ConfigError."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:  # Optional[X]: X's own message says what is wrong (e.g. "a finite number")
            return _coerce(value, others[0], key)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        raise ConfigError(f"config key '{key}': must be one of {', '.join(map(str, allowed))}; got {value!r}")
    if origin is tuple:
        args = get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
            try:
                value = [yaml.safe_load(v) for v in value]
            except yaml.YAMLError:
                raise ConfigError(f"config key '{key}': expected a list {_type_name(tp)}, got {value!r}") from None
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list {_type_name(tp)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"config key '{key}': expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if _is_dataclass_type(tp):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping of sub-keys, got {value!r}")
        return build(tp, value, prefix=key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            # counts and sizes enter compiled code as int32; the seed (checked by Config) has 32 bits
            if key != "seed" and not -INT_LIMIT < value < INT_LIMIT:
                raise ConfigError(f"config key '{key}': {value} is out of range (an integer below 2**31 "
                                  "in magnitude)")
            return value
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        if not math.isfinite(number):  # no key means "unbounded" by inf; NaN compares false everywhere
            raise ConfigError(f"config key '{key}': expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
    raise ConfigError(f"config key '{key}': unsupported type {tp!r}")


def build(cls: type, values: dict | None, prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a nested dict, checking keys and types."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        where = f"'{prefix[:-1]}'" if prefix else "the top level"
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; valid keys at {where}: {', '.join(names)}"
        )
    kwargs = {name: _coerce(values[name], hints[name], prefix + name) for name in names if name in values}
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config section '{prefix[:-1] or 'top'}': {err}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain, YAML-safe nested dict of a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a config dataclass."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_dataclass_type(tp):
            out.extend(valid_keys(tp, prefix + f.name + "."))
        else:
            out.append(prefix + f.name)
    return out


def refers_to_itself(value: Any, _open: tuple = ()) -> bool:
    """Whether parsed YAML holds itself (an anchor used inside its own node, ``a: &x [*x]``): such a
    value has no end, and every walk over it would recurse forever."""
    if isinstance(value, (dict, list)):
        if any(value is o for o in _open):
            return True
        items = value.values() if isinstance(value, dict) else value
        return any(refers_to_itself(v, _open + (value,)) for v in items)
    return False


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into (['a','b','c'], parsed value). Values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else None
    except yaml.YAMLError:
        value = raw
    if refers_to_itself(value):
        raise ConfigError(f"--set '{text}': a YAML alias refers to its own anchor (the value never ends)")
    return key.split("."), value


def _set_nested(tree: dict, path: list[str], value: Any, cls: type) -> None:
    node = tree
    hints_cls = cls
    for i, part in enumerate(path):
        hints = typing.get_type_hints(hints_cls)
        names = [f.name for f in dataclasses.fields(hints_cls)]
        dotted = ".".join(path[: i + 1])
        if part not in names:
            parent = ".".join(path[:i])
            where = f"'{parent}'" if parent else "the top level"
            raise ConfigError(f"unknown config key '{dotted}'; valid keys at {where}: {', '.join(names)}")
        tp = hints[part]
        if i == len(path) - 1:
            if _is_dataclass_type(tp) and not isinstance(value, dict):
                raise ConfigError(
                    f"config key '{dotted}' is a section; set one of: "
                    + ", ".join(valid_keys(tp, dotted + "."))
                )
            node[part] = value
            return
        if not _is_dataclass_type(tp):
            raise ConfigError(f"config key '{dotted}' has no sub-keys")
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
        hints_cls = tp


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file into a dict, with one-line errors."""
    from massmap.io.inputs import check_file

    p = check_file(path, "config file", error=ConfigError)
    try:
        data = yaml.safe_load(p.read_bytes().decode("utf-8"))
    except OSError as err:
        raise ConfigError(f"config file '{p}' cannot be read ({err.strerror or type(err).__name__})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file '{p}' is not UTF-8 text (byte {err.start}): not a YAML config") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"config file '{p}' is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping of keys at the top level")
    if refers_to_itself(data):
        raise ConfigError(f"config file '{p}': a YAML alias refers to its own anchor (the value never ends)")
    return data


def resolve(cls: type, files: list[str | Path] | tuple = (), overrides: list[str] | tuple = (),
            base: dict | None = None) -> Any:
    """Defaults ← ``base`` ← each YAML file in order ← each ``key=value`` override."""
    tree: dict = {}

    def merge(dst: dict, src: dict) -> None:
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                merge(dst[k], v)
            else:
                dst[k] = v

    origin: dict[str, str] = {}  # dotted key -> the config file that set it last (for messages)
    if base:
        merge(tree, base)
    for f in files:
        data = load_yaml(f)
        origin.update({k: f"config file '{f}'" for k in _dotted_keys(data)})
        merge(tree, data)
    for text in overrides:
        path, value = parse_override(text)
        _set_nested(tree, path, value, cls)
        origin[".".join(path)] = f"--set {text}"
    try:
        return build(cls, tree)
    except ConfigError as err:
        raise ConfigError(_with_origin(str(err), origin)) from None


def _dotted_keys(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix[:-1]] if prefix else []
    keys = [prefix + str(k) for k in tree]
    for k, v in tree.items():
        if isinstance(v, dict):
            keys += _dotted_keys(v, f"{prefix}{k}.")
    return keys


def _with_origin(message: str, origin: dict[str, str]) -> str:
    """Append where the offending key was set when it came from a config file."""
    for quoted in re.findall(r"'([A-Za-z0-9_.]+)'", message):
        where = origin.get(quoted)
        if where and where.startswith("config file"):
            return f"{message} (set in {where})"
    return message


def dump_yaml(obj: Any) -> str:
    """The resolved config as YAML text (stable key order)."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=None)
