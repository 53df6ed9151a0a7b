"""``items.rec``: every item of a corpus by label, read by searches with one ``pread`` per hit.

SQLite stays the source of truth. The writer derives this file from it at the end of an index
run (:func:`write_records`); a reader uses it only while it matches the store's current state and
otherwise reads the items from SQLite, with the same answers.

How a reader knows it matches: the meta value ``items_token``. Triggers on the ``items`` table
(:data:`~imagerag_sdk.index.items.SCHEMA`, so every writer of the corpus, of any version, fires
them) set it to ``dirty`` in the transaction of any change to an item: added, replaced, removed,
its metadata updated, relabelled by a compaction; they also note the labels changed in the table
``items_changed``. :func:`write_records` reads the rows (only the changed ones, the rest copied
from the file last written, when it can), writes the file under a fresh random token (atomically:
:func:`~imagerag_sdk.atomic.replacing`) and only then commits that token, if it is still the one
it read, and clears the changed labels. A reader uses the file when its header holds the token
the reader's view read with its labels (one transaction), so a crash anywhere, a write without a
new file, a file removed, truncated or replaced, all leave readers on SQLite until the next index
run writes the file again.

Layout, little-endian::

    header (64 bytes)  b"IRAGREC1", token (32 ASCII hex digits), labels n (u64), data bytes (u64),
                       crc32 of all that follows (u32), crc32 of the header's first 60 bytes (u32)
    offsets            n + 1 u64: the record of label L is data[offsets[L]:offsets[L + 1]]
                       (empty: no item holds L)
    data               per record: crc32 of the rest (u32); id, label, size, mtime_ns (i64 each);
                       the lengths in characters of path, hash, sidecar_sig, caption, license,
                       source, extra (i32 each, -1 for null); those texts, one after the other, in
                       UTF-8 (``extra`` as stored: JSON text). Decoded with one ``struct`` call and
                       one UTF-8 decode: about twice as fast as a JSON row.

A reader checks the header and the offsets when it opens the file and each record's crc and label
when it reads one; the writer checks the crc of the whole file before it keeps one.
"""

from __future__ import annotations

import logging
import mmap
import os
import secrets
import struct
import weakref
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .. import atomic
from .items import COLUMNS, Item
from .store import CorpusStore

log = logging.getLogger(__name__)

RECORDS = "items.rec"
TOKEN = "items_token"
BASE = "items_base"
"""The token of the record file last committed: the base of an incremental rewrite."""
DIRTY = "dirty"
MAGIC = b"IRAGREC1"
_HEAD = struct.Struct("<8s32sQQII")
_PAIR = struct.Struct("<QQ")
_CRC = struct.Struct("<I")
_PREAD = hasattr(os, "pread")
"""Not on Windows, where a file a reader keeps open (mapped) could not be replaced either: there
readers read SQLite."""
_ROW = struct.Struct("<qqqq7i")
_TEXT_AT = 4 + _ROW.size
_TEXTS = (1, 3, 6, 7, 8, 9, 10)
"""Positions in a row (:data:`~imagerag_sdk.index.items.COLUMNS`) of the texts, in record order."""


def _release(mapped: mmap.mmap, fd: int) -> None:
    mapped.close()
    os.close(fd)


