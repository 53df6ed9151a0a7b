"""Plugin discovery through real entry points: loading, broken plugins, the allow-list, duplicates."""

import pytest

from imagerag_sdk.errors import ComponentNotFoundError
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
    assert registry.names("generator") == [], "the fakes are the 'testing' plugin, not built-ins"


def test_duplicate_names_are_ambiguous_and_recorded_on_both(plugin_site, monkeypatch):
    plugin_site("imagerag-tiny", "tiny", "imagerag_tiny_test", GOOD)
    plugin_site("imagerag-other", "other", "imagerag_other_test", DUPLICATE)
    monkeypatch.setenv("IMAGERAG_LOAD_PLUGINS", "tiny,other,testing")
    registry = get_registry(refresh=True)
    infos = {p.name: p for p in registry.plugins}
    assert infos["tiny"].clashes == ["generator 'tiny-painter' is also registered by imagerag-other (plugin 'other')"]
    assert infos["other"].clashes == ["generator 'tiny-painter' is also registered by imagerag-tiny (plugin 'tiny')"]
    assert infos["tiny"].ok and infos["other"].ok
    assert "tiny-painter" not in registry.names("generator") and "fake" in registry.names("generator")
    with pytest.raises(ComponentNotFoundError) as err:
        registry.get("generator", "tiny-painter")
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert "imagerag-tiny (plugin 'tiny')" in message and "imagerag-other (plugin 'other')" in message
    assert "uninstall all but one of imagerag-other, imagerag-tiny" in message
    assert "IMAGERAG_LOAD_PLUGINS" in message


def test_from_profile_fails_only_for_the_ambiguous_name(plugin_site, tmp_path):
    from imagerag_sdk.errors import ProfileError
    from imagerag_sdk.pipeline import ImageRAG

    plugin_site("imagerag-tiny", "tiny", "imagerag_tiny_test", GOOD)
    plugin_site("imagerag-other", "other", "imagerag_other_test", DUPLICATE)
    assert ImageRAG.from_profile("fake").generator.name == "fake"
    profile = tmp_path / "tiny.yaml"
    profile.write_text("name: tiny\ngenerator: {use: tiny-painter}\ncritic: {use: fake}\n")
    with pytest.raises(ProfileError, match=r"generator.use: generator 'tiny-painter' is ambiguous"):
        ImageRAG.from_profile(profile)


def test_the_same_class_from_two_plugins_is_no_clash(register_plugin):
    from imagerag_sdk import hookimpl
    from imagerag_sdk.testing.fakes import FakeGenerator

    class Plugin:
        @hookimpl
        def register_generators(self, register):
            register(FakeGenerator)

    registry = register_plugin(Plugin(), name="again")
    assert registry.get("generator", "fake").cls is FakeGenerator
    assert all(not p.clashes for p in registry.plugins)


def test_a_clash_with_a_plugin_that_broke_is_no_clash(register_plugin):
    from imagerag_sdk import hookimpl
    from imagerag_sdk.testing.fakes import FakeGenerator

    class Other(FakeGenerator):
        name = "fake"

    class HalfBroken:
        @hookimpl
        def register_generators(self, register):
            register(Other)

        @hookimpl
        def register_critics(self, register):
            raise RuntimeError("critic table is corrupt")

    registry = register_plugin(HalfBroken(), name="half")
    assert registry.get("generator", "fake").plugin == "testing"
    half = next(p for p in registry.plugins if p.name == "half")
    assert not half.ok and not half.clashes and half.components == []
    assert "critic table is corrupt" in half.traceback


def test_a_misspelt_hook_breaks_only_its_plugin(register_plugin):
    from imagerag_sdk import hookimpl
    from imagerag_sdk.testing.fakes import FakeGenerator, FakeReranker

    class Typo(FakeGenerator):
        name = "typo"

    class Reverse(FakeReranker):
        name = "reverse"

    class Misspelt:
        @hookimpl
        def register_generator(self, register):
            register(Typo)

        @hookimpl
        def register_rerankers(self, register):
            register(Reverse)

    class Optional:  # an optional hook (for a newer core) is no error
        @hookimpl(optionalhook=True)
        def register_scorers(self, register):
            pass

    register_plugin(Misspelt(), name="misspelt")
    registry = register_plugin(Optional(), name="optional")
    infos = {p.name: p for p in registry.plugins}
    assert infos["misspelt"].error == ("hook 'register_generator' matches no imagerag hook spec — "
                                       "did you mean 'register_generators'?")
    assert "typo" not in registry.names("generator") and "reverse" not in registry.names("reranker")
    assert not registry.pm.is_registered(Misspelt) and infos["optional"].ok


def test_errors_and_tracebacks_are_scrubbed_of_secrets(register_plugin, monkeypatch):
    from imagerag_sdk import hookimpl

    monkeypatch.setenv("FAKE_API_KEY", "sk-fake-0123456789abcdef")

    class Leaky:
        @hookimpl
        def register_critics(self, register):
            raise RuntimeError("rejected key sk-fake-0123456789abcdef")

    registry = register_plugin(Leaky(), name="leaky")
    leaky = next(p for p in registry.plugins if p.name == "leaky")
    assert leaky.error == "register_critics failed: RuntimeError: rejected key ***"
    assert "RuntimeError: rejected key ***" in leaky.traceback and "sk-fake" not in leaky.traceback


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


def test_the_installed_distributions_are_scanned_once_per_process(monkeypatch):
    """``distribution_of`` a class no distribution ships (one per run record) must not rescan
    every installed distribution each time (about a second with the plugins installed)."""
    import importlib.metadata as md

    from imagerag_sdk import plugins

    calls = []
    real = md.packages_distributions

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(md, "packages_distributions", counting)
    plugins._packages_distributions.cache_clear()
    try:
        Local = type("Local", (), {"__module__": "not_a_shipped_module"})
        assert [plugins.distribution_of(Local) for _ in range(5)] == [None] * 5
        assert len(calls) == 1
    finally:
        plugins._packages_distributions.cache_clear()
