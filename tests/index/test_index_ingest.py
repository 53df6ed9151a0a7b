"""Incremental ingest: add / change / delete / rename / touch, mismatch errors, several corpora."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from imagerag_sdk.errors import CorpusError
from imagerag_sdk.images import load_rgb
from imagerag_sdk.index import CorpusIndex, CorpusStore, IndexRetriever, ingest
from imagerag_sdk.testing.fakes import FakeEmbedder


def _paths(retriever, text, k=3):
    return [h.metadata["relpath"] for h in retriever.search([text], k)[0]]


def test_first_run_then_unchanged_rerun_embeds_nothing(tmp_path, index_make_images, index_embedder_factory):
    root = tmp_path / "imgs"
    index_make_images(root, 20)
    emb = index_embedder_factory()
    report = ingest(root, corpus="c1", embedder=emb, batch_size=8)
    assert (report.added, report.embedded, report.total) == (20, 20, 20)
    assert emb.batches == [8, 8, 4]
    again = index_embedder_factory()
    report = ingest(root, corpus="c1", embedder=again)
    assert again.embedded == 0 and again.batches == []
    assert not again.loaded, "nothing to embed: the model is not even loaded"
    assert (report.unchanged, report.added, report.removed, report.total) == (20, 0, 0, 20)


def test_add_change_delete_rename_touch(tmp_path, index_make_images, index_embedder_factory,
                                        index_write_captioned):
    root = tmp_path / "imgs"
    files = index_make_images(root, 10, subdirs=False)
    ingest(root, corpus="inc", embedder=index_embedder_factory())
    index_make_images(root, 2, start=10, subdirs=False)                       # add 2
    index_write_captioned(root / "img0001.png", "zebra violin brand new words")  # change 1
    (root / "img0002.png").unlink()                                          # delete 1
    os.rename(root / "img0003.png", root / "renamed.png")                    # rename 1 (same bytes)
    st = (root / "img0004.png").stat()
    os.utime(root / "img0004.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touch 1
    emb = index_embedder_factory()
    report = ingest(root, corpus="inc", embedder=emb)
    assert emb.embedded == 3, "the 2 new files and the changed one; rename and touch reuse vectors"
    assert report.added == 3 and report.changed == 1 and report.removed == 2 and report.reused == 1
    assert report.total == 11
    r = IndexRetriever(corpus="inc", embedder={"use": "fake"})
    assert _paths(r, "zebra violin brand new words")[0] == "img0001.png"
    assert _paths(r, files["img0003.png"])[0] == "renamed.png"
    all_paths = {h.metadata["relpath"] for h in r.search(["item tag"], 50)[0]}
    assert "img0002.png" not in all_paths and "img0003.png" not in all_paths


def test_vectors_stay_aligned_with_paths(tmp_path, index_make_images, index_embedder_factory):
    root = tmp_path / "imgs"
    index_make_images(root, 12)
    ingest(root, corpus="al", embedder=index_embedder_factory(), batch_size=5)
    for rel in list(sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")))[::3]:
        (root / rel).unlink()
    index_make_images(root, 4, start=40)
    ingest(root, corpus="al", embedder=index_embedder_factory(), batch_size=3)
    _assert_aligned("al", root)


def _assert_aligned(corpus, root):
    store = CorpusStore.open(corpus)
    try:
        items = store.items()
        on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.png")}
        assert set(items) == on_disk
        assert len({i.label for i in items.values()}) == len(items)
        fake = FakeEmbedder()
        for rel, item in items.items():
            want = fake.embed_images([load_rgb(root / rel)])[0]
            np.testing.assert_allclose(store.get_vectors([item.label])[0], want, atol=1e-6)
    finally:
        store.close()


def test_sidecar_metadata_and_update_without_embedding(tmp_path, index_write_captioned,
                                                       index_embedder_factory):
    root = tmp_path / "imgs"
    index_write_captioned(root / "a.png", "apple orchard")
    (root / "a.txt").write_text("a red apple on a table\n")
    index_write_captioned(root / "b.png", "boat harbor")
    (root / "b.json").write_text('{"caption": "a boat", "license": "CC-BY-4.0", "source": "https://x", "year": 2020}')
    index_write_captioned(root / "c.png", "cloud desert")
    (root / "c.json").write_text("{not json")
    report = ingest(root, corpus="meta", embedder=index_embedder_factory())
    assert [w.path for w in report.warnings] == ["c.png"]
    r = IndexRetriever(corpus="meta", embedder={"use": "fake"}, dedupe=None)
    hits = {h.metadata["relpath"]: h for h in r.search(["apple"], 3)[0]}
    assert hits["a.png"].caption == "a red apple on a table"
    meta_b = hits["b.png"].metadata
    assert (meta_b["caption"], meta_b["license"], meta_b["source"], meta_b["year"]) == (
        "a boat", "CC-BY-4.0", "https://x", 2020)
    (root / "a.txt").write_text("a green apple\n")
    emb = index_embedder_factory()
    report = ingest(root, corpus="meta", embedder=emb)
    assert emb.embedded == 0 and report.metadata_updated == 1
    r2 = IndexRetriever(corpus="meta", embedder={"use": "fake"})
    assert r2.search(["apple orchard"], 1)[0][0].caption == "a green apple"


def test_embedder_mismatch_is_a_clear_error(tmp_path, index_make_images, index_embedder_factory):
    root = tmp_path / "imgs"
    index_make_images(root, 3)
    ingest(root, corpus="mm", embedder=index_embedder_factory(dim=64))
    with pytest.raises(CorpusError, match=r"built with embedder 'fake-bow/dim=64'.*dim=32"):
        ingest(root, corpus="mm", embedder=index_embedder_factory(dim=32))
    with pytest.raises(CorpusError, match="built with embedder"):
        IndexRetriever(corpus="mm", embedder={"use": "fake", "dim": 32}).search(["x"], 1)
    other = tmp_path / "other"
    index_make_images(other, 1)
    with pytest.raises(CorpusError, match="indexes"):
        ingest(other, corpus="mm", embedder=index_embedder_factory())


def test_corpora_side_by_side_and_default_embedder(tmp_path, index_make_images):
    a, b = tmp_path / "a", tmp_path / "b"
    index_make_images(a, 4, subdirs=False)
    index_make_images(b, 3, start=100, subdirs=False)
    ingest(a, corpus="first", embedder="fake")
    ingest(b, corpus="second", embedder={"use": "fake", "dim": 32})
    ingest(b, corpus="second")  # no embedder given: the corpus's own
    assert len(CorpusIndex("first")) == 4 and len(CorpusIndex("second")) == 3
    r = IndexRetriever(corpus="second")  # embedder defaults to the stored spec
    hit = r.search(["item100 tag100"], 1)[0][0]
    assert hit.corpus == "second" and hit.path == str(b / "img0100.png")


def test_one_writer_at_a_time(tmp_path):
    first = CorpusStore.open("locked", write=True)
    try:
        with pytest.raises(CorpusError, match="another process"):
            CorpusStore.open("locked", write=True)
    finally:
        first.close()
    CorpusStore.open("locked", write=True).close()


def test_fast_path_preprocesses_in_worker_threads(tmp_path, index_make_images, index_embedder_factory):
    root = tmp_path / "imgs"
    index_make_images(root, 9)
    emb = index_embedder_factory(fast=True)
    report = ingest(root, corpus="fast", embedder=emb, batch_size=4, workers=2)
    assert report.embedded == 9 and emb.batches == [4, 4, 1]
    assert emb.preprocess_threads and threading.main_thread().name not in emb.preprocess_threads
    _assert_aligned("fast", root)


def test_compaction_after_many_deletes(tmp_path, index_make_images, index_embedder_factory):
    root = tmp_path / "imgs"
    index_make_images(root, 10, subdirs=False)
    ingest(root, corpus="cp", embedder=index_embedder_factory())
    for i in range(4):
        (root / f"img{i:04d}.png").unlink()
    ingest(root, corpus="cp", embedder=index_embedder_factory())
    store = CorpusStore.open("cp")
    try:
        assert store.epoch == 1 and store.next_label == 6 and store.dead_fraction() == 0
    finally:
        store.close()
    _assert_aligned("cp", root)


def test_bad_options(tmp_path):
    with pytest.raises(CorpusError, match="not a folder"):
        ingest(tmp_path / "missing", corpus="x", embedder="fake")
    with pytest.raises(CorpusError, match="invalid corpus name"):
        CorpusStore.open("../escape", write=True)
    with pytest.raises(ValueError, match="corpus"):
        IndexRetriever()


def test_empty_corpus_can_be_taken_over_and_searched(tmp_path, index_embedder_factory):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "bad.png").write_bytes(b"")
    report = ingest(root, corpus="empty", embedder=index_embedder_factory(dim=32))
    assert report.total == 0 and len(report.bad) == 1
    for backend in ("auto", "hnsw"):
        assert IndexRetriever(corpus="empty", embedder={"use": "fake", "dim": 32},
                              backend=backend).search(["x"], 3) == [[]]
    # nothing was stored yet, so another embedder may take the corpus over
    assert ingest(root, corpus="empty", embedder=index_embedder_factory(dim=64)).embedder == "fake-bow/dim=64"


def _burn(cpu_seconds: float) -> None:
    """Use this much CPU time on the calling thread (CPU time: the machine's load does not change it)."""
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass


class _TorchModel(FakeEmbedder):
    """A fast-path embedder that declares torch threads; records (rows, torch threads) per model call.

    ``decode_cpu`` / ``row_cpu``: CPU seconds its preprocessing costs per image / its model per row."""

    supports_fast_path = True
    uses_torch_threads = True
    decode_cpu = 0.0
    row_cpu = 0.0
    fail_on_call: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[int, int]] = []

    def preprocess(self, img):
        _burn(self.decode_cpu)
        return FakeEmbedder.embed_images(self, [img])[0]

    def embed_preprocessed(self, batch):
        import torch

        self.calls.append((len(batch), torch.get_num_threads()))
        if self.fail_on_call == len(self.calls):
            raise CorpusError("the model stopped")
        _burn(self.row_cpu * len(batch))
        return np.asarray(batch)


