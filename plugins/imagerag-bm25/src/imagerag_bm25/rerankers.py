"""The ``bm25`` and ``rrf`` rerankers.

* ``bm25`` orders a query's candidates by BM25 between the query (the retrieval caption) and each
  candidate's caption (``hit.metadata["caption"]``), the BM25 statistics taken over the candidates.
* ``rrf`` fuses the visual ranking (the input order) and that BM25 ranking by reciprocal rank
  fusion: ``alpha / (c + rank_visual) + (1 - alpha) / (c + rank_bm25)``, ranks from 1.
  With ``corpus`` / ``index_dir`` / ``corpus_captions`` set it becomes a hybrid search: the BM25
  ranking is taken over every caption of the corpus, and the corpus items that BM25 ranks in its
  top ``hybrid_k`` but the visual search missed join in (``metadata["found_by"] == "bm25"``).

Ordering rule for the BM25 ranking: captioned hits by BM25 score (higher first), ties in visual
order; hits without a caption (score 0) come after every captioned hit, in visual order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import Field, model_validator

from imagerag_sdk.roles import Options, Reranker
from imagerag_sdk.types import Hit

from .text import BM25Index, BM25Params, Tokenizer, TokenizerSettings, bm25_scores


class BM25Options(Options):
    k1: float = Field(1.5, ge=0, description="BM25 term-frequency saturation")
    b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation (0 = none, 1 = full)")
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = Field(
        "lucene", description="BM25 variant of bm25s (lucene's IDF is never negative)")
    stopwords: str | list[str] = Field(
        "en", description="Stopword language of bm25s ('en', 'de', 'fr', …), 'none', or a list of words")
    stemmer: str | None = Field(
        None, description="PyStemmer language (e.g. 'english') to stem terms; null = no stemming")
    lowercase: bool = Field(True, description="Lower-case captions and queries before matching")
    keep_visual_score: bool = Field(
        True, description="Keep each hit's visual score and rank in metadata "
        "(visual_score, visual_rank) next to bm25_score")

    def tokenizer_settings(self) -> TokenizerSettings:
        sw = self.stopwords if isinstance(self.stopwords, str) else tuple(self.stopwords)
        return TokenizerSettings(stopwords=sw, stemmer=self.stemmer, lowercase=self.lowercase)

    def params(self) -> BM25Params:
        return BM25Params(k1=self.k1, b=self.b, method=self.method)


BO = TypeVar("BO", bound=BM25Options)


class _BM25Base(Reranker[BO]):

    def _load(self) -> None:
        # builds the tokenizer: imports bm25s (stopword lists) and PyStemmer when asked for
        self.tokenizer = Tokenizer(self.options.tokenizer_settings())

    def bm25_ranking(self, query: str, hits: Sequence[Hit]) -> tuple[list[int], list[float]]:
        """(indices of ``hits`` in BM25 order, BM25 score per input hit)."""
        self.load()
        captioned = [i for i, h in enumerate(hits) if h.caption.strip()]
        scores = [0.0] * len(hits)
        got = bm25_scores(query, [hits[i].caption for i in captioned], self.tokenizer, self.options.params())
        for i, s in zip(captioned, got, strict=True):
            scores[i] = float(s)
        order = sorted(captioned, key=lambda i: (-scores[i], i))
        has_caption = set(captioned)
        order += [i for i in range(len(hits)) if i not in has_caption]
        return order, scores

    def _hit(self, hit: Hit, *, score: float, rank: int, visual_rank: int | None,
             extra: dict[str, Any]) -> Hit:
        meta = dict(hit.metadata)
        if self.options.keep_visual_score and visual_rank is not None:
            meta.setdefault("visual_score", hit.score)
            meta.setdefault("visual_rank", visual_rank)
        meta.update(extra)
        return Hit(path=hit.path, score=score, corpus=hit.corpus, metadata=meta, query=hit.query, rank=rank)


class BM25Reranker(_BM25Base[BM25Options]):
    """Orders candidates by BM25 of their captions against the query."""

    name = "bm25"
    description = ("BM25 (bm25s) between the retrieval caption and each candidate's caption; "
                   "hits without a caption go last.")

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        hits = list(hits)
        if not hits:
            return []
        order, scores = self.bm25_ranking(query, hits)
        return [self._hit(hits[i], score=scores[i], rank=r, visual_rank=i + 1,
                          extra={"bm25_score": scores[i]})
                for r, i in enumerate(order)]


class RRFOptions(BM25Options):
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the visual ranking (1 - alpha: BM25)")
    c: float = Field(60.0, ge=0, description="RRF constant added to each rank (60 in the literature)")
    corpus: str | None = Field(
        None, description="Hybrid mode: name of a corpus built by 'imagerag index'; BM25 then ranks "
        "all its captions and the best hits join the candidates")
    index_dir: str | None = Field(None, description="Hybrid mode: a corpus index folder, instead of a name")
    corpus_captions: str | None = Field(
        None, description="Hybrid mode: a JSON Lines file of {path, caption} objects, instead of a corpus")
    hybrid_k: int = Field(10, ge=1, description="Hybrid mode: how many corpus-wide BM25 hits join")
    save_index: bool = Field(
        True, description="Hybrid mode with a corpus: keep the BM25 index in the corpus folder, so "
        "later processes load it instead of re-reading every caption (rebuilt when captions change)")

    @model_validator(mode="after")
    def _one_source(self) -> RRFOptions:
        given = [k for k in ("corpus", "index_dir", "corpus_captions") if getattr(self, k)]
        if len(given) > 1 and given != ["corpus", "index_dir"]:
            raise ValueError(f"hybrid mode takes one caption source, got {', '.join(given)}")
        return self


class RRFReranker(_BM25Base[RRFOptions]):
    """Reciprocal rank fusion of the visual ranking and the BM25 caption ranking."""

    name = "rrf"
    description = ("Reciprocal rank fusion (c=60, weight alpha) of the visual order and BM25 over "
                   "captions; optional corpus-wide hybrid mode.")

    def _load(self) -> None:
        super()._load()
        self.index: BM25Index | None = None
        o = self.options
        if o.corpus_captions:
            self.index = BM25Index.from_jsonl(o.corpus_captions, tokenizer=self.tokenizer, params=o.params())
        elif o.corpus or o.index_dir:
            self.index = BM25Index.from_corpus(o.corpus, o.index_dir, save=o.save_index,
                                               tokenizer=self.tokenizer, params=o.params())

    def fuse(self, rank_visual: int | None, rank_bm25: int | None) -> float:
        a, c = self.options.alpha, self.options.c
        score = 0.0
        if rank_visual is not None:
            score += a / (c + rank_visual)
        if rank_bm25 is not None:
            score += (1 - a) / (c + rank_bm25)
        return score

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        hits = list(hits)
        self.load()
        if self.index is not None:
            return self._hybrid(query, hits)
        if not hits:
            return []
        order, scores = self.bm25_ranking(query, hits)
        rank_bm25 = {i: r + 1 for r, i in enumerate(order)}
        fused = [self.fuse(i + 1, rank_bm25[i]) for i in range(len(hits))]
        final = sorted(range(len(hits)), key=lambda i: (-fused[i], i))
        return [self._hit(hits[i], score=fused[i], rank=r, visual_rank=i + 1,
                          extra={"bm25_score": scores[i], "bm25_rank": rank_bm25[i], "rrf_score": fused[i]})
                for r, i in enumerate(final)]

    def _hybrid(self, query: str, hits: list[Hit]) -> list[Hit]:
        """Visual candidates plus the corpus-wide BM25 top ``hybrid_k``, fused by RRF.

        A candidate's BM25 rank is its rank among all corpus captions (none when its caption
        does not match or is not in the captions file); a BM25-only item has no visual rank."""
        assert self.index is not None
        all_scores = self.index.scores(query)
        position = {p: j for j, p in enumerate(self.index.paths)}
        top = self.index.search(query, self.options.hybrid_k)

        def bm25_rank(path: str) -> tuple[int | None, float]:
            j = position.get(path, position.get(os.path.realpath(path)))
            if j is None or all_scores[j] <= 0:
                return None, 0.0
            return int((all_scores > all_scores[j]).sum()) + 1, float(all_scores[j])

        entries: list[tuple[Hit, int | None]] = [(h, i + 1) for i, h in enumerate(hits)]
        seen = {h.path for h in hits} | {os.path.realpath(h.path) for h in hits}
        corpus = self.index.name or (hits[0].corpus if hits else "")
        for path, score in top:
            if path not in seen:
                seen.add(path)
                meta = {**self.index.metadata[position[path]], "found_by": "bm25"}
                entries.append((Hit(path=path, score=score, corpus=corpus, metadata=meta, query=query), None))
        scored = []
        for n, (hit, rv) in enumerate(entries):
            rb, s = bm25_rank(hit.path)
            fused = self.fuse(rv, rb)
            scored.append((-fused, rv if rv is not None else len(entries) + n, hit, rv, rb, s, fused))
        scored.sort(key=lambda t: (t[0], t[1]))
        return [self._hit(hit, score=fused, rank=r, visual_rank=rv,
                          extra={"bm25_score": s, "bm25_rank": rb, "rrf_score": fused})
                for r, (_, _, hit, rv, rb, s, fused) in enumerate(scored)]
