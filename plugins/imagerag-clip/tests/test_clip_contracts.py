"""The SDK's contract tests for the clip/siglip embedders and the clip critic, plus import weight."""

from __future__ import annotations

import pytest

from imagerag_sdk.testing.contracts import CriticContract, EmbedderContract, assert_imports_light

pytestmark = pytest.mark.slow


class TestClipEmbedderContract(EmbedderContract):
    @pytest.fixture
    def component(self, clip_tiny):
        from imagerag_clip import ClipEmbedder

        return ClipEmbedder(clip_tiny, device="cpu")


class TestSiglipEmbedderContract(EmbedderContract):
    """The siglip class over the tiny CLIP weights with open_clip's bundled tokenizer."""

    @pytest.fixture
    def component(self, clip_tiny):
        from imagerag_clip import SiglipEmbedder

        return SiglipEmbedder(clip_tiny, tokenizer="simple", device="cpu")

    def test_siglip_file_weights_use_siglip_preprocessing(self, component):
        assert ",squash,bicubic,mean=(0.5000,0.5000,0.5000)" in component.identity


class TestClipCriticContract(CriticContract):
    @pytest.fixture
    def component(self, clip_tiny):
        from imagerag_clip import ClipCritic

        return ClipCritic(embedder={"use": "clip", **clip_tiny}, threshold=1.0, phrase_threshold=1.0)


def test_clip_import_is_light():
    assert_imports_light("imagerag_clip")
