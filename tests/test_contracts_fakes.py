"""The fakes satisfy the same contracts plugin authors run."""

import pytest

from imagerag_sdk.testing import FakeCritic, FakeEmbedder, FakeGenerator, FakeReranker, FakeRetriever
from imagerag_sdk.testing.contracts import (
    CriticContract,
    EmbedderContract,
    GeneratorContract,
    RerankerContract,
    RetrieverContract,
)


class TestFakeGenerator(GeneratorContract):
    @pytest.fixture
    def component(self):
        return FakeGenerator()


class TestFakeCritic(CriticContract):
    @pytest.fixture
    def component(self):
        return FakeCritic()


class TestFakeEmbedder(EmbedderContract):
    @pytest.fixture
    def component(self):
        return FakeEmbedder()


class TestFakeRetriever(RetrieverContract):
    @pytest.fixture
    def component(self, tmp_path):
        return FakeRetriever(corpus_dir=str(tmp_path / "corpus"))


class TestFakeReranker(RerankerContract):
    @pytest.fixture
    def component(self):
        return FakeReranker()
