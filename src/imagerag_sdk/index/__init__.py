"""The local corpus index: scan a folder, embed what changed, search it.

* :func:`ingest` — bring a corpus up to date with a folder (``imagerag index``).
* :class:`IndexRetriever` — the ``index`` retriever (``imagerag search``, profiles).
* :class:`CorpusIndex` — a read-only searchable view; :class:`CorpusStore` — the files on disk.

See docs/corpus-index.md.
"""

from .backends import EXACT_BELOW, ExactBackend, HnswBackend
from .corpus import CorpusIndex
from .ingest import IngestReport, StrictIngestError, ingest
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
