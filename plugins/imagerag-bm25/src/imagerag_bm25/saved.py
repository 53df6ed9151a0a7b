"""A corpus-wide BM25 index saved next to the corpus it indexes.

Building one means tokenizing every caption and letting bm25s score every term (seconds per 100k
captions); loading the saved arrays takes a fraction of that. A saved index is keyed by a SHA-256
of everything its contents depend on: the captions in order, the tokenizer (stopwords, stemmer,
case, pattern), the BM25 parameters and the bm25s version. Any change gives another key, so a
stale index is never used; it is replaced by the next build. Files are numpy arrays (no pickle)
and JSON written by bm25s, into a temporary folder that is then fsynced and renamed
(:func:`imagerag_sdk.atomic.replacing`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagerag_sdk.atomic import replacing

FORMAT = 1
KEPT = "kept.npy"
"""Positions (in the keyed item order) of the items that have at least one term."""

STALE_TMP_S = 3600
"""A temporary folder this old is left over from a crashed save."""

log = logging.getLogger(__name__)


def index_key(captions: Sequence[tuple[str, str]], settings: dict[str, Any], bm25s_version: str) -> str:
    """SHA-256 over the format, the bm25s version, ``settings`` and every ``(path, caption)``."""
    h = hashlib.sha256(json.dumps([FORMAT, bm25s_version, settings], sort_keys=True).encode())
    for path, caption in captions:
        h.update(path.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
        h.update((caption or "").encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def load(folder: Path, key: str, bm25s: Any, n_items: int) -> tuple[Any, np.ndarray] | None:
    """The model and kept positions saved under ``key``; ``None`` when there is none. A saved
    index that cannot be read is reported, removed and rebuilt by the caller."""
    where = folder / key[:32]
    if not where.is_dir():
        return None
    try:
        model = bm25s.BM25.load(where, mmap=False, allow_pickle=False, show_progress=False)
        kept = np.load(where / KEPT, allow_pickle=False)
        if kept.ndim != 1 or len(kept) != int(model.scores["num_docs"]) or (
                len(kept) and (kept.min() < 0 or kept.max() >= n_items)):
            raise ValueError(f"{KEPT} does not match the index ({len(kept)} positions, "
                             f"{model.scores['num_docs']} documents, {n_items} items)")
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        log.warning("saved BM25 index %s is unreadable (%s: %s); rebuilding it", where,
                    type(exc).__name__, exc)
        shutil.rmtree(where, ignore_errors=True)
        return None
    return model, kept.astype(np.int64)


def save(folder: Path, key: str, model: Any, kept: Sequence[int]) -> Path | None:
    """Save atomically under ``key`` and remove indexes saved under other keys. A folder that
    cannot be written (a read-only corpus) is reported and the index stays in memory only."""
    where = folder / key[:32]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with replacing(where) as tmp:
                model.save(tmp, show_progress=False)
                np.save(tmp / KEPT, np.asarray(kept, dtype=np.int64), allow_pickle=False)
        except OSError:
            if not where.is_dir():  # not just another process that saved the same index first
                raise
    except OSError as exc:
        log.warning("cannot save the BM25 index under %s (%s); it is kept in memory only", folder, exc)
        return None
    for old in folder.iterdir():  # other keys, and temporary folders a crash left behind
        stale_tmp = old.name.startswith(".") and time.time() - old.stat().st_mtime > STALE_TMP_S
        if old.name != where.name and (stale_tmp or not old.name.startswith(".")):
            shutil.rmtree(old, ignore_errors=True)
    return where
