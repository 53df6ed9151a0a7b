import pytest

from imagerag_example import ShortCaptionReranker
from imagerag_sdk.testing.contracts import RerankerContract, assert_imports_light


class TestShortCaption(RerankerContract):
    @pytest.fixture
    def component(self):
        return ShortCaptionReranker(max_words=6)


def test_short_captions_first(tmp_path):
    from imagerag_sdk.testing import FakeRetriever

    hits = FakeRetriever(corpus_dir=str(tmp_path)).search(["a photo of a sheep standing in a field"], k=4)[0]
    out = ShortCaptionReranker(max_words=6).rerank("sheep", hits)
    lengths = [len(h.caption.split()) <= 6 for h in out]
    assert lengths == sorted(lengths, reverse=True)


def test_import_is_light():
    assert_imports_light("imagerag_example")
