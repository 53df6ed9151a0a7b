"""The corpora a pipeline searches: name, root folder, size, embedder, last update.

The file routes serve corpus images only from these roots. The ``index`` retriever knows its
corpus (:class:`~imagerag_sdk.index.CorpusIndex`: name, root, embedder identity); the ``fake``
retriever its synthetic folder. A retriever of another kind names no root here, so its hits get
no file URL and cannot be picked through the web app (say so in its ``/api/corpus`` entry).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagerag_sdk.index.retriever import IndexRetriever
from imagerag_sdk.roles import Retriever
from imagerag_sdk.testing.fakes import FakeRetriever

from .security import inside


@dataclass(frozen=True)
class Corpus:
    name: str
    root: Path | None
    """Resolved root folder; ``None``: the retriever names none (its files are not served)."""
    retriever: Retriever[Any]

    @functools.cached_property
    def prefix(self) -> str | None:
        """The root with a trailing separator, as :func:`~imagerag_web.security.inside_lexically` takes it."""
        return os.path.join(self.root, "") if self.root is not None else None

    def info(self) -> dict[str, Any]:
        r = self.retriever
        count: int | None = None
        embedder: str | None = None
        updated: str | None = None
        if isinstance(r, IndexRetriever) and r.index is not None:
            count, embedder = len(r.index), r.index.identity
            updated = _mtime_iso(r.index.store.path / "index.sqlite")
        elif isinstance(r, FakeRetriever):
            count, embedder = len(r.items), f"fake bag of words (dim {r.options.dim})"
        return {"name": self.name, "root": str(self.root) if self.root else None, "count": count,
                "embedder": embedder, "updated": updated}


def _mtime_iso(path: Path) -> str | None:
    try:
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    return _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc).isoformat(timespec="seconds")


def find_corpora(retriever: Retriever[Any] | None) -> list[Corpus]:
    """The corpora of a loaded ``retriever`` (none without one)."""
    if retriever is None:
        return []
    if isinstance(retriever, IndexRetriever):
        index = retriever.index
        if index is None:
            retriever.load()
            index = retriever.index
        assert index is not None  # set by load()
        return [Corpus(index.name, Path(os.path.realpath(index.root)), retriever)]
    if isinstance(retriever, FakeRetriever):
        retriever.load()
        return [Corpus(retriever.options.corpus, Path(os.path.realpath(retriever.root)), retriever)]
    return [Corpus(retriever.name or type(retriever).__name__, None, retriever)]


class Corpora:
    """Lookup of corpora by name and of the corpus a file path lies in."""

    def __init__(self, corpora: list[Corpus]) -> None:
        self.all = corpora
        self.by_name = {c.name: c for c in corpora}

    def locate(self, path: str) -> tuple[Corpus, str] | None:
        """The corpus whose root holds ``path`` (links resolved) and the path relative to it."""
        for corpus in self.all:
            if corpus.root is None:
                continue
            rel = inside(corpus.root, path)
            if rel is not None:
                return corpus, rel
        return None
