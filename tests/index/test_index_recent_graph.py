"""The recent-adds graph: an index run that adds a few vectors saves a small second graph beside
the main snapshot instead of rewriting it; readers search both; past FOLD_FRACTION the writer folds
the recent adds into the main graph; a kill -9 at any writer step leaves a state readers search
correctly and the next writer repairs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from imagerag_sdk.index import CorpusIndex, CorpusStore, HnswBackend, graph_sync
from imagerag_sdk.index.graph_pair import GraphPair, merge_hits, recent_ef
from imagerag_sdk.index.store import NewItem
from imagerag_sdk.testing.fakes import FakeEmbedder

DIM = 16
RECENT_FROM = 100  # the tests' main graphs are small: a recent-adds graph from 100 labels on
MAIN = 400


def _pool(n: int = 3000, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(30, dim))
    x = centers[rng.integers(0, 30, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


POOL = _pool()
DEFAULT_FOLD = graph_sync.FOLD_FRACTION


def _name(i: int) -> str:
    return f"f{i:05d}.png"


def _commit(index_dir, start: int = 0, count: int = 0, *, delete=(), pool=POOL) -> None:
    """Items ``start..start+count`` (item i's vector is ``pool[i]``) added, ``delete`` removed."""
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:
        if store.root is None:
            root = index_dir.parent / "root"
            root.mkdir(exist_ok=True)
            store.bind(root=root, identity=FakeEmbedder(dim=pool.shape[1]).identity,
                       spec={"use": "fake", "dim": pool.shape[1]})
        rows = [NewItem(_name(i), f"{i:064x}", 1, 1, "", {}) for i in range(start, start + count)]
        store.commit(rows, pool[start:start + count], deletes=[_name(i) for i in delete])
    finally:
        store.close()


def _sync(index_dir):
    store = CorpusStore.open(index_dir=index_dir, write=True)
    try:
        return graph_sync.sync_hnsw(store, save=True, threads=1)
    finally:
        store.close()


def _graphs(index_dir) -> list[str]:
    return sorted(p.name for p in index_dir.glob("hnsw-*.bin"))


@pytest.fixture(autouse=True)
def small_recent_from(monkeypatch):
    monkeypatch.setattr(graph_sync, "RECENT_FROM", RECENT_FROM, raising=False)
    monkeypatch.setattr(graph_sync, "FOLD_FRACTION", 0.10)  # the tests add 2.5-12 % of their main graph


@pytest.fixture
def loads(monkeypatch):
    """The names of the graph files loaded."""
    seen: list[str] = []
    real = HnswBackend.load  # bound to the class

    def load(cls, path, *args, **kwargs):
        seen.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(HnswBackend, "load", classmethod(load))
    return seen


def _self_found(index: CorpusIndex, items) -> None:
    """Each live item's own vector finds it first, with score 1."""
    items = list(items)
    labels, scores = index.search(POOL[items], 1)
    assert labels[:, 0].tolist() == items
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def _live(index: CorpusIndex, gone) -> None:
    """No search returns a removed item; every label returned is live."""
    labels, _ = index.search(POOL[list(gone)] if gone else POOL[:5], 50)
    assert not set(labels.ravel().tolist()) & set(gone)
    assert set(labels[labels >= 0].tolist()) <= set(index.labels.tolist())


def test_adds_go_into_a_small_recent_graph_and_the_main_graph_is_neither_loaded_nor_rewritten(tmp_path, loads):
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    assert _graphs(index_dir) == ["hnsw-e0-n400-t0.bin"]
    main = index_dir / "hnsw-e0-n400-t0.bin"
    before = main.stat()
    _commit(index_dir, MAIN, 20)
    saved = _sync(index_dir)
    assert _graphs(index_dir) == ["hnsw-e0-n400-t0-recent-n420-t0.bin", "hnsw-e0-n400-t0.bin"]
    assert (main.stat().st_ino, main.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert isinstance(saved, HnswBackend) and saved.index.get_current_count() == 20
    _commit(index_dir, MAIN + 20, 10)
    loads.clear()
    _sync(index_dir)
    assert loads == ["hnsw-e0-n400-t0-recent-n420-t0.bin"], "only the recent-adds graph is loaded"
    assert _graphs(index_dir) == ["hnsw-e0-n400-t0-recent-n430-t0.bin", "hnsw-e0-n400-t0.bin"]
    loads.clear()
    assert _sync(index_dir) is None and loads == [], "nothing new: nothing loaded"

    index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    assert isinstance(index.backend, GraphPair) and index.backend.split == MAIN
    assert len(index.backend) == 430 and index.current().backend_exact
    _self_found(index, range(430))


def test_the_pair_finds_at_least_what_one_graph_of_every_vector_finds(tmp_path):
    """Same data, same parameters, one build thread (deterministic): recall@10 against the exact
    scan, at a small search breadth where the graphs miss some neighbours."""
    pool = _pool(2400, 32, seed=1)
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, 2200, pool=pool)
    _sync(index_dir)
    _commit(index_dir, 2200, 200, pool=pool)  # 9 % of the main graph
    _sync(index_dir)
    assert len(_graphs(index_dir)) == 2
    rng = np.random.default_rng(2)
    q = pool[rng.integers(0, 2400, 300)] + 0.3 * rng.normal(size=(300, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact_l, _ = CorpusIndex(index_dir=index_dir, backend="exact").search(q, 10)
    index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    assert isinstance(index.backend, GraphPair)
    one = HnswBackend.build(pool, np.arange(2400), threads=1)

    def recall(labels):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_l, labels, strict=True)])

    pair_l, pair_s = index.search(q, 10, ef=12)
    one_l, _ = one.search(q, 10, ef=12)
    assert recall(pair_l) >= recall(one_l) and recall(one_l) < 1.0
    assert np.all(np.diff(pair_s, axis=1) <= 1e-6), "merged best first"
    assert recall(index.search(q, 10)[0]) >= 0.99, "the default breadth: near exact"
    wanted = exact_l[:, 0]
    assert np.mean(index.search(q, 1)[0][:, 0] == wanted) >= np.mean(one.search(q, 1)[0][:, 0] == wanted)


