"""One corpus on disk: SQLite metadata, raw vectors in a ``.npy``, an optional HNSW snapshot.

Layout of a corpus folder::

    index.sqlite                    items (relative path, hash, size, mtime, sidecar fields, label),
                                    tombstones (labels removed, in order), meta (embedder, root …)
    items.rec                       the items by label, derived for searches (see :mod:`.records`)
    vectors-<gen>.npy               float32 (capacity, dim); row ``label`` holds that item's vector
    hnsw-e<epoch>-n<upto>-t<seq>.bin  hnswlib snapshot covering labels < upto and tombstones ≤ seq
    hnsw-…-recent-n<upto2>-t<seq2>.bin  the recent-adds graph paired with that snapshot (:mod:`.graph_pair`)
    last-ingest.json                the report of the last ``imagerag index`` run
    bm25/                           not the store's: the imagerag-bm25 plugin's saved caption index
    .lock                           held by the one process writing the corpus

SQLite is the source of truth. A batch's vectors are written and flushed *before* the transaction
that records their rows (and advances ``next_label``) commits, so rows at or past ``next_label``
are garbage left by a crash and are simply overwritten. The vectors file is replaced (grown 2×, or
compacted) by writing a new generation and switching the name in the same transaction. HNSW files
are derived caches: the newest one is loaded and brought up to date from SQLite + the vectors
(by a reader only when few are missing: see ``corpus.READER_INSERT_MAX``).
No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import atomic
from ..errors import CorpusError
from ..paths import corpus_dir
from . import items as rows_sql
from .backends import HNSW_EF_CONSTRUCTION, HNSW_M
from .items import SCHEMA, Item, Known, NewItem
from .walhdr import WalHeader

if TYPE_CHECKING:  # imported by a writer only (_take_lock): a search does without it
    from filelock import FileLock

__all__ = ["CorpusStore", "Item", "NewItem", "corpus_dir"]

SCHEMA_VERSION = 1
_HNSW_FILE = re.compile(r"^hnsw-e(\d+)-n(\d+)-t(\d+)\.bin$")


class CorpusStore:
    """Open with :meth:`open`; ``write=True`` takes the corpus's writer lock."""

    def __init__(self, name: str, path: Path, *, write: bool) -> None:
        self.name = name
        self.path = path
        self.write = write
        self._lock: FileLock | None = None
        self._vectors: np.ndarray | None = None
        self._vectors_name: str | None = None
        if write:
            path.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        db = path / "index.sqlite"
        if not write and not db.exists():
            raise CorpusError(f"corpus '{name}' has no index at {path}",
                              hint=f"build it first: imagerag index <folder> --corpus {name}")
        self.db = sqlite3.connect(str(db), timeout=30.0, isolation_level=None, check_same_thread=False)
        wal = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        self.db.execute("PRAGMA synchronous=NORMAL")
        if write:
            self.db.executescript(SCHEMA)
            if self.meta_value("schema_version") is None:
                self._set_meta({"schema_version": SCHEMA_VERSION, "next_label": 0, "generation": 0,
                                "epoch": 0, "capacity": 0, "vectors_file": "", "name": name})
            self._cleanup_orphans()
        version = int(self.meta_value("schema_version") or 0)
        if version != SCHEMA_VERSION:
            raise CorpusError(f"corpus '{name}' at {path} has schema version {version}, "
                              f"this imagerag-sdk reads {SCHEMA_VERSION}",
                              hint="re-index into a new corpus folder")
        # a reader's change check reads the WAL-index header (read above, so SQLite mapped it)
        self._wal = WalHeader.of(db) if wal and not write else None
        self._seen: tuple[bytes, int] | None = None  # (header, data_version) read with it

    @classmethod
    def open(cls, corpus: str | None = None, index_dir: str | os.PathLike | None = None, *,
             write: bool = False) -> CorpusStore:
        name, path = corpus_dir(corpus, index_dir)
        return cls(name, path, write=write)

    # -- lifecycle ---------------------------------------------------------------------------
    def _take_lock(self) -> None:
        # an OS lock on an open file (flock; its Windows counterpart there): never waits, and the OS
        # releases it when the process dies, however it dies. Not thread-local: the store may be
        # closed by another thread than the one that opened it.
        from filelock import FileLock, Timeout

        lock = FileLock(self.path / ".lock", timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise CorpusError(f"corpus '{self.name}' at {self.path} is being written by another process",
                              hint="wait for the other 'imagerag index' run to finish") from None
        self._lock = lock

    def close(self) -> None:
        self._vectors = None
        self._wal = None  # SQLite's mapping of the header goes with the connection
        self.db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> CorpusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cleanup_orphans(self) -> None:
        """Remove files a crash left behind: temp files and vectors generations not in use."""
        current = self.meta_value("vectors_file") or ""
        for p in self.path.iterdir():
            if p.name.endswith(".tmp") or (p.name.startswith("vectors-") and p.name != current):
                p.unlink(missing_ok=True)

    # -- meta --------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def _set_meta(self, values: dict[str, Any], *, in_tx: bool = False) -> None:
        rows = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()]
        if in_tx:
            self.db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows)
        else:
            with self.writing():
                self.db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows)

    def meta_value(self, key: str) -> str | None:
        """One value of the meta table (one indexed row read, not the whole table)."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _int(self, key: str) -> int:
        return int(self.meta_value(key) or 0)

    @property
    def root(self) -> Path | None:
        root = self.meta_value("root")
        return Path(root) if root else None

    @property
    def embedder_identity(self) -> str | None:
        return self.meta_value("embedder_identity")

    @property
    def embedder_spec(self) -> dict[str, Any] | None:
        raw = self.meta_value("embedder_spec")
        return json.loads(raw) if raw else None

    @property
    def dim(self) -> int:
        return self._int("dim")

    @property
    def next_label(self) -> int:
        return self._int("next_label")

    @property
    def epoch(self) -> int:
        return self._int("epoch")

    @property
    def graph_params(self) -> tuple[int, int]:
        """(M, ef_construction) of the HNSW graph (the defaults for a corpus that never set them)."""
        return self._int("hnsw_m") or HNSW_M, self._int("hnsw_ef_construction") or HNSW_EF_CONSTRUCTION

    def set_graph_params(self, m: int, ef_construction: int) -> None:
        """Record the graph parameters; a graph built with others is rebuilt by the next writer."""
        self._set_meta({"hnsw_m": m, "hnsw_ef_construction": ef_construction})

    def bind(self, *, root: Path, identity: str | None, spec: dict[str, Any] | None) -> None:
        """Record (first run) or check (later runs) the corpus root and the embedder identity.

        ``identity=None`` checks the root only; only for a corpus that has stored vectors."""
        meta = self.meta
        if identity is None and (not meta.get("embedder_identity") or self.next_label == 0):
            raise ValueError(f"corpus '{self.name}' has no stored embedder identity to keep")
        if meta.get("root") and self.count() == 0 and self.next_label == 0:
            meta = {}  # nothing was ever stored: a new folder or embedder may take it over
        if meta.get("root") and Path(meta["root"]) != root:
            raise CorpusError(f"corpus '{self.name}' indexes {meta['root']}, not {root}",
                              hint="index this folder under another --corpus name")
        if identity is not None and meta.get("embedder_identity") and meta["embedder_identity"] != identity:
            raise CorpusError(
                f"corpus '{self.name}' was built with embedder '{meta['embedder_identity']}', "
                f"not '{identity}'",
                hint="use the embedder it was built with, or index into a new --corpus name")
        if not meta.get("root"):
            self._set_meta({"root": str(root), "dim": 0, "embedder_identity": identity,
                            "embedder_spec": json.dumps(spec) if spec is not None else "",
                            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    # -- reading -----------------------------------------------------------------------------
    def items(self) -> dict[str, Item]:
        return rows_sql.read_items(self.db)

    def known(self) -> dict[str, Known]:
        """What a re-run compares the folder with, by path (no :class:`Item` built per row)."""
        return rows_sql.read_known(self.db)

    def file_stats(self) -> list[tuple[str, int, int, str]]:
        """(path, size, mtime_ns, sidecar_sig) of every item, in table order, from one query: what
        a re-run compares its walk with (a tuple per row, nothing else built)."""
        return self.db.execute("SELECT path, size, mtime_ns, sidecar_sig FROM items").fetchall()

    def known_of(self, paths: Sequence[str]) -> dict[str, Known]:
        """:meth:`known` of the indexed ``paths`` only (500 a statement)."""
        out: dict[str, Known] = {}
        for i in range(0, len(paths), 500):
            chunk = list(paths[i:i + 500])
            rows = self.db.execute("SELECT path, size, mtime_ns, sidecar_sig, hash FROM items WHERE path IN "
                                   f"({','.join('?' * len(chunk))})", chunk)
            out.update((r[0], Known(*r[1:])) for r in rows)
        return out

    def hash_labels(self, paths: Sequence[str] | None = None) -> dict[str, int]:
        """The label of each content hash indexed (of ``paths`` only, if given): a renamed or
        copied file reuses its vector."""
        return rows_sql.read_hash_labels(self.db, paths)

    def items_of_epoch(self, labels: Iterable[int]) -> tuple[int | None, dict[int, Item]]:
        """(epoch, items by label): the rows read with the epoch they belong to, in one statement
        per 500 labels (each sees one committed state); epoch ``None`` when no row was found.
        Different epochs across statements (a compaction in between) give epoch ``-1``."""
        return rows_sql.read_of_epoch(self.db, labels)

    def live_labels(self, start: int = 0) -> np.ndarray:
        """Labels of the live items (those ≥ ``start``), ascending: see :func:`.items.read_live_labels`."""
        return rows_sql.read_live_labels(self.db, start, self.next_label)

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def tombstones_after(self, seq: int, until: int | None = None) -> tuple[list[int], int]:
        """Labels removed after tombstone ``seq`` (up to ``until``), and the last seq read."""
        rows = self.db.execute("SELECT seq, label FROM tombstones WHERE seq > ? AND seq <= ? ORDER BY seq",
                               (seq, 2**62 if until is None else until)).fetchall()
        last = rows[-1][0] if rows else seq
        return [r[1] for r in rows], int(last)

    def last_tombstone(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM tombstones").fetchone()[0])

    def vectors(self) -> np.ndarray:
        """The vectors file as a read-only memmap of shape (capacity, dim); rows ≥ next_label are junk."""
        name = self.meta_value("vectors_file") or ""
        if not name:
            return np.zeros((0, self.dim), np.float32)
        if self._vectors is None or self._vectors_name != name:
            self._vectors = self.open_vectors(name)
            self._vectors_name = name
        return self._vectors

    def open_vectors(self, name: str) -> np.ndarray:
        """One vectors file (``meta['vectors_file']`` at some moment) as a memmap; a reader keeps
        it open, so the rows stay readable after a writer switched to a new file and removed it."""
        if not name:
            return np.zeros((0, self.dim), np.float32)
        return np.load(self.path / name, mmap_mode="r+" if self.write else "r", allow_pickle=False)

    def get_vectors(self, labels: Sequence[int] | np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.ascontiguousarray(self.vectors()[labels], dtype=np.float32)

    def data_version(self) -> int:
        """A number that changes whenever another connection commits (cheap: no table is read).

        ``PRAGMA data_version``, skipped while the WAL-index header equals the one read just
        before the last one asked (no commit since: :mod:`.walhdr`)."""
        wal, seen = self._wal, self._seen
        raw = b""
        if wal is not None:
            raw = wal.raw()
            if seen is not None and raw == seen[0]:
                return seen[1]
        version = int(self.db.execute("PRAGMA data_version").fetchone()[0])
        if wal is not None:  # the header read before the statement: a commit between is seen next time
            self._seen = (raw, version) if WalHeader.trusted(raw) else None
        return version

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Everything read inside sees one committed state of the database (a read transaction)."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """A write transaction: committed, or rolled back on an exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _new_vectors_file(self, capacity: int, rows: np.ndarray | None) -> str:
        gen = self._int("generation") + 1
        name = f"vectors-{gen:06d}.npy"
        # durable under its final name before the transaction that switches to it commits
        with atomic.replacing(self.path / name) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(capacity, self.dim))
            if rows is not None and len(rows):
                arr[: len(rows)] = rows
            arr.flush()
            del arr
        return name

    def _switch_vectors(self, name: str, capacity: int, extra: dict[str, Any] | None = None) -> None:
        old = self.meta_value("vectors_file") or ""
        with self.writing():
            self._set_meta({"vectors_file": name, "capacity": capacity,
                            "generation": self._int("generation") + 1, **(extra or {})}, in_tx=True)
        self._vectors = None
        if old and old != name:
            (self.path / old).unlink(missing_ok=True)

    def ensure_capacity(self, needed: int, dim: int) -> None:
        """Grow the vectors file (2×, at least 1024 rows) so ``needed`` rows fit."""
        if not self.dim:
            self._set_meta({"dim": dim})
        elif self.dim != dim:
            raise CorpusError(f"corpus '{self.name}' holds {self.dim}-d vectors, the embedder gives {dim}-d",
                              hint="index into a new --corpus name")
        capacity = self._int("capacity")
        if needed <= capacity:
            return
        new_cap = max(1024, 2 * capacity, needed)
        used = self.next_label
        rows = np.asarray(self.vectors()[:used]) if used else None
        self._switch_vectors(self._new_vectors_file(new_cap, rows), new_cap)

    def commit(self, adds: Sequence[NewItem], vectors: np.ndarray, *,
               updates: Sequence[NewItem] = (), deletes: Sequence[str] = ()) -> None:
        """Write one batch: new/changed rows with their vectors, metadata-only updates, deletions.

        Vectors are flushed to disk before the transaction that makes them visible commits."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(adds) != len(vectors):
            raise ValueError(f"{len(adds)} rows but {len(vectors)} vectors")
        start = self.next_label
        if len(adds):
            self.ensure_capacity(start + len(adds), vectors.shape[1])
            mm = self.vectors()
            assert isinstance(mm, np.memmap)  # ensure_capacity made the file: np.load mapped it
            mm[start:start + len(adds)] = vectors
            mm.flush()
        with self.writing():
            rows_sql.write_rows(self.db, adds, start, updates, deletes)
            if len(adds):
                self._set_meta({"next_label": start + len(adds)}, in_tx=True)

    def dead_fraction(self) -> float:
        used = self.next_label
        return (used - self.count()) / used if used else 0.0

    def compact(self) -> None:
        """Rewrite the vectors with only live rows, renumber labels 0..n-1, start a new epoch."""
        labels = self.live_labels()
        rows = self.get_vectors(labels)
        capacity = max(1024, 2 * len(labels))
        name = self._new_vectors_file(capacity, rows)
        old_name = self.meta_value("vectors_file") or ""
        with self.writing():
            rows_sql.renumber(self.db, labels)
            self._set_meta({"vectors_file": name, "capacity": capacity, "next_label": len(labels),
                            "generation": self._int("generation") + 1, "epoch": self.epoch + 1},
                           in_tx=True)
        self._vectors = None
        if old_name and old_name != name:
            (self.path / old_name).unlink(missing_ok=True)
        for p in self.path.glob("hnsw-*.bin"):
            p.unlink(missing_ok=True)

    # -- hnsw snapshots ------------------------------------------------------------------------
    def hnsw_snapshots(self, epoch: int | None = None) -> list[tuple[int, int, Path]]:
        """(labels covered, tombstone seq, file) of this (or ``epoch``'s) snapshots, newest first."""
        epoch = self.epoch if epoch is None else epoch
        out = []
        for p in self.path.glob("hnsw-*.bin"):
            m = _HNSW_FILE.match(p.name)
            if m and int(m.group(1)) == epoch:
                out.append((int(m.group(2)), int(m.group(3)), p))
        return sorted(out, reverse=True)

    def hnsw_path(self, upto: int, seq: int) -> Path:
        return self.path / f"hnsw-e{self.epoch}-n{upto}-t{seq}.bin"

    def note_root(self, identity: str | None) -> None:
        """Record the identity (:func:`~imagerag_sdk.index.confine.root_identity`) of the root whose
        files the writer just checked: a reader opening the corpus under another one checks every
        item's path again."""
        if identity is not None and self.meta_value("root_id") != identity:
            self._set_meta({"root_id": identity})

    def note_graph(self, name: str, params: tuple[int, int]) -> None:
        """Record the newest snapshot's name and (M, ef_construction) it was built with (its
        commit tells readers to look; a writer with nothing to add need not load it)."""
        self._set_meta({"hnsw_snapshot": name, "hnsw_snapshot_params": f"{params[0]},{params[1]}"})

    def note_resolved(self, record: dict[str, Any] | None) -> None:
        """Record which classes the plugin registry gave for the corpus's component names, with the
        plugin set (:func:`imagerag_sdk.resolutions.record`); a search builds them from it."""
        if record is not None:
            self._set_meta({"resolved": json.dumps(record, sort_keys=True)})

    @property
    def graph_recorded(self) -> tuple[int, int] | None:
        """(M, ef_construction) of the snapshot :meth:`note_graph` recorded, if it recorded them."""
        raw = self.meta_value("hnsw_snapshot_params")
        if not raw:
            return None
        m, ef_construction = raw.split(",")
        return int(m), int(ef_construction)

    def write_report(self, report: dict[str, Any]) -> Path:
        path = self.path / "last-ingest.json"
        atomic.write_text(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
        return path
