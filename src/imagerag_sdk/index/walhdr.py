"""Whether another connection committed to a SQLite database, read from memory: its WAL-index
header (https://www.sqlite.org/walformat.html, "The WAL-Index Format").

In WAL mode every connection to a database maps its ``-shm`` file, whose first 96 bytes are two
copies of a 48-byte header. Every commit rewrites both (its ``iChange`` counter, ``mxFrame`` and
frame checksums change; a WAL reset after a checkpoint changes the salts and counts on), copy 1
first, then copy 0, and readers use the header only when the two are equal. So when the header
read now equals the one read just before a ``PRAGMA data_version``, no commit happened since and
that answer still holds: :meth:`CorpusStore.data_version` skips the statement (one memory read
instead of a statement that takes and drops SQLite's shared-memory locks, ~60 µs on the caches a
graph search just evicted).

The header is read where SQLite itself mapped the file (found once in ``/proc/self/maps``), not
through a file of our own: closing any descriptor of a file drops every POSIX lock the process
holds on it, SQLite's read locks on the ``-shm`` included. That mapping lives as long as a
connection of this process has the database open, so a :class:`WalHeader` is used only while its
store's connection is open. Anything unexpected (no ``/proc``, the database not in WAL mode, no
such mapping or more than one, a header not initialised, of another version, or its copies
differing) gives ``None``: the caller asks SQLite.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

HEADER = 48
"""Bytes in one copy of the WAL-index header."""
VERSION = 3007000
"""``iVersion`` of the WAL-index format this reads (native byte order, as SQLite writes it)."""
_MAPS = "/proc/self/maps"


class WalHeader:
    """The two header copies at ``address`` (96 readable bytes that stay mapped while in use)."""

    def __init__(self, address: int) -> None:
        self._buf = (ctypes.c_char * (2 * HEADER)).from_address(address)

    def raw(self) -> bytes:
        """Both copies as they are now (96 bytes), unchecked: equal to a :meth:`trusted` value
        read earlier means no commit since."""
        return self._buf.raw

    @staticmethod
    def trusted(raw: bytes) -> bool:
        """Whether ``raw`` (:meth:`raw`) can be trusted: both copies equal (no commit writing
        them right now), initialised, of the version this reads."""
        head = raw[:HEADER]
        return head == raw[HEADER:] and head[12] == 1 and int.from_bytes(head[:4], sys.byteorder) == VERSION

    @classmethod
    def of(cls, database: Path) -> WalHeader | None:
        """The header of ``database`` as this process's SQLite mapped it, or ``None`` when it is
        not found exactly once (a connection of this process must have read it in WAL mode)."""
        shm = f"{database}-shm"
        try:
            st = os.stat(shm)
            with open(_MAPS, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
        found = []
        for line in lines:
            parts = line.split(None, 5)
            if len(parts) < 5 or parts[4] != str(st.st_ino) or parts[3] != dev or int(parts[2], 16) != 0:
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if parts[1].startswith("r") and parts[1][3] == "s" and end - start >= 2 * HEADER:
                found.append(start)
        if len(found) != 1:
            return None
        return cls(found[0])
