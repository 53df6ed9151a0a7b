"""The on-disk store: growth of the vectors file, compaction, snapshots read consistently."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagerag_sdk.index import CorpusIndex, CorpusStore
from imagerag_sdk.index.store import NewItem


def _rows(start, count, dim, rng):
    items = [NewItem(f"f{i:05d}.png", f"h{i}", i, i, "", {"caption": f"c{i}"}) for i in range(start, start + count)]
    vecs = rng.normal(size=(count, dim)).astype(np.float32)
    return items, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_growth_keeps_rows_and_switches_files(tmp_path):
    rng = np.random.default_rng(1)
    store = CorpusStore.open(index_dir=tmp_path / "ix", write=True)
    try:
        store.bind(root=tmp_path, identity="test/dim=16", spec=None)
        all_vecs = []
        for start in range(0, 2600, 650):
            items, vecs = _rows(start, 650, 16, rng)
            store.commit(items, vecs)
            all_vecs.append(vecs)
        want = np.concatenate(all_vecs)
        assert int(store.meta["capacity"]) == 4096 and store.next_label == 2600
        items = store.items()
        labels = [items[f"f{i:05d}.png"].label for i in range(2600)]
        np.testing.assert_array_equal(store.get_vectors(labels), want)
        assert [p.name for p in Path(tmp_path / "ix").glob("vectors-*.npy")] == [store.meta["vectors_file"]]

        store.commit([], np.zeros((0, 16), np.float32), deletes=[f"f{i:05d}.png" for i in range(0, 2600, 2)])
        assert abs(store.dead_fraction() - 0.5) < 1e-9
        store.compact()
        items = store.items()
        assert store.next_label == 1300 and store.epoch == 1 and sorted(i.label for i in items.values()) == list(range(1300))
        for i in range(1, 2600, 2):
            np.testing.assert_array_equal(store.get_vectors([items[f"f{i:05d}.png"].label])[0], want[i])
    finally:
        store.close()
    index = CorpusIndex(index_dir=tmp_path / "ix")
    labels, scores = index.search(want[[1, 3]], 1)
    got = index.items(labels[:, 0])
    assert [got[int(label)].path for label in labels[:, 0]] == ["f00001.png", "f00003.png"]
    assert got[int(labels[0, 0])].metadata()["caption"] == "c1"
