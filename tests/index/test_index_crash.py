"""``kill -9`` in the middle of indexing, then a re-run: no duplicates, nothing lost, all aligned."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np

from imagerag_sdk.images import load_rgb
from imagerag_sdk.index import CorpusStore, IndexRetriever, ingest
from imagerag_sdk.testing.fakes import FakeEmbedder

SLOW_INGEST = textwrap.dedent("""
    import sys, time
    from imagerag_sdk.index import ingest
    from imagerag_sdk.testing.fakes import FakeEmbedder

    class Slow(FakeEmbedder):
        def embed_images(self, images):
            time.sleep(0.25)
            return super().embed_images(images)

    ingest(sys.argv[1], index_dir=sys.argv[2], embedder=Slow(), batch_size=4, workers=2)
    print("finished")
""")


def _count(db) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        con.close()


def test_kill_9_then_resume(tmp_path, index_make_images, index_embedder_factory):
    root, index_dir = tmp_path / "imgs", tmp_path / "index"
    index_make_images(root, 60)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_INGEST, str(root), str(index_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = index_dir / "index.sqlite"
    deadline = time.monotonic() + 120
    while _count(db) < 12 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    done = _count(db)
    assert 12 <= done < 60, "killed mid-run"

    emb = index_embedder_factory()
    report = ingest(root, index_dir=index_dir, embedder=emb, batch_size=4)
    assert emb.embedded == 60 - done and report.added == 60 - done
    assert report.total == 60

    store = CorpusStore.open(index_dir=index_dir)
    try:
        items = store.items()
        assert len(items) == 60 and len({i.label for i in items.values()}) == 60
        assert store.next_label == 60, "rows written by the killed batch were overwritten, not appended"
        fake = FakeEmbedder()
        for rel, item in items.items():
            np.testing.assert_allclose(store.get_vectors([item.label])[0],
                                       fake.embed_images([load_rgb(root / rel)])[0], atol=1e-6)
    finally:
        store.close()
    again = index_embedder_factory()
    ingest(root, index_dir=index_dir, embedder=again)
    assert again.embedded == 0


def test_leftovers_of_a_crash_are_cleaned_and_ignored(tmp_path, index_make_images, index_embedder_factory):
    root = tmp_path / "imgs"
    index_make_images(root, 5)
    ingest(root, corpus="left", embedder=index_embedder_factory())
    folder = tmp_path / "imagerag-home" / "corpora" / "left"
    (folder / "vectors-000099.npy").write_bytes(b"half-written generation")
    (folder / ".hnsw-e0-n5-t0.bin.tmp").write_bytes(b"half-written snapshot")
    report = ingest(root, corpus="left", embedder=index_embedder_factory())
    assert report.unchanged == 5
    assert not (folder / "vectors-000099.npy").exists()
    assert not list(folder.glob("*.tmp"))
    assert IndexRetriever(corpus="left").search([" item3 tag3"], 1)[0][0].metadata["relpath"].endswith(
        "img0003.png")
