"""Atomic file writes: whoever opens the target sees its old content or its new, never part of a write.

Every writer of the SDK and its first-party plugins goes through these (the trace, the corpus
store, the HNSW snapshots, the BM25 index, the tiny model builders)::

    write_text(path, text)                 # or write_bytes(path, data)
    with replacing(path) as tmp:           # for a writer that wants a file name:
        image.save(tmp, format="PNG")      # PIL, numpy.save, hnswlib's save_index …
    with replacing(folder) as tmp:         # a folder written whole
        tmp.mkdir(); ...

How: the new content is written to a temporary name in the target's folder
(``.<name>.<pid>-<thread>-<n>.tmp``: unique per process, thread and call, so two writers of the
same file never share one), fsynced (a folder: every file and folder in it), renamed over the
target with :func:`os.replace`, and then the target's folder is fsynced so the rename itself is on
disk. Folders are not fsynced on Windows, where a folder cannot be opened for it; anywhere else a
failing fsync is an error like any other.

Crash guarantee (on a file system that honours fsync): at every moment the target holds either
the complete old content or the complete new content. When the call returns, the new content
survives a power cut. An exception inside ``replacing`` (or in the fsync or the rename) removes
the temporary file, leaves the target untouched and propagates; a process killed before the
rename leaves only its temporary file behind (hidden, ending in ``.tmp``), which readers never
open. Where several writers race, the last rename wins.

A folder can replace only a missing (or empty) folder: :func:`os.replace` cannot swap a non-empty
folder in one step, so it raises :class:`OSError` then (the caller removes the old one first, or
treats the error as another writer having got there first).
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["fsync_folder", "replacing", "temp_path", "write_bytes", "write_text"]

log = logging.getLogger(__name__)

FSYNC_FOLDERS = os.name != "nt"
"""Whether folders are fsynced (not on Windows, which cannot open a folder to do so)."""

_calls = itertools.count()
# fsync needs a descriptor open for writing on Windows; reading is enough (and always allowed) elsewhere
_FILE_FLAGS = os.O_RDWR if os.name == "nt" else os.O_RDONLY


def temp_path(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary name next to ``path``: hidden, ending in ``.tmp``, unique per call."""
    target = Path(path)
    tag = f"{os.getpid()}-{threading.get_ident()}-{next(_calls)}"
    return target.with_name(f".{target.name[:100]}.{tag}.tmp")


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path for the new ``path``; on success it is fsynced and renamed over it.

    The yielded path does not exist yet: write a file (or make a folder) there. On an exception
    it is removed and ``path`` is left as it was."""
    target = Path(path)
    tmp = temp_path(target)
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"nothing was written to {tmp} (the new {target})")
        _fsync_tree(tmp)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    fsync_folder(target.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path``'s content with ``data`` atomically and durably."""
    with replacing(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Replace ``path``'s content with ``text`` atomically and durably (no newline translation)."""
    write_bytes(path, text.encode(encoding))


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Flush ``folder``'s entries (names created, renamed or removed in it) to disk; no-op on Windows."""
    if not FSYNC_FOLDERS:
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, _FILE_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    if not path.is_dir():
        _fsync_file(path)
        return
    for where, _folders, files in os.walk(path, topdown=False):
        for name in files:
            _fsync_file(os.path.join(where, name))
        fsync_folder(where)


def _remove(tmp: Path) -> None:
    """Remove a temporary file or folder; a failure is logged (the original error is the one raised)."""
    try:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp)
        else:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the temporary %s: %s", tmp, exc)
