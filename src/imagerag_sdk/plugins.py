"""Plugin discovery: built-ins first, then each entry point of group ``imagerag`` on its own.

A plugin that fails to import (or whose hook raises) is recorded with its error and skipped; the
others still load. ``IMAGERAG_LOAD_PLUGINS`` (comma-separated entry-point or distribution names,
empty for none) restricts which entry points load. Two components with the same role and name are
an error naming both distributions.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import json
import os
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import ComponentNotFoundError, PluginError
from .roles import ROLES, Component

ENTRY_POINT_GROUP = "imagerag"
CORE_DISTRIBUTION = "imagerag-sdk"


@dataclass
class PluginInfo:
    """One plugin as ``imagerag plugins`` shows it."""

    name: str
    distribution: str
    version: str | None = None
    module: str | None = None
    error: str | None = None
    components: list[tuple[str, str]] = field(default_factory=list)  # (role, name)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Registration:
    role: str
    name: str
    cls: type[Component]
    plugin: str
    distribution: str


class Registry:
    """Components registered by the loaded plugins, by role and name."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.components: dict[str, dict[str, Registration]] = {role: {} for role in ROLES}

    @property
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins if not p.ok]

    def names(self, role: str) -> list[str]:
        return sorted(self.components[role])

    def get(self, role: str, name: str) -> Registration:
        if role not in self.components:
            raise ComponentNotFoundError(f"unknown role '{role}'", hint=f"roles are {', '.join(ROLES)}")
        try:
            return self.components[role][name]
        except KeyError:
            known = self.names(role)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            hint += f"installed {role}s: {', '.join(known) or 'none'}"
            broken = [p for p in self.broken]
            if broken:
                hint += "; broken plugins: " + ", ".join(f"{p.name} ({p.error})" for p in broken)
            raise ComponentNotFoundError(f"no {role} named '{name}'", hint=hint) from None

    def build(self, role: str, name: str, options: dict[str, Any] | None = None) -> Component:
        """Construct (cheaply) the named component; same options → the same cached instance."""
        reg = self.get(role, name)
        return _cached_instance(reg, options or {})


def _dist_of_module(module: str) -> tuple[str, str | None]:
    top = module.split(".")[0]
    dists = md.packages_distributions().get(top) or []
    if dists:
        name = dists[0]
        try:
            return name, md.version(name)
        except md.PackageNotFoundError:
            return name, None
    return top, None


def _core_version() -> str | None:
    try:
        return md.version(CORE_DISTRIBUTION)
    except md.PackageNotFoundError:
        return None


def component_version(cls: type) -> str | None:
    """Version of the distribution that ships ``cls`` (editable installs included)."""
    top = cls.__module__.split(".")[0]
    if top == "imagerag_sdk":
        return _core_version()
    version = _dist_of_module(cls.__module__)[1]
    if version is None and _registry is not None:  # editable installs are missing from that map
        for regs in _registry.components.values():
            for reg in regs.values():
                if reg.cls is cls:
                    try:
                        return md.version(reg.distribution)
                    except md.PackageNotFoundError:
                        return None
    if version is None:
        try:
            version = md.version(top.replace("_", "-"))
        except md.PackageNotFoundError:
            return None
    return version


