"""The local corpus index: scan a folder, embed what changed, search it.

* :func:`ingest` — bring a corpus up to date with a folder (``imagerag index``).
* :class:`IndexRetriever` — the ``index`` retriever (``imagerag search``, profiles).
* :class:`CorpusIndex` — a read-only searchable view; :class:`CorpusStore` — the files on disk.

See docs/corpus-index.md. The names are imported on first use (a search needs only the reader's
modules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import EXACT_BELOW, ExactBackend, HnswBackend
    from .corpus import CorpusIndex
    from .ingestion import IngestReport, StrictIngestError, ingest
    from .retriever import IndexRetriever, IndexRetrieverOptions
    from .store import CorpusStore, corpus_dir

__all__ = [
    "EXACT_BELOW",
    "CorpusIndex",
    "CorpusStore",
    "ExactBackend",
    "HnswBackend",
    "IndexRetriever",
    "IndexRetrieverOptions",
    "IngestReport",
    "StrictIngestError",
    "corpus_dir",
    "ingest",
]

_HOMES = {"EXACT_BELOW": "backends", "ExactBackend": "backends", "HnswBackend": "backends",
          "CorpusIndex": "corpus", "IngestReport": "ingestion", "StrictIngestError": "ingestion", "ingest": "ingestion",
          "IndexRetriever": "retriever", "IndexRetrieverOptions": "retriever",
          "CorpusStore": "store", "corpus_dir": "store"}


def __getattr__(name: str) -> Any:
    """The names above, each imported from its module on first use: a search imports the reader's
    modules, not the writer's (ingest, the folder walk, PIL)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
