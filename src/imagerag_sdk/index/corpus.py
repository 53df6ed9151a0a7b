"""A searchable, read-only view of one corpus: the store's live rows behind a search backend."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import CorpusError
from .backends import EXACT_BELOW, ExactBackend, HnswBackend
from .items import Item
from .scan import RootGuard
from .store import CorpusStore

if TYPE_CHECKING:
    from .ingest import Progress

BackendKind = Literal["auto", "exact", "hnsw"]
GRAPH_STEP = 10_000
"""Vectors per hnswlib insert call (a progress tick)."""
GRAPH_PROGRESS_FROM = 20_000
"""Fewer new vectors than this are inserted in a few seconds: no progress bar."""
GRAPH_CHECKPOINT_S = 120.0
"""A writer building a graph for longer than this saves it on the way, so an interrupted build
resumes instead of starting over (a save of a 1M graph takes about 7 s)."""


def sync_hnsw(store: CorpusStore, *, save: bool, threads: int | None = None,
              progress: Progress | None = None) -> HnswBackend:
    """The newest HNSW snapshot of this epoch brought up to date with SQLite (built if none).

    With ``save`` (writers only) the updated index is written atomically under a name that
    records what it covers, and older snapshots are removed afterwards. ``progress`` follows the
    vectors inserted when there are at least :data:`GRAPH_PROGRESS_FROM` of them."""
    labels = store.live_labels()
    upto = store.next_label
    dim = store.dim
    m, ef_construction = store.graph_params
    backend = None
    covered, seq = 0, 0
    for covered, seq, path in store.hnsw_snapshots():
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
    return backend


def _save_snapshot(store: CorpusStore, backend: HnswBackend, upto: int, seq: int) -> None:
    """Write the graph as covering live labels < ``upto`` and tombstones ≤ ``seq``; drop the others."""
    target = store.hnsw_path(upto, seq)
    backend.save(target)
    for _, _, old in store.hnsw_snapshots():
        if old != target:
            old.unlink(missing_ok=True)


@dataclass
class SearchResult:
    item: Item
    score: float
    label: int


class CorpusIndex:
    """Open a corpus for search. ``backend='auto'`` is exact below ``exact_below`` live vectors."""

    def __init__(self, corpus: str | None = None, index_dir: str | os.PathLike | None = None, *,
                 backend: BackendKind = "auto", exact_below: int = EXACT_BELOW) -> None:
        self.store = CorpusStore.open(corpus, index_dir, write=False)
        self.name = self.store.meta.get("name") or self.store.name
        root = self.store.root
        if root is None:
            raise CorpusError(f"corpus '{self.store.name}' at {self.store.path} is empty",
                              hint="index a folder into it first: imagerag index <folder> "
                                   f"--corpus {self.store.name}")
        self.root = root
        self._guard = RootGuard(root, cache_folders=False)
        for attempt in range(3):  # a writer may switch the vectors file between our reads
            try:
                self.labels, _ = self.store.snapshot()
                if len(self.labels) and (backend == "hnsw" or (backend == "auto"
                                                               and len(self.labels) >= exact_below)):
                    self.backend: ExactBackend | HnswBackend = sync_hnsw(self.store, save=False)
                else:
                    self.backend = ExactBackend(self.store.get_vectors(self.labels), self.labels)
                break
            except FileNotFoundError:
                self.store._vectors = None
                if attempt == 2:
                    raise
        self._items: dict[int, Item] = {}

    @property
    def identity(self) -> str | None:
        return self.store.embedder_identity

    @property
    def embedder_spec(self) -> dict | None:
        return self.store.embedder_spec

    @property
    def dim(self) -> int:
        return self.store.dim

    def __len__(self) -> int:
        return len(self.labels)

    def close(self) -> None:
        self.store.close()

    def items(self, labels) -> dict[int, Item]:
        missing = [int(x) for x in labels if int(x) >= 0 and int(x) not in self._items]
        if missing:
            self._items.update(self.store.items_by_label(missing))
        return {int(x): self._items[int(x)] for x in labels if int(x) in self._items}

    def vectors(self, labels) -> np.ndarray:
        return self.store.get_vectors(np.asarray(labels, dtype=np.int64))

    def abspath(self, item: Item) -> str | None:
        """Absolute path of an item, or ``None`` when it now resolves outside the corpus root."""
        return self._guard.path(item.path)

    def search(self, queries: np.ndarray, k: int, *, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores), each (len(queries), k), best first; label -1 pads short rows.
        ``ef``: the HNSW search breadth (ignored by the exact scan)."""
        return self.backend.search(queries, k, ef=ef)