def _spy_breadth(monkeypatch, graph: HnswBackend, name: str, asked: list[tuple[str, int | None]]) -> None:
    """Record (name, ef) of each search of ``graph``."""
    real = graph.search

    def search(queries, k, *, ef=None):
        asked.append((name, ef))
        return real(queries, k, ef=ef)

    monkeypatch.setattr(graph, "search", search)


def test_the_recent_graph_is_searched_at_a_breadth_scaled_to_its_size(monkeypatch):
    """ef times the recent graph's share of the main one over 8 %, within [k, ef]."""
    assert recent_ef(150, 10, 2_000, 200_000) == 19  # 1 %
    assert recent_ef(150, 10, 4_000, 200_000) == 38  # 2 %: the fold threshold
    assert recent_ef(150, 10, 12_000, 200_000) == 113
    assert recent_ef(150, 10, 20_000, 200_000) == 150, "from 8 % on: the main graph's breadth"
    assert recent_ef(150, 10, 200, 200_000) == 10, "never below k"
    assert recent_ef(150, 100, 2_000, 200_000) == 100
    assert recent_ef(150, 10, 5, 0) == 150
    main = HnswBackend.build(POOL[:2000], np.arange(2000), threads=1)
    recent = HnswBackend.build(POOL[2000:2180], np.arange(2000, 2180), threads=1)
    asked: list[tuple[str, int | None]] = []
    _spy_breadth(monkeypatch, main, "main", asked)
    _spy_breadth(monkeypatch, recent, "recent", asked)
    pair = GraphPair(main, recent, 2000)
    pair.search(POOL[:3], 10)
    pair.search(POOL[:3], 10, ef=40)
    assert asked == [("main", 150), ("recent", 150), ("main", 40), ("recent", 40)]  # 9 %: full
    asked.clear()
    small = HnswBackend.build(POOL[2000:2020], np.arange(2000, 2020), threads=1)  # 1 % of 2000
    _spy_breadth(monkeypatch, small, "recent", asked)
    GraphPair(main, small, 2000).search(POOL[:3], 10)
    assert asked == [("main", 150), ("recent", 19)]
    # the merge: the main answer itself when the recent graph beats none of its k-th scores
    a = (np.arange(6).reshape(2, 3), np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]], np.float32))
    worse = (np.array([[7, 8, 9], [10, 11, 12]]), np.array([[0.7, 0.1, 0.0], [0.3, 0.2, 0.1]], np.float32))
    assert merge_hits(a, worse, 3) is a, "no recent hit beats a main one: no sort"
    better = (worse[0], np.array([[0.7, 0.1, 0.0], [0.55, 0.2, 0.1]], np.float32))
    labels, scores = merge_hits(a, better, 3)
    assert labels.tolist() == [[0, 1, 2], [3, 10, 4]] and scores[1].tolist() == pytest.approx([0.6, 0.55, 0.5])



