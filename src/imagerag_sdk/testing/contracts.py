"""Contract tests a plugin author subclasses to check a component against its role.

::

    from imagerag_sdk.testing.contracts import EmbedderContract

    class TestMyEmbedder(EmbedderContract):
        @pytest.fixture
        def component(self):
            return MyEmbedder(model="/abs/path/to/tiny")

Each class checks what the pipeline relies on; override a fixture (``prompt``, ``image``,
``queries`` …) to fit your component. The output checks are the loop's own
(:mod:`imagerag_sdk.outputs`), so a failure reads as the run would report it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ..errors import ImageRAGError, PipelineError
from ..outputs import check_critique, check_hits, check_image, check_reranked, check_scores, check_vectors
from ..roles import Component, Critic, Embedder, Generator, Reranker, Retriever, Scorer
from ..types import GeneratorCapabilities, Hit, ImageQuery, MissingConcept, Reference, ScoreItem
from .fakes import FakeRetriever

HEAVY_MODULES = ("torch", "torchvision", "tensorflow", "jax")
"""Heavy libraries no plugin may import at import time; each plugin adds its own through the
``heavy_imports`` hook (see :func:`heavy_modules`)."""


def heavy_modules() -> tuple[str, ...]:
    """:data:`HEAVY_MODULES` plus what every working plugin of the registry declares heavy."""
    from ..plugins import get_registry

    registry = get_registry()
    ok = {p.name for p in registry.plugins if p.ok}
    found = list(HEAVY_MODULES)
    for impl in registry.pm.hook.heavy_imports.get_hookimpls():
        if impl.plugin_name in ok:
            declared: list[str] = list(impl.function())  # type: ignore[call-overload]  # pluggy types hooks as -> object
            found += [m for m in declared if m not in found]
    return tuple(found)


def assert_imports_light(module: str, heavy: tuple[str, ...] | None = None) -> None:
    """Import ``module`` in a fresh interpreter and fail if any heavy library came with it
    (``heavy``: default :func:`heavy_modules`, the generic ones and every plugin's)."""
    heavy = heavy_modules() if heavy is None else heavy
    code = (f"import sys, json, {module}\n"
            f"print(json.dumps([m for m in {list(heavy)!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not loaded, f"importing {module} pulled in {loaded}; import them inside load()"


def passes(check, *args, **kwargs):
    """Run one of the loop's output checks; its message becomes the test failure."""
    try:
        return check(*args, **kwargs)
    except PipelineError as exc:
        pytest.fail(str(exc), pytrace=False)


def _pixels(img) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


class _Base:
    role_class: type[Component[Any]] = Component

    @pytest.fixture
    def component(self):  # pragma: no cover - must be overridden
        raise NotImplementedError("override the 'component' fixture")

    def test_is_role(self, component):
        assert isinstance(component, self.role_class), \
            f"{type(component).__name__} is not a {self.role_class.__name__} subclass"
        assert component.name, "set the class attribute 'name' (the name profiles use)"

    def test_load_is_idempotent(self, component):
        component.load()
        count = component.load_count
        assert component.load() is component, "load() must return self"
        assert component.load_count == count == 1, f"loaded {component.load_count} times, expected once"

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

    def _reference_prompt(self, component, prompt: str, reference: Reference) -> str:
        caps = component.capabilities
        placeholder = caps.image_placeholder.format(i=1)
        return (f"According to these examples of {reference.caption}: {placeholder}, generate {prompt}"
                if caps.conditioning == "in_context" else prompt)

    def test_capabilities(self, component):
        caps = component.capabilities
        assert isinstance(caps, GeneratorCapabilities), \
            f"capabilities is {type(caps).__name__}, expected GeneratorCapabilities"
        assert caps.max_references >= 0, f"max_references is {caps.max_references}, expected >= 0"

    def test_generates_image(self, component, prompt):
        passes(check_image, component.generate(prompt, seed=0), component)

    def test_same_seed_same_image(self, component, prompt):
        a = _pixels(passes(check_image, component.generate(prompt, seed=3), component))
        b = _pixels(passes(check_image, component.generate(prompt, seed=3), component))
        assert a.shape == b.shape, f"the same seed gave a {a.shape} and a {b.shape} image"
        assert np.abs(a - b).max() <= 1, \
            f"the same prompt and seed gave images differing by up to {np.abs(a - b).max()} levels"

    def test_takes_references(self, component, prompt, reference):
        if component.capabilities.max_references < 1:
            pytest.skip("generator takes no references")
        text = self._reference_prompt(component, prompt, reference)
        passes(check_image, component.generate(text, [reference], seed=0), component)

    def test_references_change_the_image(self, component, prompt, reference):
        """A generator with a reference budget must use the references it is given: the same
        seed with a reference must give another image than without one. (For in-context
        generators the reference prompt differs too; a generator that reads neither fails.)"""
        if component.capabilities.max_references < 1:
            pytest.skip("generator declares no reference budget (max_references 0)")
        plain = _pixels(passes(check_image, component.generate(prompt, seed=0), component))
        text = self._reference_prompt(component, prompt, reference)
        with_ref = _pixels(passes(check_image, component.generate(text, [reference], seed=0), component))
        if plain.shape == with_ref.shape and np.abs(plain - with_ref).max() <= 1:
            pytest.fail(f"generate() returned the same image with a reference as without one (same seed): "
                        f"'{component.name}' ignores its references; use them, or declare "
                        "max_references=0", pytrace=False)


class CriticContract(_Base):
    role_class = Critic

    @pytest.fixture
    def prompt(self) -> str:
        return "an oil painting of a sheep and a car"

    @pytest.fixture
    def image(self) -> Image.Image:
        return Image.new("RGB", (64, 64), (90, 120, 200))

    def test_critique_is_well_formed(self, component, prompt, image):
        result = passes(check_critique, component.critique(prompt, image, max_concepts=2), component)
        assert result.attempts >= 1, f"attempts is {result.attempts}, expected >= 1"
        assert len(result.missing) <= 2, f"{len(result.missing)} missing concepts named, max_concepts was 2"
        for m in result.missing:
            assert isinstance(m, MissingConcept) and m.concept and m.caption, \
                f"missing holds {m!r}, expected MissingConcept with a concept and a caption"
        if result.matches:
            assert not result.missing, "a matching image has no missing concepts"
        json.dumps(result.to_dict())


class EmbedderContract(_Base):
    role_class = Embedder

    @pytest.fixture
    def texts(self) -> list[str]:
        return ["a photo of a cat", "an oil painting of a ship", "a red car"]

    @pytest.fixture
    def images(self) -> list[Image.Image]:
        return [Image.new("RGB", (40 + 8 * i, 48), (40 * i, 200 - 30 * i, 90)) for i in range(3)]

    def test_texts(self, component, texts):
        passes(check_vectors, component.embed_texts(texts), component, len(texts), method="embed_texts")

    def test_images(self, component, images):
        passes(check_vectors, component.embed_images(images), component, len(images), method="embed_images")

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
        results = passes(check_hits, component.search(queries, k=2), component, len(queries))
        for query, hits in zip(queries, results, strict=True):
            assert len(hits) <= 2, f"search(k=2) returned {len(hits)} hits for {query!r}"
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True), f"hits must come best first, got scores {scores}"

    def test_empty_queries(self, component):
        out = component.search([], k=3)
        assert out == [], f"search([]) returned {out!r}, expected []"

    def test_image_queries_as_declared(self, component, tmp_path):
        path = str(tmp_path / "query.png")
        Image.new("RGB", (32, 32), (200, 40, 40)).save(path)
        queries = [ImageQuery.open(path), ImageQuery(Image.new("RGB", (24, 24), (20, 90, 200)), "<blue>")]
        if not component.supports_image_search:
            with pytest.raises(NotImplementedError):
                component.search_images(queries, k=2)
            return
        results = passes(check_hits, component.search_images(queries, k=2), component, len(queries))
        for query, hits in zip(queries, results, strict=True):
            assert len(hits) <= 2, f"search_images(k=2) returned {len(hits)} hits for {query.path!r}"
            assert all(h.query == query.path for h in hits), \
                f"each hit's query must be its ImageQuery's path {query.path!r}, got {[h.query for h in hits]}"
        assert component.search_images([], k=2) == [], "search_images([]) must return []"


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
        out = passes(check_reranked, component.rerank(query, hits), hits, component)
        assert out, f"rerank() returned nothing for {len(hits)} hits"


def score_items(folder) -> list[ScoreItem]:
    """Three items with distinct prompts and random images, each with two real images (solid
    colours) written as PNGs under ``folder``."""
    real = []
    for i, colour in enumerate([(200, 40, 40), (40, 160, 60), (30, 60, 200), (220, 200, 40)]):
        path = Path(folder) / f"real-{i}.png"
        Image.new("RGB", (48 + 8 * i, 40), colour).save(path)
        real.append(str(path.resolve()))
    rng = np.random.default_rng(0)
    prompts = [("a photo of a red car", "red car"), ("a sheep in a green field", "sheep"),
               ("an oil painting of a blue boat", "blue boat")]
    return [ScoreItem(prompt=p, concept=c, real_images=tuple(real[i:i + 2]),
                      image=Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)))
            for i, (p, c) in enumerate(prompts)]


