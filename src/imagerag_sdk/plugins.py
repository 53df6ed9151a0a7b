"""Plugin discovery: built-ins first, then each entry point of group ``imagerag`` on its own.

A plugin that fails to import, implements a hook no spec defines (a misspelt name), or whose hook
raises is recorded as broken with its error and traceback (secrets scrubbed) and contributes
nothing; the others still load. ``IMAGERAG_LOAD_PLUGINS`` (comma-separated entry-point or
distribution names, empty for none) restricts which entry points load. Two plugins registering
different classes under the same role and name make that name ambiguous: the clash is recorded on
both, the name is kept out of the registry, and only asking for it fails. Profiles that plugins
ship (``register_profiles``) are kept the same way: two plugins shipping one name make it ambiguous.
The core's test doubles are the ``testing`` entry point of the core distribution, a plugin like any.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import json
import os
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ComponentNotFoundError
from .redact import scrub
from .resolutions import forget_plugin_sets
from .roles import ROLES, Component

ENTRY_POINT_GROUP = "imagerag"
CORE_DISTRIBUTION = "imagerag-sdk"

if TYPE_CHECKING:  # pluggy and the hook specs are imported when a registry is built: a search of a
    import pluggy  # corpus whose names were recorded (see .resolutions) builds none



@dataclass
class PluginInfo:
    """One plugin as ``imagerag plugins`` shows it."""

    name: str
    distribution: str
    version: str | None = None
    module: str | None = None
    error: str | None = None  # set: the plugin is broken and contributes nothing
    components: list[tuple[str, str]] = field(default_factory=list)  # (role, name)
    clashes: list[str] = field(default_factory=list)  # names another plugin registers too
    traceback: str | None = None  # of the error, secrets scrubbed

    def fail(self, message: str, exc: BaseException | None = None) -> None:
        """Mark broken with ``message`` (and the traceback of ``exc``), secrets scrubbed."""
        self.error = scrub(message)
        if exc is not None:
            self.traceback = scrub("".join(traceback.format_exception(exc)))

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


@dataclass(frozen=True)
class ShippedProfile:
    """A profile a plugin ships: a YAML file in its package, or a ``Profile`` object."""

    name: str
    plugin: str
    distribution: str
    path: Path | None = None
    profile: Any = None  # a imagerag_sdk.profiles.Profile when registered as data

    def same_as(self, other: ShippedProfile) -> bool:
        return (self.path is not None and self.path == other.path) or (
            self.profile is not None and self.profile is other.profile)


class Registry:
    """Components registered by the loaded plugins, by role and name; the profiles they ship."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.components: dict[str, dict[str, Registration]] = {role: {} for role in ROLES}
        # names two or more plugins register with different classes: role -> name -> registrations
        self.ambiguous: dict[str, dict[str, list[Registration]]] = {role: {} for role in ROLES}
        self.profiles: dict[str, ShippedProfile] = {}
        self.ambiguous_profiles: dict[str, list[ShippedProfile]] = {}  # shipped by two or more plugins
        self.plugin_set: list[list[str | None]] | None = None
        """The plugin set it was built from (:func:`.resolutions.plugin_set`); ``None`` for one a
        test put together."""

    @property
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins if not p.ok]

    def names(self, role: str) -> list[str]:
        return sorted(self.components[role])

    def get(self, role: str, name: str) -> Registration:
        if role not in self.components:
            raise ComponentNotFoundError(f"unknown role '{role}'", hint=f"roles are {', '.join(ROLES)}")
        clash = self.ambiguous[role].get(name)
        if clash:
            raise ComponentNotFoundError(clash_message(role, name, clash), hint=clash_hint(clash)) from None
        try:
            return self.components[role][name]
        except KeyError:
            known = self.names(role)
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            hint += f"installed {role}s: {', '.join(known) or 'none'}"
            broken = self.broken
            if broken:
                hint += "; broken plugins: " + ", ".join(f"{p.name} ({p.error})" for p in broken)
            raise ComponentNotFoundError(f"no {role} named '{name}'", hint=hint) from None

    def build(self, role: str, name: str, options: dict[str, Any] | None = None) -> Component:
        """Construct (cheaply) the named component; same options → the same cached instance."""
        reg = self.get(role, name)
        return _cached_instance(reg, options or {})


