"""A role that returns the wrong thing fails where its output is received, naming stage and plugin."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imagerag_sdk.errors import PipelineError
from imagerag_sdk.index import IndexRetriever, ingest
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.testing import FakeEmbedder, FakeGenerator, FakeReranker, FakeRetriever, ScriptedCritic
from imagerag_sdk.testing.contracts import EmbedderContract, GeneratorContract, RerankerContract
from imagerag_sdk.testing.fakes import fake_corpus
from imagerag_sdk.types import Hit, ImageQuery, Reference

PROMPT = "an oil painting of a sheep and a car"
ANSWER = {"matches": False, "missing": [{"concept": "a sheep", "caption": "a sheep standing in a green field"}]}
# classes defined in this module belong to no distribution: the label falls back to the module
HERE = f"from module {__name__}"


def critic(answer=ANSWER):
    return ScriptedCritic(answers=[answer], structured=True)


class OddGenerator(FakeGenerator):
    name = "odd"
    result = None

    def generate(self, prompt, references=(), *, seed=None):
        return self.result


@pytest.mark.parametrize("result,what", [
    (np.zeros((8, 8, 3), np.uint8), "generate() returned ndarray, expected a PIL image"),
    ("an image", "generate() returned str, expected a PIL image"),
    (None, "generate() returned None, expected a PIL image"),
    (Image.new("RGB", (0, 0)), "generate() returned a 0×0 image, expected a non-empty PIL image"),
])
def test_generator_output_is_checked(tmp_path, result, what):
    gen = OddGenerator()
    gen.result = result
    with pytest.raises(PipelineError) as err:
        ImageRAG(gen, critic()).run(PROMPT, out=tmp_path / "runs")
    msg = str(err.value)
    assert msg.startswith(f"stage 'generate' (generator 'odd' {HERE}): {what}"), msg
    trace = json.loads((next((tmp_path / "runs").iterdir()) / "trace.json").read_text())
    assert trace["status"] == "failed" and what in trace["error"]


def test_builtin_components_are_labelled_with_their_distribution(tmp_path):
    class NoRefs(FakeReranker):  # a registered name, but not the registered class
        name = "fake"

        def rerank(self, query, hits):
            return [Hit(path="/elsewhere/made-up.png", score=1.0)]

    pipe = ImageRAG(FakeGenerator(), critic(), FakeRetriever(corpus_dir=str(tmp_path / "c")), FakeReranker())
    assert pipe.run(PROMPT, out=None).references
    pipe.reranker = NoRefs()
    with pytest.raises(PipelineError, match=rf"\(reranker 'fake' {HERE}\)"):
        pipe.run(PROMPT, out=None)
    from imagerag_sdk.outputs import component_label
    assert component_label(FakeGenerator()) == "generator 'fake' from imagerag-sdk"


def test_critic_returning_a_dict(tmp_path):
    class DictCritic(ScriptedCritic):
        name = "dicty"

        def critique(self, prompt, image, *, max_concepts=3, user_images=()):
            return {"matches": False, "missing": []}

    with pytest.raises(PipelineError) as err:
        ImageRAG(FakeGenerator(), DictCritic()).run(PROMPT, out=None)
    assert str(err.value).startswith(
        f"stage 'critique' (critic 'dicty' {HERE}): critique() returned dict, expected a Critique")


class ShortRetriever(FakeRetriever):
    name = "short"
    mode = "few"

    def search(self, queries, k):
        hits = super().search(queries, k)
        if self.mode == "few":
            return hits[:-1]
        return [[Hit(path=os.path.relpath(h.path), score=h.score) for h in q] for q in hits]


@pytest.mark.parametrize("mode,what", [
    ("few", "search() returned 1 result lists for 2 queries, expected one list per query"),
    ("relative", "search() returned the relative path"),
])
def test_retriever_output_is_checked(tmp_path, mode, what):
    retriever = ShortRetriever(corpus_dir=str(tmp_path / "corpus"))
    retriever.mode = mode
    answer = {"matches": False, "missing": [{"concept": "a sheep", "caption": "a sheep"},
                                            {"concept": "a car", "caption": "a red car"}]}
    with pytest.raises(PipelineError) as err:
        ImageRAG(FakeGenerator(), critic(answer), retriever).run(PROMPT, out=None)
    assert str(err.value).startswith(f"stage 'retrieve' (retriever 'short' {HERE}): {what}"), str(err.value)
    retriever.mode = "few"  # the RAGE flow checks the same way
    with pytest.raises(PipelineError, match="search\\(\\) returned 0 result lists for 1 queries"):
        ImageRAG(FakeGenerator(), None, retriever).retrieve("a red car")


class InventingReranker(FakeReranker):
    name = "inventive"
    duplicate = False

    def rerank(self, query, hits):
        out = super().rerank(query, hits)
        if self.duplicate:
            return out + out[:1]
        return [Hit(path="/nowhere/invented.png", score=9.0, query=query)] + out


@pytest.mark.parametrize("duplicate,what", [
    (False, "rerank() returned '/nowhere/invented.png', which is not among its 3 input hits"),
    (True, "twice"),
])
def test_reranker_output_is_checked(tmp_path, duplicate, what):
    reranker = InventingReranker()
    reranker.duplicate = duplicate
    pipe = ImageRAG(FakeGenerator(), critic(), FakeRetriever(corpus_dir=str(tmp_path / "c")), reranker)
    with pytest.raises(PipelineError) as err:
        pipe.run(PROMPT, out=None)
    msg = str(err.value)
    assert msg.startswith(f"stage 'rerank' (reranker 'inventive' {HERE}): rerank() returned") and what in msg
    with pytest.raises(PipelineError, match="stage 'rerank'"):
        pipe.retrieve("a red car", k=3)


class BadEmbedder(FakeEmbedder):
    name = "bad"
    fault = "float64"

    def _spoil(self, rows):
        if self.fault == "float64":
            return rows.astype(np.float64)
        if self.fault == "dim":
            return rows[:, :-1]
        return rows * 2.0

    def embed_texts(self, texts):
        return self._spoil(super().embed_texts(texts))

    def embed_images(self, images):
        return self._spoil(super().embed_images(images))


FAULTS = [("float64", "returned float64 rows, expected float32"),
          ("dim", "returned shape (2, 63) for 2 inputs, expected (2, 64)"),
          ("norm", "returned rows that are not unit length (row 0 has norm 2")]


@pytest.mark.parametrize("fault,what", FAULTS)
def test_embedder_output_is_checked_by_the_index_retriever(tmp_path, fault, what):
    root = fake_corpus(tmp_path / "corpus")
    ingest(root, index_dir=tmp_path / "index", embedder=FakeEmbedder())
    retriever = IndexRetriever(index_dir=str(tmp_path / "index"), embedder={"use": "fake"})
    assert retriever.search(["a sheep", "a red car"], 2)[0]
    bad = BadEmbedder()
    bad.fault = fault
    retriever.embedder = bad
    with pytest.raises(PipelineError) as err:
        retriever.search(["a sheep", "a red car"], 2)
    assert str(err.value).startswith(f"stage 'embed' (embedder 'bad' {HERE}): embed_texts() {what}"), \
        str(err.value)
    with pytest.raises(PipelineError, match=r"embed_images\(\) "):
        retriever.search_images([ImageQuery(Image.new("RGB", (8, 8)), "a"),
                                 ImageQuery(Image.new("RGB", (9, 9), "red"), "b")], 2)
    # through the loop, the embedder's own label reaches the user
    with pytest.raises(PipelineError, match=r"stage 'embed' \(embedder 'bad' "):
        ImageRAG(FakeGenerator(), critic(), retriever).run(PROMPT, out=None)


@pytest.mark.parametrize("fault,what", FAULTS[:1])
def test_embedder_output_is_checked_by_the_indexer(tmp_path, fault, what):
    bad = BadEmbedder()
    bad.fault = fault
    with pytest.raises(PipelineError) as err:
        ingest(fake_corpus(tmp_path / "corpus"), index_dir=tmp_path / "index", embedder=bad)
    assert f"(embedder 'bad' {HERE}): embed_images() {what}" in str(err.value)


# -- the contracts give the same messages ---------------------------------------------------------
def _contract_failure(test, *args) -> str:
    with pytest.raises(pytest.fail.Exception) as err:
        test(*args)
    return str(err.value)


def test_generator_contract_says_what_is_wrong(tmp_path):
    gen = OddGenerator()
    gen.result = np.zeros((4, 4, 3), np.uint8)
    msg = _contract_failure(GeneratorContract().test_generates_image, gen, PROMPT)
    assert "generate() returned ndarray, expected a PIL image" in msg


class IgnoresReferences(FakeGenerator):
    name = "deaf"

    def generate(self, prompt, references=(), *, seed=None):
        return super().generate(prompt, (), seed=seed)


def test_generator_contract_fails_a_generator_that_ignores_references(tmp_path):
    contract = GeneratorContract()
    ref = Reference(path=str(tmp_path / "ref.png"), caption="a square")
    Image.new("RGB", (32, 32), (200, 30, 30)).save(ref.path)
    contract.test_references_change_the_image(FakeGenerator(conditioning="adapter"), PROMPT, ref)
    with pytest.raises(pytest.fail.Exception, match="'deaf' ignores its references"):
        contract.test_references_change_the_image(IgnoresReferences(conditioning="adapter"), PROMPT, ref)
    with pytest.raises(pytest.skip.Exception, match="no reference budget"):
        contract.test_references_change_the_image(IgnoresReferences(max_references=0), PROMPT, ref)


def test_embedder_and_reranker_contracts_say_what_is_wrong(tmp_path):
    bad = BadEmbedder()
    msg = _contract_failure(EmbedderContract().test_texts, bad, ["a cat", "a dog"])
    assert "embed_texts() returned float64 rows, expected float32" in msg
    hits = FakeRetriever(corpus_dir=str(tmp_path / "c")).search(["a red car"], k=3)[0]
    msg = _contract_failure(RerankerContract().test_returns_subset_of_hits, InventingReranker(), "car", hits)
    assert "which is not among its 3 input hits" in msg


def test_fake_embedder_rows_are_unit_even_without_content_words():
    rows = FakeEmbedder().embed_texts(["a photo of the", "a cat"])
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-6)


# -- through the CLI ------------------------------------------------------------------------------
def test_cli_prints_one_line_naming_stage_and_plugin(plugin_site, tmp_path):
    plugin_site("imagerag-arrays", "arrays", "imagerag_arrays_cli", """
        import numpy as np
        from imagerag_sdk import hookimpl
        from imagerag_sdk.testing.fakes import FakeGenerator

        class ArrayGenerator(FakeGenerator):
            name = "arrays"

            def generate(self, prompt, references=(), *, seed=None):
                return np.zeros((8, 8, 3), np.uint8)

        @hookimpl
        def register_generators(register):
            register(ArrayGenerator)
    """)
    profile = tmp_path / "arrays.yaml"
    profile.write_text("name: arrays\ngenerator: {use: arrays}\ncritic: {use: fake}\nretriever: {use: fake}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site.path), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", "generate", "a cat", "--profile",
                          str(profile), "--out", str(tmp_path / "runs")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in out.stderr.splitlines() if "error" in line.lower()], out.stderr
    assert len(errors) == 1 and errors[0].startswith(
        "error: stage 'generate' (generator 'arrays' from imagerag-arrays): "
        "generate() returned ndarray, expected a PIL image"), out.stderr
    assert "unexpected" not in out.stderr and "please report it" not in out.stderr