def test_adds_past_two_percent_of_the_main_graph_fold_it(tmp_path, monkeypatch):
    """The default FOLD_FRACTION: a recent-adds graph up to 2 % of the main one, folded past it."""
    monkeypatch.setattr(graph_sync, "FOLD_FRACTION", DEFAULT_FOLD)
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    _commit(index_dir, MAIN, 8)  # 2 %
    _sync(index_dir)
    assert _graphs(index_dir) == ["hnsw-e0-n400-t0-recent-n408-t0.bin", "hnsw-e0-n400-t0.bin"]
    _commit(index_dir, MAIN + 8, 4)  # 3 %: folded
    _sync(index_dir)
    assert _graphs(index_dir) == ["hnsw-e0-n412-t0.bin"]
    _self_found(CorpusIndex(index_dir=index_dir, backend="hnsw"), range(MAIN + 12))


def _pair_and_one(tmp_path, main: int, recent: int, dim: int = 32):
    """A corpus of ``main`` vectors plus a recent-adds graph of ``recent`` more, its pair, one
    graph built over all of them (same parameters, one build thread: deterministic), the
    exact top 10 and the pool."""
    pool = _pool(main + recent, dim, seed=1)
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, main, pool=pool)
    _sync(index_dir)
    _commit(index_dir, main, recent, pool=pool)
    _sync(index_dir)
    assert len(_graphs(index_dir)) == 2
    index = CorpusIndex(index_dir=index_dir, backend="hnsw")
    assert isinstance(index.backend, GraphPair)
    one = HnswBackend.build(pool, np.arange(main + recent), threads=1)
    exact = CorpusIndex(index_dir=index_dir, backend="exact")
    return index, one, exact, pool


@pytest.mark.parametrize("recent", [22, 44])  # 1 % and 2 % (the fold threshold) of the main graph
def test_the_pair_recalls_as_much_as_one_graph_for_random_queries_and_near_recent_items(tmp_path, recent):
    """The recent graph's smaller breadth loses nothing against one graph of every vector at the
    same ef: for random queries and for queries near a recent item (its vector plus noise: a
    brand that just added a product and searches for it)."""
    index, one, exact, pool = _pair_and_one(tmp_path, 2200, recent)
    rng = np.random.default_rng(3)
    noise = 0.15 / np.sqrt(pool.shape[1])
    sets = {"random": pool[rng.integers(0, len(pool), 300)] + 0.3 * rng.normal(size=(300, pool.shape[1])),
            "near": pool[rng.integers(2200, len(pool), 300)] + noise * rng.normal(size=(300, pool.shape[1]))}
    for kind, q in sets.items():
        q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
        want, _ = exact.search(q, 10)
        for ef in (48, 96, None):  # (below, the main graph alone misses more than one graph: before too)
            pair_l, _ = index.search(q, 10, ef=ef)
            one_l, _ = one.search(q, 10, ef=ef)
            got = [np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want, x, strict=True)]) for x in (pair_l, one_l)]
            assert got[0] >= got[1], f"{kind} queries at ef {ef}: pair {got[0]:.4f} < one graph {got[1]:.4f}"
        assert got[0] >= 0.99, f"{kind} queries at the default breadth: near exact"


