"""A tiny declarative schema: typed fields with defaults, ranges and one doc line each.

Sections are plain dicts of ``key -> Field | dict | Select``. :func:`resolve` merges user values over
the defaults, rejects unknown keys (suggesting the closest valid name), coerces and range-checks
values and raises :class:`UserError` naming the key path (and the YAML line where known).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gantrain.errors import UserError

# Kinds a Field can hold. "path" is a string resolved relative to the config file's folder;
# "size" is an int or an [height, width] pair; "int_list" a non-empty list of positive ints.
KINDS = ("int", "float", "bool", "str", "path", "size", "int_list", "str_list")


@dataclass(frozen=True)
class Field:
    default: Any
    doc: str
    kind: str = "float"
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple | None = None
    nullable: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind}")


@dataclass(frozen=True)
class Select:
    """A section whose schema depends on a name looked up in a registry.

    ``key`` names the selecting field (e.g. ``family``), ``registry`` holds the entries whose
    ``schema`` gives the rest of the section, and ``common`` fields apply whatever is chosen.
    """

    key: str
    registry: Any
    default: str | None
    doc: str
    common: dict | None = None


class Context:
    """Where values came from, so errors can point at a file line or a ``--set`` flag."""

    def __init__(self, source: str = "config", lines: dict | None = None, base_dir: Path | None = None):
        self.source = source
        self.lines = lines or {}
        self.base_dir = base_dir or Path.cwd()

    def where(self, path: tuple) -> str:
        dotted = ".".join(str(p) for p in path) or "<top level>"
        probe = path
        while probe:
            if probe in self.lines:
                return f"{self.lines[probe]}: {dotted}"
            probe = probe[:-1]
        return f"{self.source}: {dotted}"

    def base_dir_for(self, path: tuple) -> Path:
        """Relative paths in the file are taken from its folder; those given with --set from the cwd."""
        return Path.cwd() if str(self.lines.get(path, "")).startswith("--set") else self.base_dir

    def fail(self, path: tuple, message: str):
        raise UserError(f"{self.where(path)}: {message}")


def _check_value(field: Field, value: Any, path: tuple, ctx: Context) -> Any:
    if value is None:
        if field.nullable:
            return None
        ctx.fail(path, "must not be empty (null)")
    kind = field.kind
    if kind == "bool":
        if not isinstance(value, bool):
            ctx.fail(path, f"expected true or false, got {value!r}")
        return value
    if kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            ctx.fail(path, f"expected a non-empty string, got {value!r}")
        if field.choices and value not in field.choices:
            close = difflib.get_close_matches(value, field.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            ctx.fail(path, f"{value!r} is not one of {', '.join(map(str, field.choices))}{hint}")
        if kind == "path":
            p = Path(value).expanduser()
            return str(p if p.is_absolute() else (ctx.base_dir_for(path) / p).resolve())
        return value
    if kind == "size":
        if isinstance(value, list) and len(value) == 2:
            pair = [_number(field, v, path, ctx, integer=True) for v in value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            n = _number(field, value, path, ctx, integer=True)
            pair = [n, n]
        else:
            ctx.fail(path, f"expected a size (an integer or [height, width]), got {value!r}")
        return pair
    if kind == "str_list":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
            ctx.fail(path, f"expected a list of names, got {value!r}")
        items = [v.strip() for v in items]
        bad = [v for v in items if field.choices and v not in field.choices]
        if bad:
            ctx.fail(path, f"{bad[0]!r} is not one of {', '.join(field.choices)}")
        return items
    if kind == "int_list":
        if not isinstance(value, list) or not value:
            ctx.fail(path, f"expected a non-empty list of integers, got {value!r}")
        return [_number(field, v, path, ctx, integer=True) for v in value]
    if isinstance(value, str) and field.choices and any(isinstance(c, str) for c in field.choices):
        # A named choice of a numeric field (data.channels: auto).
        if value not in field.choices:
            ctx.fail(path, f"{value!r} is not one of {', '.join(map(str, field.choices))}")
        return value
    number = _number(field, value, path, ctx, integer=(kind == "int"))
    if field.choices and number not in field.choices:
        ctx.fail(path, f"{number!r} is not one of {', '.join(map(str, field.choices))}")
    return number


def _number(field: Field, value: Any, path: tuple, ctx: Context, integer: bool):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        ctx.fail(path, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
    if integer and not isinstance(value, int):
        ctx.fail(path, f"expected an integer, got {value!r}")
    if not integer:
        value = float(value)
        if not math.isfinite(value):
            ctx.fail(path, f"expected a finite number, got {value!r}")
    lo, hi = field.min, field.max
    if lo is not None and (value < lo or (field.min_exclusive and value == lo)):
        ctx.fail(path, f"must be {'>' if field.min_exclusive else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        ctx.fail(path, f"must be <= {hi}, got {value!r}")
    return value


def resolve(schema: dict, user: Any, path: tuple, ctx: Context) -> dict:
    """Merge ``user`` over ``schema``'s defaults, validating every key; returns a new dict."""
    if user is None:
        user = {}
    if not isinstance(user, dict):
        ctx.fail(path, f"expected a mapping of keys, got {type(user).__name__} {user!r}")
    for key in user:
        if key not in schema:
            close = difflib.get_close_matches(str(key), [str(k) for k in schema], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(str(k) for k in schema)
            ctx.fail(path + (key,), f"unknown key{hint}; valid keys here: {valid}")
    out = {}
    for key, spec in schema.items():
        sub = path + (key,)
        if isinstance(spec, Field):
            out[key] = _check_value(spec, user.get(key, spec.default), sub, ctx)
        elif isinstance(spec, Select):
            out[key] = resolve_select(spec, user.get(key), sub, ctx)
        else:
            out[key] = resolve(spec, user.get(key), sub, ctx)
    return out


def resolve_select(spec: Select, user: Any, path: tuple, ctx: Context) -> dict:
    if user is None:
        user = {}
    if not isinstance(user, dict):
        ctx.fail(path, f"expected a mapping with a {spec.key!r} key, got {user!r}")
    name = user.get(spec.key, spec.default)
    if name is None:
        choices = ", ".join(spec.registry.names())
        # A misspelt selecting key (model: {famly: gan}) is the likely cause: name both problems.
        for key in user:
            if str(key) not in (spec.common or {}) and difflib.get_close_matches(str(key), [spec.key], n=1):
                ctx.fail(path + (key,), f"unknown key (did you mean {spec.key!r}?); {'.'.join(map(str, path + (spec.key,)))} is required: choose one of {choices}")
        ctx.fail(path + (spec.key,), f"required; choose one of {choices}")
    if not isinstance(name, str):
        ctx.fail(path + (spec.key,), f"expected a name, got {name!r}")
    try:
        entry = spec.registry.entry(name)
    except UserError as err:  # re-raised with the file line of the key
        ctx.fail(path + (spec.key,), str(err))
    full = {spec.key: Field(name, spec.doc, "str")}
    full.update(spec.common or {})
    full.update(entry.schema)
    return resolve(full, user, path, ctx)


def schema_docs(schema: dict, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Flatten a schema into (dotted key, default, doc) rows for docs and ``gantrain list``."""
    rows = []
    for key, spec in schema.items():
        dotted = f"{prefix}{key}"
        if isinstance(spec, Field):
            rows.append((dotted, spec.default, spec.doc))
        elif isinstance(spec, Select):
            rows.append((f"{dotted}.{spec.key}", spec.default, spec.doc))
            rows.extend(schema_docs(spec.common or {}, f"{dotted}."))
        else:
            rows.extend(schema_docs(spec, f"{dotted}."))
    return rows


Validator = Callable[[dict, Context], None]
