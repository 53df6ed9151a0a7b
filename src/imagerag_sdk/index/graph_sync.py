"""The writer's HNSW graph: the newest saved snapshot brought up to date with the store's live
rows and saved under a name that records what it covers (readers open it: :mod:`.corpus`).

Adds go into a small recent-adds graph saved beside the main snapshot (:mod:`.graph_pair`), so an
index run that adds 1 % loads and writes about 1 % of the graph; once the recent-adds graph would
pass :data:`FOLD_FRACTION` of the main one, the run folds every recent add into the main graph
(load, insert, save: the one step that costs O(N), once per 2 % of growth)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .backends import HnswBackend
from .graph_pair import is_recent_of, recent_graphs, recent_name
from .store import CorpusStore

if TYPE_CHECKING:
    from .ingestion import Progress

GRAPH_STEP = 10_000
"""Vectors per hnswlib insert call (a progress tick)."""
GRAPH_PROGRESS_FROM = 20_000
"""Fewer new vectors than this are inserted in a few seconds: no progress bar."""
GRAPH_CHECKPOINT_S = 120.0
"""A writer building a graph for longer than this saves it on the way, so an interrupted build
resumes instead of starting over (a save of a 1M graph takes about 7 s)."""
FOLD_FRACTION = 0.02
"""The recent-adds graph may cover at most this share of the labels the main graph covers; a run
whose adds would take it past that folds them all into the main graph instead. Every search
pays for the second graph while it exists, and the breadth it needs for full recall grows with
its share (:func:`.graph_pair.recent_ef`): at 2 % the pair's search costs 1.23-1.29× the main
graph's alone, at 9 % 1.7× for the same recall (docs/benchmarks.md, "Incremental adds: a second
graph")."""
RECENT_FROM = 20_000
"""A main graph covering fewer labels than this is rewritten whole on every add (under a second)
and gets no recent-adds graph."""


def sync_hnsw(store: CorpusStore, *, save: bool, threads: int | None = None,
              progress: Progress | None = None) -> HnswBackend | None:
    """The newest HNSW snapshot of this epoch brought up to date with SQLite (built if none).

    With ``save`` (writers only) the graph is written atomically under a name that records what
    it covers, and older graph files are removed afterwards: adds go into the recent-adds graph
    while it stays within :data:`FOLD_FRACTION` of the main graph (that graph is then returned),
    else into the main graph. ``None`` (nothing loaded) when the saved graphs already cover every
    label with the corpus's parameters: removals since are tombstones, which readers mark in the
    graphs they load. ``progress`` follows the vectors inserted when there are at least
    :data:`GRAPH_PROGRESS_FROM` of them. Without ``save`` the main graph is brought up to date in
    memory, the recent-adds graph ignored."""
    upto = store.next_label
    m, ef_construction = store.graph_params
    if save:
        if _covers_all(store, upto, (m, ef_construction)):
            return None
        recent = _sync_recent(store, upto, threads, progress)
        if recent is not None:
            return recent
    labels = store.live_labels()
    dim = store.dim
    backend = None
    covered, seq = 0, 0
    for covered, seq, path in store.hnsw_snapshots():  # noqa: B007 (the snapshot kept is used below)
        try:
            backend = HnswBackend.load(path, dim, capacity=max(upto, 16), threads=threads)
        except (RuntimeError, OSError, ValueError):  # a damaged snapshot: try an older one
            continue
        if not save or backend.graph_params == (m, ef_construction):
            break  # a reader searches any valid graph; a writer rebuilds one built otherwise
        backend = None
    if backend is None:
        covered, seq = 0, 0
        backend = HnswBackend(dim, capacity=max(16, len(labels)), threads=threads, m=m,
                              ef_construction=ef_construction)
    dead, last_seq = store.tombstones_after(seq)
    backend.mark_deleted([d for d in dead if d < covered])
    new = labels[labels >= covered]  # ascending

    def checkpoint(done: int) -> None:  # an interrupted build resumes from here
        _save_snapshot(store, backend, done, last_seq)

    _insert(store, backend, new, progress, checkpoint if save else None)
    backend.count_deleted(labels)
    if save and (dead or len(new) or not store.hnsw_snapshots()):
        _save_snapshot(store, backend, upto, last_seq)
    elif save and covered >= upto:  # recorded, so the next run need not load it to know
        _publish(store, store.hnsw_path(covered, seq), backend.graph_params)
    return backend


