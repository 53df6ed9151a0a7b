"""Plugin discovery through real entry points: loading, broken plugins, the allow-list, duplicates."""

import pytest

from imagerag_sdk.errors import ComponentNotFoundError, PluginError
from imagerag_sdk.plugins import get_registry

GOOD = """
from imagerag_sdk import hookimpl
from imagerag_sdk.testing.fakes import FakeGenerator

class TinyPainter(FakeGenerator):
    name = "tiny-painter"

@hookimpl
def register_generators(register):
    register(TinyPainter)
"""

BROKEN_IMPORT = """
import a_module_that_does_not_exist  # noqa
"""

BROKEN_HOOK = """
from imagerag_sdk import hookimpl

@hookimpl
def register_critics(register):
    raise RuntimeError("critic table is corrupt")
"""

DUPLICATE = """
from imagerag_sdk import hookimpl
from imagerag_sdk.testing.fakes import FakeGenerator

class OtherPainter(FakeGenerator):
    name = "tiny-painter"

@hookimpl
def register_generators(register):
    register(OtherPainter)
"""


def test_entry_point_plugin_is_loaded(plugin_site):
    plugin_site("imagerag-tiny", "tiny", "imagerag_tiny_test", GOOD)
    registry = get_registry(refresh=True)
    reg = registry.get("generator", "tiny-painter")
    assert reg.distribution == "imagerag-tiny"
    info = next(p for p in registry.plugins if p.name == "tiny")
    assert info.ok and info.version == "1.2.3"
    assert ("generator", "tiny-painter") in info.components
    assert registry.build("generator", "tiny-painter").name == "tiny-painter"


def test_broken_plugins_are_recorded_and_others_still_load(plugin_site):
    plugin_site("imagerag-tiny", "tiny", "imagerag_tiny_test", GOOD)
    plugin_site("imagerag-broken", "broken", "imagerag_broken_test", BROKEN_IMPORT)
    plugin_site("imagerag-badhook", "badhook", "imagerag_badhook_test", BROKEN_HOOK)
    registry = get_registry(refresh=True)
    broken = {p.name: p for p in registry.broken}
    assert "ModuleNotFoundError" in broken["broken"].error
    assert broken["broken"].distribution == "imagerag-broken"
    assert "critic table is corrupt" in broken["badhook"].error
    assert "tiny-painter" in registry.names("generator")


def test_allow_list_restricts_entry_points(plugin_site, monkeypatch):
    plugin_site("imagerag-tiny", "tiny", "imagerag_tiny_test", GOOD)
    plugin_site("imagerag-broken", "broken", "imagerag_broken_test", BROKEN_IMPORT)
    monkeypatch.setenv("IMAGERAG_LOAD_PLUGINS", "broken")
    registry = get_registry(refresh=True)
    assert "tiny-painter" not in registry.names("generator")
    assert [p.name for p in registry.plugins if p.name != "builtins"] == ["broken"]
    monkeypatch.setenv("IMAGERAG_LOAD_PLUGINS", "")
    registry = get_registry(refresh=True)
    assert [p.name for p in registry.plugins] == ["builtins"]
    assert registry.names("generator") == ["fake"]


def test_duplicate_names_name_both_distributions(plugin_site, monkeypatch):
    plugin_site("imagerag-tiny", "tiny", "imagerag_tiny_test", GOOD)
    plugin_site("imagerag-other", "other", "imagerag_other_test", DUPLICATE)
    monkeypatch.setenv("IMAGERAG_LOAD_PLUGINS", "tiny,other")
    with pytest.raises(PluginError) as err:
        get_registry(refresh=True)
    assert "imagerag-tiny" in str(err.value) and "imagerag-other" in str(err.value)
    assert "tiny-painter" in str(err.value)


def test_unknown_component_suggests_a_close_name():
    with pytest.raises(ComponentNotFoundError, match="did you mean 'fake'"):
        get_registry().get("generator", "fak")


def test_components_are_cached_per_process_by_options():
    registry = get_registry()
    a = registry.build("generator", "fake", {"size": 32})
    assert registry.build("generator", "fake", {"size": 32}) is a
    assert registry.build("generator", "fake", {"size": 48}) is not a
    a.load()
    a.load()
    assert a.load_count == 1


def test_register_plugin_fixture_adds_for_one_test(register_plugin):
    from imagerag_sdk import hookimpl
    from imagerag_sdk.testing.fakes import FakeReranker

    class Reverse(FakeReranker):
        name = "reverse"

    class Plugin:
        @hookimpl
        def register_rerankers(self, register):
            register(Reverse)

    registry = register_plugin(Plugin(), name="test-plugin")
    assert "reverse" in registry.names("reranker")


def test_previous_test_plugin_is_gone():
    assert "reverse" not in get_registry().names("reranker")
