"""imagerag-bm25: caption rerankers for imagerag-sdk.

* ``bm25`` — BM25 (bm25s) between the retrieval caption and the candidates' captions.
* ``rrf``  — reciprocal rank fusion of the visual ranking and the BM25 ranking (optionally
  corpus-wide: hybrid search).

bm25s is imported on first use, never by ``import imagerag_bm25``.
"""

from __future__ import annotations

from imagerag_sdk import hookimpl

from .rerankers import BM25Reranker, RRFReranker
from .text import BM25Index

__all__ = ["BM25Index", "BM25Reranker", "RRFReranker"]


@hookimpl
def register_rerankers(register):
    """The ``bm25`` and ``rrf`` rerankers."""
    register(BM25Reranker)
    register(RRFReranker)


@hookimpl
def heavy_imports():
    return ["bm25s"]
