"""The item record file (``items.rec``): searches read the hits' items from it while it holds the
store's current state, and from SQLite otherwise, with the same answers (hits, scores, order,
metadata); every change to an item makes readers fall back until the writer rewrites it."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from imagerag_sdk.index import CorpusIndex, CorpusStore, IndexRetriever, ingest
from imagerag_sdk.index import records as records_mod
from imagerag_sdk.index.items import NewItem
from imagerag_sdk.index.records import DIRTY, RECORDS, TOKEN, ItemRecords, write_records


@pytest.fixture
def corpus(tmp_path, index_make_images, index_embedder_factory):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    files = index_make_images(root, 40)
    (root / "sub1" / "img0001.json").write_text('{"caption": "a json caption", "year": 2020, "tags": ["a"]}')
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory(), exact_below=10)
    return root, index_dir, files


def _answers(index_dir, queries, **opts):
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", **opts)
    return [[(h.path, h.score, h.rank, dict(h.metadata)) for h in hits] for hits in r.search(queries, 5)]


class _Reads:
    """Counts the labels searches read from SQLite and from the record file."""

    def __init__(self, monkeypatch):
        self.sqlite: list[int] = []
        self.records: list[int] = []
        real_sql, real_rec = CorpusStore.items_of_epoch, ItemRecords.get
        monkeypatch.setattr(CorpusStore, "items_of_epoch",
                            lambda store, labels: (self.sqlite.extend(labels), real_sql(store, labels))[1])
        monkeypatch.setattr(ItemRecords, "get",
                            lambda rec, labels: (self.records.extend(labels), real_rec(rec, labels))[1])


def _token(index_dir):
    with CorpusStore.open(index_dir=index_dir) as store:
        return store.meta_value(TOKEN)


def _sqlite_answers(index_dir, queries, monkeypatch):
    """The answers with the record file out of the way (as a corpus without one reads them)."""
    with monkeypatch.context() as m:
        m.setattr(ItemRecords, "open", classmethod(lambda cls, folder, token: None))
        return _answers(index_dir, queries)


def test_searches_read_the_items_from_the_record_file(corpus, monkeypatch):
    root, index_dir, files = corpus
    queries = sorted(files.values())[:8]
    want = _sqlite_answers(index_dir, queries, monkeypatch)
    assert (index_dir / RECORDS).exists()
    reads = _Reads(monkeypatch)
    for dedupe in (0.95, None):
        got = _answers(index_dir, queries, dedupe=dedupe)
        if dedupe is not None:
            assert got == want
    assert reads.sqlite == [] and reads.records, "no item row read from SQLite on the search path"
    assert any(h[3].get("caption") == "a json caption" and h[3]["year"] == 2020 and h[3]["tags"] == '["a"]'
               for hits in want for h in hits), "sidecar metadata is in the answers compared"


def _stale(index_dir):
    old = (index_dir / RECORDS).read_bytes()
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:
        store.commit([], np.zeros((0, 1), np.float32), updates=[])  # nothing: the token stays
        assert write_records(store) is False, "an up-to-date file is kept"
        store.db.execute("UPDATE meta SET value = 'x' || value WHERE key = 'items_token'")
        assert write_records(store) is True
    finally:
        store.close()
    (index_dir / RECORDS).write_bytes(old)  # a whole file, of an older token


def _flip(index_dir, where):
    path = index_dir / RECORDS
    data = bytearray(path.read_bytes())
    at = {"header": 20, "offsets": 64 + 8 * 3, "data": len(data) - 30}[where]
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))


DAMAGE = {
    "missing": lambda d: (d / RECORDS).unlink(),
    "stale": _stale,
    "truncated": lambda d: os.truncate(d / RECORDS, (d / RECORDS).stat().st_size - 7),
    "truncated-header": lambda d: os.truncate(d / RECORDS, 30),
    "corrupt-header": lambda d: _flip(d, "header"),
    "corrupt-offsets": lambda d: _flip(d, "offsets"),
    "corrupt-record": lambda d: _flip(d, "data"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_stale_missing_or_damaged_record_file_falls_back_to_sqlite(corpus, monkeypatch, damage):
    root, index_dir, files = corpus
    queries = sorted(files.values())
    want = _sqlite_answers(index_dir, queries, monkeypatch)
    DAMAGE[damage](index_dir)
    reads = _Reads(monkeypatch)
    assert _answers(index_dir, queries) == want
    assert reads.sqlite, "read from SQLite"
    if damage == "corrupt-record":
        assert reads.records, "the damaged record was read, failed its check, and SQLite answered"
    emb_again = ingest(root, index_dir=index_dir, embedder={"use": "fake"}, exact_below=10)
    assert emb_again.added == 0
    reads.sqlite.clear()
    assert _answers(index_dir, queries) == want
    assert reads.sqlite == [], "the next index run rewrote the file"


def test_an_unreadable_record_file_falls_back_to_sqlite(corpus, monkeypatch, caplog):
    root, index_dir, files = corpus
    queries = sorted(files.values())[:5]
    want = _sqlite_answers(index_dir, queries, monkeypatch)
    real_open = os.open

    def no_access(path, *args, **kwargs):
        if str(path).endswith(RECORDS):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_access)
    assert _answers(index_dir, queries) == want
    assert "cannot be read (Permission denied)" in caplog.text


def test_a_metadata_update_is_seen_by_a_reader_at_once(corpus, monkeypatch):
    root, index_dir, files = corpus
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", dedupe=None)
    query = [files["sub2/img0002.png"]]
    assert r.search(query, 1)[0][0].caption == ""
    token = _token(index_dir)
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:  # the writer's commit, without the record file rewritten after it (as if it crashed)
        item = store.items()["sub2/img0002.png"]
        store.commit([], np.zeros((0, 1), np.float32),
                     updates=[NewItem(item.path, item.hash, item.size, item.mtime_ns, "x", {"caption": "renamed"})])
        assert store.meta_value(TOKEN) == DIRTY
    finally:
        store.close()
    assert r.search(query, 1)[0][0].caption == "renamed"
    (root / "sub2" / "img0002.txt").write_text("from a sidecar\n")
    ingest(root, index_dir=index_dir, embedder={"use": "fake"}, exact_below=10)
    reads = _Reads(monkeypatch)
    assert r.search(query, 1)[0][0].caption == "from a sidecar"
    assert reads.sqlite == [] and reads.records, "the rewritten file, taken in by the open reader"
    assert _token(index_dir) not in (token, DIRTY)


def test_any_write_to_the_items_marks_the_file_stale_even_by_another_program(corpus):
    root, index_dir, files = corpus
    r = IndexRetriever(index_dir=str(index_dir), backend="hnsw", dedupe=None)
    query = [files["sub0/img0003.png"]]
    assert r.search(query, 1)[0][0].caption == ""
    con = sqlite3.connect(index_dir / "index.sqlite", isolation_level=None)  # no SDK code: the triggers
    try:
        con.execute("UPDATE items SET caption = 'edited' WHERE path = 'sub0/img0003.png'")
        assert con.execute("SELECT value FROM meta WHERE key = 'items_token'").fetchone()[0] == DIRTY
    finally:
        con.close()
    assert r.search(query, 1)[0][0].caption == "edited"


@pytest.mark.parametrize("change", ["add", "replace", "update", "delete", "compact"])
def test_every_store_write_path_marks_the_file_stale(corpus, change):
    root, index_dir, files = corpus
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:
        assert store.meta_value(TOKEN) not in (None, DIRTY)
        item = store.items()["sub0/img0000.png"]
        row = NewItem(item.path, item.hash, item.size, item.mtime_ns, "", {"caption": "c"})
        vec = store.get_vectors([item.label])
        if change == "add":
            store.commit([NewItem("new.png", "h", 1, 1)], vec)
        elif change == "replace":
            store.commit([row], vec)
        elif change == "update":
            store.commit([], vec[:0], updates=[row])
        elif change == "delete":
            store.commit([], vec[:0], deletes=[item.path])
        else:
            store.compact()
        assert store.meta_value(TOKEN) == DIRTY
        assert write_records(store) is True and store.meta_value(TOKEN) not in (None, DIRTY)
        assert _rebuilt_the_same(store, index_dir)
    finally:
        store.close()
    index = CorpusIndex(index_dir=index_dir)
    view = index.current()
    assert view.records is not None
    labels = view.labels.tolist()
    assert view.records.get(labels) == index.store.items_of_epoch(labels)[1]


def _rebuilt_the_same(store, index_dir) -> bool:
    """Whether the file written (incrementally, when it could) equals one written from every row."""
    written = (index_dir / RECORDS).read_bytes()[64:]
    store.db.execute("UPDATE meta SET value = 'dirty' WHERE key = 'items_token'")
    assert write_records(store, full=True) is True
    return (index_dir / RECORDS).read_bytes()[64:] == written


def test_an_incremental_rewrite_encodes_only_the_changed_rows(corpus, monkeypatch):
    root, index_dir, files = corpus
    encoded: list[int] = []
    real = records_mod._encode
    monkeypatch.setattr(records_mod, "_encode", lambda row: (encoded.append(row[2]), real(row))[1])
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:
        items = store.items()
        vec = store.get_vectors([0, 1, 2])
        for round_ in range(3):
            a, b, c = (items[f"sub{i}/img{3 * round_ + i:04d}.png"] for i in range(3))
            store.commit([NewItem(f"new{round_}-{i}.png", f"h{round_}{i}", 1, 1) for i in range(2)]
                         + [NewItem(c.path, c.hash, c.size, c.mtime_ns)], vec,
                         updates=[NewItem(a.path, a.hash, a.size, a.mtime_ns, "s", {"caption": f"r{round_}"})],
                         deletes=[b.path])
            encoded.clear()
            assert write_records(store) is True
            assert len(encoded) == 4, "two added, one replaced (at a new label), one updated"
            assert _rebuilt_the_same(store, index_dir)
        n = store.next_label
    finally:
        store.close()
    index = CorpusIndex(index_dir=index_dir)
    view = index.current()
    assert view.records is not None and view.records.get(range(n)) == index.store.items_of_epoch(range(n))[1]


def test_an_error_between_the_commit_and_the_file_leaves_answers_right(corpus, monkeypatch):
    root, index_dir, files = corpus
    (root / "sub1" / "img0004.txt").write_text("caption one\n")
    def boom(store):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(sys.modules["imagerag_sdk.index.ingestion"], "write_records", boom)
    with pytest.raises(OSError, match="injected"):
        ingest(root, index_dir=index_dir, embedder={"use": "fake"}, exact_below=10)
    got = _answers(index_dir, [files["sub1/img0004.png"]])
    assert got[0][0][3]["caption"] == "caption one"
    assert got == _sqlite_answers(index_dir, [files["sub1/img0004.png"]], monkeypatch)


def test_a_file_written_but_its_token_not_committed_is_not_used(corpus, monkeypatch):
    root, index_dir, files = corpus
    (root / "sub1" / "img0007.txt").write_text("caption seven\n")
    real = records_mod.atomic.replacing

    @contextlib.contextmanager
    def then_killed(path):  # the file written (renamed into place), then the token's commit fails
        with real(path) as tmp:
            yield tmp
        raise OSError("killed")

    monkeypatch.setattr(records_mod.atomic, "replacing", then_killed)
    with pytest.raises(OSError, match="killed"):
        ingest(root, index_dir=index_dir, embedder={"use": "fake"}, exact_below=10)
    monkeypatch.undo()
    header_token = (index_dir / RECORDS).read_bytes()[8:40].decode()
    assert _token(index_dir) == DIRTY != header_token
    reads = _Reads(monkeypatch)
    got = _answers(index_dir, [files["sub1/img0007.png"]])
    assert got[0][0][3]["caption"] == "caption seven" and reads.records == []


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from imagerag_sdk.index import ingest

    ingest_mod = sys.modules["imagerag_sdk.index.ingestion"]

    def killed(store):  # the moment after the store's last commit, before the record file
        os.kill(os.getpid(), signal.SIGKILL)

    ingest_mod.write_records = killed
    ingest(sys.argv[1], index_dir=sys.argv[2], embedder={"use": "fake"}, exact_below=10)
""")