def _allowed() -> set[str] | None:
    raw = os.environ.get("IMAGERAG_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def get_plugin_manager(*, entry_points: bool = True, extra_plugins: list[tuple[str, object]] = ()
                       ) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A new plugin manager with the built-ins, then every allowed entry point, one at a time."""
    from . import builtins as core_builtins

    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    pm.register(core_builtins, name="builtins")
    infos.append(PluginInfo("builtins", CORE_DISTRIBUTION, _core_version(), core_builtins.__name__))
    for name, plugin in extra_plugins:
        pm.register(plugin, name=name)
        infos.append(PluginInfo(name, getattr(plugin, "__name__", name), None,
                                getattr(plugin, "__name__", None)))
    if entry_points:
        allowed = _allowed()
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else None
            if allowed is not None and ep.name not in allowed and dist not in allowed:
                continue
            info = PluginInfo(ep.name, dist, version, ep.value)
            infos.append(info)
            if pm.has_plugin(ep.name):
                info.error = f"another plugin is already registered as '{ep.name}'"
                continue
            try:
                module = ep.load()
                pm.register(module, name=ep.name)
            except Exception as exc:  # a broken plugin is recorded, never fatal
                info.error = _one_line(exc)
                info.traceback = traceback.format_exc()  # type: ignore[attr-defined]
    return pm, infos


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


def build_registry(pm: pluggy.PluginManager, infos: list[PluginInfo]) -> Registry:
    registry = Registry(pm, infos)
    by_name = {info.name: info for info in infos}
    for role, hook_name in hookspecs.REGISTRATION_HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            info = by_name.get(impl.plugin_name) or PluginInfo(impl.plugin_name, impl.plugin_name)
            if info.error:
                continue

            def register(cls: type[Component], name: str | None = None, *, _role=role, _info=info) -> None:
                _register(registry, _role, cls, name, _info)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:  # a hook that raises breaks only its own plugin
                info.error = f"{hook_name} failed: {_one_line(exc)}"
    # a plugin that broke half-way must not leave components behind
    bad = {i.name for i in infos if i.error}
    for role in registry.components:
        registry.components[role] = {n: r for n, r in registry.components[role].items()
                                     if r.plugin not in bad}
        for reg in registry.components[role].values():
            by_name[reg.plugin].components.append((role, reg.name)) if reg.plugin in by_name else None
    return registry


def _register(registry: Registry, role: str, cls: type[Component], name: str | None,
              info: PluginInfo) -> None:
    base = ROLES[role]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"register_{role}s expects a {base.__name__} subclass, got {cls!r}")
    name = name or cls.name
    if not name:
        raise TypeError(f"{cls.__qualname__} has no 'name'; set the class attribute or pass name=")
    existing = registry.components[role].get(name)
    if existing is not None and existing.cls is not cls:
        raise PluginError(
            f"two plugins register a {role} named '{name}': {existing.distribution} "
            f"(plugin '{existing.plugin}') and {info.distribution} (plugin '{info.name}')",
            hint="uninstall one of them, or set IMAGERAG_LOAD_PLUGINS to load only one")
    registry.components[role][name] = Registration(role, name, cls, info.name, info.distribution)


# -- process-wide state ------------------------------------------------------------------------
_lock = threading.RLock()
_registry: Registry | None = None
_instances: dict[tuple[str, str, str], Component] = {}


def get_registry(*, refresh: bool = False) -> Registry:
    """The process's registry, built on first use (never at import time)."""
    global _registry
    with _lock:
        if _registry is None or refresh:
            pm, infos = get_plugin_manager()
            _registry = build_registry(pm, infos)
        return _registry


def set_registry(registry: Registry | None) -> None:
    """Replace (or with ``None`` forget) the process registry and the component cache; tests use this."""
    global _registry
    with _lock:
        _registry = registry
        _instances.clear()


def _cached_instance(reg: Registration, options: dict[str, Any]) -> Component:
    key = (reg.role, reg.name, json.dumps(options, sort_keys=True, default=_secret_key))
    with _lock:
        inst = _instances.get(key)
        if inst is None or type(inst) is not reg.cls:
            inst = reg.cls(options)
            if inst.name != reg.name:  # registered under an alias
                inst.name = reg.name
            _instances[key] = inst
        return inst


def _secret_key(value: Any) -> str:
    get = getattr(value, "get_secret_value", None)
    return f"secret:{hash(get())}" if get else repr(value)


def build_component(role: str, name: str, options: dict[str, Any] | None = None) -> Component:
    """Shortcut for ``get_registry().build(role, name, options)``."""
    return get_registry().build(role, name, options)


HookCaller = Callable[..., Any]