class ItemRecords:
    """An open record file of one token (the reader keeps it open: a writer replacing the file
    removes only the name). Build with :meth:`open`."""

    def __init__(self, path: Path, token: str, fd: int, mapped: mmap.mmap, n: int, crc: int) -> None:
        self.path, self.token = path, token
        self._fd = fd
        self._map, self._n, self._data_at, self._crc = mapped, n, _HEAD.size + 8 * (n + 1), crc
        # closed when this object goes, or at exit while the modules are still whole (a ``__del__``
        # run during the interpreter's teardown can find ``os`` already gone)
        self._release = weakref.finalize(self, _release, mapped, fd)
        self.broken = False
        """Set when a record failed its check: the caller reads SQLite from then on."""

    @classmethod
    def open(cls, folder: Path, token: str | None, *, quiet: bool = False) -> ItemRecords | None:
        """The folder's record file if it holds ``token`` and its structure checks out, else
        ``None`` (a stale, missing or damaged file: read the items from SQLite)."""
        if not token or token == DIRTY or not _PREAD:
            return None
        path = folder / RECORDS
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:  # unreadable here (permissions…): SQLite still answers
            if not quiet:
                log.warning("corpus item records %s cannot be read (%s): items are read from SQLite "
                            "(slower)", path, exc.strerror or exc)
            return None
        records: ItemRecords | None = None
        try:
            problem, records = cls._check(path, token, fd)
        except OSError as exc:  # not a readable file (a folder there…)
            problem = exc.strerror or str(exc)
        finally:
            if records is None:
                os.close(fd)
        if problem and not quiet:
            log.warning("corpus item records %s are damaged (%s): items are read from SQLite (slower) "
                        "until the next 'imagerag index' run rewrites them", path, problem)
        return records

    @classmethod
    def _check(cls, path: Path, token: str, fd: int) -> tuple[str, ItemRecords | None]:
        """(what is wrong, "" for nothing; the records when they hold ``token`` and check out)."""
        size = os.fstat(fd).st_size
        head = os.pread(fd, _HEAD.size, 0)
        if len(head) < _HEAD.size:
            return "truncated header", None
        magic, tok, n, data_len, crc, head_crc = _HEAD.unpack(head)
        if magic != MAGIC or zlib.crc32(head[:60]) != head_crc:
            return "bad header", None
        if tok != token.encode():
            return "", None  # stale: derived from another state of the store
        if size != _HEAD.size + 8 * (n + 1) + data_len:
            return f"{size} bytes, the header says {_HEAD.size + 8 * (n + 1) + data_len}", None
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        offsets = np.frombuffer(mapped, "<u8", count=n + 1, offset=_HEAD.size)
        ok = offsets[0] == 0 and offsets[-1] == data_len and bool((offsets[1:] >= offsets[:-1]).all())
        del offsets  # no buffer left exported: the map can be closed
        if not ok:
            mapped.close()
            return "bad offsets", None
        return "", cls(path, token, fd, mapped, n, crc)

    def whole(self) -> bool:
        """Whether the crc of the offsets and the data matches the header's (reads them all)."""
        return zlib.crc32(self._map[_HEAD.size:]) == self._crc

    def get(self, labels: Iterable[int]) -> dict[int, Item] | None:
        """The items holding ``labels`` (a label no item holds is absent), or ``None`` when a
        record fails its check (then :attr:`broken` is set: read SQLite)."""
        out: dict[int, Item] = {}
        fd, mapped, n, data_at, pair, crc = self._fd, self._map, self._n, self._data_at, _PAIR, zlib.crc32
        assert fd is not None  # open until collected
        for label in labels:
            if not 0 <= label < n:
                continue
            start, end = pair.unpack_from(mapped, _HEAD.size + 8 * label)
            if start == end:
                continue
            raw = os.pread(fd, end - start, data_at + start)
            try:
                if len(raw) != end - start or crc(raw[4:]) != _CRC.unpack_from(raw)[0]:
                    raise ValueError("checksum")
                out[label] = _decode(raw, label)
            except (ValueError, TypeError, struct.error) as exc:
                self.broken = True
                log.warning("corpus item records %s are damaged (%s at label %d): items are read from "
                            "SQLite (slower) until the next 'imagerag index' run rewrites them",
                            self.path, exc, label)
                return None
        return out


def _encode(row: tuple) -> bytes:
    texts = [row[i] for i in _TEXTS]
    body = _ROW.pack(row[0], row[2], row[4], row[5], *(-1 if t is None else len(t) for t in texts))
    body += "".join(t for t in texts if t is not None).encode()
    return _CRC.pack(zlib.crc32(body)) + body


def _decode(raw: bytes, label: int) -> Item:
    id_, got, size, mtime_ns, *lengths = _ROW.unpack_from(raw, 4)
    if got != label:
        raise ValueError(f"label {got} at {label}")
    text = raw[_TEXT_AT:].decode()
    texts: list[str | None] = []
    at = 0
    for n in lengths:
        if n < 0:
            texts.append(None)
        else:
            texts.append(text[at:at + n])
            at += n
    if at != len(text):
        raise ValueError("lengths")
    path, hash_, sidecar_sig, caption, license_, source, extra = texts
    return Item.from_row((id_, path, label, hash_, size, mtime_ns, sidecar_sig, caption, license_, source, extra))


