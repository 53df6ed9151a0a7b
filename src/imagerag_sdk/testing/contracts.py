"""Contract tests a plugin author subclasses to check a component against its role.

::

    from imagerag_sdk.testing.contracts import EmbedderContract

    class TestMyEmbedder(EmbedderContract):
        @pytest.fixture
        def component(self):
            return MyEmbedder(model="/abs/path/to/tiny")

Each class checks what the pipeline relies on; override a fixture (``prompt``, ``image``,
``queries`` …) to fit your component.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ..roles import Critic, Embedder, Generator, Reranker, Retriever
from ..types import Critique, GeneratorCapabilities, Hit, MissingConcept, Reference
from .fakes import FakeRetriever

HEAVY_MODULES = ("torch", "diffusers", "transformers", "open_clip", "openai", "anthropic",
                 "google.genai", "bm25s")


def assert_imports_light(module: str, heavy: tuple[str, ...] = HEAVY_MODULES) -> None:
    """Import ``module`` in a fresh interpreter and fail if any heavy library came with it."""
    code = (f"import sys, json, {module}\n"
            f"print(json.dumps([m for m in {list(heavy)!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not loaded, f"importing {module} pulled in {loaded}; import them inside load()"


class _Base:
    role_class: type = object

    @pytest.fixture
    def component(self):  # pragma: no cover - must be overridden
        raise NotImplementedError("override the 'component' fixture")

    def test_is_role(self, component):
        assert isinstance(component, self.role_class)
        assert component.name, "set the class attribute 'name' (the name profiles use)"

    def test_load_is_idempotent(self, component):
        component.load()
        count = component.load_count
        assert component.load() is component
        assert component.load_count == count == 1

    def test_describe_is_json(self, component):
        json.dumps(component.describe())

    def test_options_documented(self, component):
        for field_name, field in type(component).Options.model_fields.items():
            assert field.description, f"option '{field_name}' needs Field(description=...)"


class GeneratorContract(_Base):
    role_class = Generator

    @pytest.fixture
    def prompt(self) -> str:
        return "a photo of a red bicycle"

    @pytest.fixture
    def reference(self, tmp_path) -> Reference:
        path = tmp_path / "ref.png"
        Image.new("RGB", (32, 32), (200, 30, 30)).save(path)
        return Reference(path=str(path), caption="a red square")

    def test_capabilities(self, component):
        caps = component.capabilities
        assert isinstance(caps, GeneratorCapabilities)
        assert caps.max_references >= 0

    def test_generates_image(self, component, prompt):
        img = component.generate(prompt, seed=0)
        assert isinstance(img, Image.Image) and img.width > 0 and img.height > 0

    def test_same_seed_same_image(self, component, prompt):
        a = np.asarray(component.generate(prompt, seed=3).convert("RGB"), dtype=np.int16)
        b = np.asarray(component.generate(prompt, seed=3).convert("RGB"), dtype=np.int16)
        assert np.abs(a - b).max() <= 1

    def test_takes_references(self, component, prompt, reference):
        caps = component.capabilities
        if caps.max_references < 1:
            pytest.skip("generator takes no references")
        placeholder = caps.image_placeholder.format(i=1)
        text = (f"According to these examples of {reference.caption}: {placeholder}, generate {prompt}"
                if caps.conditioning == "in_context" else prompt)
        img = component.generate(text, [reference], seed=0)
        assert isinstance(img, Image.Image)


class CriticContract(_Base):
    role_class = Critic

    @pytest.fixture
    def prompt(self) -> str:
        return "an oil painting of a sheep and a car"

    @pytest.fixture
    def image(self) -> Image.Image:
        return Image.new("RGB", (64, 64), (90, 120, 200))

    def test_critique_is_well_formed(self, component, prompt, image):
        result = component.critique(prompt, image, max_concepts=2)
        assert isinstance(result, Critique)
        assert isinstance(result.matches, bool)
        assert result.attempts >= 1
        assert len(result.missing) <= 2
        for m in result.missing:
            assert isinstance(m, MissingConcept) and m.concept and m.caption
        if result.matches:
            assert not result.missing
        json.dumps(result.to_dict())


class EmbedderContract(_Base):
    role_class = Embedder

    @pytest.fixture
    def texts(self) -> list[str]:
        return ["a photo of a cat", "an oil painting of a ship", "a red car"]

    @pytest.fixture
    def images(self) -> list[Image.Image]:
        return [Image.new("RGB", (40 + 8 * i, 48), (40 * i, 200 - 30 * i, 90)) for i in range(3)]

    def _check(self, component, rows, n):
        assert isinstance(rows, np.ndarray) and rows.dtype == np.float32
        assert rows.shape == (n, component.dim)
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-3)

    def test_texts(self, component, texts):
        self._check(component, component.embed_texts(texts), len(texts))

    def test_images(self, component, images):
        self._check(component, component.embed_images(images), len(images))

    def test_batch_equals_single(self, component, texts):
        batch = component.embed_texts(texts)
        single = np.concatenate([component.embed_texts([t]) for t in texts])
        np.testing.assert_allclose(batch, single, atol=2e-2)

    def test_identity(self, component):
        assert isinstance(component.identity, str) and component.identity


class RetrieverContract(_Base):
    role_class = Retriever

    @pytest.fixture
    def queries(self) -> list[str]:
        return ["a photo of a sheep", "a red car"]

    def test_one_list_per_query(self, component, queries):
        results = component.search(queries, k=2)
        assert len(results) == len(queries)
        for query, hits in zip(queries, results):
            assert len(hits) <= 2
            assert all(isinstance(h, Hit) for h in hits)
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True), "hits must come best first"
            for h in hits:
                assert h.path and h.path.startswith("/"), "hit paths are absolute"

    def test_empty_queries(self, component):
        assert component.search([], k=3) == []


class RerankerContract(_Base):
    role_class = Reranker

    @pytest.fixture
    def query(self) -> str:
        return "a sheep standing in a green field"

    @pytest.fixture
    def hits(self, tmp_path, query) -> list[Hit]:
        retriever = FakeRetriever(corpus_dir=str(tmp_path / "corpus"))
        return retriever.search(["a red car on a street"], k=5)[0]

    def test_returns_subset_of_hits(self, component, query, hits):
        out = component.rerank(query, hits)
        assert isinstance(out, list) and out
        assert {h.path for h in out} <= {h.path for h in hits}
        assert len({h.path for h in out}) == len(out), "no duplicates"
