"""The index with a real (tiny, random-weight) open_clip model through the CLIP plugin's loading path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imagerag_sdk.errors import CorpusError
from imagerag_sdk.images import load_rgb
from imagerag_sdk.index import CorpusIndex, CorpusStore, IndexRetriever, ingest
from imagerag_sdk.testing.fakes import fake_corpus
from imagerag_sdk.types import ImageQuery

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
    hit = retriever.search_images([ImageQuery.open(root / rel)], 1)[0][0]
    assert hit.metadata["relpath"] == rel and hit.score == pytest.approx(1.0, abs=1e-4)
    hits = retriever.search(["a red sports car", "a cat"], 3)
    assert [len(h) for h in hits] == [3, 3]
    assert all(h[0].score >= h[-1].score for h in hits)


ENTRY = ("import sys; from imagerag_sdk.cli import main\n"
         "try:\n    main()\nfinally:\n    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")


def _index_cli(args, home):
    env = {**os.environ, "IMAGERAG_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", ENTRY, "index", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_unchanged_reindex_neither_loads_the_model_nor_imports_torch(tmp_path, index_tiny_clip_spec):
    home, root = tmp_path / "home", fake_corpus(tmp_path / "imgs")
    options = [f"{k}={v}" for k, v in index_tiny_clip_spec.items() if k != "use"]
    args = [root, "--corpus", "lazy", "--json", "--embedder", "clip",
            *[a for o in options for a in ("--embedder-option", o)]]
    first, err = _index_cli(args, home)
    assert first["embedded"] == 12 and "torch imported: True" in err
    for again in (args, [root, "--corpus", "lazy", "--json"]):  # same embedder given, or none
        report, err = _index_cli(again, home)
        assert report["embedded"] == 0 and report["unchanged"] == 12
        assert report["embedder"] == first["embedder"]
        assert "torch imported: False" in err, "nothing to embed: the model must not load"
    (root / "sub").mkdir()
    Image.new("RGB", (40, 30), (200, 30, 90)).save(root / "sub" / "new.png")
    report, err = _index_cli([root, "--corpus", "lazy", "--json"], home)
    assert report["embedded"] == 1 and report["total"] == 13 and "torch imported: True" in err


def test_changed_weights_are_refused_before_anything_is_embedded(tmp_path):
    tiny = pytest.importorskip("imagerag_clip.tiny")
    from imagerag_clip.embedder import ClipEmbedder

    opts = {**tiny.build_tiny_clip(tmp_path / "model", seed=0), "device": "cpu", "dtype": "fp32"}
    root = fake_corpus(tmp_path / "imgs")
    ingest(root, corpus="weights", embedder=ClipEmbedder(opts))
    other = tiny.build_tiny_clip(tmp_path / "model", seed=1)["weights"]
    os.replace(other, opts["weights"])  # same path, other weights
    unchanged = ingest(root, corpus="weights", embedder=ClipEmbedder(opts))
    assert unchanged.embedded == 0, "nothing to embed: the stored vectors still match their identity"
    Image.new("RGB", (40, 30), (10, 160, 90)).save(root / "new.png")
    with pytest.raises(CorpusError, match="built with embedder"):
        ingest(root, corpus="weights", embedder=ClipEmbedder(opts))
    assert len(CorpusIndex("weights")) == 12
