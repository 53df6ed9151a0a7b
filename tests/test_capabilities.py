"""Declared options types and optional capabilities (issue 12 item 5): the generic ``Options``
parameter, the capability flags (image search, the embedder fast path, rephrase), image queries
with their paths, and nested component specs recognised by their declared role."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

import pytest
from PIL import Image
from pydantic import Field

from imagerag_sdk import Critic, Critique, Options, Reranker, Retriever, hookimpl
from imagerag_sdk.critique import VLMCritic, VLMCriticOptions
from imagerag_sdk.errors import ConfigError
from imagerag_sdk.index import IndexRetriever, ingest
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.profiles import check, parse_profile
from imagerag_sdk.roles import Embedder
from imagerag_sdk.specs import ComponentSpec, EmbedderSpec, RerankerSpec
from imagerag_sdk.testing.fakes import FakeEmbedder, FakeGenerator, FakeRetriever, fake_corpus
from imagerag_sdk.types import Hit, ImageQuery


# -- the options type parameter ----------------------------------------------------------------
class KeepOptions(Options):
    keep: int = Field(2, ge=1, description="Hits kept")


class KeepReranker(Reranker[KeepOptions]):
    name = "keep"

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        return list(hits)[: self.options.keep]


def test_the_type_parameter_sets_options():
    assert KeepReranker.Options is KeepOptions
    assert KeepReranker(keep=3).options.keep == 3
    assert KeepReranker({"keep": 4}).options == KeepOptions(keep=4) == KeepReranker(KeepOptions(keep=4)).options
    assert VLMCritic.Options is VLMCriticOptions, "a type variable's bound is the base's default"
    with pytest.raises(TypeError, match="is not the options type its class declares"):
        class Wrong(Reranker[KeepOptions]):
            Options = VLMCriticOptions


# -- third-party plugins written the old way ---------------------------------------------------
OLD_STYLE = """
    from typing import ClassVar, Sequence

    import numpy as np
    from pydantic import Field

    from imagerag_sdk import Hit, Options, Reranker, Retriever, hookimpl
    from imagerag_sdk.roles import Embedder, normalize_rows
    from imagerag_sdk.testing.fakes import FakeEmbedder, FakeRetriever


    class OldOptions(Options):
        keep: int = Field(1, ge=1, description="Hits kept")


    class OldReranker(Reranker):
        name = "old-keep"
        Options: ClassVar[type[Options]] = OldOptions

        def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
            return list(hits)[: self.options.keep]


    class OldRetriever(FakeRetriever):
        name = "old-images"

        def search_images(self, queries, k):
            return self.search([q.path for q in queries], k)


    class OldFastEmbedder(FakeEmbedder):
        name = "old-fast"
        calls = []

        def preprocess(self, image):
            return FakeEmbedder.embed_images(self, [image])[0]

        def embed_preprocessed(self, batch):
            OldFastEmbedder.calls.append(len(batch))
            return normalize_rows(np.asarray(batch))


    @hookimpl
    def register_rerankers(register):
        register(OldReranker)


    @hookimpl
    def register_retrievers(register):
        register(OldRetriever)


    @hookimpl
    def register_embedders(register):
        register(OldFastEmbedder)
