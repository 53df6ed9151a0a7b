"""Systems (a profile plus overrides) and scorers of an evaluation, each with a configuration hash.

An override is ``dotted.key=value`` on the profile (``loop.mode=concepts``,
``retriever.corpus=laion-10k``, ``reranker={use: bm25}``, ``reranker=null``); the value is YAML. The
hash covers the profile as resolved (overrides applied, ``{$env: …}`` references kept as
references, values of secret-looking keys masked), so changing a system makes new cache keys and a
secret never reaches a file name or ``eval.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..redact import mask_spec

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def config_hash(data: Any) -> str:
    """sha256 of the canonical JSON of ``data`` (hex)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"loop.mode=concepts"`` → ``(["loop", "mode"], "concepts")``; the value is YAML."""
    import yaml

    key, sep, raw = text.partition("=")
    path = [p.strip() for p in key.split(".")]
    if not sep or not all(path):
        raise ConfigError(f"override '{text}' is not key=value", hint="e.g. --set loop.mode=concepts")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': the value is not valid YAML ({getattr(exc, 'problem', exc)})",
                          hint="quote it, e.g. --set 'reranker={use: fake}'") from None
    return path, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the profile data ``data`` with each override set."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        node: Any = out
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None and isinstance(node, dict) and part == "loop":
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                where = ".".join(path[: i + 1])
                raise ConfigError(f"override '{text}': the profile has no section '{where}' to set '{path[i + 1]}' in",
                                  hint=f"set the whole section instead, e.g. --set '{where}={{use: NAME, …}}'")
            node = nxt
        node[path[-1]] = value
    return out


@dataclass(frozen=True)
class System:
    """One evaluated configuration."""

    name: str
    profile: str
    """What --profile said (a name or a path)."""
    overrides: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    """The resolved profile data (overrides applied, secrets masked)."""
    hash: str = ""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.hash, "profile": self.profile, "overrides": list(self.overrides)}


def resolve_system(name: str, profile: str, overrides: Sequence[str]):
    """``(System, Profile)``: the profile loaded, overrides applied and the shape validated."""
    from ..profiles import load_profile, parse_profile

    if not NAME.match(name):
        raise ConfigError(f"system name '{name}' is not a plain name",
                          hint="use letters, digits, '.', '_' and '-' (it names a folder)")
    loaded = load_profile(profile)
    data = apply_overrides(loaded.model_dump(mode="json", exclude_none=True), overrides)
    where = f"{loaded.source} + overrides" if overrides else loaded.source
    resolved = parse_profile(data, source=where)
    masked = mask_spec(resolved.model_dump(mode="json", exclude={"name", "description"}))
    return System(name, profile, tuple(overrides), masked, config_hash(masked)), resolved


def parse_system(text: str) -> tuple[str, str, list[str]]:
    """``"NAME=PROFILE key=value …"`` (``--system``) → ``(name, profile, overrides)``."""
    import shlex

    words = shlex.split(text)
    head = words[0] if words else ""
    name, sep, profile = head.partition("=")
    if not sep or not name or not profile:
        raise ConfigError(f"--system '{text}' is not 'NAME=PROFILE [key=value …]'",
                          hint="e.g. --system 'concepts=fake loop.mode=concepts'")
    return name, profile, words[1:]


@dataclass(frozen=True)
class ScorerSpec:
    """A scorer of the evaluation: its metric name, its ``{use: …, …}`` spec and its hash."""

    name: str
    spec: dict[str, Any]
    hash: str = ""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.hash, "spec": mask_spec(self.spec)}


def parse_scorer(text: str) -> dict[str, Any]:
    """``clip`` or an inline YAML mapping ``{use: clip, model: /abs/tiny}`` → a spec mapping."""
    import yaml

    text = text.strip()
    if re.match(r"^[A-Za-z0-9_.-]+$", text):
        return {"use": text}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--scorer '{text}' is not a name or a YAML mapping ({getattr(exc, 'problem', exc)})",
                          hint="e.g. --scorer clip or --scorer '{use: clip, model: ViT-B-32}'") from None
    if not isinstance(data, dict) or not isinstance(data.get("use"), str):
        raise ConfigError(f"--scorer '{text}' has no 'use: NAME'", hint="e.g. --scorer '{use: clip, model: ViT-B-32}'")
    return data
