"""A searchable, read-only view of one corpus: the store's live rows behind a search backend."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import CorpusError
from .backends import EXACT_BELOW, ExactBackend, HnswBackend
from .confine import RootGuard, root_identity
from .graph_pair import Graph, GraphPair, open_graph
from .items import Entry, Item, ItemCache
from .records import TOKEN, ItemRecords
from .store import CorpusStore

log = logging.getLogger(__name__)

BackendKind = Literal["auto", "exact", "hnsw"]
READER_INSERT_MAX = 5_000
"""A reader inserts at most this many vectors a saved graph lacks (about a second on 2 cores).
With more missing (no graph saved yet: an index run still adding, or one killed while it built
the graph) it searches exactly, with a note, until ``imagerag index`` saves the graph: building a
large graph is the writer's job."""
RETRIES = 3
ITEM_CACHE = 10_000
"""Items (with their absolute paths) a view keeps for the labels its searches returned."""


def resolved(store: CorpusStore) -> dict | None:
    """The corpus's record of the classes the plugin registry gave for its component names
    (:func:`imagerag_sdk.resolutions.record`), if its index runs made one."""
    raw = store.meta_value("resolved")
    return json.loads(raw) if raw else None


def resolved_components(corpus: str | None, index_dir: str | os.PathLike | None) -> dict | None:
    """:func:`resolved` of a corpus by name or folder, read before it is opened for search."""
    with CorpusStore.open(corpus, index_dir) as store:
        return resolved(store)


def _drop(labels: np.ndarray, dead: list[int]) -> np.ndarray:
    """The ascending ``labels`` without ``dead``."""
    if not dead:
        return labels
    return labels[~_sorted_member(np.unique(np.asarray(dead, dtype=np.int64)), labels)]


