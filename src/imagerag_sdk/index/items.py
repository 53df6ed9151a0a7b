"""Rows of a corpus's ``items`` table: the SQLite schema, what is read back, what is written."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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
"""
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
        for key in ("caption", "license", "source"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["relpath"] = self.path
        out["sha256"] = self.hash
        return out

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Item:
        (id_, path, label, hash_, size, mtime_ns, sidecar_sig, caption, license_, source, extra) = row
        return cls(id_, path, label, hash_, size, mtime_ns, sidecar_sig, caption, license_, source,
                   json.loads(extra) if extra else {})


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


Entry = tuple[Item, str | None]
"""An item and its absolute path, checked to lie under the corpus root (``None``: it does not)."""


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

    def clear(self) -> None:
        self._entries.clear()