def _core_version() -> str | None:
    try:
        return md.version(CORE_DISTRIBUTION)
    except md.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> Mapping[str, list[str]]:
    """Top-level module → distributions, read once per process (it scans every installed
    distribution's file list: about a second with the plugins' dependencies installed)."""
    return md.packages_distributions()


def distribution_of(cls: type) -> str | None:
    """The distribution that ships ``cls`` (editable installs included); ``None`` for a class no
    installed distribution ships (one defined in a test or a script)."""
    top = cls.__module__.split(".")[0]
    if top == "imagerag_sdk":
        return CORE_DISTRIBUTION
    if _registry is not None:  # only a registry already built: no plugin is loaded for this
        for regs in _registry.components.values():
            for reg in regs.values():
                if reg.cls is cls:
                    return reg.distribution
    dists = _packages_distributions().get(top)
    if dists:
        return dists[0]
    try:  # editable installs are missing from that map; plugins follow imagerag_x -> imagerag-x
        return md.metadata(top.replace("_", "-"))["Name"]
    except md.PackageNotFoundError:
        return None


def component_version(cls: type) -> str | None:
    """Version of the distribution that ships ``cls``."""
    dist = distribution_of(cls)
    try:
        return md.version(dist) if dist else None
    except md.PackageNotFoundError:
        return None


