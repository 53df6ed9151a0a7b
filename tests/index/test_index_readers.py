"""Readers of a corpus another process writes: one consistent snapshot per search, and no graph
built at query time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from imagerag_sdk.images import load_rgb
from imagerag_sdk.index import CorpusIndex, CorpusStore, ExactBackend, HnswBackend, IndexRetriever, ingest
from imagerag_sdk.index import corpus as corpus_mod
from imagerag_sdk.index.store import NewItem
from imagerag_sdk.testing.fakes import FakeEmbedder

ENTRY = "from imagerag_sdk.cli import main; main()"


def _cli(*args, home):
    env = {**os.environ, "IMAGERAG_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", ENTRY, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def _truth(root):
    """Each image file's vector, from the file itself (independent of any index state)."""
    fake = FakeEmbedder()
    paths = sorted(str(p) for p in root.rglob("*.png"))
    return dict(zip(paths, fake.embed_images([load_rgb(p) for p in paths]), strict=True))


def _check_consistent(hits, query, truth):
    for hit in hits:
        assert hit.path in truth, f"{hit.path} is not a live file"
        assert hit.score == pytest.approx(float(query @ truth[hit.path]), abs=1e-5), hit.path


def _epoch(index_dir):
    store = CorpusStore.open(index_dir=index_dir)
    try:
        return store.epoch
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_compaction_by_another_process_between_two_searches(tmp_path, index_make_images,
                                                            index_embedder_factory, backend):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    index_make_images(root, 30, subdirs=False)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    before = _truth(root)
    r = IndexRetriever(index_dir=str(index_dir), backend=backend, dedupe=None)
    collapsing = IndexRetriever(index_dir=str(index_dir), backend=backend)  # reads stored vectors too
    queries = np.stack([before[p] for p in sorted(before)])
    for retriever in (r, collapsing):
        assert [h[0].path for h in retriever.search_vectors(queries, sorted(before), 5)] == sorted(before)

    for i in range(12):  # 40 % dead: the next `imagerag index` compacts and renumbers the labels
        (root / f"img{i:04d}.png").unlink()
    _cli("index", root, "--index-dir", index_dir, "-q", home=tmp_path / "home")
    assert _epoch(index_dir) == 1, "the other process compacted the corpus"

    live = _truth(root)
    for path, query in sorted(before.items()):
        hits = r.search_vectors(query[None], [path], 5)[0]
        assert len(hits) == 5
        _check_consistent(hits, query, live)
        if path in live:
            assert hits[0].path == path and hits[0].score == pytest.approx(1.0, abs=1e-5)
    for path, query in sorted(live.items()):
        hits = collapsing.search_vectors(query[None], [path], 3)[0]
        assert hits[0].path == path
        _check_consistent(hits, query, live)


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_adds_and_deletes_by_another_process_are_seen_whole(tmp_path, index_make_images,
                                                            index_embedder_factory, backend):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    index_make_images(root, 30, subdirs=False)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    r = IndexRetriever(index_dir=str(index_dir), backend=backend, dedupe=None)
    before = _truth(root)
    r.search_vectors(np.stack(list(before.values())), list(before), 30)

    gone = [root / "img0003.png", root / "img0017.png"]
    for p in gone:
        p.unlink()
    index_make_images(root, 3, start=40, subdirs=False)
    _cli("index", root, "--index-dir", index_dir, "-q", home=tmp_path / "home")
    assert _epoch(index_dir) == 0, "no compaction: the labels stayed where they were"

    live = _truth(root)
    everything = r.search_vectors(live[str(root / "img0040.png")][None], ["all"], 100)[0]
    assert sorted(h.path for h in everything) == sorted(live), "exactly the new state"
    for path, query in live.items():
        hits = r.search_vectors(query[None], [path], 3)[0]
        assert hits[0].path == path
        _check_consistent(hits, query, live)
    for p in gone:
        hits = r.search_vectors(before[str(p)][None], ["gone"], 5)[0]
        _check_consistent(hits, before[str(p)], live)


def test_threads_search_while_another_process_compacts(tmp_path, index_make_images, index_embedder_factory):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    index_make_images(root, 40, subdirs=False)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    truth = _truth(root)  # the vectors of deleted files stay known: their scores are checked too
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", dedupe=None)
    r.load()
    for i in range(0, 40, 3):
        (root / f"img{i:04d}.png").unlink()
    index_make_images(root, 5, start=60, subdirs=False)
    truth.update(_truth(root))
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, "index", str(root), "--index-dir", str(index_dir),
                             "-q"], env={**os.environ, "IMAGERAG_HOME": str(tmp_path / "home")},
                            stderr=subprocess.PIPE)
    errors: list[BaseException] = []
    queries = sorted(truth)
    done = threading.Event()

    def searcher(offset):
        try:
            rounds = 0
            while not done.is_set() or rounds < 3:
                rounds += 1
                for j in range(offset, len(queries), 4):
                    q = truth[queries[j]]
                    _check_consistent(r.search_vectors(q[None], ["q"], 4)[0], q, truth)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=searcher, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        done.set()
    for t in threads:
        t.join()
    assert proc.returncode == 0, err.decode()
    assert not errors, errors[0]
    assert _epoch(index_dir) == 1
    live = _truth(root)
    for path, q in live.items():
        assert r.search_vectors(q[None], [path], 1)[0][0].path == path


