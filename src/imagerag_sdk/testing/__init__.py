"""Testing kit for the SDK and for plugin authors: fakes, contract tests, a fake API server.

Nothing here imports torch or a provider SDK.
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