def _insert(store: CorpusStore, backend: HnswBackend, new: np.ndarray, progress: Progress | None,
            checkpoint: Callable[[int], None] | None) -> None:
    """Insert the vectors of the ascending labels ``new`` in steps of :data:`GRAPH_STEP`, calling
    ``checkpoint(labels covered)`` every :data:`GRAPH_CHECKPOINT_S` while more are left."""
    if not len(new):
        return
    shown = progress if progress is not None and len(new) >= GRAPH_PROGRESS_FROM else None
    if shown is not None:
        shown.start(len(new))
    saved_at = time.monotonic()
    try:
        for start in range(0, len(new), GRAPH_STEP):
            part = new[start:start + GRAPH_STEP]
            backend.add(store.get_vectors(part), part)
            if shown is not None:
                shown.advance(len(part))
            left = len(new) - start - len(part)
            if checkpoint is not None and left and time.monotonic() - saved_at > GRAPH_CHECKPOINT_S:
                checkpoint(int(part[-1]) + 1)  # every live label below is in the graph
                saved_at = time.monotonic()
    finally:
        if shown is not None:
            shown.close()


def _pair(store: CorpusStore) -> tuple[tuple[int, int, Path], list[tuple[int, int, Path]]] | None:
    """The newest main snapshot ``(covered, seq, file)`` and its recent-adds graphs, newest first."""
    mains = store.hnsw_snapshots()
    if not mains:
        return None
    covered, seq, _ = mains[0]
    return mains[0], recent_graphs(store.path, store.epoch, covered, seq)


def _covers_all(store: CorpusStore, upto: int, params: tuple[int, int]) -> bool:
    """Whether the newest saved graphs, as recorded by the writer that saved them, cover every
    label below ``upto`` and were built with ``params``."""
    pair = _pair(store)
    if pair is None:
        return False
    main, recents = pair
    covered, _, path = recents[0] if recents else main
    if covered < upto:
        return False
    return store.meta_value("hnsw_snapshot") == path.name and store.graph_recorded == params


def _sync_recent(store: CorpusStore, upto: int, threads: int | None,
                 progress: Progress | None) -> HnswBackend | None:
    """Bring the recent-adds graph of the newest main snapshot up to date and save it; ``None``
    (nothing done) when the main graph must be loaded instead: none saved, a small one, adds
    past :data:`FOLD_FRACTION`, or one not known to be built with the corpus's parameters (its
    name or its recent-adds graph's is recorded with them, unless a crash came between)."""
    pair = _pair(store)
    if pair is None:
        return None
    (main_upto, main_seq, main_path), recents = pair
    recorded = store.meta_value("hnsw_snapshot")
    params = store.graph_params
    known = recorded == main_path.name or is_recent_of(recorded, store.epoch, main_upto, main_seq)
    if (main_upto < RECENT_FROM or upto - main_upto > FOLD_FRACTION * main_upto
            or not known or store.graph_recorded != params):
        return None
    backend, source = None, main_path
    covered, seq = main_upto, main_seq
    for covered, seq, source in recents:  # noqa: B007 (the graph kept is used below)
        try:
            backend = HnswBackend.load(source, store.dim, capacity=max(upto - main_upto, 16), threads=threads)
            break
        except (RuntimeError, OSError, ValueError):  # damaged: an older one, or a new graph
            backend = None
    if backend is None:
        covered, seq, source = main_upto, main_seq, main_path
        backend = HnswBackend(store.dim, capacity=max(16, upto - main_upto), threads=threads,
                              m=params[0], ef_construction=params[1])
    dead, last_seq = store.tombstones_after(seq)
    marked = backend.mark_deleted([d for d in dead if main_upto <= d < covered])
    if covered < upto or marked:
        _insert(store, backend, store.live_labels(covered), progress, None)
        backend.count_deleted(store.live_labels(main_upto))
        source = store.path / recent_name(store.epoch, main_upto, main_seq, upto, last_seq)
        backend.save(source)
    _publish(store, source, params, keep=main_path)  # nothing new: the files there, recorded
    return backend


def _save_snapshot(store: CorpusStore, backend: HnswBackend, upto: int, seq: int) -> None:
    """Write the graph as the main snapshot covering live labels < ``upto`` and tombstones ≤
    ``seq``, then drop every other graph file of the epoch (older snapshots, recent-adds graphs)."""
    target = store.hnsw_path(upto, seq)
    backend.save(target)
    _publish(store, target, backend.graph_params)


def _publish(store: CorpusStore, target: Path, params: tuple[int, int], keep: Path | None = None) -> None:
    """Remove the epoch's graph files other than ``target`` (and ``keep``, its main snapshot),
    then commit ``target``'s name to the meta table, so readers searching exactly for want of a
    graph see the change (``PRAGMA data_version``) and load it, and the next writer knows what the
    files cover without loading them. Readers list the files themselves: a newer file is on disk
    before an older one goes."""
    for path in store.path.glob(f"hnsw-e{store.epoch}-*.bin"):
        if path not in (target, keep):
            path.unlink(missing_ok=True)
    store.note_graph(target.name, params)
