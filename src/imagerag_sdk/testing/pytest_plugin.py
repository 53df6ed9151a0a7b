"""pytest plugin (entry point ``pytest11``): each test gets a fresh plugin registry.

Fixtures:

* ``imagerag_registry`` — a registry with the built-ins and the installed entry points, rebuilt for
  this test; components built during the test are cached only for its duration.
* ``register_plugin(module_or_object, name=…)`` — add a plugin (an object with ``@hookimpl``
  functions) for the test's duration and return the rebuilt registry.
"""

from __future__ import annotations

import pytest

from .. import plugins


@pytest.fixture(autouse=True)
def _imagerag_fresh_registry():
    plugins.set_registry(None)
    yield
    plugins.set_registry(None)


@pytest.fixture
def imagerag_registry():
    return plugins.get_registry(refresh=True)


@pytest.fixture
def register_plugin():
    extra: list[tuple[str, object]] = []

    def add(plugin: object, name: str | None = None) -> plugins.Registry:
        extra.append((name or getattr(plugin, "__name__", type(plugin).__name__), plugin))
        pm, infos = plugins.get_plugin_manager(extra_plugins=list(extra))
        registry = plugins.build_registry(pm, infos)
        plugins.set_registry(registry)
        return registry

    return add
