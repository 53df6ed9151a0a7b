"""The ``pooled`` retriever: union and order of its members' hits, dedupe, nested specs, the
retriever contract, and a whole loop where a reranker picks from the pool."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from PIL import Image
from pydantic import Field

from imagerag_sdk.errors import PipelineError
from imagerag_sdk.hookspecs import hookimpl
from imagerag_sdk.plugins import build_component
from imagerag_sdk.profiles import build_pipeline, check, parse_profile
from imagerag_sdk.retrieve_pooled import PooledRetriever
from imagerag_sdk.roles import Options, Retriever
from imagerag_sdk.testing.contracts import RetrieverContract
from imagerag_sdk.types import Hit, ImageQuery


class KnownOptions(Options):
    hits: list[tuple[str, float]] = Field(default_factory=list, description="(path, score) best first")
    corpus: str = Field("known", description="Corpus named in the hits")


class Known(Retriever[KnownOptions]):
    """Answers every query with the same known hits; records each k it was asked for."""

    name = "known"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[int] = []

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        self.asked.append(k)
        return [[Hit(path=p, score=s, corpus=self.options.corpus, metadata={"caption": f"{self.options.corpus} {p}"},
                     query=q, rank=r) for r, (p, s) in enumerate(self.options.hits[:k])] for q in queries]


class KnownImages(Known):
    """Known, and image queries too (the hits then answer the query's path)."""

    name = "known-images"

    def search_images(self, queries: Sequence[ImageQuery], k: int) -> list[list[Hit]]:
        return self.search([q.path for q in queries], k)


class Relative(Known):
    name = "relative"

    def search(self, queries, k):
        return [[Hit(path="not/absolute.png", score=1.0)] for _ in queries]


class _Plugin:
    @staticmethod
    @hookimpl
    def register_retrievers(register):
        register(Known)
        register(KnownImages)
        register(Relative)


@pytest.fixture
def known(register_plugin):
    register_plugin(_Plugin(), name="pooled-test-retrievers")


def member(paths, *, use="known", corpus="known", score=0.9):
    return {"use": use, "corpus": corpus, "hits": [(p, score - 0.1 * i) for i, p in enumerate(paths)]}


def paths(hits):
    return [h.path for h in hits]


def test_union_is_interleaved_by_rank(known):
    a = member(["/a/1.png", "/s/2.png", "/a/3.png"], corpus="clip", score=0.3)
    b = member(["/b/1.png", "/s/2.png", "/b/3.png"], corpus="siglip", score=0.12)
    [hits] = PooledRetriever(retrievers=[a, b]).search(["a sheep"], k=10)
    assert paths(hits) == ["/a/1.png", "/b/1.png", "/s/2.png", "/a/3.png", "/b/3.png"]
    assert [h.rank for h in hits] == [0, 1, 2, 3, 4]
    assert [h.score for h in hits] == [1.0, 1.0, 0.5, pytest.approx(1 / 3), pytest.approx(1 / 3)]
    assert [h.corpus for h in hits] == ["clip", "siglip", "clip", "clip", "siglip"]
    assert all(h.query == "a sheep" for h in hits)
    assert hits[1].metadata["caption"] == "siglip /b/1.png", "the finder's metadata is kept"
    assert hits[0].metadata["pooled"]["found_by"] == [
        {"member": 0, "retriever": "known", "rank": 0, "score": pytest.approx(0.3)}]


def test_a_path_found_by_several_appears_once_where_it_first_comes(known):
    a = member(["/a/1.png", "/a/2.png", "/s/x.png"], corpus="clip", score=0.3)
    b = member(["/s/x.png", "/b/2.png"], corpus="siglip", score=0.12)
    [hits] = PooledRetriever(retrievers=[a, b]).search(["q"], k=10)
    assert paths(hits) == ["/a/1.png", "/s/x.png", "/a/2.png", "/b/2.png"]
    shared = hits[1]
    assert shared.score == 1.0 and shared.corpus == "siglip"
    assert shared.metadata["pooled"]["found_by"] == [
        {"member": 1, "retriever": "known", "rank": 0, "score": pytest.approx(0.12)},
        {"member": 0, "retriever": "known", "rank": 2, "score": pytest.approx(0.1)}]


def test_k_each_is_taken_from_each_and_k_caps_the_union(known):
    a = member([f"/a/{i}.png" for i in range(5)])
    b = member([f"/b/{i}.png" for i in range(5)])
    pooled = PooledRetriever(retrievers=[a, b], k_each=2)
    [hits] = pooled.search(["q"], k=10)
    assert paths(hits) == ["/a/0.png", "/b/0.png", "/a/1.png", "/b/1.png"], "top 2 ∪ top 2"
    assert [m.asked for m in pooled.members] == [[2], [2]]
    [cut] = pooled.search(["q"], k=3)
    assert paths(cut) == ["/a/0.png", "/b/0.png", "/a/1.png"]
    default = PooledRetriever(retrievers=[a, b])
    [hits] = default.search(["q"], k=3)
    assert default.members == pooled.members, "the same members, shared through the registry's cache"
    assert [m.asked[-1] for m in default.members] == [3, 3], "without k_each each member gets k"
    assert len(hits) == 3


def test_one_list_per_query_in_order(known):
    pooled = PooledRetriever(retrievers=[member(["/a/1.png"]), member(["/b/1.png"])])
    out = pooled.search(["first", "second"], k=4)
    assert [[h.query for h in hits] for hits in out] == [["first", "first"], ["second", "second"]]
    assert pooled.search([], k=4) == []


def test_members_come_from_the_registry_cache_and_load_once(known):
    a, b = member(["/a/1.png"]), member(["/b/1.png"], corpus="other")
    pooled = PooledRetriever(retrievers=[a, b])
    pooled.search(["q"], k=2)
    pooled.search(["q"], k=2)
    options = [{k: v for k, v in spec.items() if k != "use"} for spec in (a, b)]
    assert pooled.members[0] is build_component("retriever", "known", options[0])
    assert pooled.members[1] is build_component("retriever", "known", options[1])
    assert [m.load_count for m in pooled.members] == [1, 1]
    again = PooledRetriever(retrievers=[b, a])
    assert again.members == pooled.members[::-1], "two pools naming the same member share it"


def test_image_search_only_when_every_member_can(known, tmp_path):
    path = str(tmp_path / "q.png")
    Image.new("RGB", (8, 8)).save(path)
    both = PooledRetriever(retrievers=[member(["/a/1.png"], use="known-images"),
                                       member(["/b/1.png"], use="known-images")])
    assert both.supports_image_search
    [hits] = both.search_images([ImageQuery.open(path)], k=4)
    assert paths(hits) == ["/a/1.png", "/b/1.png"] and {h.query for h in hits} == {path}
    mixed = PooledRetriever(retrievers=[member(["/a/1.png"], use="known-images"), member(["/b/1.png"])])
    assert not mixed.supports_image_search
    with pytest.raises(NotImplementedError, match=r"retrievers\[1\] \(known\)"):
        mixed.search_images([ImageQuery.open(path)], k=4)


def test_a_broken_member_is_named(known):
    pooled = PooledRetriever(retrievers=[member(["/a/1.png"]), {"use": "relative"}])
    with pytest.raises(PipelineError, match="retriever 'relative'.*relative path"):
        pooled.search(["q"], k=2)


def test_describe_masks_member_secrets(known):
    pooled = PooledRetriever(retrievers=[member(["/a/1.png"]), {"use": "known", "api_key": "sk-999"}])
    text = str(pooled.describe())
    assert "sk-999" not in text and "/a/1.png" in text


def test_nested_typos_are_reported_by_profiles_validate_with_their_location(tmp_path):
    profile = {"name": "pooled-typos", "generator": {"use": "fake"}, "critic": {"use": "fake"},
               "retriever": {"use": "pooled", "k_each": 3, "retrievers": [
                   {"use": "fake", "corpus_dir": str(tmp_path / "a")},
                   {"use": "fake", "corpus_dri": str(tmp_path / "b")},
                   {"use": "fkae"}]}}
    path = tmp_path / "pooled-typos.yaml"
    path.write_text(yaml.safe_dump(profile), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", "profiles", "validate", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith(f"invalid: {path}: retriever.retrievers[1].corpus_dri: unknown key (got ")
               for line in lines), lines
    assert any(line.startswith(f"invalid: {path}: retriever.retrievers[2].use: no retriever named 'fkae'")
               and "did you mean 'fake'" in line for line in lines), lines
    assert not any("retrievers[0]" in line for line in lines), lines


def test_bad_pool_options_have_their_location():
    bad = parse_profile({"name": "p", "generator": {"use": "fake"}, "critic": {"use": "fake"},
                         "retriever": {"use": "pooled", "retrievers": [], "k_each": 0}})
    problems = check(bad)
    assert any("retriever.retrievers:" in p and "at least 1" in p for p in problems), problems
    assert any("retriever.k_each:" in p for p in problems), problems


class TestPooledRetrieverContract(RetrieverContract):
    @pytest.fixture
    def component(self, tmp_path):
        return PooledRetriever(retrievers=[{"use": "fake", "corpus_dir": str(tmp_path / "a")},
                                           {"use": "fake", "corpus_dir": str(tmp_path / "b"), "dim": 64}],
                               k_each=2)


class TestPooledImageRetrieverContract(RetrieverContract):
    @pytest.fixture
    def component(self, known):
        return PooledRetriever(retrievers=[member(["/a/1.png", "/a/2.png"], use="known-images"),
                                           member(["/b/1.png"], use="known-images")])


def test_a_reranker_picks_from_the_pool_in_a_whole_loop(tmp_path):
    """Two retrievers over two corpora pool their top 2; the vlm reranker (a scripted critic)
    picks candidate 4, the second hit of the second corpus, and the generator gets it."""
    corpus_a, corpus_b = tmp_path / "corpus-a", tmp_path / "corpus-b"
    data = {"name": "pooled-rerank", "generator": {"use": "fake"}, "critic": {"use": "fake"},
            "retriever": {"use": "pooled", "k_each": 2, "retrievers": [
                {"use": "fake", "corpus_dir": str(corpus_a), "corpus": "a"},
                {"use": "fake", "corpus_dir": str(corpus_b), "corpus": "b"}]},
            "reranker": {"use": "vlm", "top_n": 4, "critic": {"use": "scripted", "answers": ["4"]}},
            "loop": {"candidates": 4, "max_concepts": 1}}
    profile = parse_profile(data)
    assert check(profile) == []
    result = build_pipeline(profile).run("a sheep in a field", out=None)
    rnd = result.trace.to_dict()["rounds"][0]
    (query, hits), = rnd["hits"].items()
    assert [h["corpus"] for h in hits] == ["a", "b", "a", "b"], "the pool, interleaved"
    assert [Path(h["path"]).parent for h in hits] == [corpus_a, corpus_b, corpus_a, corpus_b]
    assert Path(hits[0]["path"]).name == Path(hits[1]["path"]).name, "same captions, two corpora"
    assert hits[3]["metadata"]["pooled"]["found_by"][0]["member"] == 1
    reranked = rnd["reranked"][query]
    assert reranked[0]["path"] == hits[3]["path"], "the critic's choice (candidate 4) comes first"
    assert [r.path for r in result.references] == [hits[3]["path"]]