def write_records(store: CorpusStore, *, full: bool = False) -> bool:
    """Bring the store's record file in step with its items (writers only: the caller holds
    the corpus's writer lock). Returns whether it wrote one.

    Incremental when it can: the file last committed (meta ``items_base``), whole, with the
    records of the labels changed since (the ``items_changed`` table the triggers fill) read from
    SQLite and encoded again, the others copied; every row read and encoded with ``full``, when
    that file is gone or damaged, or when more than a quarter of the labels changed (a
    compaction renumbers them all).

    The file is written before the token naming it is committed (with the base, clearing the
    changed labels): a crash in between leaves a file no reader uses and the changes noted. A
    row that cannot be written (a value SQLite holds as a blob) leaves the token ``dirty``, with
    a warning: readers read SQLite."""
    if not _PREAD:
        return False
    with store.reading():
        token = store.meta_value(TOKEN)
        if token is not None and token != DIRTY:
            current = ItemRecords.open(store.path, token)
            if current is not None and current.whole():
                return False
        n = store.next_label
        base = None if full else ItemRecords.open(store.path, store.meta_value(BASE), quiet=True)
        changed = [r[0] for r in store.db.execute("SELECT label FROM items_changed WHERE label >= 0")]
        if base is not None and (len(changed) > n // 4 or not base.whole()):
            base = None
        if base is None:
            rows = store.db.execute(f"SELECT {COLUMNS} FROM items").fetchall()
        else:
            rows = []
            for i in range(0, len(changed), 500):
                chunk = changed[i:i + 500]
                rows += store.db.execute(f"SELECT {COLUMNS} FROM items WHERE label IN "
                                         f"({','.join('?' * len(chunk))})", chunk).fetchall()
    try:
        encoded = {row[2]: _encode(row) for row in rows}
    except (TypeError, struct.error) as exc:  # a value SQLite holds in another type than its column's
        log.warning("corpus '%s': item records not written (%s): searches read the items from "
                    "SQLite (slower)", store.name, exc)
        return False
    if max(encoded, default=-1) >= n:
        raise AssertionError(f"an item holds label {max(encoded)}, next_label is {n}")
    table, data = _assemble(n, encoded, base, changed)
    fresh = secrets.token_hex(16)
    head = _HEAD.pack(MAGIC, fresh.encode(), n, len(data), zlib.crc32(data, zlib.crc32(table)), 0)[:60]
    with atomic.replacing(store.path / RECORDS) as tmp, open(tmp, "wb") as f:
        f.write(head + _CRC.pack(zlib.crc32(head)))
        f.write(table)
        f.write(data)
    with store.writing():
        if store.db.execute("UPDATE meta SET value=? WHERE key=? AND value IS ?",
                            (fresh, TOKEN, token)).rowcount != 1:
            return False  # changed meanwhile (no writer should have): the file is not used
        store.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (BASE, fresh))
        store.db.execute("DELETE FROM items_changed")
    return True


def _assemble(n: int, encoded: dict[int, bytes], base: ItemRecords | None,
              changed: list[int]) -> tuple[bytes, bytes]:
    """(offsets table, data) for labels 0..n-1: ``encoded`` records, the others copied from
    ``base`` (labels in ``changed`` that no row holds any more: empty)."""
    lengths = np.zeros(n, np.int64)
    for label, record in encoded.items():
        lengths[label] = len(record)
    if base is None:
        offsets = np.zeros(n + 1, "<u8")
        np.cumsum(lengths, out=offsets[1:])
        return offsets.tobytes(), b"".join(encoded[label] for label in sorted(encoded))
    have = min(n, base._n)
    old = np.frombuffer(base._map, "<u8", count=base._n + 1, offset=_HEAD.size).astype(np.int64)
    redone = sorted({x for x in changed if x < n} | encoded.keys())
    keep = np.ones(have, bool)
    keep[[x for x in redone if x < have]] = False
    lengths[:have][keep] = np.diff(old)[:have][keep]
    offsets = np.zeros(n + 1, "<u8")
    np.cumsum(lengths, out=offsets[1:])
    parts: list[bytes] = []
    at, mapped, data_at = 0, base._map, base._data_at
    ends: list[int | None] = [*redone, None]
    for end in ends:  # the unchanged run before each label redone (and the last): one copy
        stop = have if end is None else min(end, have)
        if stop > at:
            parts.append(mapped[data_at + int(old[at]):data_at + int(old[stop])])
        if end is not None:
            if end in encoded:
                parts.append(encoded[end])
            at = max(at, end + 1)
    return offsets.tobytes(), b"".join(parts)