class ScorerContract(_Base):
    """A scorer: one finite float per item, in order, the same in a batch as alone, the same every
    time, loaded once; light to import; a ``needs_real_images`` scorer refuses an item without
    real images with a clear error. ``tolerance``: how far a batched score may be from the same
    item scored alone (raise it for a scorer that computes in bf16/fp16)."""

    role_class = Scorer
    tolerance = 1e-4

    @pytest.fixture
    def items(self, tmp_path) -> list[ScoreItem]:
        return score_items(tmp_path)

    def _values(self, component, items, method: str = "score") -> list[float]:
        out = getattr(component, method)(items)
        return [s.value for s in passes(check_scores, out, component, len(items), method=method)]

    def test_one_finite_float_per_item(self, component, items):
        self._values(component, items)

    def test_batch_equals_single_in_order(self, component, items):
        batch = self._values(component, items)
        single = [self._values(component, [item])[0] for item in items]
        np.testing.assert_allclose(batch, single, atol=self.tolerance,
                                   err_msg="a batch must score each item as scoring it alone does")
        backwards = self._values(component, items[::-1])
        np.testing.assert_allclose(backwards, batch[::-1], atol=self.tolerance,
                                   err_msg="scores must come in item order")

    def test_deterministic(self, component, items):
        first = self._values(component, items)
        np.testing.assert_allclose(self._values(component, items), first, atol=self.tolerance,
                                   err_msg="the same items scored twice gave other scores")

    def test_detailed_equals_score(self, component, items):
        detailed = self._values(component, items, "score_detailed")
        np.testing.assert_allclose(detailed, self._values(component, items), atol=self.tolerance,
                                   err_msg="score_detailed() values must equal score()")

    def test_empty_batch(self, component):
        out = component.score([])
        assert list(out) == [], f"score([]) returned {out!r}, expected []"

    def test_loads_once_while_scoring(self, component, items):
        component.score(items[:1])
        component.score(items)
        assert component.load_count == 1, f"scoring loaded {component.load_count} times, expected once"

    def test_real_images_as_declared(self, component, items):
        bare = [ScoreItem(prompt=i.prompt, image=i.image, concept=i.concept) for i in items]
        if not component.needs_real_images:
            self._values(component, bare)
            return
        with pytest.raises(ImageRAGError) as err:
            component.score(bare)
        message = str(err.value)
        assert "real_images" in message and "\n" not in message, \
            f"an item without real images needs a one-line error naming real_images, got {message!r}"

    def test_import_is_light(self, component):
        """Importing the scorer's module (and so its package) pulls in no heavy library."""
        assert_imports_light(type(component).__module__)