"""


def test_an_old_style_plugin_registers_and_runs(plugin_site, tmp_path):
    plugin_site("imagerag-old", "old", "imagerag_old_style", OLD_STYLE)
    from imagerag_sdk.plugins import get_registry

    registry = get_registry(refresh=True)
    old = registry.get("reranker", "old-keep").cls
    assert old.Options.__name__ == "OldOptions"
    assert registry.get("retriever", "old-images").cls.supports_image_search, "overriding declares it"
    assert registry.get("embedder", "old-fast").cls.supports_fast_path
    profile = parse_profile({"name": "old", "generator": {"use": "fake"}, "critic": {"use": "fake"},
                             "retriever": {"use": "fake", "corpus_dir": str(tmp_path / "corpus")},
                             "reranker": {"use": "old-keep", "keep": 1}})
    assert check(profile) == []
    bad = parse_profile({**profile.model_dump(exclude_none=True), "reranker": {"use": "old-keep", "keep": 0}})
    assert any("reranker.keep" in p for p in check(bad))
    result = ImageRAG.from_profile(profile).run("a sheep and a car", out=None)
    assert [r.origin for r in result.references] == ["retrieved", "retrieved"]
    import imagerag_old_style as mod

    ingest(fake_corpus(tmp_path / "corpus"), index_dir=tmp_path / "idx", embedder=mod.OldFastEmbedder())
    assert sum(mod.OldFastEmbedder.calls) == 12, "the old embedder's fast path is still used"


def test_the_example_plugin_still_runs_in_a_pipeline(register_plugin, tmp_path):
    import imagerag_example

    register_plugin(imagerag_example)
    profile = parse_profile({"name": "ex", "generator": {"use": "fake"}, "critic": {"use": "fake"},
                             "retriever": {"use": "fake", "corpus_dir": str(tmp_path)},
                             "reranker": {"use": "short-caption", "max_words": 6}})
    assert check(profile) == []
    result = ImageRAG.from_profile(profile).run("a sheep and a car", out=None)
    assert len(result.references) == 2


# -- declared capabilities ---------------------------------------------------------------------
def test_capabilities_are_declared_on_the_class():
    assert IndexRetriever.supports_image_search and not FakeRetriever.supports_image_search
    assert VLMCritic.can_rephrase and not VerdictCritic.can_rephrase and not Critic.can_rephrase
    assert not FakeEmbedder.supports_fast_path
    assert IndexRetriever.optional_capabilities() == {"supports_image_search": True}
    with pytest.raises(TypeError, match="sets supports_image_search = True but does not implement search_images"):
        class Boasting(FakeRetriever):
            supports_image_search = True

    class Explicit(FakeRetriever):
        supports_image_search = False

        def search_images(self, queries, k):
            raise RuntimeError("kept for later")

    class Child(Explicit):
        pass

    assert not Explicit.supports_image_search and not Child.supports_image_search, \
        "an explicit declaration wins over the override, in subclasses too"


def test_plugins_json_shows_capabilities():
    out = subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", "plugins", "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    comps = json.loads(out.stdout)["components"]
    assert comps["retriever"]["index"]["capabilities"] == ["supports_image_search"]
    assert comps["retriever"]["fake"]["capabilities"] == []
    assert comps["critic"]["fake"]["capabilities"] == ["can_rephrase"]


class HelperNamedEmbedder(FakeEmbedder):
    """Has methods called preprocess / embed_preprocessed that are not a fast path."""

    name = "helpers"
    supports_fast_path = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.embedded = 0

    def preprocess(self, text):  # a text helper of this embedder, not the image fast path
        raise AssertionError("the indexer must not call preprocess(): no fast path is declared")

    def embed_preprocessed(self, batch):
        raise AssertionError("the indexer must not call embed_preprocessed()")

    def embed_images(self, images):
        self.embedded += len(images)
        return super().embed_images(images)


def test_an_embedder_without_the_fast_path_goes_through_embed_images(tmp_path):
    emb = HelperNamedEmbedder()
    report = ingest(fake_corpus(tmp_path / "corpus"), index_dir=tmp_path / "idx", embedder=emb)
    assert report.added == 12 and emb.embedded == 12
    retriever = IndexRetriever(index_dir=str(tmp_path / "idx"), embedder={"use": "fake"})
    retriever.load()
    retriever.embedder = emb
    image = Image.open(sorted((tmp_path / "corpus").glob("*.png"))[0])
    image.load()
    assert retriever.search_images([ImageQuery(image, "q.png")], 1)[0][0].score == pytest.approx(1.0, abs=1e-5)


# -- image queries with their paths ------------------------------------------------------------
def test_image_queries_carry_their_path(tmp_path):
    root = fake_corpus(tmp_path / "corpus")
    ingest(root, index_dir=tmp_path / "idx", embedder=FakeEmbedder())
    retriever = IndexRetriever(index_dir=str(tmp_path / "idx"))
    sheep = next(root.glob("*sheep*.png"))
    by_path, in_memory = retriever.search_images(
        [ImageQuery.open(sheep), ImageQuery(Image.open(sheep).convert("RGB"), "")], 1)
    assert by_path[0].path == str(sheep) and by_path[0].query == str(sheep)
    assert in_memory[0].query == "<image 2>"
    with pytest.raises(TypeError, match=r"ImageQuery\(image, path\)"):
        retriever.search_images([Image.open(sheep)], 1)


def _search(args, home):
    env = {**os.environ, "IMAGERAG_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", "search", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_search_by_image_with_a_retriever_that_cannot_is_one_line(tmp_path):
    image = next(fake_corpus(tmp_path / "corpus").glob("*.png"))
    profile = tmp_path / "p.yaml"
    profile.write_text(f"name: p\ngenerator: {{use: fake}}\nretriever: {{use: fake, corpus_dir: {tmp_path / 'corpus'}}}\n")
    out = _search(["--image", image, "--profile", profile], tmp_path / "home")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: retriever 'fake' cannot search by image") and "TEXT" in lines[0]


# -- rephrase needs a critic that can ------------------------------------------------------------
def test_rephrase_mode_with_a_critic_that_cannot_is_refused_before_loading(register_plugin, tmp_path):
    gen = FakeGenerator()
    with pytest.raises(ConfigError, match="critic 'verdict' cannot"):
        ImageRAG(gen, VerdictCritic(), FakeRetriever(corpus_dir=str(tmp_path)), loop={"mode": "rephrase"})
    assert gen.load_count == 0 and gen.calls == []
    register_plugin(sys.modules[__name__], name="capabilities-test")
    profile = parse_profile({"name": "r", "generator": {"use": "fake"}, "critic": {"use": "verdict"},
                             "loop": {"mode": "rephrase"}})
    problems = check(profile)
    assert len(problems) == 1 and "loop.mode: 'rephrase' needs a critic that can rephrase" in problems[0]
    assert check(parse_profile({**profile.model_dump(exclude_none=True), "critic": {"use": "fake"}})) == []


# -- nested specs by declaration ---------------------------------------------------------------
class TwoEmbedderOptions(Options):
    corpus_dir: str | None = Field(None, description="Synthetic corpus folder")
    query_embedder: EmbedderSpec = Field(EmbedderSpec(use="fake"), description="Embeds the queries")
    extra_rerankers: list[RerankerSpec] = Field(default_factory=list, description="Applied in order")
    untyped: ComponentSpec | None = Field(None, description="A spec of no declared role")


class TwoEmbedderRetriever(Retriever[TwoEmbedderOptions]):
    name = "two-embedders"

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return FakeRetriever(corpus_dir=self.options.corpus_dir).search(queries, k)


class VerdictCritic(Critic[Options]):
    """A critic with no language model: it cannot rephrase."""

    name = "verdict"

    def critique(self, prompt, image, *, max_concepts=3, user_images=()):
        return Critique(matches=True)


@hookimpl
def register_retrievers(register):
    register(TwoEmbedderRetriever)


@hookimpl
def register_critics(register):
    register(VerdictCritic)


def test_nested_specs_are_checked_by_their_declared_role(register_plugin, tmp_path):
    register_plugin(sys.modules[__name__], name="capabilities-test")
    profile = parse_profile({
        "name": "nested", "generator": {"use": "fake"}, "critic": {"use": "fake"},
        "retriever": {"use": "two-embedders", "corpus_dir": str(tmp_path),
                      "query_embedder": {"use": "fake", "dim": 2},
                      "extra_rerankers": [{"use": "fake"}, {"use": "no-such-reranker"}],
                      "untyped": {"use": "anything"}}})
    problems = check(profile)
    assert len(problems) == 2, problems
    assert "retriever.query_embedder.dim" in problems[0]
    assert "retriever.extra_rerankers[1].use: no reranker named 'no-such-reranker'" in problems[1]
    spec = TwoEmbedderOptions(query_embedder=ComponentSpec(use="fake", dim=16)).query_embedder
    assert type(spec) is EmbedderSpec and spec.options() == {"dim": 16}, "a plain spec is accepted"
    assert isinstance(spec.build(), Embedder)


def test_specs_keep_the_yaml_shape():
    spec = EmbedderSpec(use="clip", model="ViT-B-32")
    assert spec.model_dump() == {"use": "clip", "model": "ViT-B-32"} and spec.role == "embedder"
    with pytest.raises(TypeError, match="pass build"):
        ComponentSpec(use="fake").build()


# -- the types check ---------------------------------------------------------------------------
TYPED_PLUGIN = '''
from typing import Sequence

from pydantic import Field

from imagerag_sdk import Hit, Options, Reranker
from imagerag_sdk.critique import VLMAnswer, VLMCritic, VLMCriticOptions, VLMRequest
from imagerag_sdk.index import IndexRetriever
from imagerag_sdk.types import ImageQuery


class MyOptions(Options):
    keep: int = Field(3, description="Hits kept")


class MyReranker(Reranker[MyOptions]):
    name = "mine"

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        return list(hits)[: self.options.keep]


class MyCriticOptions(VLMCriticOptions):
    model: str = Field("m", description="Model id")


class MyCritic(VLMCritic[MyCriticOptions]):
    name = "mycritic"

    def ask(self, request: VLMRequest) -> VLMAnswer:
        return VLMAnswer(text=self.options.model + str(self.options.retries))


def search(r: IndexRetriever, q: ImageQuery) -> float:
    return r.search_images([q], 1)[0][0].score + (r.options.dedupe or 0.0)
'''


def test_plugin_options_type_check(tmp_path):
    pytest.importorskip("mypy")
    import imagerag_sdk

    (tmp_path / "typed_plugin.py").write_text(TYPED_PLUGIN)
    (tmp_path / "wrong_plugin.py").write_text(TYPED_PLUGIN.replace("self.options.keep", "self.options.kept"))
    src = os.path.dirname(os.path.dirname(imagerag_sdk.__file__))
    env = {**os.environ, "MYPYPATH": src}
    cmd = [sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports",
           "--cache-dir", str(tmp_path / ".mypy"), "--config-file", os.devnull]
    ok = subprocess.run([*cmd, str(tmp_path / "typed_plugin.py")], capture_output=True, text=True, env=env,
                        cwd=tmp_path, timeout=600)
    assert ok.returncode == 0, ok.stdout
    wrong = subprocess.run([*cmd, str(tmp_path / "wrong_plugin.py")], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=600)
    assert wrong.returncode == 1 and '"MyOptions" has no attribute "kept"' in wrong.stdout, wrong.stdout
