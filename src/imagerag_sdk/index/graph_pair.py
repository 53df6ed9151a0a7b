"""The search graph in two parts: the main HNSW snapshot and a small graph of the labels added
since it was saved (the *recent-adds graph*), searched together as one backend, and how a reader
opens them (:func:`open_graph`; the writer's side is :mod:`.graph_sync`).

Beside a main snapshot ``hnsw-e<epoch>-n<upto>-t<seq>.bin`` (:mod:`.store`) a corpus folder may
hold its recent-adds graph::

    hnsw-e<epoch>-n<upto>-t<seq>-recent-n<upto2>-t<seq2>.bin

which holds the labels from ``upto`` up to ``upto2`` that were live when it was saved, with the
tombstones ≤ ``seq2`` marked. The writer saves it (a small file: O(added)) instead of rewriting
the main graph, and folds it into the main graph once it passes a share of it
(:data:`.graph_sync.FOLD_FRACTION`, 2 %). Its name carries the main snapshot's own ``(upto, seq)``, so a
reader pairs the newest main snapshot only with a recent-adds graph made for it; one made for
another snapshot is a leftover that the next writer removes.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .backends import HnswBackend, query_ef
from .store import CorpusStore

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .corpus import _State

_RECENT_FILE = re.compile(r"^hnsw-e(\d+)-n(\d+)-t(\d+)-recent-n(\d+)-t(\d+)\.bin$")


def recent_name(epoch: int, main_upto: int, main_seq: int, upto: int, seq: int) -> str:
    """The file name of the recent-adds graph of main snapshot ``(main_upto, main_seq)`` covering
    labels < ``upto`` and tombstones ≤ ``seq``."""
    return f"hnsw-e{epoch}-n{main_upto}-t{main_seq}-recent-n{upto}-t{seq}.bin"


def recent_graphs(folder: Path, epoch: int, main_upto: int, main_seq: int) -> list[tuple[int, int, Path]]:
    """(labels covered, tombstone seq, file) of the recent-adds graphs made for that main snapshot,
    newest first."""
    out = []
    for p in folder.glob("hnsw-*-recent-*.bin"):
        m = _RECENT_FILE.match(p.name)
        if m and (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (epoch, main_upto, main_seq):
            out.append((int(m.group(4)), int(m.group(5)), p))
    return sorted(out, reverse=True)


def is_recent_of(name: str | None, epoch: int, main_upto: int, main_seq: int) -> bool:
    """Whether ``name`` is a recent-adds graph made for that main snapshot."""
    m = _RECENT_FILE.match(name or "")
    return m is not None and (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (epoch, main_upto, main_seq)


RECENT_EF_FULL_AT = 0.08
"""The recent-adds graph is searched at the main graph's ``ef`` times its share of the main graph
over this (:func:`recent_ef`): about the smallest breadth that gave the pair, on synthetic 512-d
(50k) and MiniLM (20k) vectors, the recall@10 of one graph holding every vector; at 200k it
measured 1-3 hits in 10,000 short (docs/benchmarks.md, "Incremental adds: a second graph")."""


def recent_ef(ef: int, k: int, recent: int, main: int) -> int:
    """The search breadth for a recent-adds graph of ``recent`` vectors beside a main graph of
    ``main`` searched at ``ef``: ``ef`` scaled by the share ``recent / main`` over
    :data:`RECENT_EF_FULL_AT`, at least ``k`` and at most ``ef``. The recent graph holds only that
    share of the true neighbours, so it can miss more of them for the same recall of the pair, and
    at the main graph's ``ef`` a graph of a few thousand costs most of what the main search does."""
    share = recent / main if main > 0 else 1.0
    return max(k, min(ef, math.ceil(ef * share / RECENT_EF_FULL_AT)))


