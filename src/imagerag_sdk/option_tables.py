"""Markdown option tables generated from the options models, kept in the docs between markers.

A doc marks where a table goes; everything between the two comments is generated::

    <!-- options: critic openai -->
    <!-- /options -->

Targets: ``ROLE NAME [NAME …]`` (registered components; several names share one table, with a
default column each), ``loop`` (a profile's ``loop:`` settings) and ``loop.limits``. Rewrite every
block after changing an option::

    python -m imagerag_sdk.option_tables docs          # --check: only report stale blocks (exit 1)

The columns are the key a profile writes (its other accepted spellings after "also"), the type with
its bounds, the default, and the field's ``description``. Nothing heavy is imported: options
classes come from the registry, whose plugins import their models lazily.
"""

from __future__ import annotations

import argparse
import enum
import re
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo

from .specs import ComponentSpec

BLOCK = re.compile(r"(<!-- options: (?P<target>[^>]*?) -->\n)(?P<body>.*?)(<!-- /options -->)", re.S)
FIX_COMMAND = "python -m imagerag_sdk.option_tables docs"
_NAMED_TYPES = {"SecretStr": "secret", "NoneType": "null", "Any": "any"}


def option_key(name: str, field: FieldInfo) -> tuple[str, list[str]]:
    """The key a profile writes for ``field`` and the other spellings it accepts."""
    key = field.alias or name
    also: list[str] = []
    if isinstance(field.validation_alias, AliasChoices):
        also = [c for c in field.validation_alias.choices if isinstance(c, str) and c != key]
    return key, also


def type_label(ann: Any) -> str:
    """A short, YAML-minded name for an annotation: ``int | null``, ``auto | fp32``, ``secret``."""
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return " | ".join(f"`{value_label(v)}`" for v in typing.get_args(ann))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_label(a) for a in typing.get_args(ann))
    if origin is typing.Annotated:
        return type_label(typing.get_args(ann)[0])
    if origin is not None:
        args = ", ".join(type_label(a) for a in typing.get_args(ann))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
    if name in _NAMED_TYPES:
        return _NAMED_TYPES[name]
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return " | ".join(f"`{value_label(m.value)}`" for m in ann)
    if isinstance(ann, type) and issubclass(ann, ComponentSpec):
        role = getattr(ann, "role", None)
        return f"{role} spec" if isinstance(role, str) and role else "component spec"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "mapping"
    return name


def bounds_label(field: FieldInfo) -> str:
    """The numeric and length bounds pydantic checks (``1–10``, ``≥ 0``, ``multiple of 16``)."""
    found: dict[str, Any] = {}
    for meta in field.metadata:
        for attr in ("ge", "gt", "le", "lt", "multiple_of", "min_length", "max_length"):
            value = getattr(meta, attr, None)
            if value is not None:
                found[attr] = value
    parts = []
    if "ge" in found and "le" in found:
        parts.append(f"{found.pop('ge')} to {found.pop('le')}")
    for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if attr in found:
            parts.append(f"{sign} {found[attr]}")
    if "multiple_of" in found:
        parts.append(f"multiple of {found['multiple_of']}")
    if found.get("min_length") == 1:
        parts.append("non-empty")
    elif "min_length" in found:
        parts.append(f"length ≥ {found['min_length']}")
    if "max_length" in found:
        parts.append(f"length ≤ {found['max_length']}")
    return ", ".join(parts)


def value_label(value: Any) -> str:
    """``value`` as a profile would write it (YAML flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return value_label(value.value)
    if isinstance(value, BaseModel):
        return value_label(value.model_dump(mode="json", by_alias=True, exclude_defaults=False))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_label(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_label(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else '""'
    return repr(value)


def default_label(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True, validated_data={})
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    return f"`{value_label(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(models: Sequence[tuple[str, type[BaseModel]]]) -> str:
    """A markdown table of the options of ``models`` ((column title, model) pairs)."""
    first = models[0][1]
    names = list(dict.fromkeys(n for _, m in models for n in m.model_fields))
    defaults = ["default"] if len(models) == 1 else [f"`{title}` default" for title, _ in models]
    lines = ["| option | type | " + " | ".join(defaults) + " | description |",
             "|---" * (3 + len(defaults)) + "|"]
    for name in names:
        owner = next(m for _, m in models if name in m.model_fields)
        field = owner.model_fields[name]
        key, also = option_key(name, field)
        option = f"`{key}`" + (" (also " + ", ".join(f"`{a}`" for a in also) + ")" if also else "")
        kind = type_label(field.annotation)
        bounds = bounds_label(field)
        kind = f"{kind} ({bounds})" if bounds else kind
        cells = [default_label(m.model_fields[name]) if name in m.model_fields else "—" for _, m in models]
        desc = field.description or ""
        for title, model in models:
            other = model.model_fields.get(name)
            if model is not first and other is not None and (other.description or "") != desc:
                desc += f"<br>`{title}`: {other.description or ''}"
        lines.append("| " + " | ".join([option, _cell(kind), *map(_cell, cells), _cell(desc)]) + " |")
    return "\n".join(lines) + "\n"


def models_for(target: str) -> list[tuple[str, type[BaseModel]]]:
    """The models a block's target names: ``ROLE NAME …``, ``loop`` or ``loop.limits``."""
    from .errors import ConfigError
    from .roles import ROLES

    words = target.split()
    if words == ["loop"]:
        from .settings import LoopSettings

        return [("loop", LoopSettings)]
    if words == ["loop.limits"]:
        from .limits import Limits

        return [("loop.limits", Limits)]
    if len(words) >= 2 and words[0] in ROLES:
        from .plugins import get_registry

        registry = get_registry()
        return [(name, registry.get(words[0], name).cls.Options) for name in words[1:]]
    raise ConfigError(f"unknown option table '{target}'",
                      hint=f"write '<!-- options: ROLE NAME -->' (roles: {', '.join(ROLES)}), "
                           "'<!-- options: loop -->' or '<!-- options: loop.limits -->'")


def render(text: str) -> str:
    """``text`` with every options block regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + table(models_for(m.group("target"))) + m.group(4), text)


def markdown_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.rglob("*.md")) if p.is_dir() else [p])
    return out


def stale(paths: Iterable[str | Path]) -> list[Path]:
    """The files whose options blocks differ from what :func:`render` writes now."""
    return [p for p in markdown_files(paths) if render(t := p.read_text(encoding="utf-8")) != t]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagerag_sdk.option_tables", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", default=["docs"], help="markdown files or folders (default: docs)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    args = parser.parse_args(argv)
    changed = []
    for path in markdown_files(args.paths):
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in changed:
        print(f"{'stale' if args.check else 'rewrote'}: {path}")
    if args.check and changed:
        print(f"regenerate with: {FIX_COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
