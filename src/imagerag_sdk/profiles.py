"""YAML profiles: which components a pipeline uses, with their options and the loop settings.

Profiles are found in the user's profile directory and among the profiles the loaded plugins ship
(``register_profiles``); the first shadows the second. A profile is validated in two steps. The
shape (sections, ``use:`` names, loop settings) is checked always. Component options are checked against each
component's own ``Options`` model when its plugin is installed; otherwise the profile says what to
install. ``{$env: NAME}`` values are read from the environment only when the pipeline is built.

What stops a valid profile from running on this machine and is known without loading anything (an
unset ``{$env}`` variable, a component's ``preflight``: a missing API key) is a note for
``profiles validate`` and an error for :func:`build_pipeline`, which checks everything (nested
components included) before it constructs anything.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .errors import ComponentNotFoundError, ConfigError, MissingDependencyError, ProfileError, install_hint
from .paths import profiles_dir
from .roles import Options
from .settings import LoopSettings
from .specs import ComponentSpec, nested_specs

SECTIONS = ("generator", "critic", "retriever", "reranker")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, description="Profile name (what --profile takes)")
    description: str = Field("", description="One line shown by 'imagerag profiles list'")
    requires: list[str] = Field(default_factory=list,
                                description="Plugin distributions it needs (checked before its components)")
    generator: ComponentSpec = Field(..., description="The text-to-image model")
    critic: ComponentSpec | None = Field(None, description="The image–prompt judge")
    retriever: ComponentSpec | None = Field(None, description="Corpus search")
    reranker: ComponentSpec | None = Field(None, description="Optional reordering of hits")
    loop: LoopSettings = Field(default_factory=lambda: LoopSettings.model_validate({}), description="Loop settings")
    _source: str = PrivateAttr("<memory>")

    @property
    def source(self) -> str:
        return self._source


@dataclass(frozen=True)
class ProfileEntry:
    """One profile :func:`list_profiles` found, and where."""

    name: str
    origin: str  # user | plugin | file | ambiguous
    path: Path | None  # None: a plugin registered it as data (``profile``), or it is ambiguous
    plugin: str | None = None
    distribution: str | None = None
    profile: Profile | None = None
    shipped_by: tuple[str, ...] = ()  # ambiguous: "dist (plugin 'p')" of each plugin shipping it

    @property
    def where(self) -> str:
        if self.origin == "plugin":
            return f"plugin '{self.plugin}' ({self.distribution})"
        if self.origin == "ambiguous":
            return "ambiguous: shipped by " + " and ".join(self.shipped_by)
        return "user dir" if self.origin == "user" else str(self.path)


# -- discovery ---------------------------------------------------------------------------------
def list_profiles(*, registry=None) -> list[ProfileEntry]:
    """Every profile found: the user directory's first (a file there shadows a profile of the same
    name that a plugin ships), then the profiles the loaded plugins ship (``register_profiles``)."""
    from .plugins import get_registry

    registry = registry or get_registry()
    found: dict[str, ProfileEntry] = {}
    folder = profiles_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.y*ml")):
            found.setdefault(path.stem, ProfileEntry(path.stem, "user", path))
    for name, item in registry.profiles.items():
        found.setdefault(name, ProfileEntry(name, "plugin", item.path, item.plugin, item.distribution,
                                            item.profile))
    for name, items in registry.ambiguous_profiles.items():
        shipped_by = tuple(f"{i.distribution} (plugin '{i.plugin}')" for i in items)
        found.setdefault(name, ProfileEntry(name, "ambiguous", None, shipped_by=shipped_by))
    return sorted(found.values(), key=lambda e: e.name)


def find_entry(name_or_path: str | Path) -> ProfileEntry:
    """An explicit path, else ``<user dir>/<name>.yaml``, else the profile of that name a plugin ships."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in text or path.is_file():
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist", hint="check the path")
        return ProfileEntry(path.stem, "file", path.resolve())
    entries = list_profiles()
    for entry in entries:
        if entry.name == text and entry.origin == "ambiguous":
            raise ProfileError(f"profile '{text}' is ambiguous: {len(entry.shipped_by)} plugins ship it, "
                               f"{' and '.join(entry.shipped_by)}",
                               hint=f"pass the path of one, copy one to {profiles_dir()} (the user's "
                                    "profiles shadow the plugins'), or set IMAGERAG_LOAD_PLUGINS")
        if entry.name == text:
            return entry
    raise ProfileError(f"no profile named '{text}'",
                       hint=f"available: {available(entries)}; or pass a path to a .yaml file "
                            f"(user profiles live in {profiles_dir()})")


def available(entries: list[ProfileEntry] | None = None) -> str:
    """The profile names found, comma-separated ('none' when there are none)."""
    return ", ".join(e.name for e in (list_profiles() if entries is None else entries)) or "none"


