"""A search's change check: read from SQLite's WAL-index header (``index/walhdr.py``), with
``PRAGMA data_version`` only when the header moved or cannot be read; every commit by another
connection or process is seen by the next search as before."""

from __future__ import annotations

import ctypes
import os
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from imagerag_sdk.index import CorpusIndex, CorpusStore, IndexRetriever, ingest, walhdr
from imagerag_sdk.index import store as store_mod
from imagerag_sdk.index.items import NewItem
from imagerag_sdk.index.walhdr import HEADER, VERSION, WalHeader

linux_maps = pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")


@pytest.fixture
def corpus(tmp_path, index_make_images, index_embedder_factory):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    index_make_images(root, 30)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    return root, index_dir


@pytest.fixture
def statements(monkeypatch):
    seen: list[str] = []
    real = sqlite3.connect

    def connect(*args, **kwargs):
        db = real(*args, **kwargs)
        db.set_trace_callback(seen.append)
        return db

    monkeypatch.setattr(store_mod.sqlite3, "connect", connect)
    return seen


def _retriever(index_dir) -> IndexRetriever:
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", dedupe=None)
    r.load()
    return r


def _search(r: IndexRetriever, vectors: np.ndarray, k: int = 1):
    return [[(h.metadata["relpath"], h.metadata.get("caption")) for h in hits]
            for hits in r.search_vectors(vectors, [f"q{i}" for i in range(len(vectors))], k)]


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _add(index_dir, names: list[str], x: np.ndarray) -> None:
    with CorpusStore.open(index_dir=index_dir, write=True) as store:
        store.commit([NewItem(n, f"{abs(hash(n)):064x}", 1, 1) for n in names], x)


@linux_maps
def test_an_unchanged_corpus_is_searched_without_a_statement(corpus, statements):
    _, index_dir = corpus
    r = _retriever(index_dir)
    assert r.index is not None and r.index.store._wal is not None, "the header was found"
    x = r.index.vectors(r.index.labels[:3])
    first = _search(r, x)
    statements.clear()
    for _ in range(3):
        assert _search(r, x) == first
    assert statements == [], "nothing committed: no statement, not even PRAGMA data_version"


@linux_maps
def test_each_kind_of_commit_by_another_connection_is_seen_by_the_next_search(corpus, statements):
    _, index_dir = corpus
    r = _retriever(index_dir)
    index = r.index
    assert index is not None
    dim = index.dim
    x = index.vectors(index.labels[:2])
    before = _search(r, x)

    new = _unit(2, dim, 1)  # added
    _add(index_dir, ["new0.png", "new1.png"], new)
    assert [hits[0][0] for hits in _search(r, new)] == ["new0.png", "new1.png"]

    with CorpusStore.open(index_dir=index_dir, write=True) as store:  # metadata only
        item = store.items()[before[0][0][0]]
        store.commit([], np.zeros((0, dim), np.float32),
                     updates=[NewItem(item.path, item.hash, item.size, item.mtime_ns, item.sidecar_sig,
                                      {"caption": "changed"})])
    assert _search(r, x)[0][0] == (before[0][0][0], "changed")

    with CorpusStore.open(index_dir=index_dir, write=True) as store:  # a checkpoint, a WAL reset
        assert store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    statements.clear()
    assert _search(r, x)[0][0] == (before[0][0][0], "changed")
    _add(index_dir, ["new2.png"], _unit(1, dim, 2))  # the first commit into the reset WAL
    assert _search(r, _unit(1, dim, 2))[0][0][0] == "new2.png"

    with CorpusStore.open(index_dir=index_dir, write=True) as store:  # a delete
        store.commit([], np.zeros((0, dim), np.float32), deletes=["new0.png"])
    assert _search(r, new[:1])[0][0][0] != "new0.png"

    with CorpusStore.open(index_dir=index_dir, write=True) as store:  # a compaction
        epoch = store.epoch
        store.compact()
    view = index.current()
    assert view.epoch == epoch + 1
    assert _search(r, new[1:])[0][0][0] == "new1.png"
    assert _search(r, x)[0][0] == (before[0][0][0], "changed")


