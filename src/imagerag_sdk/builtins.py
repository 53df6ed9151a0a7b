"""Components that ship with the core: the fakes (tests and the 'fake' profile), the corpus
index retriever, and the vlm reranker. Heavy-ish modules are imported inside the hooks."""

from __future__ import annotations

from .hookspecs import hookimpl
from .testing import fakes


@hookimpl
def register_generators(register):
    register(fakes.FakeGenerator)


@hookimpl
def register_critics(register):
    register(fakes.FakeCritic)
    register(fakes.ScriptedCritic)


@hookimpl
def register_embedders(register):
    register(fakes.FakeEmbedder)


@hookimpl
def register_retrievers(register):
    register(fakes.FakeRetriever)
    from .index import IndexRetriever

    register(IndexRetriever)


@hookimpl
def register_rerankers(register):
    register(fakes.FakeReranker)
    from .rerank_vlm import VLMReranker

    register(VLMReranker)
