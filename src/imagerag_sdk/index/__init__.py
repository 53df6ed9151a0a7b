"""The local corpus index: scan a folder, embed what changed, search it.

* :func:`ingest` — bring a corpus up to date with a folder (``imagerag index``).
* :class:`IndexRetriever` — the ``index`` retriever (``imagerag search``, profiles).
* :class:`CorpusIndex` — a read-only searchable view; :class:`CorpusStore` — the files on disk.

See docs/corpus-index.md. The names are imported on first use (a search needs only the reader's
modules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

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
"""Each public name and the submodule that defines it: a search imports the reader's modules, not
the writer's (ingestion, the folder walk, PIL)."""

__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES)