@linux_maps
def test_a_commit_by_another_process_is_seen_by_the_next_search(corpus):
    _, index_dir = corpus
    r = _retriever(index_dir)
    assert r.index is not None and r.index.store._wal is not None
    x = _unit(1, r.index.dim, 3)
    _search(r, x)
    code = textwrap.dedent(f"""
        import numpy as np
        from imagerag_sdk.index import CorpusStore
        from imagerag_sdk.index.items import NewItem
        x = np.load({str(index_dir / 'x.npy')!r})
        with CorpusStore.open(index_dir={str(index_dir)!r}, write=True) as store:
            store.commit([NewItem("other.png", "{'e' * 64}", 1, 1)], x)
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    """)
    np.save(index_dir / "x.npy", x)
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert _search(r, x)[0][0][0] == "other.png"


def test_without_the_header_the_check_asks_sqlite_and_sees_commits(corpus, statements, monkeypatch):
    _, index_dir = corpus
    monkeypatch.setattr(walhdr, "_MAPS", str(index_dir / "no-such-maps"))
    index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    assert index.store._wal is None
    view = index.current()
    statements.clear()
    assert index.current() is view
    assert statements == ["PRAGMA data_version"]
    _add(index_dir, ["new.png"], _unit(1, index.dim, 4))
    assert len(index.current()) == len(view) + 1


class _Fake:
    """A WAL-index header held in our own memory."""

    def __init__(self, raw: bytes) -> None:
        self.buf = ctypes.create_string_buffer(raw, 2 * HEADER)
        self.header = WalHeader(ctypes.addressof(self.buf))


def _header(change: int = 7, *, init: int = 1, version: int = VERSION) -> bytes:
    head = (version.to_bytes(4, sys.byteorder) + bytes(4) + change.to_bytes(4, sys.byteorder)
            + bytes([init]) + bytes(HEADER - 13))
    return head + head


@pytest.mark.parametrize("raw, trusted", [
    (_header(), True),
    (_header(7)[:HEADER] + _header(8)[HEADER:], False),  # copies differ: a commit writing them
    (_header(init=0), False),  # not initialised
    (_header(version=VERSION + 1), False),  # another format
])
def test_a_header_is_trusted_only_when_its_copies_agree_and_it_is_initialised(raw, trusted):
    fake = _Fake(raw)
    assert fake.header.raw() == raw
    assert WalHeader.trusted(fake.header.raw()) is trusted


def test_an_untrusted_header_runs_the_pragma_every_time(corpus, statements):
    _, index_dir = corpus
    index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    store = index.store
    fake = _Fake(_header(7)[:HEADER] + _header(8)[HEADER:])
    store._wal, store._seen = fake.header, None
    view = index.current()
    statements.clear()
    for _ in range(2):
        assert index.current() is view
    assert statements == ["PRAGMA data_version"] * 2, "copies differ: SQLite is asked"
    _add(index_dir, ["new.png"], _unit(1, index.dim, 5))
    assert len(index.current()) == len(view) + 1, "the commit is seen"
    fake.buf[:] = _header(9)  # trusted now: asked once more, then read from the header
    statements.clear()
    index.current()
    index.current()
    assert statements == ["PRAGMA data_version"]
    fake.buf[:] = _header(10)  # it moved: asked again
    statements.clear()
    index.current()
    assert statements == ["PRAGMA data_version"]


def test_a_closed_store_no_longer_reads_the_header(corpus):
    _, index_dir = corpus
    store = CorpusStore.open(index_dir=index_dir)
    store.close()
    assert store._wal is None


def test_a_query_whose_every_candidate_is_cut_gets_no_hit_with_dedupe_on(corpus):
    """(The duplicate check then reads no row.)"""
    _, index_dir = corpus
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", min_similarity=1.0)
    r.load()
    assert r.index is not None
    x = _unit(2, r.index.dim, 6)
    assert r.search_vectors(x, ["a", "b"], 3) == [[], []]