def _sorted_member(sorted_labels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which of ``labels`` (any shape) occur in the ascending array ``sorted_labels``."""
    if len(sorted_labels) == 0:
        return np.zeros(labels.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_labels, labels), len(sorted_labels) - 1)
    return sorted_labels[pos] == labels


@dataclass
class _State:
    """What a view is built from, read in one transaction."""

    version: int
    epoch: int
    upto: int
    seq: int
    dim: int
    vectors_file: str
    labels: np.ndarray
    dead: list[int]
    """Tombstones after the previous view's (same epoch only)."""
    records: ItemRecords | None = None
    """The item record file, when it holds this state's items."""


class View:
    """One consistent snapshot of a corpus: its live labels, their vectors and a backend over them.

    Within an epoch a label never moves (a changed file gets a new label), so the view answers
    with its own labels' paths and vectors until a compaction starts a new epoch. ``entries``
    caches (bounded) the items of the labels searches returned with their absolute paths;
    ``confined_at`` is the corpus-root check they were made under (see
    :meth:`CorpusIndex.entries`)."""

    def __init__(self, state: _State, vectors: np.ndarray, backend: ExactBackend | Graph,
                 note: str | None, *, exact: bool = True) -> None:
        self.version, self.epoch, self.upto, self.seq = state.version, state.epoch, state.upto, state.seq
        self.vectors_file = state.vectors_file
        self.labels = state.labels
        self.records = state.records
        self.vectors = vectors
        self.backend = backend
        self.note = note
        self.entries = ItemCache(ITEM_CACHE)
        self.confined_at = 0
        self._exact_at = backend.changes if exact else -1
        filename, self._offset = getattr(vectors, "filename", None), int(getattr(vectors, "offset", 0))
        try:  # kept open: a writer switching files (growth, compaction) removes only the name
            self._rows = open(filename, "rb", buffering=0) if filename else None
        except OSError:
            self._rows = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def backend_exact(self) -> bool:
        """Whether the backend holds exactly this view's live labels: built or brought up to date
        for it and not changed since (a newer view brings a shared graph up to date in place)."""
        return self._exact_at == self.backend.changes

    def __del__(self) -> None:
        rows = getattr(self, "_rows", None)
        if rows is not None:
            rows.close()

    def vectors_of(self, labels) -> np.ndarray:
        """The stored vectors of labels of this view: a graph's view reads them from the vectors
        file, one ``pread`` each (hnswlib's ``get_items`` is ~10× slower, and rows read through
        the memory map would fault pages in that stay in the process's memory); an exact one
        takes them from the copy its backend holds."""
        dim = self.vectors.shape[1]
        backend = self.backend
        if isinstance(backend, (HnswBackend, GraphPair)) and self._rows is not None:
            return self.rows(labels.tolist() if isinstance(labels, np.ndarray) else [int(x) for x in labels]).copy()
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size == 0:
            return np.zeros((0, dim), np.float32)
        if isinstance(backend, ExactBackend) and len(backend.labels) == len(self.labels):  # this view's, in order
            rows = np.minimum(np.searchsorted(self.labels, labels), len(self.labels) - 1)
            if (self.labels[rows] == labels).all():
                return backend.vectors[rows]
        return np.ascontiguousarray(self.vectors[labels], dtype=np.float32)

    def rows(self, ids: list[int]) -> np.ndarray:
        """:meth:`vectors_of` a list of ``int`` labels (no conversion), read-only when read from
        the file (the bytes read, not a copy of them)."""
        if self._rows is None or not isinstance(self.backend, (HnswBackend, GraphPair)):
            return self.vectors_of(ids)
        dim = self.vectors.shape[1]
        size, fd, offset, pread = 4 * dim, self._rows.fileno(), self._offset, os.pread
        data = b"".join([pread(fd, size, offset + x * size) for x in ids])
        return np.frombuffer(data, np.float32).reshape(len(ids), dim)


class CorpusIndex:
    """Open a corpus for search. ``backend='auto'`` is exact below ``exact_below`` live vectors.

    Every search answers from one consistent :class:`View`. Before a search the index asks SQLite
    whether anything was committed since its view was read (``PRAGMA data_version``, a few µs);
    if so it builds a new view (added vectors are inserted into the graph and removals marked;
    after a compaction everything is re-read) and swaps it in, while searches in other threads go
    on with the old one. A reader inserts at most ``max_insert`` vectors a saved graph lacks
    (default :data:`READER_INSERT_MAX`); with more missing it searches exactly and says so in
    :attr:`note` and a log warning."""

    def __init__(self, corpus: str | None = None, index_dir: str | os.PathLike | None = None, *,
                 backend: BackendKind = "auto", exact_below: int = EXACT_BELOW,
                 max_insert: int | None = None) -> None:
        self.store = CorpusStore.open(corpus, index_dir, write=False)
        self.name = self.store.meta.get("name") or self.store.name
        root = self.store.root
        if root is None:
            raise CorpusError(f"corpus '{self.store.name}' at {self.store.path} is empty",
                              hint="index a folder into it first: imagerag index <folder> "
                                   f"--corpus {self.store.name}")
        self.root = root
        self._root_dir = str(root)
        self._prefix = os.path.join(self._root_dir, "")  # + a relative path: the file's path
        self._root_real = os.path.realpath(root)  # where it led when opened: paths must stay there
        # the root as its items were checked (when indexed); None (it was replaced since the last
        # index run, or resolves elsewhere than where it was indexed): checked at the first read
        self._root_id = root_identity(root)
        indexed = self.store.meta_value("root_id")
        if self._root_real != self._root_dir or (indexed is not None and indexed != self._root_id):
            self._root_id = None
        # (path, size, mtime_ns) of the items found leading out of the root: a file indexed
        # again at that path is a new row, checked by the writer
        self._escaped: frozenset[tuple[str, int, int]] = frozenset()
        self._confined = 0  # how many times every item was checked (a view's entries follow it)
        self._kind = backend
        self._exact_below = exact_below
        self._max_insert = READER_INSERT_MAX if max_insert is None else max_insert
        self._lock = threading.RLock()  # the SQLite connection and the view swap
        self._build_lock = threading.Lock()  # one view built at a time
        self._view = self._build(None)

    # -- the current view ------------------------------------------------------------------------
    def current(self) -> View:
        """The view to search now: re-read when another process committed since it was built
        (unless another thread is re-reading it right now: then the previous one)."""
        view = self._view
        with self._lock:
            version = self.store.data_version()
        return view if version == view.version else self.refresh(wait=False)

    def refresh(self, *, wait: bool = True) -> View:
        """Build a new view if the corpus changed since the current one, and swap it in."""
        if not self._build_lock.acquire(blocking=wait):
            return self._view
        try:
            old = self._view
            with self._lock:
                version = self.store.data_version()
            if version == old.version:
                return old
            new = self._build(old)
            with self._lock:
                self._view = new
            return new
        finally:
            self._build_lock.release()

    def _read_state(self, old: View | None) -> _State:
        store = self.store
        with self._lock, store.reading():
            version = store.data_version()
            meta = store.meta
            epoch, upto = int(meta.get("epoch") or 0), int(meta.get("next_label") or 0)
            seq = store.last_tombstone()
            dead: list[int] = []
            if old is not None and old.epoch == epoch:
                dead, _ = store.tombstones_after(old.seq)
                labels = np.concatenate([_drop(old.labels, dead), store.live_labels(old.upto)])
            else:
                labels = store.live_labels()
        token, kept = meta.get(TOKEN), old.records if old is not None else None
        records = (kept if kept is not None and kept.token == token and not kept.broken
                   else ItemRecords.open(store.path, token))  # read with the labels: the same state
        return _State(version, epoch, upto, seq, int(meta.get("dim") or 0), meta.get("vectors_file") or "",
                      labels, dead, records)

    def _build(self, old: View | None) -> View:
        for attempt in range(3):  # a writer may switch files or save a graph between our reads
            state = self._read_state(old)
            try:
                vectors = (old.vectors if old is not None and old.vectors_file == state.vectors_file
                           else self.store.open_vectors(state.vectors_file))
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            backend, note, exact = self._backend(state, vectors, old, newer_ok=attempt == 2)
            if backend is None and note is None:
                continue
            if note and (old is None or old.note is None):
                log.warning(note)
            if backend is None:
                backend, exact = ExactBackend(vectors[state.labels], state.labels), True
            return View(state, vectors, backend, note, exact=exact)
        raise AssertionError("unreachable")

    def _backend(self, state: _State, vectors: np.ndarray, old: View | None,
                 newer_ok: bool) -> tuple[ExactBackend | Graph | None, str | None, bool]:
        """(backend, note, whether it holds exactly ``state``'s labels): see :func:`open_graph`."""
        labels = state.labels
        if not len(labels) or self._kind == "exact" or (self._kind == "auto" and len(labels) < self._exact_below):
            return ExactBackend(vectors[labels], labels), None, True
        if old is not None and old.epoch == state.epoch and isinstance(old.backend, (HnswBackend, GraphPair)):
            new = labels[np.searchsorted(labels, old.upto):]
            if len(new) <= self._max_insert:  # the same graph, brought up to date in place
                graph = old.backend
                graph.mark_deleted(state.dead)
                graph.add(vectors[new], new)
                graph.count_deleted(labels)
                return graph, None, True
        return open_graph(self.store, state, vectors, self._max_insert, newer_ok, self._lock)

    # -- searching -------------------------------------------------------------------------------
    def search_view(self, queries: np.ndarray, k: int, *, ef: int | None = None,
                    fresh: bool = False) -> tuple[View, np.ndarray, np.ndarray]:
        """(view, labels, scores): :meth:`search` on the current view (``fresh``: re-read first),
        with the view, whose :meth:`entries` give the hits' items."""
        view = self.refresh() if fresh else self.current()
        queries = np.asarray(queries, dtype=np.float32)
        labels, scores = self._search(view, queries if queries.ndim == 2 else np.atleast_2d(queries), k, ef)
        return view, labels, scores

    def entries(self, view: View, labels: Iterable[int]) -> dict[int, Entry] | None:
        """The item, checked absolute path and metadata (:data:`.items.Entry`) of each label of
        ``view`` that is still indexed.

        Labels the view has not cached yet are read from the item record file when it holds the
        view's state (one ``pread`` each: :mod:`.records`), else from SQLite in one transaction,
        which also checks the view is still of the current epoch: ``None`` when a compaction
        renumbered the labels since (search again on a fresh view). A label absent from the
        answer was removed since the view was read (SQLite) or at its state (the record file).

        Paths are not checked here, one by one: the writer indexes no file that leads out of the
        root (and drops one that came to, at its next run). Each call compares the root's identity
        (one ``lstat``) with the one its items were checked under; when it changed (another
        folder, or a link, there) every item is checked again, once (:meth:`_confine`)."""
        out: dict[int, Entry] = {}
        with self._lock:
            if root_identity(self._root_dir) != self._root_id:
                self._confine()
            if view.confined_at != self._confined:
                view.entries.clear()
                view.confined_at = self._confined
            missing = view.entries.take(labels, out)
            if not missing:
                return out
            records = view.records
            found = records.get(missing) if records is not None and not records.broken else None
            if found is None:  # no record file of the view's state: SQLite
                epoch, found = self.store.items_of_epoch(missing)  # one statement: one committed state
                if epoch is None:  # none of them is left: whether renumbered, the epoch tells
                    epoch = self.store.epoch
                if epoch != view.epoch:
                    return None
            prefix, escaped = self._prefix, self._escaped
            new: dict[int, Entry] = {}
            for label, item in found.items():
                out_of_root = bool(escaped) and (item.path, item.size, item.mtime_ns) in escaped
                new[label] = (item, None if out_of_root else prefix + item.path, item.metadata())
            view.entries.put_all(new)
            out.update(new)
        return out

    def _confine(self) -> None:
        """Check every item's path against where the root led when the index was opened (the
        root was replaced or moved since the last check); the caller holds the lock."""
        root_id = root_identity(self.root)
        guard = RootGuard(self.root, real=self._root_real)  # each folder resolved once
        rows = self.store.db.execute("SELECT path, size, mtime_ns FROM items").fetchall()
        self._escaped = frozenset(row for row in rows if guard.path(row[0]) is None)
        self._root_id, self._confined = root_id, self._confined + 1
        if self._escaped:
            log.warning("corpus '%s': %d indexed files now lead out of the corpus root %s; they are "
                        "not returned (re-index it: imagerag index %s)", self.name, len(self._escaped),
                        self.root, self.root)

    def cached_items(self) -> int:
        """How many items the current view keeps (at most :data:`ITEM_CACHE`)."""
        return len(self._view.entries)

    def search(self, queries: np.ndarray, k: int, *, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores), each (len(queries), k), best first; label -1 pads short rows.
        ``ef``: the HNSW search breadth (ignored by the exact scan). :meth:`query` also returns
        the items, from the same view."""
        return self._search(self.current(), np.atleast_2d(np.asarray(queries, dtype=np.float32)), k, ef)

    @staticmethod
    def _search(view: View, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        labels, scores = view.backend.search(queries, k, ef=ef)
        if view.backend_exact:  # read after the search: a change made meanwhile is caught
            return labels, scores
        live = _sorted_member(view.labels, labels)
        if not live.all():  # a graph shared with a newer view, or saved after this view was read
            labels = np.where(live | (labels < 0), labels, -1)
        return labels, scores

    @property
    def labels(self) -> np.ndarray:
        return self._view.labels

    @property
    def backend(self) -> ExactBackend | Graph:
        return self._view.backend

    @property
    def note(self) -> str | None:
        """Why searches are exact although a graph was wanted (no or an incomplete saved graph)."""
        return self._view.note

    @property
    def identity(self) -> str | None:
        return self.store.embedder_identity

    @property
    def embedder_spec(self) -> dict | None:
        return self.store.embedder_spec

    @property
    def resolved(self) -> dict | None:
        """How its last index run's registry resolved the embedder's name (:mod:`...resolutions`)."""
        return resolved(self.store)

    @property
    def dim(self) -> int:
        return self.store.dim

    def __len__(self) -> int:
        return len(self.current())

    def close(self) -> None:
        with self._lock:  # not under a change check in another thread (it may read SQLite's memory)
            self.store.close()

    def items(self, labels) -> dict[int, Item]:
        """Items of labels of the current view (:meth:`entries` gives them with their paths)."""
        view = self.current()
        for _ in range(RETRIES):
            found = self.entries(view, [int(x) for x in labels if int(x) >= 0])
            if found is not None:
                return {label: entry[0] for label, entry in found.items()}
            view = self.refresh()
        raise CorpusError(f"corpus '{self.name}' was compacted {RETRIES} times during one read",
                          hint="read again")

    def vectors(self, labels) -> np.ndarray:
        return self.current().vectors_of(labels)

    def abspath(self, item: Item) -> str | None:
        """Absolute path of an item, or ``None`` when it now resolves outside the corpus root
        (checked now, file and folders: for one item, unlike the hits of a search)."""
        return RootGuard(self.root, cache_folders=False, real=self._root_real).path(item.path)
