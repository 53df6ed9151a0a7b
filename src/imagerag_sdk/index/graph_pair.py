"""The search graph in two parts: the main HNSW snapshot and a small graph of the labels added
since it was saved (the *recent-adds graph*), searched together as one backend.

Beside a main snapshot ``hnsw-e<epoch>-n<upto>-t<seq>.bin`` (:mod:`.store`) a corpus folder may
hold its recent-adds graph::

    hnsw-e<epoch>-n<upto>-t<seq>-recent-n<upto2>-t<seq2>.bin

which holds the labels from ``upto`` up to ``upto2`` that were live when it was saved, with the
tombstones ≤ ``seq2`` marked. The writer saves it (a small file: O(added)) instead of rewriting
the main graph, and folds it into the main graph once it passes a share of it
(:data:`.graph_sync.FOLD_FRACTION`). Its name carries the main snapshot's own ``(upto, seq)``, so a
reader pairs the newest main snapshot only with a recent-adds graph made for it; one made for
another snapshot is a leftover that the next writer removes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .backends import HnswBackend

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


def merge_hits(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of two (labels, scores) answers over disjoint labels, best first (a tie goes
    to ``a``); ``-1`` / ``-inf`` padding sorts last."""
    labels = np.concatenate([a[0], b[0]], axis=1)
    scores = np.concatenate([a[1], b[1]], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(labels, order, axis=1), np.take_along_axis(scores, order, axis=1)


class GraphPair:
    """A main graph holding the labels below ``split`` and a recent-adds graph holding the later
    ones, answering like one :class:`HnswBackend`: each is searched for the top ``k`` and the two
    lists are merged; new labels go into the recent-adds graph, deletions into the graph that
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
        return merge_hits(self.main.search(queries, k, ef=ef), self.recent.search(queries, k, ef=ef), k)
