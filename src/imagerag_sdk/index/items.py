"""Rows of a corpus's ``items`` table: the SQLite schema, what is read back, what is written (the
statements :class:`~imagerag_sdk.index.store.CorpusStore` runs on them)."""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    label INTEGER NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sidecar_sig TEXT NOT NULL DEFAULT '',
    caption TEXT, license TEXT, source TEXT,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS items_hash ON items(hash);
CREATE TABLE IF NOT EXISTS tombstones(seq INTEGER PRIMARY KEY AUTOINCREMENT, label INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('items_token', 'dirty');
CREATE TABLE IF NOT EXISTS items_changed(label INTEGER PRIMARY KEY);
""" + "".join(f"""
CREATE TRIGGER IF NOT EXISTS items_rec_{event.lower()} AFTER {event} ON items BEGIN
{"".join(f"INSERT OR IGNORE INTO items_changed(label) VALUES ({row}.label); " for row in rows)}
UPDATE meta SET value = 'dirty' WHERE key = 'items_token' AND value IS NOT 'dirty'; END;"""
                for event, rows in (("INSERT", ("NEW",)), ("UPDATE", ("OLD", "NEW")), ("DELETE", ("OLD",))))
"""Tables, and triggers that, in the transaction of any change to an item and whichever writer
makes it, mark the item record file stale and note the labels changed since it was written
(:mod:`~imagerag_sdk.index.records`)."""
COLUMNS = "id, path, label, hash, size, mtime_ns, sidecar_sig, caption, license, source, extra"


@dataclass(frozen=True)
class Item:
    """One indexed image as SQLite stores it."""

    id: int
    path: str
    """Relative to the corpus root, POSIX separators."""
    label: int
    hash: str
    size: int
    mtime_ns: int
    sidecar_sig: str = ""
    caption: str | None = None
    license: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        if self.caption is not None:
            out["caption"] = self.caption
        if self.license is not None:
            out["license"] = self.license
        if self.source is not None:
            out["source"] = self.source
        out["relpath"] = self.path
        out["sha256"] = self.hash
        return out

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Item:
        """The item of a row in :data:`COLUMNS` order (``extra`` as stored: JSON text or null).

        Filled in without the dataclass's ``__init__`` (one ``object.__setattr__`` per field, a
        third of a search's cost per item read): the same object."""
        id_, path, label, hash_, size, mtime_ns, sidecar_sig, caption, license_, source, extra = row
        item = object.__new__(cls)
        item.__dict__.update(id=id_, path=path, label=label, hash=hash_, size=size, mtime_ns=mtime_ns,
                             sidecar_sig=sidecar_sig, caption=caption, license=license_, source=source,
                             extra=json.loads(extra) if extra else {})  # names, not zip(): half the time
        return item


_FIELDS = tuple(f.strip() for f in COLUMNS.split(","))
assert _FIELDS == tuple(Item.__dataclass_fields__), "the columns are the item's fields, in order"
assert tuple(Item.from_row(_FIELDS[:10] + (None,)).__dict__.values()) == _FIELDS[:10] + ({},), \
    "from_row fills in each field from its column"


class Known(NamedTuple):
    """What a re-run compares a scanned file with: an item's row without its metadata."""

    size: int
    mtime_ns: int
    sidecar_sig: str
    hash: str


@dataclass(frozen=True)
class NewItem:
    """A row to insert (or to replace the row at the same path)."""

    path: str
    hash: str
    size: int
    mtime_ns: int
    sidecar_sig: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    """caption / license / source and any other sidecar keys."""

    def columns(self) -> tuple[Any, ...]:
        extra = {k: v for k, v in self.fields.items() if k not in ("caption", "license", "source")}
        return (self.hash, self.size, self.mtime_ns, self.sidecar_sig, self.fields.get("caption"),
                self.fields.get("license"), self.fields.get("source"),
                json.dumps(extra, sort_keys=True) if extra else None)


Entry = tuple[Item, str | None, dict[str, Any]]
"""An item, its absolute path, checked to lie under the corpus root (``None``: it does not), and
its :meth:`Item.metadata` (each hit gets a copy: one C call instead of building it again)."""


class ItemCache:
    """The entries of the labels a view's searches returned, the least recently used dropped
    beyond ``size`` (callers serialise access). An ``OrderedDict``: dropping the oldest entry of a
    plain dict again and again makes each next drop scan the dead slots left at its front."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[int, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, label: int) -> Entry | None:
        entry = self._entries.get(label)
        if entry is not None:
            self._entries.move_to_end(label)  # now the most recently used
        return entry

    def put(self, label: int, entry: Entry) -> None:
        self._entries[label] = entry
        self._entries.move_to_end(label)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def take(self, labels: Iterable[int], out: dict[int, Entry]) -> list[int]:
        """Put the entries held for ``labels`` into ``out`` (now the most recently used); returns
        the labels not held, in order (:meth:`get` for each, in one call)."""
        entries, missing = self._entries, []
        for label in labels:
            entry = entries.get(label)
            if entry is None:
                missing.append(label)
            else:
                entries.move_to_end(label)
                out[label] = entry
        return missing

    def put_all(self, found: dict[int, Entry]) -> None:
        """:meth:`put` each of ``found``, in order."""
        entries = self._entries
        for label, entry in found.items():
            entries[label] = entry
            entries.move_to_end(label)
        for _ in range(len(entries) - self.size):
            entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


# -- the statements ---------------------------------------------------------------------------
def read_items(db: sqlite3.Connection) -> dict[str, Item]:
    return {r[1]: Item.from_row(r) for r in db.execute(f"SELECT {COLUMNS} FROM items").fetchall()}


def read_known(db: sqlite3.Connection) -> dict[str, Known]:
    rows = db.execute("SELECT path, size, mtime_ns, sidecar_sig, hash FROM items")
    return {r[0]: Known(r[1], r[2], r[3], r[4]) for r in rows}


def read_hash_labels(db: sqlite3.Connection, paths: Sequence[str] | None) -> dict[str, int]:
    if paths is None:
        return dict(db.execute("SELECT hash, label FROM items"))
    out: dict[str, int] = {}
    for i in range(0, len(paths), 500):
        chunk = list(paths[i:i + 500])
        marks = ",".join("?" * len(chunk))
        out.update(db.execute(f"SELECT hash, label FROM items WHERE path IN ({marks})", chunk))
    return out


def read_of_epoch(db: sqlite3.Connection, labels: Iterable[int]) -> tuple[int | None, dict[int, Item]]:
    labels = [int(x) for x in labels]
    out: dict[int, Item] = {}
    epoch: int | None = None
    for i in range(0, len(labels), 500):
        chunk = labels[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for r in db.execute(f"SELECT (SELECT value FROM meta WHERE key = 'epoch'), {COLUMNS} "
                            f"FROM items WHERE label IN ({marks})", chunk):
            this = int(r[0] or 0)
            epoch = this if epoch is None or epoch == this else -1
            item = Item.from_row(r[1:])
            out[item.label] = item
    return epoch, out


def read_live_labels(db: sqlite3.Connection, start: int, upto: int) -> np.ndarray:
    """Labels of the live items (those ≥ ``start``; ``upto``: the store's ``next_label``), ascending.

    Within an epoch every label below ``next_label`` was given to one item, and each one
    removed or replaced since left a tombstone (a compaction renumbers 0..n-1 and clears
    them), so the live labels are that range less the tombstones: read without a row per
    item. The count of items checks it; should it ever disagree, the labels are read."""
    dead = np.fromiter((r[0] for r in db.execute(
        "SELECT label FROM tombstones WHERE label >= ?", (start,))), dtype=np.int64)
    labels = np.arange(start, max(start, upto), dtype=np.int64)
    if len(dead):
        labels = labels[~np.isin(labels, dead)]
    count = db.execute("SELECT COUNT(*) FROM items WHERE label >= ?", (start,)).fetchone()[0]
    if count == len(labels):
        return labels
    rows = db.execute("SELECT label FROM items WHERE label >= ? ORDER BY label", (start,)).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def write_rows(db: sqlite3.Connection, adds: Sequence[NewItem], start: int, updates: Sequence[NewItem],
               deletes: Sequence[str]) -> None:
    """Inside the caller's transaction: ``adds`` at labels ``start``… (a row at the same path
    replaced, its old label tombstoned), metadata-only ``updates``, ``deletes`` by path."""
    for i, item in enumerate(adds):
        old = db.execute("SELECT label FROM items WHERE path=?", (item.path,)).fetchone()
        if old is None:
            db.execute("INSERT INTO items(path, label, hash, size, mtime_ns, sidecar_sig, caption, "
                       "license, source, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (item.path, start + i, *item.columns()))
        else:
            db.execute("INSERT INTO tombstones(label) VALUES (?)", (old[0],))
            db.execute("UPDATE items SET label=?, hash=?, size=?, mtime_ns=?, sidecar_sig=?, "
                       "caption=?, license=?, source=?, extra=? WHERE path=?",
                       (start + i, *item.columns(), item.path))
    for item in updates:
        db.execute("UPDATE items SET hash=?, size=?, mtime_ns=?, sidecar_sig=?, caption=?, "
                   "license=?, source=?, extra=? WHERE path=?", (*item.columns(), item.path))
    for path in deletes:
        old = db.execute("SELECT label FROM items WHERE path=?", (path,)).fetchone()
        if old is not None:
            db.execute("INSERT INTO tombstones(label) VALUES (?)", (old[0],))
            db.execute("DELETE FROM items WHERE path=?", (path,))


def renumber(db: sqlite3.Connection, labels: Sequence[int] | np.ndarray) -> None:
    """Inside the caller's transaction: the item at ``labels[i]`` gets label ``i``; no tombstone left."""
    # two passes keep the UNIQUE(label) constraint satisfied
    db.executemany("UPDATE items SET label=? WHERE label=?", [(-1 - new, int(old)) for new, old in enumerate(labels)])
    db.execute("UPDATE items SET label = -1 - label WHERE label < 0")
    db.execute("DELETE FROM tombstones")
