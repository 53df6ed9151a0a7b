"""pytest plugin (entry point ``pytest11``): each test gets a fresh plugin registry.

Fixtures:

* ``imagerag_registry`` — a registry with the built-ins and the installed entry points, rebuilt for
  this test; components built during the test are cached only for its duration.
* ``register_plugin(module_or_object, name=…)`` — add a plugin (an object with ``@hookimpl``
  functions) for the test's duration and return the rebuilt registry.

The fakes come from the ``testing`` plugin, found through imagerag-sdk's own entry point like any
plugin; a test session whose installed imagerag-sdk metadata lacks it (an editable install older
than its pyproject.toml) stops at once with the command that fixes it.
"""

from __future__ import annotations

import importlib.metadata as md

import pytest

from .. import plugins

TESTING_PLUGIN = "imagerag_sdk.testing.plugin"


def pytest_configure(config):
    eps = md.entry_points(group=plugins.ENTRY_POINT_GROUP)
    if not any(ep.value == TESTING_PLUGIN for ep in eps):
        raise pytest.UsageError(
            f"imagerag-sdk's installed metadata lacks the entry point [imagerag] testing = {TESTING_PLUGIN} "
            "(the fakes and the 'fake' profile): reinstall it, e.g. pip install --no-deps -e .")


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
        extra.append((str(name or getattr(plugin, "__name__", type(plugin).__name__)), plugin))
        pm, infos = plugins.get_plugin_manager(extra_plugins=list(extra))
        registry = plugins.build_registry(pm, infos)
        plugins.set_registry(registry)
        return registry

    return add
