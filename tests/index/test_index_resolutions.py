"""A corpus records how the registry resolved its component names; a search builds them from the
record while the plugin set is the same, else from the full registry (which refuses an ambiguous
name and reports a broken plugin as always)."""

from __future__ import annotations

import importlib

import pytest

from imagerag_sdk import plugins
from imagerag_sdk.errors import ComponentNotFoundError, CorpusError
from imagerag_sdk.index import CorpusIndex, ingest
from imagerag_sdk.index.corpus import resolved_components
from imagerag_sdk.resolutions import plugin_set
from imagerag_sdk.specs import ComponentSpec
from imagerag_sdk.testing.fakes import FakeEmbedder, fake_corpus

TINY = """
from imagerag_sdk import hookimpl
from imagerag_sdk.testing.fakes import FakeEmbedder

class {cls}(FakeEmbedder):
    name = "tiny-emb"

@hookimpl
def register_embedders(register):
    register({cls})
"""

CLASH = """
from imagerag_sdk import hookimpl
from imagerag_sdk.testing.fakes import FakeEmbedder

class OtherFake(FakeEmbedder):
    name = "fake"

@hookimpl
def register_embedders(register):
    register(OtherFake)
"""


def _search(corpus: str, text: str = "a red sports car") -> list[str]:
    """`imagerag search --corpus` as the CLI does it, in a process with no registry built yet."""
    plugins.set_registry(None)
    spec = ComponentSpec(use="index", corpus=corpus)
    retriever = spec.build("retriever", recorded=resolved_components(corpus, None))
    return [hit.path for hit in retriever.search([text], 3)[0]]


def _index(tmp_path, corpus: str, embedder: str) -> None:
    ingest(fake_corpus(tmp_path / "imgs"), corpus=corpus, embedder=embedder)


def test_an_index_run_records_how_the_registry_resolved_the_names(tmp_path):
    _index(tmp_path, "demo", "fake")
    recorded = CorpusIndex("demo").resolved
    assert recorded is not None and recorded["plugins"] == plugin_set()
    assert recorded["components"]["embedder:fake"] == {
        "class": "imagerag_sdk.testing.fake_embedder:FakeEmbedder", "plugin": "testing", "distribution": "imagerag-sdk"}
    assert recorded["components"]["retriever:index"]["class"] == "imagerag_sdk.index.retriever:IndexRetriever"


def test_the_same_plugin_set_builds_the_recorded_classes_without_the_registry(tmp_path):
    _index(tmp_path, "demo", "fake")
    plugins.set_registry(None)
    by_registry = [h.path for h in ComponentSpec(use="index", corpus="demo").build("retriever")
                   .search(["a red sports car"], 3)[0]]
    assert plugins._registry is not None
    assert _search("demo") == by_registry and "red-sports-car" in by_registry[0]
    assert plugins._registry is None, "no plugin registry built: the other plugins are not imported"
    embedder = plugins._component_instances[("embedder", "fake", "{}")]
    assert type(embedder) is FakeEmbedder


def test_a_registry_already_built_is_used(tmp_path, register_plugin):
    """A process (or a test) that has a registry answers from it: its own plugins count."""
    _index(tmp_path, "demo", "fake")
    registry = register_plugin(object(), "nothing")
    spec = ComponentSpec(use="index", corpus="demo")
    spec.build("retriever", recorded=resolved_components("demo", None)).search(["x"], 1)
    assert plugins._registry is registry


def test_a_plugin_installed_or_upgraded_since_means_the_full_registry(tmp_path, plugin_site):
    site = plugin_site("imagerag-tiny", "tiny", "imagerag_tiny_res", TINY.format(cls="TinyEmbedder"))
    _index(tmp_path, "demo", "tiny-emb")
    expected = _search("demo")
    assert plugins._registry is None
    metadata = site / "imagerag_tiny-1.2.3.dist-info" / "METADATA"
    metadata.write_text(metadata.read_text().replace("1.2.3", "1.2.4"))  # upgraded, same class
    assert _search("demo") == expected
    assert plugins._registry is not None, "another version: the registry resolves the name again"
    assert any(p.name == "tiny" and p.version == "1.2.4" for p in plugins._registry.plugins)

    plugin_site("imagerag-other", "other", "imagerag_other_res", TINY.format(cls="X").replace("tiny-emb", "x"))
    assert _search("demo") == expected and plugins._registry is not None