@pytest.mark.parametrize("recent", [22, 44])
def test_recent_items_find_themselves_first(tmp_path, recent):
    index, _, _, pool = _pair_and_one(tmp_path, 2200, recent)
    items = np.arange(2200, 2200 + recent)
    for ef in (None, 10):
        labels, scores = index.search(pool[items], 1, ef=ef)
        assert labels[:, 0].tolist() == items.tolist(), f"ef {ef}"
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_deletes_in_the_main_and_in_the_recent_graph_are_honoured(tmp_path, loads):
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    _commit(index_dir, MAIN, 30)
    _sync(index_dir)
    before = CorpusIndex(index_dir=index_dir, backend="hnsw")
    assert isinstance(before.backend, GraphPair)
    gone = [3, 17, 250, MAIN + 2, MAIN + 29]  # three in the main graph, two in the recent one
    _commit(index_dir, delete=gone)
    files = _graphs(index_dir)
    loads.clear()
    assert _sync(index_dir) is None and loads == [] and _graphs(index_dir) == files, \
        "removals only: tombstones, nothing loaded or written"
    live = sorted(set(range(MAIN + 30)) - set(gone))
    for index in (before, CorpusIndex(index_dir=index_dir, backend="hnsw")):
        index.refresh()
        _live(index, gone)
        _self_found(index, live)
        assert len(index.backend) == len(live)

    _commit(index_dir, MAIN + 30, 5, delete=[MAIN + 31, 8])  # an add and removals in both graphs
    _sync(index_dir)
    assert _graphs(index_dir) == ["hnsw-e0-n400-t0-recent-n435-t7.bin", "hnsw-e0-n400-t0.bin"]
    store = CorpusStore.open(index_dir=index_dir)
    recent = HnswBackend.load(index_dir / "hnsw-e0-n400-t0-recent-n435-t7.bin", DIM)
    assert recent.vectors_of([MAIN + 2, MAIN + 29, MAIN + 31])[1] == [0, 1, 2], "marked in the file"
    store.close()
    gone += [MAIN + 31, 8]
    live = sorted(set(range(MAIN + 35)) - set(gone))
    for index in (before, CorpusIndex(index_dir=index_dir, backend="hnsw")):
        index.refresh()
        _live(index, gone)
        _self_found(index, live)


def test_a_reader_opened_before_an_add_sees_the_old_state_and_after_refresh_the_new(tmp_path):
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    _commit(index_dir, MAIN, 10)
    _sync(index_dir)
    index = CorpusIndex(index_dir=index_dir, backend="hnsw", max_insert=5)
    old = index.current()
    _commit(index_dir, MAIN + 10, 20)  # more than the reader inserts itself
    _sync(index_dir)
    labels, _ = index._search(old, POOL[MAIN:MAIN + 30], 1, None)
    assert set(labels.ravel().tolist()) <= set(range(MAIN + 10)), "the old view: none of the new"
    new = index.refresh()
    assert new is not old and isinstance(new.backend, GraphPair) and new.backend is not old.backend, \
        "the saved pair loaded"
    assert len(new.backend.recent) == 30
    _self_found(index, range(MAIN + 30))
    labels, _ = index._search(old, POOL[MAIN:MAIN + 30], 1, None)
    assert set(labels.ravel().tolist()) <= set(range(MAIN + 10)), "the old view still its own"

    _commit(index_dir, MAIN + 30, 3)  # a few: inserted in place into the recent-adds graph
    newer = index.refresh()
    assert newer.backend is new.backend and len(newer.backend.recent) == 33
    _self_found(index, range(MAIN + 33))