def _spy_add(monkeypatch):
    added = []
    real = HnswBackend.add
    monkeypatch.setattr(HnswBackend, "add", lambda self, v, labels: (added.append(len(labels)),
                                                                     real(self, v, labels)))
    return added


def _corpus_with_stale_graph(tmp_path, index_make_images, index_embedder_factory):
    """25 live images whose only saved graph covers the first 8 (an index run still adding)."""
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    index_make_images(root, 8, subdirs=False)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=5)
    (snap,) = index_dir.glob("hnsw-*.bin")
    old = snap.read_bytes()
    index_make_images(root, 17, start=8, subdirs=False)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=5)
    for p in index_dir.glob("hnsw-*.bin"):
        p.unlink()
    snap.write_bytes(old)
    return root, index_dir


def _same_top_hits(index, index_dir, queries):
    exact = CorpusIndex(index_dir=index_dir, backend="exact")
    got_l, got_s = index.search(queries, 5)
    want_l, want_s = exact.search(queries, 5)
    np.testing.assert_array_equal(got_l, want_l)
    np.testing.assert_allclose(got_s, want_s, atol=1e-6)


def test_a_reader_searches_exactly_while_the_saved_graph_is_far_behind(tmp_path, index_make_images,
                                                                       index_embedder_factory, monkeypatch,
                                                                       caplog):
    root, index_dir = _corpus_with_stale_graph(tmp_path, index_make_images, index_embedder_factory)
    queries = np.stack(list(_truth(root).values()))
    added = _spy_add(monkeypatch)
    monkeypatch.setattr(corpus_mod, "READER_INSERT_MAX", 5, raising=False)
    with caplog.at_level("WARNING", logger="imagerag_sdk.index.corpus"):
        index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    assert added == [] and isinstance(index.backend, ExactBackend)
    assert "covering 8 of its 25 images" in index.note and "imagerag index" in index.note
    assert index.note in caplog.text
    _same_top_hits(index, index_dir, queries)

    small = CorpusIndex(index_dir=index_dir, backend="hnsw", max_insert=20)  # 17 missing: inserted
    assert added == [17] and isinstance(small.backend, HnswBackend) and small.note is None
    assert sorted(small.search(queries, 1)[0][:, 0]) == sorted(small.labels)


def test_a_reader_without_a_saved_graph_never_builds_a_large_one(tmp_path, index_make_images,
                                                                 index_embedder_factory, monkeypatch):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    index_make_images(root, 25, subdirs=False)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    for p in index_dir.glob("hnsw-*.bin"):
        p.unlink()  # killed during the graph build
    added = _spy_add(monkeypatch)
    monkeypatch.setattr(corpus_mod, "READER_INSERT_MAX", 5, raising=False)
    r = IndexRetriever(index_dir=str(index_dir), exact_below=10, dedupe=None)
    truth = _truth(root)
    queries = np.stack([truth[p] for p in sorted(truth)])
    hits = r.search_vectors(queries, sorted(truth), 3)
    assert added == [] and isinstance(r.index.backend, ExactBackend)
    assert "no saved search graph for its 25 images" in r.note
    assert [h[0].path for h in hits] == sorted(truth)
    _same_top_hits(r.index, index_dir, queries)

    # the writer saves the graph: the next search of the same reader uses it, inserting nothing
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    assert list(index_dir.glob("hnsw-*.bin"))
    added.clear()
    assert [h[0].path for h in r.search_vectors(queries, sorted(truth), 3)] == sorted(truth)
    assert isinstance(r.index.backend, HnswBackend) and r.note is None and added == []


def test_imagerag_search_says_the_graph_is_missing(tmp_path):
    """A 20k corpus whose graph was never saved (its `imagerag index` was killed while building it)."""
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    root.mkdir()
    rng = np.random.default_rng(0)
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:
        store.bind(root=root, identity=FakeEmbedder(dim=16).identity, spec={"use": "fake", "dim": 16})
        n = corpus_mod.EXACT_BELOW + 100
        vecs = rng.normal(size=(n, 16)).astype(np.float32)
        store.commit([NewItem(f"f{i:05d}.png", f"h{i}", 1, 1, "", {}) for i in range(n)],
                     vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    finally:
        store.close()
    out = _cli("search", "apple boat", "--index-dir", index_dir, "-k", "3", "--json", home=tmp_path / "home")
    assert len(json.loads(out.stdout)) == 3
    notes = [line for line in out.stderr.splitlines() if "no saved search graph" in line]
    assert len(notes) == 1 and "exact" in notes[0] and "imagerag index" in notes[0], out.stderr
    assert not list(index_dir.glob("hnsw-*.bin")), "a reader saves nothing"


def test_a_damaged_graph_file_is_named_and_searched_around(tmp_path, index_make_images, index_embedder_factory,
                                                           caplog):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    index_make_images(root, 25, subdirs=False)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    [graph] = index_dir.glob("hnsw-*.bin")
    graph.write_bytes(graph.read_bytes()[:100])  # damaged on disk
    with caplog.at_level("WARNING", logger="imagerag_sdk.index.graph_pair"):
        index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    assert f"search graph {graph.name} does not load" in caplog.text and "imagerag index" in caplog.text
    queries = np.random.default_rng(0).standard_normal((10, index.dim)).astype(np.float32)
    _same_top_hits(index, index_dir, queries / np.linalg.norm(queries, axis=1, keepdims=True))
