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


def query_ef(k: int) -> int:
    return max(100, 2 * k)


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

    def __init__(self, vectors: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.labels = (np.arange(len(self.vectors), dtype=np.int64) if labels is None
                       else np.asarray(labels, dtype=np.int64))
        if len(self.labels) != len(self.vectors):
            raise ValueError("one label per vector")

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int, *, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k``; ``ef`` is taken for the backends' common signature and ignored."""
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
        chunk = max(1, int(2**28 // max(1, n * 4)))  # ≤ 256 MB of scores at a time
        all_l, all_s = [], []
        for start in range(0, len(queries), chunk):
            scores = queries[start:start + chunk] @ self.vectors.T
            if kk < n:
                part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            else:
                part = np.broadcast_to(np.arange(n), (len(scores), n))
            top = np.take_along_axis(scores, part, axis=1)
            order = np.argsort(-top, axis=1, kind="stable")
            idx = np.take_along_axis(part, order, axis=1)
            all_l.append(self.labels[idx])
            all_s.append(np.take_along_axis(top, order, axis=1))
        return _pad(np.concatenate(all_l), np.concatenate(all_s).astype(np.float32), k)

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
                 index: Any | None = None) -> None:
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
        return done

    def search(self, queries: np.ndarray, k: int, *, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.ascontiguousarray(queries, dtype=np.float32))
        kk = min(k, len(self))
        if kk <= 0 or len(queries) == 0:
            return _pad(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32), k)
        with self._lock:
            self.index.set_ef(max(ef or query_ef(kk), kk))
            labels, dist = self.index.knn_query(queries, k=kk, num_threads=self.threads)
        return _pad(labels.astype(np.int64), (1.0 - dist).astype(np.float32), k)

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
