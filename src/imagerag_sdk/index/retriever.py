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
from .corpus import RETRIES, CorpusIndex, View
from .ingest import embed_batch
from .items import Entry


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
    ef: int | None = Field(None, ge=1, description="HNSW search breadth (default max(150, 2 × hits fetched)); "
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
        """Top ``k`` hits for each (unit) query vector, searched in one backend call.

        Labels, scores, vectors and items all come from one consistent view of the corpus; only
        the items of the hits kept are read (cached by the view, paths checked once per item)."""
        index = self._loaded_parts()[0]
        if k <= 0:
            return [[] for _ in queries]
        dedupe = self.options.dedupe
        fetch = k if dedupe is None or dedupe >= 1.0 else 4 * k + 4
        vectors = np.asarray(vectors, dtype=np.float32)
        for attempt in range(RETRIES):
            view, labels, scores = index.search_view(vectors, fetch, ef=self.options.ef, fresh=attempt > 0)
            picker = _Picker(view, labels, scores, k, dedupe, self.options.min_similarity)
            picked = picker.pick(index, last=attempt == RETRIES - 1)
            if picked is None:
                continue  # compacted, or a hit removed, since the view: again on a fresh view
            chosen, known = picked
            out: list[list[Hit]] = []
            name = index.name
            for qi, query in enumerate(queries):
                hits: list[Hit] = []
                row, srow = picker.rows[qi], scores[qi].tolist()
                for j in chosen[qi]:
                    entry = known[row[j]]
                    assert entry is not None and entry[1] is not None  # only good ones are kept
                    hits.append(Hit(path=entry[1], score=srow[j], corpus=name, metadata=entry[0].metadata(),
                                    query=query, rank=len(hits)))
                out.append(hits)
            return out
        raise CorpusError(f"corpus '{index.name}' was compacted {RETRIES} times during one search",
                          hint="search again")


class _Picker:
    """The first ``k`` hits of each query's candidates, best first, that pass ``min_similarity``,
    are still indexed under the corpus root, and are not near-duplicates (image–image cosine ≥
    ``dedupe``) of a hit kept before them.

    Picking runs on what is known and takes every unread candidate as good; then reads the items
    of the unread ones it kept and picks again, until it kept only known items. A candidate
    found bad is skipped on the next round; a candidate it did not keep was skipped for its score
    or as a duplicate of a good one, or came after the k-th, so the result equals a pass that
    reads every candidate first, without reading them."""

    def __init__(self, view: View, labels: np.ndarray, scores: np.ndarray, k: int,
                 dedupe: float | None, floor: float | None) -> None:
        self.view, self.k, self.dedupe = view, k, dedupe
        self.rows: list[list[int]] = labels.tolist()  # Python lists: a few dozen per query, where
        srows: list[list[float]] = scores.tolist()  # each numpy call would cost more than the loop
        self.cols: list[list[int]] = []  # candidates' columns
        for row, srow in zip(self.rows, srows, strict=True):
            self.cols.append([j for j, (label, score) in enumerate(zip(row, srow, strict=True))
                              if label >= 0 and (floor is None or score >= floor)])
        self.cands: list[list[int]] = [[row[j] for j in cols] for row, cols in zip(self.rows, self.cols, strict=True)]
        self.vecs: dict[int, np.ndarray] = {}
        self.dups: dict[int, list[list[bool]]] = {}

    def dup_rows(self, qi: int, upto: int) -> list[list[bool]]:
        """Which of query ``qi``'s first candidates (at least ``upto``) are near-duplicates of which.

        The vectors are read a few more than needed at a time (``k + 2`` first): with few
        duplicates, about ``k`` candidates are looked at."""
        cands = self.cands[qi]
        have = self.vecs.get(qi)
        n = min(len(cands), max(upto + self.k // 2, self.k + 2))
        start = 0 if have is None else len(have)
        more = self.view.vectors_of(cands[start:n])
        vecs = self.vecs[qi] = more if have is None else np.concatenate([have, more])
        assert self.dedupe is not None  # only asked for when collapsing duplicates
        rows = self.dups[qi] = (vecs @ vecs.T >= self.dedupe).tolist()
        return rows

    def round(self, known: dict[int, Entry | None]) -> list[list[int]]:
        chosen = []
        k, dedupe = self.k, self.dedupe is not None
        for qi, cands in enumerate(self.cands):
            kept: list[int] = []  # positions in cands
            dups = self.dups.get(qi, [])
            for pos, label in enumerate(cands):
                if label in known:
                    entry = known[label]
                    if entry is None or entry[1] is None:
                        continue
                if dedupe and kept:
                    if pos >= len(dups):
                        dups = self.dup_rows(qi, pos + 1)
                    row = dups[pos]
                    if any(row[m] for m in kept):
                        continue
                kept.append(pos)
                if len(kept) == k:
                    break
            chosen.append(kept)
        return chosen

    def pick(self, index: CorpusIndex, *, last: bool) -> tuple[list[list[int]], dict[int, Entry | None]] | None:
        """(columns kept per query, entries by label), or ``None``: search again on a fresh view."""
        known: dict[int, Entry | None] = {}
        while True:
            chosen = self.round(known)
            unread = sorted({self.cands[qi][pos] for qi, kept in enumerate(chosen) for pos in kept}
                            - known.keys())
            if not unread:
                return [[self.cols[qi][pos] for pos in kept] for qi, kept in enumerate(chosen)], known
            found = index.entries(self.view, unread)
            if found is None or (len(found) < len(unread) and not last):
                return None
            for label in unread:
                known[label] = found.get(label)