def test_kill_9_between_the_commit_and_the_record_file(corpus, monkeypatch, tmp_path):
    root, index_dir, files = corpus
    shutil.copy(root / "sub0" / "img0000.png", root / "copy.png")
    (root / "sub1" / "img0010.txt").write_text("caption ten\n")
    (root / "sub2" / "img0005.png").unlink()
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root), str(index_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    queries = sorted(files.values())
    got = _answers(index_dir, queries)
    assert got == _sqlite_answers(index_dir, queries, monkeypatch)
    paths = {h[0] for hits in _answers(index_dir, queries, dedupe=None) for h in hits}
    assert str(root / "copy.png") in paths and str(root / "sub2" / "img0005.png") not in paths
    ingest(root, index_dir=index_dir, embedder={"use": "fake"}, exact_below=10)
    reads = _Reads(monkeypatch)
    assert _answers(index_dir, queries) == got
    assert reads.sqlite == [], "the next run wrote the file"


def test_an_open_record_file_is_closed_when_its_reader_goes(corpus):
    """The descriptor and the map a reader keeps are released with it (no descriptor left per
    reopened index in a long-lived server)."""
    records = ItemRecords.open(corpus[1], _token(corpus[1]))
    assert records is not None and len(records.get([0]) or {}) == 1
    fd = records._fd
    os.fstat(fd)  # open
    del records
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