def _allowed() -> set[str] | None:
    raw = os.environ.get("IMAGERAG_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def allowed_entry_points() -> list[tuple[md.EntryPoint, str, str | None]]:
    """(entry point, distribution, version) of each entry point ``IMAGERAG_LOAD_PLUGINS`` lets
    load, by name; nothing is imported."""
    allowed = _allowed()
    out = []
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "?"
        if allowed is None or ep.name in allowed or dist in allowed:
            out.append((ep, dist, ep.dist.version if ep.dist is not None else None))
    return out


def get_plugin_manager(*, entry_points: bool = True, extra_plugins: Sequence[tuple[str, object]] = ()
                       ) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A new plugin manager with the built-ins, then every allowed entry point, one at a time."""
    import pluggy

    from . import builtins as core_builtins
    from . import hookspecs

    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    pm.register(core_builtins, name="builtins")
    infos.append(PluginInfo("builtins", CORE_DISTRIBUTION, _core_version(), core_builtins.__name__))
    for name, plugin in extra_plugins:
        info = PluginInfo(name, getattr(plugin, "__name__", name), None, getattr(plugin, "__name__", None))
        infos.append(info)
        _register_checked(pm, plugin, info)
    if entry_points:
        for ep, dist, version in allowed_entry_points():
            info = PluginInfo(ep.name, dist, version, ep.value)
            infos.append(info)
            if pm.has_plugin(ep.name):
                info.fail(f"another plugin is already registered as '{ep.name}'")
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin is recorded, never fatal
                info.fail(_one_line(exc), exc)
                continue
            _register_checked(pm, module, info)
    return pm, infos


def _register_checked(pm: pluggy.PluginManager, plugin: object, info: PluginInfo) -> None:
    """Register ``plugin``; one whose hooks do not match the specs is recorded broken and left out."""
    try:
        pm.register(plugin, name=info.name)
    except Exception as exc:  # e.g. a hookimpl whose arguments the spec does not have
        info.fail(_one_line(exc), exc)
        return
    # pluggy's check_pending() per plugin: a hookimpl no spec defines (a misspelt name) breaks it
    unknown = sorted(hc.name for hc in pm.get_hookcallers(plugin) or () if not hc.has_spec()
                     and any(i.plugin is plugin and not i.optionalhook for i in hc.get_hookimpls()))
    if unknown:
        pm.unregister(plugin)
        specs = [hc.name for hc in vars(pm.hook).values() if hc.has_spec()]
        info.fail("; ".join(_unknown_hook_message(n, specs) for n in unknown))


def _unknown_hook_message(name: str, specs: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, specs, n=1)
    fix = f"did you mean '{close[0]}'?" if close else f"hooks are {', '.join(sorted(specs))}"
    return f"hook '{name}' matches no imagerag hook spec — {fix}"


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


def build_registry(pm: pluggy.PluginManager, infos: list[PluginInfo]) -> Registry:
    """Call every registration hook; a hook that raises breaks only its own plugin, a name two
    plugins register with different classes becomes ambiguous (recorded on both)."""
    from . import hookspecs

    registry = Registry(pm, infos)
    by_name = {info.name: info for info in infos}
    found: list[Registration] = []
    shipped: list[ShippedProfile] = []
    for role, hook_name in [*hookspecs.REGISTRATION_HOOKS.items(), ("profile", "register_profiles")]:
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            info = by_name.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name, impl.plugin_name))
            if info.error:
                continue

            def register(item: Any, name: str | None = None, *, _role=role, _info=info) -> None:
                if _role == "profile":
                    shipped.append(_shipped_profile(item, _info))
                else:
                    found.append(_registration(_role, item, name, _info))

            try:
                impl.function(register=register)
            except Exception as exc:  # a hook that raises breaks only its own plugin
                info.fail(f"{hook_name} failed: {_one_line(exc)}", exc)
    _collect_profiles(registry, [s for s in shipped if not by_name[s.plugin].error], by_name)
    # a plugin that broke half-way leaves no components behind (and clashes with nothing)
    by_key: dict[tuple[str, str], list[Registration]] = {}
    for reg in found:
        if by_name[reg.plugin].error:
            continue
        same = by_key.setdefault((reg.role, reg.name), [])
        if all(other.cls is not reg.cls for other in same):
            same.append(reg)
    for (role, name), regs in by_key.items():
        if len(regs) == 1:
            registry.components[role][name] = regs[0]
            by_name[regs[0].plugin].components.append((role, name))
            continue
        registry.ambiguous[role][name] = regs
        for reg in regs:
            others = ", ".join(f"{o.distribution} (plugin '{o.plugin}')" for o in regs if o is not reg)
            by_name[reg.plugin].clashes.append(f"{role} '{name}' is also registered by {others}")
    return registry


def _shipped_profile(item: Any, info: PluginInfo) -> ShippedProfile:
    if not isinstance(item, (str, os.PathLike)) and not hasattr(item, "read_text"):
        from .profiles import Profile  # only for a Profile object: a path needs no YAML parser yet

        if isinstance(item, Profile):
            return ShippedProfile(item.name, info.name, info.distribution, profile=item)
        raise TypeError(f"register_profiles expects a YAML file path or a Profile, got {item!r}")
    path = Path(str(item))  # an importlib.resources file of an installed (unzipped) package is a path
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        raise FileNotFoundError(f"profile {path} is not a .yaml file (is it in the wheel's package data?)")
    return ShippedProfile(path.stem, info.name, info.distribution, path=path.resolve())


def _collect_profiles(registry: Registry, shipped: list[ShippedProfile], by_name: dict[str, PluginInfo]) -> None:
    """One name, one profile; a name two plugins ship (different files) is ambiguous, on both."""
    by_profile: dict[str, list[ShippedProfile]] = {}
    for item in shipped:
        same = by_profile.setdefault(item.name, [])
        if not any(item.same_as(other) for other in same):
            same.append(item)
    for name, items in by_profile.items():
        if len(items) == 1:
            registry.profiles[name] = items[0]
            continue
        registry.ambiguous_profiles[name] = items
        for item in items:
            others = ", ".join(f"{o.distribution} (plugin '{o.plugin}')" for o in items if o is not item)
            by_name[item.plugin].clashes.append(f"profile '{name}' is also shipped by {others}")


def clash_message(role: str, name: str, regs: list[Registration]) -> str:
    both = " and ".join(f"{r.distribution} (plugin '{r.plugin}')" for r in regs)
    return f"{role} '{name}' is ambiguous: {len(regs)} plugins register it, {both}"


def clash_hint(regs: list[Registration]) -> str:
    """How to resolve a clash (the core's built-ins always load, so only plugins are named)."""
    plugins = [r for r in regs if r.distribution != CORE_DISTRIBUTION]
    if len(plugins) == 1:
        return (f"uninstall {plugins[0].distribution}, or set IMAGERAG_LOAD_PLUGINS to the plugins to "
                f"load without '{plugins[0].plugin}'")
    return (f"uninstall all but one of {', '.join(r.distribution for r in plugins)}, or set "
            f"IMAGERAG_LOAD_PLUGINS to the plugins to load with only one of "
            f"{', '.join(repr(r.plugin) for r in plugins)}")


def _registration(role: str, cls: type[Component], name: str | None, info: PluginInfo) -> Registration:
    base = ROLES[role]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"register_{role}s expects a {base.__name__} subclass, got {cls!r}")
    name = name or cls.name
    if not name:
        raise TypeError(f"{cls.__qualname__} has no 'name'; set the class attribute or pass name=")
    return Registration(role, name, cls, info.name, info.distribution)


# -- process-wide state ------------------------------------------------------------------------
_lock = threading.RLock()
_registry: Registry | None = None
_component_instances: dict[tuple[str, str, str], Component] = {}
"""Component objects by (role, name, options), so a profile naming the same component twice gets
one instance; forgotten with the registry. Loaded weights are not kept here but in
:mod:`imagerag_sdk.model_cache`, shared by instances whose options differ only per call."""


def get_registry(*, refresh: bool = False) -> Registry:
    """The process's registry, built on first use (never at import time)."""
    global _registry
    with _lock:
        if _registry is None or refresh:
            forget_plugin_sets()
            pm, infos = get_plugin_manager()
            loaded_from = [[p.name, p.module, p.distribution, p.version] for p in infos]
            _registry = build_registry(pm, infos)
            _registry.plugin_set = loaded_from
        return _registry


def set_registry(registry: Registry | None) -> None:
    """Replace (or with ``None`` forget) the process registry and its cached component instances
    (loaded weights stay in :mod:`imagerag_sdk.model_cache`); tests use this."""
    global _registry
    with _lock:
        _registry = registry
        _component_instances.clear()
        forget_plugin_sets()


def _cached_instance(reg: Registration, options: dict[str, Any]) -> Component:
    key = (reg.role, reg.name, json.dumps(options, sort_keys=True, default=_secret_key))
    with _lock:
        inst = _component_instances.get(key)
        if inst is None or type(inst) is not reg.cls:
            inst = reg.cls(options)
            if inst.name != reg.name:  # registered under an alias
                # the instance answers to the registered name; the class keeps its own
                inst.name = reg.name  # type: ignore[misc]
            _component_instances[key] = inst
        return inst


def _secret_key(value: Any) -> str:
    get = getattr(value, "get_secret_value", None)
    return f"secret:{hash(get())}" if get else repr(value)


def build_component(role: str, name: str, options: dict[str, Any] | None = None, *,
                    recorded: Mapping[str, Any] | None = None) -> Component:
    """``get_registry().build(role, name, options)``. With ``recorded`` (a corpus's record, see
    :mod:`.resolutions`) and no registry built in this process yet, the recorded class is built
    without loading the other plugins, when the plugin set is the one it was recorded under."""
    if recorded is not None and _registry is None:
        from .resolutions import recorded_class

        found = recorded_class(role, name, dict(recorded))
        if found is not None:
            cls, entry = found
            return _cached_instance(Registration(role, name, cls, entry["plugin"], entry["distribution"]),
                                    options or {})
    return get_registry().build(role, name, options)