def find_profile(name_or_path: str | Path) -> Path:
    """The YAML file of a profile (see :func:`find_entry`); :class:`ProfileError` for one a plugin
    registered as data, which has none (:func:`load_profile` reads both)."""
    entry = find_entry(name_or_path)
    if entry.path is None:
        raise ProfileError(f"profile '{entry.name}' of {entry.where} is not a file",
                           hint="load it with load_profile(name)")
    return entry.path


# -- reading and validation --------------------------------------------------------------------
def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """Read and validate the shape of a profile (component options are checked by :func:`check`)."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    entry = find_entry(name_or_path)
    if entry.profile is not None:
        profile = entry.profile.model_copy()
        profile._source = f"{entry.name} ({entry.where})"
        return profile
    path = entry.path
    assert path is not None  # find_entry returns files or data, never an ambiguous name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProfileError(f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}",
                           hint="fix the YAML syntax") from None
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc}") from None
    return parse_profile(data, source=str(path))


def parse_profile(data: Any, *, source: str = "<memory>") -> Profile:
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a mapping with keys name, generator, critic, "
                           f"retriever, … (got {type(data).__name__})")
    data.setdefault("name", Path(source).stem if source != "<memory>" else "profile")
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise profile_error(source, exc) from None
    profile._source = source
    return profile


def profile_error(source: str, exc: ValidationError, prefix: str = "") -> ProfileError:
    return problems_error([format_problem(source, err, prefix) for err in exc.errors()],
                          hint="see docs/profiles.md for the fields")


def problems_error(problems: list[str], hint: str | None = None) -> ProfileError:
    """One :class:`ProfileError` carrying every problem line in ``.problems``; its message is the
    first line (plus how many more), so one problem reads exactly as ``profiles validate`` prints it."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    error = ProfileError(problems[0] + more, hint=hint)
    error.problems = list(problems)  # type: ignore[attr-defined]
    return error


def format_problem(source: str, err: Mapping[str, Any], prefix: str = "",
                   options: type[Options] | None = None) -> str:
    """One problem line of a pydantic error; ``options``, the component options model that was
    validated, tells a former option name (its ``renamed``) from an unknown key."""
    path = err.get("loc", ())
    loc = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
    loc = ".".join(x for x in (prefix, loc) if x).replace(".[", "[")
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        renamed = options.renamed.get(path[0]) if options is not None and len(path) == 1 else None
        msg = f"unknown option; {renamed}" if renamed else "unknown key"
    elif err.get("type") == "missing":
        msg = "required field is missing"
    shown = repr(err.get("input"))
    got = "" if err.get("type") == "missing" else f" (got {shown[:60]})"
    return f"{source}: {loc or '<top>'}: {msg}{got}"


@dataclass(frozen=True)
class Findings:
    """What :func:`inspect_profile` found, one actionable line per problem."""

    invalid: list[str]
    """The profile is wrong: missing plugins, unknown components, invalid options (nested
    components included), no critic."""
    here: list[str]
    """The profile is right but cannot run on this machine now, known without loading anything:
    unset ``{$env: …}`` variables and each component's ``preflight`` (e.g. a missing API key)."""

    @property
    def problems(self) -> list[str]:
        return self.invalid + self.here


def check(profile: Profile, *, registry=None) -> list[str]:
    """Problems that stop this profile from being built anywhere (missing plugins, unknown
    components, invalid options); ``[]`` when it can be built. See :func:`inspect_profile`."""
    return inspect_profile(profile, registry=registry).invalid


def inspect_profile(profile: Profile, *, registry=None) -> Findings:
    """Every problem of ``profile`` that can be known without loading a model: what
    ``profiles validate`` reports and what :func:`build_pipeline` refuses before building."""
    from .plugins import get_registry

    registry = registry or get_registry()
    source = profile.source
    missing = [f"{source}: requires {dist}, which is not installed — {install_hint(dist)}"
               for dist in missing_distributions(profile)]
    if missing:  # its components come from those plugins; naming each as unknown adds nothing
        return Findings(missing, [])
    invalid: list[str] = []
    here: list[str] = []
    for role in SECTIONS:
        spec = getattr(profile, role)
        if spec is not None:
            here += [_unset_env_problem(source, where, name) for where, name in _env_refs(spec.options(), role)
                     if not os.environ.get(name)]
            _inspect_spec(source, role, role, spec, registry, invalid, here)
    if profile.critic is None:
        invalid.append(f"{source}: critic: the loop needs a critic — add a 'critic:' section "
                       "(e.g. {use: openai} or {use: clip})")
    elif profile.loop.mode == "rephrase" and profile.critic.use in registry.components.get("critic", {}):
        critic = registry.components["critic"][profile.critic.use].cls
        if not critic.can_rephrase:
            invalid.append(f"{source}: loop.mode: {rephrase_problem(profile.critic.use)}")
    return Findings(invalid, here)


def rephrase_problem(critic: str) -> str:
    """Why ``mode: rephrase`` cannot run with ``critic`` (one that does not declare ``can_rephrase``)."""
    return (f"'rephrase' needs a critic that can rephrase prompts, and critic '{critic}' cannot — use a "
            "vision-language critic (openai, gemini, anthropic, qwen) or another loop mode")


