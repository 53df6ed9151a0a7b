"""The ``index`` retriever: the Retriever role over a local corpus index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..errors import CorpusError
from ..outputs import check_vectors
from ..roles import Embedder, Options, Retriever
from ..specs import EmbedderSpec
from ..types import Hit, ImageQuery
from .backends import EXACT_BELOW
from .corpus import CorpusIndex
from .ingest import embed_batch


class IndexRetrieverOptions(Options):
    corpus: str | None = Field(None, description="Corpus name (a folder under ~/.imagerag/corpora)")
    index_dir: str | None = Field(None, description="Corpus folder, instead of a name")
    embedder: EmbedderSpec | None = Field(
        None, description="Embedder for the queries, e.g. {use: clip}; default: the one the corpus "
                          "was built with (its identity must match the corpus)")
    min_similarity: float | None = Field(None, ge=-1.0, le=1.0,
                                         description="Drop hits whose cosine similarity is below this")
    dedupe: float | None = Field(0.95, gt=0.0, le=1.0,
                                 description="Collapse hits whose image–image cosine is at least this "
                                             "(keep the best); null disables")
    backend: Literal["auto", "exact", "hnsw"] = Field(
        "auto", description="exact numpy scan, hnsw graph, or auto (exact below exact_below vectors)")
    exact_below: int = Field(EXACT_BELOW, ge=0, description="auto: use the exact scan below this many vectors")
    ef: int | None = Field(None, ge=1, description="HNSW search breadth (default max(100, 2 × hits fetched)); "
                                               "raise it for better recall on large corpora, at some latency")

    @field_validator("embedder", mode="before")
    @classmethod
    def _name_only(cls, value: Any) -> Any:
        return {"use": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _needs_corpus(self) -> IndexRetrieverOptions:
        if not self.corpus and not self.index_dir:
            raise ValueError("set 'corpus' (a name) or 'index_dir' (a folder)")
        return self


class IndexRetriever(Retriever[IndexRetrieverOptions]):
    """Cosine search over a corpus built by ``imagerag index``; all queries in one batch."""

    name = "index"
    description = "Local corpus index (SQLite + hnswlib / exact numpy) built with 'imagerag index'."
    supports_image_search = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index: CorpusIndex | None = None
        self.embedder: Embedder[Any] | None = None

    def _load(self) -> None:
        opts = self.options
        index = CorpusIndex(opts.corpus, opts.index_dir, backend=opts.backend, exact_below=opts.exact_below)
        spec = opts.embedder
        if spec is None:
            stored = index.embedder_spec
            spec = EmbedderSpec(**stored) if stored else EmbedderSpec(use="clip")
        embedder = spec.build()
        if not isinstance(embedder, Embedder):
            raise CorpusError(f"'{spec.use}' is not an embedder")
        if index.identity and embedder.identity != index.identity:
            built_with = index.identity
            index.close()
            raise CorpusError(
                f"corpus '{index.name}' was built with embedder '{built_with}', the retriever's "
                f"embedder is '{embedder.identity}'",
                hint="give the retriever the embedder the corpus was built with, or re-index")
        embedder.load()
        self.index, self.embedder = index, embedder

    def _loaded_parts(self) -> tuple[CorpusIndex, Embedder[Any]]:
        self.load()
        assert self.index is not None and self.embedder is not None  # set by _load
        return self.index, self.embedder

    def refresh(self) -> None:
        """Take in what another process changed in the corpus now (every search does it anyway)."""
        self._loaded_parts()[0].refresh()

    @property
    def note(self) -> str | None:
        """Why searches are exact although the corpus is large (its search graph is not saved yet)."""
        return self.index.note if self.index is not None else None

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        queries = list(queries)
        if not queries:
            return []
        embedder = self._loaded_parts()[1]
        vectors = check_vectors(embedder.embed_texts(queries), embedder, len(queries))
        return self.search_vectors(vectors, queries, k)

    def search_images(self, queries: Sequence[ImageQuery], k: int) -> list[list[Hit]]:
        queries = list(queries)
        if not queries:
            return []
        wrong = next((q for q in queries if not isinstance(q, ImageQuery)), None)
        if wrong is not None:
            raise TypeError(f"search_images() takes ImageQuery items (an image with its path), got "
                            f"{type(wrong).__name__}: wrap it as ImageQuery(image, path) or ImageQuery.open(path)")
        embedder = self._loaded_parts()[1]
        fast = embedder.supports_fast_path
        payloads = [embedder.preprocess(q.image) if fast else q.image for q in queries]
        vectors = embed_batch(embedder, payloads, fast)
        return self.search_vectors(vectors, [q.path or f"<image {i + 1}>" for i, q in enumerate(queries)], k)

    def search_vectors(self, vectors: np.ndarray, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Top ``k`` hits for each (unit) query vector, searched in one backend call."""
        index = self._loaded_parts()[0]
        if k <= 0:
            return [[] for _ in queries]
        dedupe = self.options.dedupe
        fetch = k if dedupe is None or dedupe >= 1.0 else 4 * k + 4
        # one consistent snapshot: labels, items and vectors all come from the same view
        found = index.query(np.asarray(vectors, dtype=np.float32), fetch, ef=self.options.ef)
        labels, scores, items = found.labels, found.scores, found.items
        vecs = dict(zip(items, found.view.vectors_of(list(items)), strict=True)) if dedupe is not None else {}
        out: list[list[Hit]] = []
        floor = self.options.min_similarity
        for qi, query in enumerate(queries):
            hits: list[Hit] = []
            kept: list[np.ndarray] = []
            for label, score in zip(labels[qi], scores[qi], strict=True):
                label = int(label)
                if label < 0 or label not in items or (floor is not None and score < floor):
                    continue
                path = index.abspath(items[label])
                if path is None:
                    continue
                if dedupe is not None and kept and max(float(v @ vecs[label]) for v in kept) >= dedupe:
                    continue
                if dedupe is not None:
                    kept.append(vecs[label])
                hits.append(Hit(path=path, score=float(score), corpus=index.name,
                                metadata=items[label].metadata(), query=query, rank=len(hits)))
                if len(hits) == k:
                    break
            out.append(hits)
        return out
