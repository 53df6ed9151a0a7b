"""The ``pooled`` retriever: the union of the top hits of several retrievers (the paper's Table 4).

The paper re-ranked "CLIP top 3 ∪ SigLIP top 3": each retriever searches on its own, the union
of their top ``k_each`` hits goes to a reranker, which picks. Any retrievers can be pooled, each
a nested spec validated like every other component::

    retriever:
      use: pooled
      k_each: 3
      retrievers:
        - {use: index, corpus: laion-clip}
        - {use: index, corpus: laion-siglip}
    reranker: {use: vlm, top_n: 6, critic: {use: openai}}
    loop: {candidates: 6}

**Order.** The union is interleaved by rank: every member's first hit (in the order the members
are listed), then every member's second hit, and so on. A path that several members found
appears once, where it first comes; its metadata is the first finder's, plus
``metadata["pooled"]["found_by"]``: one ``{member, retriever, rank, score}`` per member that
found it (``member`` its 0-based place in ``retrievers``, ``rank`` 0-based in that member's
list, ``score`` that member's own score). At most ``k`` hits are returned (the caller's ``k``:
``loop.candidates``), so set ``candidates`` to at least ``k_each`` × the number of members.

**Score.** The members' scores come from different models and are not comparable (a CLIP cosine
of 0.3 and a SigLIP cosine of 0.1 can mean the same). ``Hit.score`` of a pooled hit is
``1 / (1 + r)``, ``r`` the best 0-based rank any member gave it: 1.0 for each member's top hit,
0.5 for the second … — non-increasing along the order above. ``loop.min_similarity`` compares
against that, so put a similarity threshold on the members instead
(``{use: index, min_similarity: 0.26}``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field

from .outputs import check_hits
from .redact import mask_spec
from .roles import Options, Retriever
from .specs import RetrieverSpec
from .types import Hit, ImageQuery


class PooledRetrieverOptions(Options):
    retrievers: list[RetrieverSpec] = Field(
        ..., min_length=1, description="The retrievers to pool, each a spec {use: ..., ...}, e.g. "
        "an index over a CLIP corpus and one over a SigLIP corpus; ties in rank go to the earlier one")
    k_each: int | None = Field(
        None, ge=1, description="Hits taken from each retriever per query (the paper: 3); default: "
        "the k the caller asks for. At most k hits of the union are returned")


class PooledRetriever(Retriever[PooledRetrieverOptions]):
    """The union of the top hits of several retrievers, interleaved by rank, each path once."""

    name = "pooled"
    description = ("Pools the top-k of several retrievers (e.g. CLIP top 3 ∪ SigLIP top 3, the "
                   "paper's Table 4), interleaved by rank, for a reranker to pick from.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._members: list[Retriever[Any]] | None = None

    @property
    def members(self) -> list[Retriever[Any]]:
        """The pooled retrievers, built (cheaply, through the registry's cache) on first use."""
        if self._members is None:
            built = []
            for spec in self.options.retrievers:
                member = spec.build()
                assert isinstance(member, Retriever)  # the registry builds retrievers for this role
                built.append(member)
            self._members = built
        return self._members

    @property
    def supports_image_search(self) -> bool:  # type: ignore[override]  # per pool: all members must
        return all(m.supports_image_search for m in self.members)

    def _load(self) -> None:
        for member in self.members:
            member.load()

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data["options"]["retrievers"] = mask_spec(data["options"].get("retrievers"))
        return data

    # -- searching -----------------------------------------------------------------------------
    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        queries = list(queries)
        return self._pool(len(queries), k, lambda m, n: m.search(queries, n))

    def search_images(self, queries: Sequence[ImageQuery], k: int) -> list[list[Hit]]:
        unable = [f"retrievers[{i}] ({m.name})" for i, m in enumerate(self.members)
                  if not m.supports_image_search]
        if unable:
            raise NotImplementedError(f"retriever 'pooled' cannot search by image: {', '.join(unable)} "
                                      "cannot (supports_image_search is False)")
        queries = list(queries)
        return self._pool(len(queries), k, lambda m, n: m.search_images(queries, n))

    def _pool(self, n_queries: int, k: int,
              ask: Callable[[Retriever[Any], int], list[list[Hit]]]) -> list[list[Hit]]:
        if n_queries == 0:
            return []
        self.load()
        each = self.options.k_each or k
        found = [check_hits(ask(member, each), member, n_queries) for member in self.members]
        return [pool([lists[qi][:each] for lists in found], self.options.retrievers, k)
                for qi in range(n_queries)]


def pool(lists: Sequence[Sequence[Hit]], specs: Sequence[RetrieverSpec], k: int) -> list[Hit]:
    """One query's union of the members' hit ``lists`` (in member order), interleaved by rank,
    each path once with who found it; the first ``k``."""
    first: dict[str, Hit] = {}
    best: dict[str, int] = {}
    found_by: dict[str, list[dict[str, Any]]] = {}
    for rank in range(max((len(h) for h in lists), default=0)):
        for member, hits in enumerate(lists):
            if rank >= len(hits):
                continue
            hit = hits[rank]
            if hit.path not in first:
                first[hit.path], best[hit.path], found_by[hit.path] = hit, rank, []
            found_by[hit.path].append({"member": member, "retriever": specs[member].use,
                                       "rank": rank, "score": hit.score})
    out = []
    for i, (path, hit) in enumerate(list(first.items())[: max(k, 0)]):
        meta = {**hit.metadata, "pooled": {"found_by": found_by[path]}}
        out.append(Hit(path=path, score=1.0 / (1 + best[path]), corpus=hit.corpus, metadata=meta,
                       query=hit.query, rank=i))
    return out
