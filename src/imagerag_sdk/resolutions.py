"""Names the full plugin registry resolved, recorded with the plugin set they were resolved under.

A corpus's index run records which class the registry gave for its embedder's name (and for the
``index`` retriever): ``module:qualname``, plugin and distribution, plus the *plugin set*: every
entry point of group ``imagerag`` that loads here (``IMAGERAG_LOAD_PLUGINS`` applied), with its
distribution and version, and the core's version. A later search of that corpus, in a process
that has built no registry, builds such a name from the recorded class (importing only its module)
when the plugin set is still the same: the registry built now from the same distributions at the
same versions would resolve the name to that class. Anything else (a plugin installed, removed,
upgraded or excluded, the class gone, a record made while a plugin was broken) goes to the full
registry, which refuses an ambiguous name and reports broken plugins as always. The embedder's
identity is still checked against the corpus's after it is built.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from .roles import ROLES, Component

log = logging.getLogger(__name__)

Record = dict[str, Any]
"""``{"plugins": <plugin set>, "components": {"<role>:<name>": {"class", "plugin", "distribution"}}}``"""


_plugin_sets: dict[str | None, list[list[str | None]]] = {}


def plugin_set() -> list[list[str | None]]:
    """What :func:`~imagerag_sdk.plugins.get_registry` would load its plugins from here, as
    ``[name, module, distribution, version]`` each: the built-ins, then every entry point
    ``IMAGERAG_LOAD_PLUGINS`` lets load (about 15 ms: installed metadata only, nothing imported).
    Read once per process for each value of ``IMAGERAG_LOAD_PLUGINS``, as the registry is built
    once per process."""
    from .plugins import CORE_DISTRIBUTION, _core_version, allowed_entry_points

    key = os.environ.get("IMAGERAG_LOAD_PLUGINS")
    if key not in _plugin_sets:
        builtins = f"{__package__}.builtins"  # its name, not the module: that would import pluggy
        _plugin_sets[key] = [["builtins", builtins, CORE_DISTRIBUTION, _core_version()],
                             *([ep.name, ep.value, dist, version] for ep, dist, version in allowed_entry_points())]
    return [list(entry) for entry in _plugin_sets[key]]


def forget_plugin_sets() -> None:
    """Read the plugin set again next time (the registry is rebuilt or replaced)."""
    _plugin_sets.clear()


def record(*keys: tuple[str, str]) -> Record | None:
    """What the process's registry resolves ``(role, name)`` to, with its plugin set; ``None`` when
    no registry was built from the entry points in this process (none is built for this) or one of
    its plugins is broken (one mended later could add a clashing name). A name the registry does
    not resolve (unknown, ambiguous) is left out."""
    from . import plugins

    registry = plugins._registry
    if registry is None or registry.plugin_set is None or registry.broken:
        return None
    components: dict[str, dict[str, str]] = {}
    for role, name in keys:
        reg = registry.components.get(role, {}).get(name)
        if reg is not None and name not in registry.ambiguous.get(role, {}):
            components[f"{role}:{name}"] = {"class": f"{reg.cls.__module__}:{reg.cls.__qualname__}",
                                            "plugin": reg.plugin, "distribution": reg.distribution}
    return {"plugins": registry.plugin_set, "components": components}


def recorded_class(role: str, name: str, recorded: Record | None) -> tuple[type[Component], dict[str, str]] | None:
    """(class, its record) for ``role``/``name`` from ``recorded`` when it still holds here (the
    same plugin set, the class importable and of the role); ``None``: ask the full registry."""
    entry = (recorded or {}).get("components", {}).get(f"{role}:{name}")
    if not isinstance(entry, dict) or role not in ROLES:
        return None
    if recorded is None or recorded.get("plugins") != plugin_set():
        log.debug("%s '%s': the plugin set changed since it was recorded; building the registry", role, name)
        return None
    module, _, qualname = str(entry.get("class", "")).partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # the registry, built instead, reports the plugin (broken or gone)
        log.debug("%s '%s': recorded class %s did not import (%s); building the registry",
                  role, name, entry.get("class"), exc)
        return None
    if not (isinstance(obj, type) and issubclass(obj, ROLES[role])):
        return None
    return obj, entry
