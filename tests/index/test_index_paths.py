"""The code around the graph: what a search, an open and a re-run read (not how long they take).

Each search reads only the items of the hits it keeps, once per view, and checks no path per hit
(only the root's identity; every item again when it changed); duplicate collapsing reads the few rows it needs (exact: from the backend's copy) without mapping
the vectors file into the process's memory; an open reads
no row per item; a re-run with nothing to add neither builds an Item per row nor loads the graph.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest

from imagerag_sdk.index import CorpusIndex, CorpusStore, HnswBackend, IndexRetriever, ingest
from imagerag_sdk.index import corpus as corpus_mod
from imagerag_sdk.index import store as store_mod
from imagerag_sdk.index.items import Item
from imagerag_sdk.index.records import RECORDS, ItemRecords


@pytest.fixture
def corpus(tmp_path, index_make_images, index_embedder_factory):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    files = index_make_images(root, 40)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    return root, index_dir, files


def _answers(r: IndexRetriever, captions: list[str], k: int = 5):
    return [[(h.path, round(h.score, 5), h.metadata["relpath"]) for h in hits]
            for hits in r.search(captions, k)]


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_a_repeated_search_reads_no_item_and_resolves_no_path(corpus, monkeypatch, backend):
    root, index_dir, files = corpus
    r = IndexRetriever(index_dir=str(index_dir), backend=backend)
    queries = sorted(files.values())[:6]
    first = _answers(r, queries)
    resolved, read = [], []
    real_realpath, real_read = os.path.realpath, CorpusStore.items_of_epoch
    monkeypatch.setattr(os.path, "realpath", lambda p, **kw: (resolved.append(p), real_realpath(p, **kw))[1])
    monkeypatch.setattr(CorpusStore, "items_of_epoch", lambda self, labels: (read.append(list(labels)),
                                                                              real_read(self, labels))[1])
    assert _answers(r, queries) == first
    assert resolved == [] and read == [], "checked and read once per item, not per hit per query"


@pytest.mark.parametrize("records", [True, False])
def test_a_search_reads_only_the_items_of_the_hits_it_keeps(corpus, monkeypatch, records):
    root, index_dir, files = corpus
    if not records:
        (index_dir / RECORDS).unlink()
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw")
    r.load()
    read: list[int] = []
    real_read, real_get = CorpusStore.items_of_epoch, ItemRecords.get
    monkeypatch.setattr(CorpusStore, "items_of_epoch", lambda self, labels: (read.extend(labels),
                                                                              real_read(self, labels))[1])
    monkeypatch.setattr(ItemRecords, "get", lambda self, labels: (read.extend(labels), real_get(self, labels))[1])
    hits = r.search([files["sub1/img0001.png"]], 3)[0]
    assert len(hits) == 3
    assert len(read) == 3, "dedupe fetches 4k + 4 candidates but reads the items of the k kept"


def test_the_item_cache_is_bounded_and_answers_the_same(corpus, monkeypatch):
    root, index_dir, files = corpus
    queries = sorted(files.values())
    want = _answers(IndexRetriever(index_dir=str(index_dir), backend="hnsw"), queries)
    monkeypatch.setattr(corpus_mod, "ITEM_CACHE", 7)
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw")
    got = [_answers(r, [q])[0] for q in queries]
    assert got == want
    assert r.index.cached_items() <= 7


def test_a_root_replaced_by_a_link_out_is_checked_again(corpus, tmp_path):
    root, index_dir, files = corpus
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", dedupe=None)
    query = [files["sub0/img0000.png"]]
    assert r.search(query, 3)[0], "hits under the root"
    moved = tmp_path / "elsewhere"
    shutil.move(str(root), str(moved))
    os.symlink(moved, root)  # the root's name now leads out of the folder that was indexed
    assert r.search(query, 3)[0] == []


def _lstats(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **kw: (seen.append(os.fspath(p)), real(p, *a, **kw))[1])
    return seen


def test_a_search_checks_no_path_per_hit(corpus, monkeypatch):
    """Confinement is checked when an item is indexed and when the root changes: a search looks
    at the root only (one ``lstat``), whatever items it reads."""
    root, index_dir, files = corpus
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw")
    r.load()
    seen = _lstats(monkeypatch)
    hits = r.search([files["sub1/img0001.png"]], 5)[0]
    assert len(hits) == 5 and all(h.path == str(root / h.metadata["relpath"]) for h in hits)
    assert seen == [str(root)], "the root's identity, no file or folder of a hit"


def test_after_the_root_changes_every_item_is_checked_once(corpus, monkeypatch, tmp_path):
    root, index_dir, files = corpus
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", dedupe=None)
    queries = sorted(files.values())
    assert len(r.search(queries[:1], 40)[0]) == 40
    (tmp_path / "outside").mkdir()
    (root / "sub2/img0005.png").rename(tmp_path / "outside/img0005.png")
    os.symlink(tmp_path / "outside/img0005.png", root / "sub2/img0005.png")  # after indexing
    shutil.move(str(root), str(tmp_path / "moved"))
    shutil.copytree(tmp_path / "moved", root, symlinks=True)  # the root changes: links kept
    seen = _lstats(monkeypatch)
    hits = r.search(queries[:1], 40)[0]
    assert {h.metadata["relpath"] for h in hits} == set(files) - {"sub2/img0005.png"}
    assert {p for p in seen if p.endswith(".png") and p.startswith(str(root))} == {
        str(root / rel) for rel in files}, "every item checked"
    seen.clear()
    r.index.current().entries.clear()
    for q in queries[1:4]:
        assert "sub2/img0005.png" not in {h.metadata["relpath"] for h in r.search([q], 40)[0]}
    assert seen == [str(root)] * 3, "then no path per hit"


class _NoRows:
    """Stands for the vectors file: any row read from it fails the test."""

    shape = (0, 64)

    def __getitem__(self, key):
        raise AssertionError("a search read rows of the vectors file")


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_dedupe_reads_rows_without_the_memory_map(corpus, backend):
    root, index_dir, files = corpus
    r = IndexRetriever(index_dir=str(index_dir), backend=backend)
    queries = sorted(files.values())[:8]
    want = _answers(r, queries, 6)
    view = r.index.current()
    vectors = view.vectors
    np.testing.assert_array_equal(view.vectors_of(view.labels[:9]), vectors[view.labels[:9]])
    view.vectors = _NoRows()  # type: ignore[assignment]  # a stand-in that refuses every read
    view.entries.clear()
    assert _answers(r, queries, 6) == want


def test_graph_vectors_of_a_deleted_label_are_reported_lacking():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8)).astype(np.float32)
    g = HnswBackend.build(x, np.arange(30))
    g.mark_deleted([4])
    got, lacking = g.vectors_of([3, 4, 5])
    assert lacking == [1]
    np.testing.assert_array_equal(got[[0, 2]], x[[3, 5]])


def _statements(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = sqlite3.connect

    def connect(*args, **kwargs):
        db = real(*args, **kwargs)
        db.set_trace_callback(seen.append)
        return db

    monkeypatch.setattr(store_mod.sqlite3, "connect", connect)
    return seen


def test_opening_an_index_reads_no_row_per_item(corpus, monkeypatch, tmp_path, index_make_images,
                                                index_embedder_factory):
    root, index_dir, files = corpus
    for rel in ("sub0/img0003.png", "sub1/img0004.png"):
        (root / rel).unlink()
    index_make_images(root, 2, start=100)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    seen = _statements(monkeypatch)
    index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    assert not [s for s in seen if "SELECT label FROM items" in s], seen
    store = CorpusStore.open(index_dir=index_dir)
    try:
        rows = [r[0] for r in store.db.execute("SELECT label FROM items ORDER BY label")]
        assert index.labels.tolist() == rows
        # a tombstone lost (never written by the store): the count disagrees, the labels are read
        store.db.execute("DELETE FROM tombstones WHERE seq = (SELECT MIN(seq) FROM tombstones)")
        assert store.live_labels().tolist() == rows
    finally:
        store.close()


def test_an_unchanged_rerun_builds_no_item_and_loads_no_graph(corpus, monkeypatch, index_embedder_factory):
    root, index_dir, files = corpus
    loads, rows = [], []
    real_load, real_row = HnswBackend.load.__func__, Item.from_row.__func__
    monkeypatch.setattr(HnswBackend, "load", classmethod(lambda cls, *a, **kw: (loads.append(a),
                                                                              real_load(cls, *a, **kw))[1]))
    monkeypatch.setattr(Item, "from_row", classmethod(lambda cls, row: (rows.append(row), real_row(cls, row))[1]))
    report = ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    assert report.unchanged == 40 and report.backend == "hnsw"
    assert loads == [] and rows == []
    # only removals: tombstones, which readers mark in the graph they load; the graph is not rewritten
    snapshots = sorted(index_dir.glob("hnsw-*.bin"))
    (root / "sub2/img0005.png").unlink()
    report = ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    assert report.removed == 1 and loads == [] and sorted(index_dir.glob("hnsw-*.bin")) == snapshots
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", dedupe=None)
    paths = {h.metadata["relpath"] for h in r.search([files["sub2/img0005.png"]], 39)[0]}
    assert paths == set(files) - {"sub2/img0005.png"}


def test_a_view_whose_graph_a_newer_view_updated_in_place_keeps_to_its_own_labels(corpus):
    """Searches skip the liveness check only while the graph holds exactly the view's labels."""
    root, index_dir, files = corpus
    index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    old = index.current()
    assert isinstance(old.backend, HnswBackend) and old.backend_exact
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:
        rng = np.random.default_rng(5)
        x = rng.normal(size=(6, store.dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        store.commit([store_mod.NewItem(f"new{i}.png", f"{i:064x}", 1, 1) for i in range(6)], x)
    finally:
        store.close()
    new = index.refresh()
    assert new.backend is old.backend, "brought up to date in place"
    assert new.backend_exact and not old.backend_exact
    labels, _ = index._search(old, x, 10, None)
    assert set(labels[labels >= 0].tolist()) <= set(old.labels.tolist()), "no label the old view lacks"
    labels, _ = index._search(new, x, 1, None)
    assert set(labels[:, 0].tolist()) == set(new.labels[-6:].tolist()), "the new view finds the new rows"
    index.close()


@pytest.mark.parametrize("records", [True, False])
def test_a_search_costs_one_statement_beyond_the_change_check(corpus, monkeypatch, records):
    """The items of the hits kept come from the item record file, or (without one) in one
    statement that also says their epoch (no read transaction around it); whether anything
    changed is read from the WAL-index header (``PRAGMA data_version`` only where it cannot be:
    tests/index/test_index_walhdr.py)."""
    root, index_dir, files = corpus
    if not records:
        (index_dir / RECORDS).unlink()
    seen = _statements(monkeypatch)
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw")
    r.load()
    query = [files["sub1/img0001.png"]]
    check = [] if r.index.store._wal is not None else ["PRAGMA data_version"]
    seen.clear()
    first = _answers(r, query)
    if records:
        assert seen == check, seen
    else:
        assert seen[:-1] == check and seen[-1].startswith("SELECT"), seen
        assert "FROM items" in seen[-1] and "epoch" in seen[-1]
    seen.clear()
    assert _answers(r, query) == first
    assert seen == check