def merge_hits(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of two (labels, scores) answers over disjoint labels, best first (a tie goes
    to ``a``); ``-1`` / ``-inf`` padding sorts last. When no row of ``b`` beats the ``k``-th of
    ``a`` (most queries: the recent-adds graph is small) that is ``a`` itself, without a sort."""
    if a[1].shape[1] == k and b[1].shape[1] and bool(np.all(b[1][:, 0] <= a[1][:, -1])):
        return a
    labels = np.concatenate([a[0], b[0]], axis=1)
    scores = np.concatenate([a[1], b[1]], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(labels, order, axis=1), np.take_along_axis(scores, order, axis=1)


class GraphPair:
    """A main graph holding the labels below ``split`` and a recent-adds graph holding the later
    ones, answering like one :class:`HnswBackend`: each is searched for the top ``k`` (the
    recent-adds graph at a breadth scaled to its size, :func:`recent_ef`) and the two lists are
    merged; new labels go into the recent-adds graph, deletions into the graph that
    holds the label."""

    kind = "hnsw"

    def __init__(self, main: HnswBackend, recent: HnswBackend, split: int) -> None:
        self.main, self.recent, self.split = main, recent, split
        self.dim = main.dim

    def __len__(self) -> int:
        return len(self.main) + len(self.recent)

    @property
    def changes(self) -> int:
        """In-place changes of either graph since they were loaded (see :attr:`HnswBackend.changes`)."""
        return self.main.changes + self.recent.changes

    @property
    def graph_params(self) -> tuple[int, int]:
        return self.main.graph_params

    def add(self, vectors: np.ndarray, labels: Sequence[int] | np.ndarray) -> None:
        self.recent.add(vectors, labels)

    def mark_deleted(self, labels: Sequence[int]) -> int:
        older = [int(x) for x in labels if int(x) < self.split]
        later = [int(x) for x in labels if int(x) >= self.split]
        return self.main.mark_deleted(older) + self.recent.mark_deleted(later)

    def count_deleted(self, labels: np.ndarray) -> None:
        """Set each graph's count of deleted elements from the live ``labels`` (ascending)."""
        cut = int(np.searchsorted(labels, self.split))
        self.main.count_deleted(labels[:cut])
        self.recent.count_deleted(labels[cut:])

    def search(self, queries: np.ndarray, k: int, *, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The main graph at ``ef`` (default :func:`.backends.query_ef`), the recent-adds graph at
        :func:`recent_ef` of it, merged."""
        ef = max(ef or query_ef(k), k)
        small = recent_ef(ef, k, len(self.recent), len(self.main))
        return merge_hits(self.main.search(queries, k, ef=ef), self.recent.search(queries, k, ef=small), k)


Graph = HnswBackend | GraphPair
"""A reader's graph: the main snapshot alone, or with its recent-adds graph."""


def open_graph(store: CorpusStore, state: _State, vectors: np.ndarray, max_insert: int, newer_ok: bool,
               lock: threading.RLock) -> tuple[Graph | None, str | None, bool]:
    """A reader's graph for ``state``: the newest saved snapshot of its epoch (whatever its
    parameters) and the recent-adds graph saved for it (a :class:`GraphPair`; see
    :mod:`.graph_pair`), with at most ``max_insert`` missing vectors inserted and later deletions
    marked in the graph holding each.

    ``(None, note)`` when more are missing (no snapshot saved yet, or an old one): the reader
    searches exactly. ``(None, None)`` when a graph file is newer than ``state`` (a writer saved
    it meanwhile), or was removed between listing and loading, and not ``newer_ok``: read the
    state again. ``lock`` guards the SQLite reads. The third value says whether the graph holds
    exactly ``state``'s labels (not so for a newer file: searches then drop the labels the view
    lacks)."""
    labels = state.labels

    def room(covered: int, seq: int) -> int:  # adds go into the recent-adds graph when there is one
        paired = bool(recent_graphs(store.path, state.epoch, covered, seq))
        return max(covered, 16) if paired else max(state.upto, covered, 16)

    found = _load_newest(store.hnsw_snapshots(state.epoch), state, newer_ok, room)
    if found is None:
        return None, None, False
    main, covered, seq, newer, main_path = found
    recent, upto, recent_seq = None, covered, seq
    if main is not None:
        found = _load_newest(recent_graphs(store.path, state.epoch, covered, seq), state, newer_ok,
                             lambda n, _: max(state.upto, n) - covered + 16)
        if found is None:
            return None, None, False
        if found[0] is not None:
            recent, upto, recent_seq, newer_recent, _ = found
            newer = newer or newer_recent
        elif not newer_ok and not main_path.exists():
            return None, None, False  # folded since the listing: its recent-adds graph is gone too
    start = int(np.searchsorted(labels, upto))
    if len(labels) - start > max_insert:
        what = (f"has no saved search graph for its {len(labels)} images" if main is None else
                f"has a saved search graph covering {start} of its {len(labels)} images")
        return None, (f"corpus '{store.name}' {what}: searches are exact (slower) until "
                      "'imagerag index' finishes"), True
    with lock:
        m, ef_construction = store.graph_params
        dead, _ = store.tombstones_after(seq, until=state.seq)
        dead_recent = store.tombstones_after(recent_seq, until=state.seq)[0] if recent is not None else []
    if main is None:
        main = HnswBackend(state.dim, capacity=max(16, len(labels)), m=m, ef_construction=ef_construction)
    main.mark_deleted([d for d in dead if d < covered])
    backend: Graph = main
    if recent is not None:
        recent.mark_deleted([d for d in dead_recent if covered <= d < upto])
        backend = GraphPair(main, recent, covered)
    if start < len(labels):
        backend.add(vectors[labels[start:]], labels[start:])
    backend.count_deleted(labels)
    return backend, None, not newer


def _load_newest(files: list[tuple[int, int, Path]], state: _State, newer_ok: bool,
                 capacity: Callable[[int, int], int]) -> tuple[HnswBackend | None, int, int, bool, Path] | None:
    """The newest of the graph ``files`` (covered, seq, path) that loads, as (graph, covered,
    seq, whether newer than ``state``, path), with graph ``None`` when none does; ``None`` when
    one is newer than ``state`` or was removed since the listing (a writer saved another), and
    not ``newer_ok``: read the state again. ``capacity(covered, seq)``: the room to load it with."""
    for covered, seq, path in files:
        newer = covered > state.upto or seq > state.seq
        if newer and not newer_ok:
            return None
        try:
            return HnswBackend.load(path, state.dim, capacity=capacity(covered, seq)), covered, seq, newer, path
        except (RuntimeError, OSError, ValueError) as exc:  # damaged (an older one), or removed meanwhile
            if not path.exists():
                if not newer_ok:
                    return None
                continue
            log.warning("search graph %s does not load (%s): an older one is used; the next "
                        "'imagerag index' run saves a new one", path.name, exc)
    return None, 0, 0, False, Path()
