"""Testing kit for the SDK and for plugin authors: fakes, contract tests, a fake API server.

The fakes are registered by the ``testing`` plugin (:mod:`imagerag_sdk.testing.plugin`, an entry
point of the core distribution), never by the core's built-ins. Nothing here imports torch or a
provider SDK. The names below are imported on first use, so that a submodule (the fake embedder,
which a search of a fake corpus imports) comes without the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
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


__getattr__, __dir__ = lazy_names(__name__, globals(), dict.fromkeys(__all__, "fakes"))