def test_a_name_made_ambiguous_since_is_refused_as_before(tmp_path, plugin_site):
    _index(tmp_path, "demo", "fake")
    plugin_site("imagerag-clash", "clash", "imagerag_clash_res", CLASH)
    with pytest.raises(ComponentNotFoundError, match="embedder 'fake' is ambiguous: 2 plugins register it"):
        _search("demo")


def test_a_recorded_class_gone_goes_to_the_registry(tmp_path, plugin_site):
    site = plugin_site("imagerag-tiny", "tiny", "imagerag_tiny_gone", TINY.format(cls="TinyEmbedder"))
    _index(tmp_path, "demo", "tiny-emb")
    expected = _search("demo")

    # the same version, the class renamed (an editable install edited): the registry's answer
    (site / "imagerag_tiny_gone.py").write_text(TINY.format(cls="Renamed"))
    _forget("imagerag_tiny_gone")
    assert _search("demo") == expected and plugins._registry is not None
    assert type(plugins._component_instances[("embedder", "tiny-emb", "{}")]).__name__ == "Renamed"

    # the module gone: the registry says the plugin is broken and why
    (site / "imagerag_tiny_gone.py").unlink()
    _forget("imagerag_tiny_gone")
    with pytest.raises(ComponentNotFoundError, match=r"no embedder named 'tiny-emb'.*broken plugins: tiny "
                                                      r"\(ModuleNotFoundError"):
        _search("demo")


def test_a_record_made_while_a_plugin_was_broken_is_not_written(tmp_path, plugin_site):
    """A broken plugin mended later (its dependency installed, the same version) could register a
    clashing name: no record then, every search builds the registry."""
    plugin_site("imagerag-broken", "broken", "imagerag_broken_res", "import a_module_that_does_not_exist\n")
    _index(tmp_path, "demo", "fake")
    assert CorpusIndex("demo").resolved is None
    _search("demo")
    assert plugins._registry is not None


def test_the_embedder_identity_is_still_checked(tmp_path):
    _index(tmp_path, "demo", "fake")
    with pytest.raises(CorpusError, match="was built with embedder 'fake-bow/dim=64'"):
        plugins.set_registry(None)
        spec = ComponentSpec(use="index", corpus="demo", embedder={"use": "fake", "dim": 32})
        spec.build("retriever", recorded=resolved_components("demo", None)).search(["x"], 1)
    assert plugins._registry is None, "the recorded class, built with the options asked for"


def _forget(module: str) -> None:
    import sys

    sys.modules.pop(module, None)
    importlib.invalidate_caches()


def test_the_plugin_set_is_read_once_per_process_until_the_registry_is_replaced(monkeypatch):
    """A search checks the set for its embedder and for its retriever: one read of the installed
    metadata; another ``IMAGERAG_LOAD_PLUGINS`` or a registry rebuilt reads it again."""
    real, reads = plugins.allowed_entry_points, []
    monkeypatch.setattr(plugins, "allowed_entry_points", lambda: reads.append(1) or real())
    plugins.set_registry(None)
    first = plugin_set()
    first[0][0] = "changed by the caller"
    assert plugin_set()[0][0] == "builtins" and len(reads) == 1, "read once; each caller gets its own copy"
    monkeypatch.setenv("IMAGERAG_LOAD_PLUGINS", "testing")
    assert [p[0] for p in plugin_set()] == ["builtins", "testing"] and len(reads) == 2
    plugins.set_registry(None)
    plugin_set()
    assert len(reads) == 3