def test_the_writer_folds_the_recent_adds_into_the_main_graph_past_the_threshold(tmp_path, loads):
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    edge = int(graph_sync.FOLD_FRACTION * MAIN)
    _commit(index_dir, MAIN, edge - 1, delete=[5])
    _sync(index_dir)
    _commit(index_dir, MAIN + edge - 1, 1)
    _sync(index_dir)
    assert _graphs(index_dir) == [f"hnsw-e0-n400-t0-recent-n{MAIN + edge}-t1.bin", "hnsw-e0-n400-t0.bin"], \
        "at the threshold: still the recent-adds graph"
    reader = CorpusIndex(index_dir=index_dir, backend="hnsw", max_insert=0)
    _commit(index_dir, MAIN + edge, 1)
    loads.clear()
    _sync(index_dir)
    assert loads == ["hnsw-e0-n400-t0.bin"], "the fold loads the main graph"
    assert _graphs(index_dir) == [f"hnsw-e0-n{MAIN + edge + 1}-t1.bin"], "folded: one graph"
    folded = HnswBackend.load(index_dir / _graphs(index_dir)[0], DIM)
    assert folded.index.get_current_count() == MAIN + edge + 1
    assert folded.vectors_of([5])[1] == [0]
    live = sorted(set(range(MAIN + edge + 1)) - {5})
    for index in (reader, CorpusIndex(index_dir=index_dir, backend="hnsw")):
        index.refresh()
        assert isinstance(index.backend, HnswBackend)
        _self_found(index, live)
        _live(index, [5])
    _commit(index_dir, MAIN + edge + 1, 4)  # the next adds: a recent-adds graph of the new main
    _sync(index_dir)
    assert _graphs(index_dir) == [f"hnsw-e0-n{MAIN + edge + 1}-t1-recent-n{MAIN + edge + 5}-t1.bin",
                                  f"hnsw-e0-n{MAIN + edge + 1}-t1.bin"]


def test_a_small_main_graph_is_rewritten_on_every_add(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_sync, "RECENT_FROM", MAIN + 1, raising=False)
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    _commit(index_dir, MAIN, 3)
    _sync(index_dir)
    assert _graphs(index_dir) == ["hnsw-e0-n403-t0.bin"]


def test_a_recent_graph_of_another_main_snapshot_is_never_paired(tmp_path):
    """A leftover made for an older main snapshot (a crash before the fold removed it)."""
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    _commit(index_dir, MAIN, 10)
    _sync(index_dir)
    leftover = (index_dir / "hnsw-e0-n400-t0-recent-n410-t0.bin").read_bytes()
    _commit(index_dir, MAIN + 10, 40)
    _sync(index_dir)  # 50 > 10 %: folded
    assert _graphs(index_dir) == ["hnsw-e0-n450-t0.bin"]
    (index_dir / "hnsw-e0-n400-t0-recent-n410-t0.bin").write_bytes(leftover)
    index = CorpusIndex(index_dir=index_dir, backend="hnsw", max_insert=0)
    assert isinstance(index.backend, HnswBackend) and index.note is None
    _self_found(index, range(MAIN + 50))
    _commit(index_dir, MAIN + 50, 2)
    _sync(index_dir)
    assert _graphs(index_dir) == ["hnsw-e0-n450-t0-recent-n452-t0.bin", "hnsw-e0-n450-t0.bin"]


def test_a_fold_between_a_readers_two_loads_makes_it_read_again(tmp_path, monkeypatch):
    """The writer folds after the reader loaded the main snapshot and before it lists the
    recent-adds graphs: the reader opens the folded graph instead of searching exactly."""
    from imagerag_sdk.index import graph_pair

    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    _commit(index_dir, MAIN, 10)
    _sync(index_dir)
    _commit(index_dir, MAIN + 10, 41)  # past the threshold: the next writer folds
    real, listed = graph_pair.recent_graphs, []

    def listing(folder, epoch, upto, seq):
        listed.append(upto)
        if len(listed) == 2:  # the first listing sizes the main graph, the second pairs it
            _sync(index_dir)
        return real(folder, epoch, upto, seq)

    monkeypatch.setattr(graph_pair, "recent_graphs", listing)
    index = CorpusIndex(index_dir=index_dir, backend="hnsw", max_insert=5)
    assert _graphs(index_dir) == ["hnsw-e0-n451-t0.bin"]
    assert index.note is None and isinstance(index.backend, HnswBackend)
    _self_found(index, range(MAIN + 51))


