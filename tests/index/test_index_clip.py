"""The index with a real (tiny, random-weight) open_clip model through the CLIP plugin's loading path."""

from __future__ import annotations

import numpy as np
import pytest

from imagerag_sdk.images import load_rgb
from imagerag_sdk.index import CorpusStore, IndexRetriever, ingest
from imagerag_sdk.testing.fakes import fake_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def index_tiny_clip_spec(tmp_path_factory):
    tiny = pytest.importorskip("imagerag_clip.tiny")
    opts = tiny.build_tiny_clip(tmp_path_factory.mktemp("index-tiny-clip"))
    return {"use": "clip", **opts, "device": "cpu", "dtype": "fp32"}


def test_index_and_search_with_tiny_clip(tmp_path, index_tiny_clip_spec):
    root = fake_corpus(tmp_path / "imgs")
    report = ingest(root, corpus="clip", embedder=index_tiny_clip_spec, batch_size=5, workers=2)
    assert report.embedded == 12 and report.total == 12 and report.embedder.startswith("open_clip:")
    assert ingest(root, corpus="clip").embedded == 0, "the stored spec is reused and nothing changed"

    retriever = IndexRetriever(corpus="clip")
    store = CorpusStore.open("clip")
    try:
        items = store.items()
        rel = sorted(items)[4]
        own = store.get_vectors([items[rel].label])[0]
    finally:
        store.close()
    direct = retriever.load().embedder.embed_images([load_rgb(root / rel)])[0]
    np.testing.assert_allclose(own, direct, atol=1e-5)  # worker-thread preprocessing = direct path
    hit = retriever.search_images([load_rgb(root / rel)], 1)[0][0]
    assert hit.metadata["relpath"] == rel and hit.score == pytest.approx(1.0, abs=1e-4)
    hits = retriever.search(["a red sports car", "a cat"], 3)
    assert [len(h) for h in hits] == [3, 3]
    assert all(h[0].score >= h[-1].score for h in hits)
