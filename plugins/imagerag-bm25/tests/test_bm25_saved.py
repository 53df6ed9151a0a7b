"""The corpus-wide BM25 index saved in the corpus folder: loaded while the captions stay the same,
rebuilt when they or the settings change, and never trusted when its files are damaged."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from imagerag_bm25 import BM25Index, RRFReranker
from imagerag_bm25.text import BM25Params
from imagerag_sdk.index import ingest
from imagerag_sdk.testing import fake_corpus

QUERIES = ["a lighthouse by the sea", "red sports car", "a cat sleeping", "nothing matches zzz"]


@pytest.fixture
def corpus(tmp_path):
    root = fake_corpus(tmp_path / "images")  # captioned PNGs with .txt sidecars
    ingest(root, index_dir=tmp_path / "idx", embedder={"use": "fake"}, workers=1)
    return root, tmp_path / "idx"


def _saved(idx):
    return sorted(p.name for p in (idx / "bm25").iterdir())


def _same(a: BM25Index, b: BM25Index) -> None:
    assert a.paths == b.paths and a.captions == b.captions and a.metadata == b.metadata
    for q in QUERIES:
        np.testing.assert_array_equal(a.scores(q), b.scores(q))
        assert a.search(q, 5) == b.search(q, 5)


def test_a_second_process_loads_the_saved_index(corpus):
    _, idx = corpus
    built = BM25Index.from_corpus(index_dir=idx)
    assert built.loaded_from is None and len(_saved(idx)) == 1
    again = BM25Index.from_corpus(index_dir=idx)
    assert again.loaded_from == idx / "bm25" / _saved(idx)[0]
    _same(built, again)
    assert again.search("a lighthouse by the sea", 1)[0][0].endswith(".png")


def test_changed_captions_or_settings_rebuild(corpus):
    root, idx = corpus
    first = BM25Index.from_corpus(index_dir=idx)
    (key,) = _saved(idx)
    sidecar = sorted(root.rglob("*.txt"))[0]
    sidecar.write_text("a zeppelin over the mountains\n")
    ingest(root, index_dir=idx, embedder={"use": "fake"}, workers=1)  # metadata update only
    fresh = BM25Index.from_corpus(index_dir=idx)
    assert fresh.loaded_from is None and _saved(idx) != [key] and len(_saved(idx)) == 1
    assert fresh.search("zeppelin", 1)[0][0] == str(sidecar.with_suffix(".png"))
    assert first.search("zeppelin", 1) == []
    other = BM25Index.from_corpus(index_dir=idx, params=BM25Params(k1=0.9))
    assert other.loaded_from is None, "other BM25 parameters: another key"
    assert not np.array_equal(other.scores("a lighthouse by the sea"),
                              fresh.scores("a lighthouse by the sea"))


@pytest.mark.parametrize("damage", ["truncated scores", "empty positions", "garbled params",
                                    "missing vocabulary"])
def test_a_damaged_saved_index_is_reported_and_rebuilt(corpus, caplog, damage):
    _, idx = corpus
    built = BM25Index.from_corpus(index_dir=idx)
    (key,) = _saved(idx)
    where = idx / "bm25" / key
    if damage == "truncated scores":
        data = where / "data.csc.index.npy"
        data.write_bytes(data.read_bytes()[:40])
    elif damage == "empty positions":
        (where / "kept.npy").write_bytes(b"")
    elif damage == "garbled params":
        (where / "params.index.json").write_text('{"k1": 1.5, "b"')
    else:
        (where / "vocab.index.json").unlink()
    with caplog.at_level(logging.WARNING, logger="imagerag_bm25.saved"):
        rebuilt = BM25Index.from_corpus(index_dir=idx)
    assert rebuilt.loaded_from is None and "unreadable" in caplog.text
    _same(built, rebuilt)
    assert BM25Index.from_corpus(index_dir=idx).loaded_from is not None, "saved again, whole"


def test_kept_positions_that_do_not_fit_are_not_trusted(corpus, caplog):
    _, idx = corpus
    BM25Index.from_corpus(index_dir=idx)
    (key,) = _saved(idx)
    np.save(idx / "bm25" / key / "kept.npy", np.arange(3, dtype=np.int64))
    with caplog.at_level(logging.WARNING, logger="imagerag_bm25.saved"):
        assert BM25Index.from_corpus(index_dir=idx).loaded_from is None
    assert "does not match" in caplog.text


def test_an_unwritable_folder_keeps_the_index_in_memory(corpus, caplog):
    _, idx = corpus
    (idx / "bm25").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="imagerag_bm25.saved"):
        index = BM25Index.from_corpus(index_dir=idx)
    assert "kept in memory only" in caplog.text
    assert len(index) == 12 and index.search("red sports car", 1)


def test_rrf_hybrid_saves_unless_told_not_to(corpus):
    _, idx = corpus
    RRFReranker(index_dir=str(idx), save_index=False).load()
    assert not (idx / "bm25").exists()
    RRFReranker(index_dir=str(idx)).load()
    later = RRFReranker(index_dir=str(idx)).load()
    assert later.index.loaded_from is not None


def test_items_that_now_lead_out_of_the_root_are_left_out(corpus, tmp_path):
    root, idx = corpus
    victim = sorted(root.rglob("*.png"))[0]
    caption = victim.with_suffix(".txt").read_text().strip()
    outside = tmp_path / "outside.png"
    outside.write_bytes(victim.read_bytes())
    victim.unlink()
    victim.symlink_to(outside)
    index = BM25Index.from_corpus(index_dir=idx)
    assert len(index) == 11 and str(victim) not in index.paths
    assert all(p.startswith(str(root)) for p in index.paths)
    assert all(path != str(victim) for path, _ in index.search(caption, 12))
