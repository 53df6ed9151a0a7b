"""A re-run finds exactly what changed since the last one: the walk's (path, size, mtime_ns,
sidecar signature) against the rows, each kind of change on its own, the result the same as
indexing the folder from scratch; an unchanged re-run builds nothing per file."""

from __future__ import annotations

import importlib
import os
import sqlite3
import zlib

import numpy as np
import pytest

from imagerag_sdk.index import CorpusStore, ingest
from imagerag_sdk.index import scan as scan_mod

ingest_mod = importlib.import_module("imagerag_sdk.index.ingestion")

SIDE_A = "sub0/img0000.txt"  # the caption of sub0/img0000.png
SIDE_B = "sub1/img0001.png.json"


def _later(path, seconds=5):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def _same_size_other_bytes(root):
    """sub0/img0003.png with one letter of its caption (a PNG text chunk, which the fake embedder
    reads) changed, the chunk's crc with it: the same size, other bytes, a later mtime."""
    path = root / "sub0/img0003.png"
    data = bytearray(path.read_bytes())
    at = 8  # past the signature: chunks of length, type, data, crc
    while True:
        length = int.from_bytes(data[at:at + 4], "big")
        body = data[at + 4:at + 8 + length]
        if b"item3" in body:
            body = body.replace(b"item3", b"itemX")
            data[at + 4:at + 8 + length] = body
            data[at + 8 + length:at + 12 + length] = zlib.crc32(body).to_bytes(4, "big")
            break
        at += 12 + length
    path.write_bytes(bytes(data))
    _later(path)


def _swap(root):
    a, b, tmp = root / "sub0/img0003.png", root / "sub1/img0004.png", root / "swap.tmp"
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)


def _rewrite_same_length(path, text):
    assert len(text) == len(path.read_text())
    path.write_text(text)
    _later(path)


CASES = {
    # name: (change, expected report fields)
    "nothing": (lambda root, make, write: None, {}),
    "content": (lambda root, make, write: write(root / "sub0/img0003.png", "zebra violin new words"),
                {"changed": 1, "embedded": 1}),
    "same size, other bytes, later mtime": (lambda root, make, write: _same_size_other_bytes(root),
                                            {"changed": 1, "embedded": 1}),
    "touched": (lambda root, make, write: _later(root / "sub2/img0005.png"), {}),
    "added": (lambda root, make, write: make(root, 1, start=20), {"added": 1, "embedded": 1}),
    "removed": (lambda root, make, write: (root / "sub2/img0002.png").unlink(), {"removed": 1}),
    "one removed, another added": (
        lambda root, make, write: ((root / "sub2/img0002.png").unlink(), make(root, 1, start=20)),
        {"removed": 1, "added": 1, "embedded": 1}),
    "renamed": (lambda root, make, write: os.rename(root / "sub2/img0002.png", root / "sub2/moved.png"),
                {"removed": 1, "added": 1, "reused": 1}),
    "two files swapped": (lambda root, make, write: _swap(root), {"changed": 2, "reused": 2}),
    "sidecar edited": (lambda root, make, write: (root / SIDE_A).write_text("a new caption entirely\n"),
                       {"metadata_updated": 1}),
    "sidecar: same size, later mtime": (
        lambda root, make, write: _rewrite_same_length(root / SIDE_A, "a small red kite\n"),
        {"metadata_updated": 1}),
    "sidecar added": (lambda root, make, write: (root / "sub2/img0002.txt").write_text("added later\n"),
                      {"metadata_updated": 1}),
    "sidecar removed": (lambda root, make, write: (root / SIDE_B).unlink(), {"metadata_updated": 1}),
    "sidecar renamed, same size and mtime": (
        lambda root, make, write: os.rename(root / SIDE_A, root / "sub0/img0000.png.txt"),
        {"metadata_updated": 1}),
}


def _folder(root, make):
    make(root, 9)
    (root / SIDE_A).write_text("a small red boat\n")
    (root / SIDE_B).write_text('{"caption": "json caption", "license": "CC0", "year": 2021}')


def _state(index_dir):
    """Every row as a fresh index of the same folder would hold it (labels aside), with its vector."""
    store = CorpusStore.open(index_dir=index_dir)
    try:
        items = store.items()
        rows = {p: (i.hash, i.size, i.mtime_ns, i.sidecar_sig, i.caption, i.license, i.source, i.extra)
                for p, i in items.items()}
        vectors = {p: store.get_vectors([i.label])[0] for p, i in items.items()}
    finally:
        store.close()
    return rows, vectors


def _report_fields(report):
    return {k: getattr(report, k) for k in ("added", "changed", "removed", "reused", "metadata_updated",
                                            "embedded")}


def _walk_digest(index_dir):
    db = sqlite3.connect(index_dir / "index.sqlite")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'walk_digest'").fetchone()
    finally:
        db.close()
    return row[0] if row else None


