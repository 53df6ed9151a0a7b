"""The writer's HNSW graph: the newest saved snapshot brought up to date with the store's live
rows and saved under a name that records what it covers (readers open it: :mod:`.corpus`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .backends import HnswBackend
from .store import CorpusStore

if TYPE_CHECKING:
    from .ingest import Progress

GRAPH_STEP = 10_000
"""Vectors per hnswlib insert call (a progress tick)."""
GRAPH_PROGRESS_FROM = 20_000
"""Fewer new vectors than this are inserted in a few seconds: no progress bar."""
GRAPH_CHECKPOINT_S = 120.0
"""A writer building a graph for longer than this saves it on the way, so an interrupted build
resumes instead of starting over (a save of a 1M graph takes about 7 s)."""


def sync_hnsw(store: CorpusStore, *, save: bool, threads: int | None = None,
              progress: Progress | None = None) -> HnswBackend | None:
    """The newest HNSW snapshot of this epoch brought up to date with SQLite (built if none).

    With ``save`` (writers only) the updated index is written atomically under a name that
    records what it covers, and older snapshots are removed afterwards; ``None`` (nothing loaded)
    when the saved graph already covers every label with the corpus's parameters: removals
    since are tombstones, which readers mark in the graph they load. ``progress`` follows the
    vectors inserted when there are at least :data:`GRAPH_PROGRESS_FROM` of them."""
    upto = store.next_label
    m, ef_construction = store.graph_params
    if save and _covers_all(store, upto, (m, ef_construction)):
        return None
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
    changed = False
    dead, last_seq = store.tombstones_after(seq)
    if dead:
        backend.mark_deleted([d for d in dead if d < covered])
        changed = True
    new = labels[labels >= covered]  # ascending
    if len(new):
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
                if save and left and time.monotonic() - saved_at > GRAPH_CHECKPOINT_S:
                    # an interrupted build resumes from here: every live label below covers it
                    _save_snapshot(store, backend, int(part[-1]) + 1, last_seq)
                    saved_at = time.monotonic()
        finally:
            if shown is not None:
                shown.close()
        changed = True
    backend.deleted = backend.index.get_current_count() - len(labels)
    if save and (changed or not store.hnsw_snapshots()):
        _save_snapshot(store, backend, upto, last_seq)
    elif save and covered >= upto:  # recorded, so the next run need not load it to know
        store.note_graph(store.hnsw_path(covered, seq).name, backend.graph_params)
    return backend


def _covers_all(store: CorpusStore, upto: int, params: tuple[int, int]) -> bool:
    """Whether the newest snapshot, as recorded by the writer that saved it, covers every label
    below ``upto`` and was built with ``params``."""
    snapshots = store.hnsw_snapshots()
    if not snapshots or snapshots[0][0] < upto:
        return False
    return store.meta_value("hnsw_snapshot") == snapshots[0][2].name and store.graph_recorded == params


def _save_snapshot(store: CorpusStore, backend: HnswBackend, upto: int, seq: int) -> None:
    """Write the graph as covering live labels < ``upto`` and tombstones ≤ ``seq``; drop the others.

    The file's name is then committed to the meta table, so readers searching exactly for want of
    a graph see the change (``PRAGMA data_version``) and load it."""
    target = store.hnsw_path(upto, seq)
    backend.save(target)
    for _, _, old in store.hnsw_snapshots():
        if old != target:
            old.unlink(missing_ok=True)
    store.note_graph(target.name, backend.graph_params)
