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
from .items import Entry

_new = object.__new__
_HIT_FIELDS = ("path", "score", "corpus", "metadata", "query", "rank")
if tuple(Hit.__dataclass_fields__) != _HIT_FIELDS or hasattr(Hit, "__post_init__"):
    raise AssertionError("search_vectors fills in Hit's fields itself: update it with Hit")


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
        embedder = spec.build(recorded=index.resolved)  # the class the corpus was built with, if it holds
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
        from .ingestion import embed_batch  # the writer's module, kept off the text-search path

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
            name = index.name
            out: list[list[Hit]] = []
            for qi, query in enumerate(queries):
                hits: list[Hit] = []
                for rank, (label, score) in enumerate(chosen[qi]):
                    _, path, metadata = known[label]
                    assert path is not None  # only good ones are kept
                    # a Hit filled in without its __init__ (an object.__setattr__ per field, ~2 µs
                    # a hit): the same object, see _HIT_FIELDS; its own copy of the metadata
                    hit = _new(Hit)
                    hit.__dict__.update(path=path, score=score, corpus=name, metadata=dict(metadata),
                                        query=query, rank=rank)
                    hits.append(hit)
                out.append(hits)
            return out
        raise CorpusError(f"corpus '{index.name}' was compacted {RETRIES} times during one search",
                          hint="search again")


class _Picker:
    """The first ``k`` hits of each query's candidates, best first, that pass ``min_similarity``,
    are still indexed, and are not near-duplicates (image–image cosine ≥ ``dedupe``) of a hit
    kept before them.

    Picking runs on what is known and takes every unread candidate as good; then reads the items
    of the unread ones it kept and picks again, until it kept only known items. A candidate
    found bad is skipped on the next round; a candidate it did not keep was skipped for its score
    or as a duplicate of a good one, or came after the k-th, so the result equals a pass that
    reads every candidate first, without reading them. Candidates are Python lists (a search
    runs on caches the graph search just evicted, where each small numpy call costs tens of µs):
    numpy only for the Gram matrix of duplicate collapsing, and only candidates with a
    near-duplicate before them are looked at one by one (to know whether that one was kept)."""

    def __init__(self, view: View, labels: np.ndarray, scores: np.ndarray, k: int,
                 dedupe: float | None, floor: float | None) -> None:
        self.view, self.k, self.dedupe = view, k, dedupe
        self.scores: list[list[float]] = scores.tolist()
        self.cols: list[list[int] | None] = []  # candidates' columns per query (None: every column)
        self.cands: list[list[int]] = []  # their labels
        if floor is not None:
            floor = float(np.float32(floor))  # compared as the float32 scores are (numpy would)
        for row, row_scores in zip(labels.tolist(), self.scores, strict=True):
            if (not row or min(row) >= 0) and (floor is None or all(x >= floor for x in row_scores)):
                self.cols.append(None)  # the usual case: every column a candidate
                self.cands.append(row)
            else:
                cols = [c for c, label in enumerate(row)
                        if label >= 0 and (floor is None or row_scores[c] >= floor)]
                self.cols.append(cols)
                self.cands.append([row[c] for c in cols])
        self.dups: list[np.ndarray | None] = [None] * len(self.cands)
        self.vecs: list[np.ndarray | None] = [None] * len(self.cands)
        self.bad: set[int] = set()  # labels removed since the view, or whose file leads out

    def near(self, qi: int, n: int) -> np.ndarray:
        """Which of query ``qi``'s first (at least ``n``) candidates are near-duplicates of which
        (symmetric, the diagonal cleared). The vectors are read only as far as asked (``k``
        first, then ``k / 2`` or twice the hits missing more at a time): with no duplicates among
        the first ``k``, those are all that is read."""
        have, dups = self.vecs[qi], self.dups[qi]
        if have is None or dups is None or len(have) < n:
            start = 0 if have is None else len(have)
            more = self.view.rows(self.cands[qi][start:n])
            have = self.vecs[qi] = more if have is None else np.concatenate([have, more])
            assert self.dedupe is not None  # only asked for when collapsing duplicates
            dups = self.dups[qi] = have @ np.ascontiguousarray(have.T) >= self.dedupe  # (faster gemm)
            dups.flat[::len(dups) + 1] = False  # the diagonal (np.fill_diagonal, without its checks)
        return dups

    def keep(self, qi: int) -> list[int]:
        """Positions (in ``cands[qi]``) kept for query ``qi``, best first."""
        cands, k, bad = self.cands[qi], self.k, self.bad
        if self.dedupe is None:
            if not bad:
                return list(range(min(k, len(cands))))
            return [p for p, label in enumerate(cands) if label not in bad][:k]
        n = min(len(cands), k)
        while True:
            dups = self.near(qi, n)
            m = len(dups)
            if not bad and not dups.any():  # no duplicates among them (the usual case)
                out = list(range(min(k, m)))
            else:
                kept = np.array([label not in bad for label in cands[:m]], dtype=bool)
                for j in np.flatnonzero(dups.any(axis=0)).tolist():  # those with a duplicate
                    if kept[j] and (dups[:j, j] & kept[:j]).any():  # ... kept before them
                        kept[j] = False
                out = np.flatnonzero(kept)[:k].tolist()
            if len(out) == k or m == len(cands):
                return out
            n = min(len(cands), m + max(k // 2, 2 * (k - len(out))))

    def chosen(self, kept: list[list[int]]) -> list[list[tuple[int, float]]]:
        """(label, score) of each query's kept positions."""
        out = []
        for cands, cols, scores, pos in zip(self.cands, self.cols, self.scores, kept, strict=True):
            out.append([(cands[p], scores[p if cols is None else cols[p]]) for p in pos])
        return out

    def pick(self, index: CorpusIndex, *,
             last: bool) -> tuple[list[list[tuple[int, float]]], dict[int, Entry]] | None:
        """((label, score) kept per query, entries by label), or ``None``: search again on a
        fresh view."""
        known: dict[int, Entry] = {}
        while True:
            kept = [self.keep(qi) for qi in range(len(self.cands))]
            unread = sorted({cands[p] for cands, pos in zip(self.cands, kept, strict=True) for p in pos} - known.keys())
            if not unread:
                return self.chosen(kept), known
            found = index.entries(self.view, unread)
            if found is None or (len(found) < len(unread) and not last):
                return None
            before = len(self.bad)
            for label in unread:
                entry = found.get(label)
                if entry is None or entry[1] is None:
                    self.bad.add(label)
                else:
                    known[label] = entry
            if len(self.bad) == before:  # every one kept is good: picking again keeps the same
                return self.chosen(kept), known