# -- kill -9 at each writer step -------------------------------------------------------------------
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from contextlib import contextmanager
    from pathlib import Path
    from imagerag_sdk import atomic
    from imagerag_sdk.index import CorpusStore, HnswBackend, backends, graph_sync

    index_dir, step = Path(sys.argv[1]), sys.argv[2]
    graph_sync.RECENT_FROM, graph_sync.FOLD_FRACTION = int(sys.argv[3]), float(sys.argv[4])
    graph_sync.GRAPH_STEP = 8

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    @contextmanager
    def dying_save(path):  # the new file written in full, killed before it is renamed into place
        with atomic.replacing(path) as tmp:
            yield tmp
            die()

    if step == "save":
        backends.replacing = dying_save
    elif step == "publish":  # the new file in place, the older ones not removed, nothing recorded
        graph_sync._publish = lambda *a, **kw: die()
    elif step == "insert":  # halfway through the inserts
        real, calls = HnswBackend.add, []
        def add(self, vectors, labels):
            calls.append(len(labels))
            if len(calls) == 3:
                die()
            real(self, vectors, labels)
        HnswBackend.add = add
    store = CorpusStore.open(index_dir=index_dir, write=True)
    graph_sync.sync_hnsw(store, save=True)
    print("not killed")
""")


@pytest.mark.parametrize("step", ["insert", "save", "publish"])
@pytest.mark.parametrize("adds", [30, 60], ids=["recent", "fold"])
def test_a_writer_killed_at_any_step_leaves_a_searchable_state_the_next_writer_repairs(tmp_path, step, adds,
                                                                                      loads):
    index_dir = tmp_path / "index"
    _commit(index_dir, 0, MAIN)
    _sync(index_dir)
    _commit(index_dir, MAIN, 10)  # a recent-adds graph before the killed run
    _sync(index_dir)
    before = _graphs(index_dir)
    assert before == ["hnsw-e0-n400-t0-recent-n410-t0.bin", "hnsw-e0-n400-t0.bin"]
    _commit(index_dir, MAIN + 10, adds, delete=[7, MAIN + 4])
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(index_dir), step, str(RECENT_FROM),
                           str(graph_sync.FOLD_FRACTION)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    total, gone = MAIN + 10 + adds, [7, MAIN + 4]
    live = sorted(set(range(total)) - set(gone))
    after_kill = _graphs(index_dir)
    if step == "publish":  # the new file and the old ones side by side
        assert set(before) < set(after_kill)
    else:
        assert after_kill == before
    assert list(index_dir.glob(".*.tmp")) or step != "save", "the killed save left its temporary file"

    index = CorpusIndex(index_dir=index_dir, backend="hnsw")  # searches the state the kill left
    assert index.note is None
    _self_found(index, live)
    _live(index, gone)

    loads.clear()
    _sync(index_dir)  # the next writer
    fold = adds > graph_sync.FOLD_FRACTION * MAIN
    want = ([f"hnsw-e0-n{total}-t2.bin"] if fold else
            [f"hnsw-e0-n400-t0-recent-n{total}-t2.bin", "hnsw-e0-n400-t0.bin"])
    assert _graphs(index_dir) == want and not list(index_dir.glob(".*.tmp"))
    if not fold:
        assert "hnsw-e0-n400-t0.bin" not in loads, "repaired without loading the main graph"
    loads.clear()
    assert _sync(index_dir) is None and loads == [], "repaired and recorded: nothing left to do"
    fresh = CorpusIndex(index_dir=index_dir, backend="hnsw", max_insert=0)
    assert isinstance(fresh.backend, HnswBackend if fold else GraphPair)
    for reader in (index, fresh):  # the reader of the crashed state keeps its graph, up to date
        reader.refresh()
        _self_found(reader, live)
        _live(reader, gone)
    assert os.path.exists(index_dir / "index.sqlite")