@pytest.mark.parametrize("recorded", [False, True], ids=["after an indexing run", "after an unchanged run"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_change_is_found_and_the_index_matches_a_fresh_one(case, recorded, tmp_path, index_make_images,
                                                                index_write_captioned, index_embedder_factory):
    """Each change is found whether the run before it indexed something (the rows are compared)
    or found nothing changed (it recorded its walk's digest, which the change must not match)."""
    root, index_dir = tmp_path / "imgs", tmp_path / "idx"
    _folder(root, index_make_images)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    if recorded:
        ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
        assert _walk_digest(index_dir) is not None
    change, want = CASES[case]
    change(root, index_make_images, index_write_captioned)
    report = ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    expected = {"added": 0, "changed": 0, "removed": 0, "reused": 0, "metadata_updated": 0, "embedded": 0, **want}
    assert _report_fields(report) == expected
    files = sum(p.suffix == ".png" for p in root.rglob("*"))
    assert report.total == report.scanned == files
    assert report.unchanged == files - expected["added"] - expected["changed"]

    ingest(root, index_dir=tmp_path / "fresh", embedder=index_embedder_factory())
    rows, vectors = _state(index_dir)
    fresh_rows, fresh_vectors = _state(tmp_path / "fresh")
    assert rows == fresh_rows
    for path, row in rows.items():  # and as the files are now
        st = os.stat(root / path)
        assert row[1:3] == (st.st_size, st.st_mtime_ns), path
    for path, vector in fresh_vectors.items():
        np.testing.assert_allclose(vectors[path], vector, atol=1e-6)

    again = ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    assert _report_fields(again) == dict.fromkeys(expected, 0)
    assert again.unchanged == files


def test_a_file_that_stays_bad_is_tried_again(tmp_path, index_make_images, index_embedder_factory):
    root, index_dir = tmp_path / "imgs", tmp_path / "idx"
    index_make_images(root, 3)
    (root / "broken.png").write_bytes(b"not a png")
    first = ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    again = ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    for report in (first, again):
        assert [p.path for p in report.bad] == ["broken.png"]
        assert report.scanned == 4 and report.total == 3
    assert again.unchanged == 3 and again.embedded == 0


def test_an_unchanged_rerun_builds_nothing_per_file(tmp_path, index_make_images, index_embedder_factory,
                                                    monkeypatch):
    """No entry object per walked file, no row object per stored item: the walk's tuples are
    compared with the rows' as they come from SQLite."""
    root, index_dir = tmp_path / "imgs", tmp_path / "idx"
    index_make_images(root, 12)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    built = []

    class Counted(scan_mod.FileEntry):
        def __init__(self, *args, **kwargs):
            built.append(args[0] if args else kwargs["path"])
            super().__init__(*args, **kwargs)

    def whole(self):
        raise AssertionError("every row read into an object")

    monkeypatch.setattr(scan_mod, "FileEntry", Counted)
    monkeypatch.setattr(CorpusStore, "known", whole)
    monkeypatch.setattr(CorpusStore, "items", whole)
    report = ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    assert report.unchanged == 12 and built == []
    index_make_images(root, 1, start=50)  # one new file: its entry alone is built
    report = ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    assert report.added == 1 and built == ["sub2/img0050.png"]


def test_the_corpus_own_embedder_is_built_only_to_embed(tmp_path, index_make_images, monkeypatch):
    """Given by name (none given: the corpus's own; or its very spec), the embedder is not even
    built (the plugin registry not read) while nothing needs embedding; another spec is built at once."""
    root, index_dir = tmp_path / "imgs", tmp_path / "idx"
    index_make_images(root, 4)
    spec = {"use": "fake", "dim": 32}
    ingest(root, index_dir=index_dir, embedder=spec)
    calls = []
    real = ingest_mod.resolve_embedder

    def counted(embedder, stored):
        calls.append(embedder)
        return real(embedder, stored)

    monkeypatch.setattr(ingest_mod, "resolve_embedder", counted)
    for same in (None, spec, dict(spec)):
        report = ingest(root, index_dir=index_dir, embedder=same)
        assert report.unchanged == 4 and report.embedder == "fake-bow/dim=32"
    assert calls == []
    index_make_images(root, 1, start=10)
    report = ingest(root, index_dir=index_dir)
    assert report.added == 1 and report.embedded == 1 and calls == [None]
    with pytest.raises(Exception, match="built with embedder"):
        ingest(root, index_dir=index_dir, embedder={"use": "fake", "dim": 16})
    assert calls[-1] == {"use": "fake", "dim": 16}


@pytest.mark.parametrize("name", ["a.png", "A.PNG", "a.b.jpeg", ".png", "..png", ".hidden.png", "a.",
                                  "noext", "a.tar.gz", ".a.b.TIFF", "...", "a..png"])
def test_extension_as_splitext_gives_it(name):
    assert scan_mod._extension(name) == os.path.splitext(name)[1].lower()


def test_scan_stats_and_entries(tmp_path):
    root = tmp_path / "r"
    (root / "x/y").mkdir(parents=True)
    for rel in ("b.png", "a.JPG", "x/y/c.png", "x/y/c.txt", "x/y/c.png.json", "x/d.gif", "x/d.txt.bak",
                ".png", "notes.txt"):
        (root / rel).write_bytes(b"12345"[: 1 + len(rel) % 5])
    found = scan_mod.scan(root)
    st = {rel: os.stat(root / rel) for rel in ("a.JPG", "b.png", "x/d.gif", "x/y/c.png", "x/y/c.txt", "x/y/c.png.json")}
    side = tuple((rel, st[rel].st_size, st[rel].st_mtime_ns) for rel in ("x/y/c.txt", "x/y/c.png.json"))
    assert sorted(found.stats) == [
        ("a.JPG", st["a.JPG"].st_size, st["a.JPG"].st_mtime_ns, ""),
        ("b.png", st["b.png"].st_size, st["b.png"].st_mtime_ns, ""),
        ("x/d.gif", st["x/d.gif"].st_size, st["x/d.gif"].st_mtime_ns, ""),
        ("x/y/c.png", st["x/y/c.png"].st_size, st["x/y/c.png"].st_mtime_ns, scan_mod.sidecar_signature(side))]
    assert [f.path for f in found.files] == ["a.JPG", "b.png", "x/d.gif", "x/y/c.png"]
    assert found.files[-1].sidecars == side
    assert found.files[-1].sidecar_sig == found.stats[[s[0] for s in found.stats].index("x/y/c.png")][3]


def test_rows_compared_as_sqlite_returns_them(tmp_path, index_make_images, index_embedder_factory):
    """The stored row's types are the walk's (integers, text): an unchanged file matches its row."""
    root, index_dir = tmp_path / "imgs", tmp_path / "idx"
    index_make_images(root, 3)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    db = sqlite3.connect(index_dir / "index.sqlite")
    types = db.execute("SELECT DISTINCT typeof(path), typeof(size), typeof(mtime_ns), typeof(sidecar_sig) "
                       "FROM items").fetchall()
    db.close()
    assert types == [("text", "integer", "integer", "text")]
    store = CorpusStore.open(index_dir=index_dir)
    try:
        assert set(store.file_stats()) == set(scan_mod.scan(root).stats)
    finally:
        store.close()


def test_a_second_unchanged_rerun_reads_no_row(tmp_path, index_make_images, index_embedder_factory, monkeypatch):
    """An unchanged run records its walk's digest with the items' state; the next one with the
    same walk and the items in that state does not read the rows at all."""
    root, index_dir = tmp_path / "imgs", tmp_path / "idx"
    _folder(root, index_make_images)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    assert _walk_digest(index_dir) is None  # a run that indexed records none
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    recorded = _walk_digest(index_dir)
    assert recorded is not None

    def no_rows(*_a, **_k):
        raise AssertionError("the rows were read")

    monkeypatch.setattr(CorpusStore, "file_stats", no_rows)
    monkeypatch.setattr(CorpusStore, "known", no_rows)
    monkeypatch.setattr(ingest_mod, "note_unchanged", lambda *_a: no_rows())  # already recorded: no write
    report = ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    assert report.unchanged == report.scanned == report.total == 9
    assert _report_fields(report) == dict.fromkeys(_report_fields(report), 0)
    assert _walk_digest(index_dir) == recorded


def test_a_row_changed_by_another_writer_after_the_record_is_compared_again(tmp_path, index_make_images,
                                                                            index_embedder_factory, monkeypatch):
    """A change to an item by any writer (here by hand, in SQL) moves the items' state (the
    triggers), so the recorded digest no longer holds and the rows are compared."""
    root, index_dir = tmp_path / "imgs", tmp_path / "idx"
    _folder(root, index_make_images)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    assert _walk_digest(index_dir) is not None
    db = sqlite3.connect(index_dir / "index.sqlite")
    with db:
        db.execute("UPDATE items SET size = size + 1 WHERE path = 'sub0/img0003.png'")
    db.close()
    read = []
    file_stats = CorpusStore.file_stats
    monkeypatch.setattr(CorpusStore, "file_stats", lambda self: read.append(1) or file_stats(self))
    report = ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    assert read == [1]  # compared again
    assert report.embedded == 0  # the file read again: its bytes are the same (so counted unchanged)
    rows, _ = _state(index_dir)
    assert rows["sub0/img0003.png"][1] == os.stat(root / "sub0/img0003.png").st_size  # the row mended


def test_the_digest_is_recorded_only_for_the_items_state_it_was_compared_with(tmp_path, index_make_images,
                                                                              index_embedder_factory):
    from imagerag_sdk.index import changes

    root, index_dir = tmp_path / "imgs", tmp_path / "idx"
    _folder(root, index_make_images)
    ingest(root, index_dir=index_dir, embedder=index_embedder_factory())
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:
        state = changes.items_state(store)
        assert state is not None
        changes.note_unchanged(store, "0" * 32, "abc")  # a state the items are no longer in
        assert store.meta_value(changes.DIGEST) is None
        assert not changes.unchanged_since(store, state, "abc")
        changes.note_unchanged(store, state, "abc")
        assert store.meta_value(changes.DIGEST) == f"{state}:abc"
        assert changes.unchanged_since(store, state, "abc")
        assert not changes.unchanged_since(store, state, "abd")
        assert not changes.unchanged_since(store, None, "abc")  # the items' state named none (dirty)
    finally:
        store.close()