def _inspect_spec(source: str, role: str, where: str, spec: ComponentSpec, registry,
                  invalid: list[str], here: list[str]) -> None:
    try:
        reg = registry.get(role, spec.use)
    except ComponentNotFoundError as exc:
        invalid.append(f"{source}: {where}.use: {exc}")
        return
    try:
        options = reg.cls.Options.model_validate(_placeholder_secrets(spec.options()))
    except ValidationError as exc:
        invalid += [format_problem(source, err, where, reg.cls.Options) for err in exc.errors()]
        return
    try:
        notes = list(reg.cls.preflight(options))
    except Exception as exc:  # a plugin's broken preflight is reported as a problem, not raised
        notes = [f"the preflight check of {role} '{spec.use}' failed: {type(exc).__name__}: {exc}"]
    here += [f"{source}: {where}: {note}" for note in notes]
    for field_path, nested in nested_specs(options):
        assert nested.role is not None  # nested_specs yields only specs of a declared role
        _inspect_spec(source, nested.role, f"{where}.{field_path}", nested, registry, invalid, here)


def missing_distributions(profile: Profile) -> list[str]:
    missing = []
    for dist in profile.requires:
        try:
            md.distribution(dist)
        except md.PackageNotFoundError:
            missing.append(dist)
    return missing


# -- secrets -------------------------------------------------------------------------------------
def _is_env(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$env"} and isinstance(value["$env"], str)


def _placeholder_secrets(value: Any) -> Any:
    if _is_env(value):
        return f"<from ${value['$env']}>"
    if isinstance(value, dict):
        return {k: _placeholder_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholder_secrets(v) for v in value]
    return value


def _env_refs(value: Any, where: str) -> list[tuple[str, str]]:
    """``(field path, variable)`` of every ``{$env: NAME}`` inside ``value``."""
    if _is_env(value):
        return [(where, value["$env"])]
    if isinstance(value, dict):
        return [ref for k, v in value.items() for ref in _env_refs(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [ref for i, v in enumerate(value) for ref in _env_refs(v, f"{where}[{i}]")]
    return []


def _unset_env_problem(source: str, where: str, name: str) -> str:
    return f"{source}: {where} reads the environment variable {name}, which is not set — export {name}=…"


def resolve_env(value: Any, where: str, source: str, secrets: set[str]) -> Any:
    """Replace ``{$env: NAME}`` with the variable's value (collected into ``secrets``)."""
    if _is_env(value):
        name = value["$env"]
        got = os.environ.get(name)
        if not got:
            raise ConfigError(_unset_env_problem(source, where, name))
        secrets.add(got)
        return got
    if isinstance(value, dict):
        return {k: resolve_env(v, f"{where}.{k}", source, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, f"{where}[{i}]", source, secrets) for i, v in enumerate(value)]
    return value


# -- building --------------------------------------------------------------------------------------
def build_pipeline(profile: str | Path | Profile, **loop_overrides: Any):
    """A ready :class:`~imagerag_sdk.pipeline.ImageRAG` (components constructed, not yet loaded).

    Before constructing anything it runs :func:`inspect_profile` (what ``profiles validate``
    checks, nested components included) and treats its notes as failures too: an unset
    ``{$env}`` variable or a component's preflight problem (a missing API key). All of them, and
    invalid loop overrides, come in one :class:`ProfileError` whose ``.problems`` lists each line."""
    from .pipeline import ImageRAG
    from .plugins import get_registry

    profile = load_profile(profile)
    missing = missing_distributions(profile)
    if missing:
        raise MissingDependencyError(
            f"profile '{profile.name}' needs {', '.join(missing)}, not installed",
            hint="; ".join(install_hint(d) for d in missing))
    registry = get_registry()
    problems = inspect_profile(profile, registry=registry).problems
    loop = profile.loop
    if loop_overrides:
        try:
            loop = LoopSettings.model_validate({**loop.model_dump(), **loop_overrides})
        except ValidationError as exc:
            problems += [format_problem("overrides", err, "loop") for err in exc.errors()]
    if problems:
        raise problems_error(problems, hint="the error's .problems lists them all" if len(problems) > 1 else None)
    secrets: set[str] = set()
    built: dict[str, Any] = {}
    for role in SECTIONS:
        spec = getattr(profile, role)
        if spec is None:
            continue
        options = resolve_env(spec.options(), role, profile.source, secrets)
        try:
            built[role] = registry.build(role, spec.use, options)
        except ValidationError as exc:  # a value read from the environment that does not fit
            lines = [format_problem(profile.source, err, role) for err in exc.errors()]
            for secret in secrets:
                lines = [line.replace(secret, "<redacted>") for line in lines]
            raise problems_error(lines) from None
    return ImageRAG(built["generator"], built.get("critic"), built.get("retriever"), built.get("reranker"),
                    loop, profile=profile.name, secrets=secrets)


def dump(profile: Profile) -> str:
    """The profile as YAML (``{$env: …}`` references stay references)."""
    data = profile.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)
