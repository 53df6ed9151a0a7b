"""Components that ship with the core and always load: the corpus index and pooled retrievers, the
vlm reranker and the vlm scorer. Their modules are imported inside the hooks. (The test doubles are
a plugin of their own, :mod:`imagerag_sdk.testing.plugin`, which ``IMAGERAG_LOAD_PLUGINS`` can
leave out.)"""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def register_retrievers(register):
    from .index import IndexRetriever
    from .retrieve_pooled import PooledRetriever

    register(IndexRetriever)
    register(PooledRetriever)


@hookimpl
def register_rerankers(register):
    from .rerank_vlm import VLMReranker

    register(VLMReranker)


@hookimpl
def register_scorers(register):
    from .scorer_vlm import VLMScorer

    register(VLMScorer)