@pytest.fixture
def index_two_torch_threads():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield torch
    torch.set_num_threads(before)


def test_light_model_runs_on_one_torch_thread(tmp_path, index_make_images, index_two_torch_threads):
    root = tmp_path / "imgs"
    index_make_images(root, 9)
    emb = type("Light", (_TorchModel,), {"decode_cpu": 0.02})()  # decoding costs far more than the model
    report = ingest(root, corpus="light", embedder=emb, batch_size=4, workers=2)
    assert report.embedded == 9
    probe, batches = emb.calls[:2], emb.calls[2:]
    assert probe == [(1, 1), (4, 1)], "the first batch's rows are probed on one thread"
    assert batches == [(4, 1), (1, 1)], "the probe's rows are the first batch's; every batch then runs on one thread"
    assert index_two_torch_threads.get_num_threads() == 2, "torch's setting is restored"
    _assert_aligned("light", root)


def test_torch_threads_restored_when_the_run_fails(tmp_path, index_make_images, index_two_torch_threads):
    root = tmp_path / "imgs"
    index_make_images(root, 9)
    emb = type("Stops", (_TorchModel,), {"decode_cpu": 0.02, "fail_on_call": 4})()
    with pytest.raises(CorpusError, match="the model stopped"):
        ingest(root, corpus="stops", embedder=emb, batch_size=4, workers=2)
    assert emb.calls[2:] == [(4, 1), (1, 1)], "the second batch ran on one thread, the last one failed"
    assert index_two_torch_threads.get_num_threads() == 2
    assert len(CorpusIndex("stops")) == 8, "the batches committed before the failure are kept"


def test_embedders_without_torch_threads_are_not_probed(tmp_path, index_make_images, index_embedder_factory,
                                                         index_two_torch_threads):
    root = tmp_path / "imgs"
    index_make_images(root, 9)
    emb = index_embedder_factory(fast=True)
    ingest(root, corpus="noprobe", embedder=emb, batch_size=4, workers=2)
    assert emb.batches == [4, 4, 1]


@pytest.mark.parametrize("one_row, four_rows, decode, light", [
    (0.0035, 0.0036, 0.004, True),    # tiny CLIP: a fixed cost per call, ~nothing per row
    (0.035, 0.140, 0.005, False),     # ViT-B/32 on a CPU: ~35 ms per row, 5 ms to decode an image
    (0.002, 0.005, 0.001, False),     # 1 ms per row against 1 ms of decoding: the model is the bottleneck
])
def test_one_thread_keeps_up_rule(one_row, four_rows, decode, light):
    from imagerag_sdk.index.threads import one_thread_keeps_up

    assert one_thread_keeps_up(one_row, four_rows, 4, decode, batch_size=32, threads=2) is light
