"""Testing kit for the SDK and for plugin authors: fakes, contract tests, a fake API server.

The fakes are registered by the ``testing`` plugin (:mod:`imagerag_sdk.testing.plugin`, an entry
point of the core distribution), never by the core's built-ins. Nothing here imports torch or a
provider SDK.
"""

from .fakes import (
    FakeCritic,
    FakeEmbedder,
    FakeGenerator,
    FakeReranker,
    FakeRetriever,
    ScriptedCritic,
    fake_corpus,
)

__all__ = [
    "FakeCritic",
    "FakeEmbedder",
    "FakeGenerator",
    "FakeReranker",
    "FakeRetriever",
    "ScriptedCritic",
    "fake_corpus",
]
