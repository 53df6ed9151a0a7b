"""Nearest-neighbour search over unit vectors: exact (numpy) and approximate (hnswlib).

Both answer ``search(queries, k) -> (labels, scores)`` for a whole batch of queries at once, with
``scores`` the inner product (= cosine on unit vectors), best first, and ``-1`` labels padding rows
when fewer than ``k`` items exist.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import replacing
from ..errors import MissingDependencyError

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
EXACT_BELOW = 20_000
"""``backend: auto`` uses the exact scan below this many live vectors."""


QUERY_EF = 150
"""Default HNSW search breadth: the smallest of 100/120/150/200 that gave recall@10 ≥ 0.98 for both
sentence and keyword queries on real MiniLM embeddings (docs/benchmarks.md, ``ef_choice.py``)."""


def query_ef(k: int) -> int:
    """The search breadth used when none is given: ``max(QUERY_EF, 2k)``."""
    return max(QUERY_EF, 2 * k)


_ONE = np.float32(1.0)


def _pad(labels: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if labels.shape[1] >= k:
        return labels, scores
    q, have = labels.shape
    out_l = np.full((q, k), -1, dtype=np.int64)
    out_s = np.full((q, k), -np.inf, dtype=np.float32)
    out_l[:, :have] = labels
    out_s[:, :have] = scores
    return out_l, out_s


class ExactBackend:
    """Brute-force inner product: one matrix product per batch of queries (chunked for memory)."""

    kind = "exact"
    changes = 0
    """Never changed after it is built (a graph counts its in-place changes)."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.labels = (np.arange(len(self.vectors), dtype=np.int64) if labels is None
                       else np.asarray(labels, dtype=np.int64))
        if len(self.labels) != len(self.vectors):
            raise ValueError("one label per vector")
        self._all_finite: bool | None = None

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int, *, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k``, best first, ties to the lower row; ``ef`` is taken for the backends'
        common signature and ignored. A batch is scored in blocks of up to 1,024 queries × as
        many rows as ``SCORE_BLOCK_BYTES`` allows (BLAS), each block screened for its top ``k``."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        n = len(self.vectors)
        kk = min(k, n)
        if kk == 0 or len(queries) == 0:
            return _pad(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32), k)
        threads = os.cpu_count() or 1
        if len(queries) == 1 and n >= 50_000 and threads > 1:
            idx, top = self._top_one(queries[0], kk, threads)
            order = np.argsort(-top, kind="stable")
            return _pad(self.labels[idx[order]][None], top[order][None].astype(np.float32), k)
        rows, cols = _blocks(len(queries), n, kk)
        buf = np.empty(rows * min(n, cols), dtype=np.float32)  # one score block, reused
        finite = bool(np.isfinite(queries).all()) and self._finite()
        all_l, all_s = [], []
        for q0 in range(0, len(queries), rows):
            qs = queries[q0:q0 + rows]
            for c0 in range(0, n, cols):
                block = self.vectors[c0:c0 + cols]
                scores = np.matmul(qs, block.T, out=buf[:len(qs) * len(block)].reshape(len(qs), len(block)))
                if not finite:  # NaN ranks last, as -inf
                    np.copyto(scores, -np.inf, where=np.isnan(scores))
                if c0 == 0:
                    best_i, best_s = _first_top(scores, kk)
                else:
                    _update(best_i, best_s, scores, c0)
            all_l.append(self.labels[best_i])
            all_s.append(best_s)
        return _pad(np.concatenate(all_l), np.concatenate(all_s), k)

    def _finite(self) -> bool:
        if self._all_finite is None:
            self._all_finite = bool(np.isfinite(self.vectors).all())
        return self._all_finite

    def _top_one(self, q: np.ndarray, kk: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices and scores of the ``kk`` best rows for one query (unordered).

        One query over a large matrix is a matrix–vector product that BLAS runs well below memory
        bandwidth here; numpy's einsum on one slice of rows per CPU reaches it (the GIL is
        released), and each thread also picks its slice's best ``kk``, so the selection runs in
        parallel too and only ``threads × kk`` candidates are merged."""
        n = len(self.vectors)
        step = -(-n // threads)

        def part(start: int) -> tuple[np.ndarray, np.ndarray]:
            scores = np.einsum("ij,j->i", self.vectors[start:start + step], q)
            best = (np.argpartition(scores, len(scores) - kk)[len(scores) - kk:] if kk < len(scores)
                    else np.arange(len(scores)))
            return best + start, scores[best]

        found = list(_pool(threads).map(part, range(0, n, step)))
        idx = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        keep = np.argpartition(scores, len(scores) - kk)[len(scores) - kk:]
        return idx[keep], scores[keep]


SCORE_BLOCK_BYTES = 64 * 2**20
"""The batched exact scan computes scores in blocks of at most this many bytes (queries × rows)."""
GROUPS = 16
"""Interleaved column groups whose element-wise maximum screens a block of scores."""


def _blocks(queries: int, n: int, kk: int) -> tuple[int, int]:
    """(queries, rows) per score block: up to 1,024 queries at a time, so that each matrix product
    is large enough for BLAS to run at full speed, and the rows split to fit the budget (at least
    8·kk of them, so that a block's top ``kk`` is a small part of it)."""
    budget = SCORE_BLOCK_BYTES // 4
    cols = min(n, max(budget // min(queries, 1024), 8 * kk))
    return max(1, min(queries, budget // cols)), cols


def _candidates(scores: np.ndarray, g: int, t: np.ndarray,
                strict: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, score) of every score ≥ ``t`` of its row (> with ``strict``), found by
    screening: column ``j`` of group ``i`` is column ``i·w + j``, the groups' element-wise maximum
    takes one pass at memory speed, and only the columns whose maximum passes are read again."""
    q, b = scores.shape
    w = b // g
    gmax = np.fmax.reduce(scores[:, :g * w].reshape(q, g, w), axis=1) if g > 1 else scores
    r, c = np.nonzero(gmax > t[:, None] if strict else gmax >= t[:, None])
    if g > 1:
        c = (c[:, None] + w * np.arange(g)).ravel()
        r = np.repeat(r, g)
        if g * w < b:  # the last b - g·w columns belong to no group: each is read
            tail = np.arange(g * w, b)
            c = np.concatenate([c, np.tile(tail, q)])
            r = np.concatenate([r, np.repeat(np.arange(q), len(tail))])
    s = scores[r, c]
    keep = s > t[r] if strict else s >= t[r]
    return r[keep], c[keep], s[keep]


def _take(q: int, kk: int, r: np.ndarray, c: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first ``kk`` candidates in the order (-score, column); every row has ≥ ``kk``."""
    order = np.lexsort((c, -s, r))
    r, c, s = r[order], c[order], s[order]
    counts = np.bincount(r, minlength=q)
    rank = np.arange(len(r)) - np.repeat(np.cumsum(counts) - counts, counts)
    take = rank < kk
    idx = np.empty((q, kk), np.int64)
    top = np.empty((q, kk), np.float32)
    idx[r[take], rank[take]] = c[take]
    top[r[take], rank[take]] = s[take]
    return idx, top


def _first_top(scores: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best ``min(kk, columns)`` in the order (-score, column), without partitioning the
    whole block: the ``kk``-th best of the group maxima is at most the ``kk``-th best score (``kk``
    maxima ≥ it are ``kk`` scores ≥ it), so the scores ≥ it hold the answer, ties included."""
    q, b = scores.shape
    if kk >= b:
        order = np.argsort(-scores, axis=1, kind="stable")
        return order, np.take_along_axis(scores, order, axis=1)
    g = max(1, min(GROUPS, b // (8 * kk)))
    w = b // g
    gmax = np.fmax.reduce(scores[:, :g * w].reshape(q, g, w), axis=1) if g > 1 else scores
    t = np.partition(gmax, w - kk, axis=1)[:, w - kk]
    return _take(q, kk, *_candidates(scores, g, t, strict=False))


def _update(best_i: np.ndarray, best_s: np.ndarray, scores: np.ndarray, c0: int) -> None:
    """Merge a later block (columns from ``c0``, all above those in ``best_i``) into the running
    best, in place. Only a score above a row's current ``kk``-th can enter: an equal one comes
    from a higher column, so it ranks below."""
    q, kk = best_i.shape
    r, c, s = _candidates(scores, min(GROUPS, scores.shape[1]), best_s[:, -1], strict=True)
    if len(r) == 0:
        return
    rows = np.unique(r)
    pos = np.searchsorted(rows, r)
    idx, top = _take(len(rows), kk, np.concatenate([np.repeat(np.arange(len(rows)), kk), pos]),
                     np.concatenate([best_i[rows].ravel(), c + c0]),
                     np.concatenate([best_s[rows].ravel(), s]))
    best_i[rows], best_s[rows] = idx, top


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="imagerag-exact")
        return _POOL


def _hnswlib():
    try:
        import hnswlib
    except ImportError as exc:  # a core dependency, but say how to fix a broken install
        raise MissingDependencyError("hnswlib is not installed", hint="pip install hnswlib") from exc
    return hnswlib


class HnswBackend:
    """hnswlib index (space ``ip``), pre-sized and grown 2× under a lock; deletes are marks."""

    kind = "hnsw"

    def __init__(self, dim: int, *, capacity: int = 1024, m: int = HNSW_M,
                 ef_construction: int = HNSW_EF_CONSTRUCTION, threads: int | None = None,
                 index: Any = None) -> None:  # an hnswlib.Index; hnswlib ships no types
        hnswlib = _hnswlib()
        self.dim = dim
        self.threads = threads or os.cpu_count() or 1
        self._lock = threading.RLock()
        if index is None:
            index = hnswlib.Index(space="ip", dim=dim)
            index.init_index(max_elements=max(16, capacity), M=m, ef_construction=ef_construction,
                             random_seed=100, allow_replace_deleted=False)
        self.index: Any = index  # an hnswlib.Index (hnswlib ships no type hints)
        self.index.set_num_threads(self.threads)
        self.deleted = 0
        self._ef: int | None = None  # the search breadth last set
        self.changes = 0
        """Calls that changed the graph since it was loaded or built (added or marked labels)."""

    def __len__(self) -> int:
        return self.index.get_current_count() - self.deleted

    @property
    def capacity(self) -> int:
        return self.index.get_max_elements()

    @property
    def graph_params(self) -> tuple[int, int]:
        """(M, ef_construction) the graph was built with."""
        return int(self.index.M), int(self.index.ef_construction)

    def add(self, vectors: np.ndarray, labels: Sequence[int] | np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) == 0:
            return
        with self._lock:
            needed = self.index.get_current_count() + len(labels)
            if needed > self.capacity:
                self.index.resize_index(max(needed, 2 * self.capacity))
            self.index.add_items(vectors, labels, num_threads=self.threads)
            self.changes += 1

    def mark_deleted(self, labels: Sequence[int]) -> int:
        """Mark labels deleted; labels absent or already deleted are ignored. Returns how many."""
        done = 0
        with self._lock:
            for label in labels:
                try:
                    self.index.mark_deleted(int(label))
                    done += 1
                except RuntimeError:  # not in the index, or already marked
                    pass
            self.deleted += done
            self.changes += bool(done)
        return done

    def count_deleted(self, labels: Sequence[int] | np.ndarray) -> None:
        """Set the count of deleted elements from the live ``labels`` the graph holds (a loaded
        snapshot's marks are not counted by hnswlib's Python API)."""
        self.deleted = max(0, self.index.get_current_count() - len(labels))

    def search(self, queries: np.ndarray, k: int, *, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        # as few calls as can be: this runs on the caches the graph search evicts, where each
        # costs several µs (docs/benchmarks.md, "Fourth pass")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2:
            queries = np.atleast_2d(queries)
        index = self.index
        kk = min(k, index.get_current_count() - self.deleted)
        if kk <= 0 or len(queries) == 0:
            return _pad(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32), k)
        ef = max(ef or query_ef(kk), kk)
        with self._lock:
            if ef != self._ef:  # set only when it changes (no other code sets it)
                index.set_ef(ef)
                self._ef = ef
            labels, dist = index.knn_query(queries, kk, self.threads)
        # hnswlib's uint64 labels are below 2**63: the same bits read as int64, without a copy
        labels = labels.view(np.int64) if labels.dtype == np.uint64 else labels.astype(np.int64)
        scores = _ONE - dist  # float32 arithmetic, as np.subtract(1.0, dist, dtype=float32)
        return (labels, scores) if kk == k else _pad(labels, scores, k)

    def vectors_of(self, labels: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """The vectors the graph holds for ``labels`` (space ``ip`` keeps them as given: the
        stored vectors, bit for bit), and the positions of the labels it lacks or has marked
        deleted (their rows are zero)."""
        out = np.zeros((len(labels), self.dim), np.float32)
        if not len(labels):
            return out, []
        lacking: list[int] = []
        with self._lock:
            try:
                out[:] = self.index.get_items(labels, return_type="numpy")
            except RuntimeError:  # one of them is absent or deleted: take them one by one
                for i, label in enumerate(labels):
                    try:
                        out[i] = self.index.get_items([label], return_type="numpy")[0]
                    except RuntimeError:
                        lacking.append(i)
        return out, lacking

    def save(self, path: Path) -> None:
        """Write atomically and durably (:func:`imagerag_sdk.atomic.replacing`)."""
        with replacing(path) as tmp, self._lock:
            self.index.save_index(str(tmp))

    @classmethod
    def load(cls, path: Path, dim: int, *, capacity: int = 0, deleted: int = 0,
             threads: int | None = None) -> HnswBackend:
        hnswlib = _hnswlib()
        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(str(path), max_elements=max(capacity, 0))
        backend = cls(dim, index=index, threads=threads)
        backend.deleted = deleted
        return backend

    @classmethod
    def build(cls, vectors: np.ndarray, labels: np.ndarray, *, threads: int | None = None,
              m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION) -> HnswBackend:
        backend = cls(vectors.shape[1], capacity=max(16, len(labels)), threads=threads, m=m,
                      ef_construction=ef_construction)
        backend.add(vectors, labels)
        return backend
