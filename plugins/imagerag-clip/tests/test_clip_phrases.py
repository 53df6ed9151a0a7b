"""The prompt phrase splitter on hand-made prompts."""

from __future__ import annotations

import pytest

from imagerag_clip.phrases import split_phrases


@pytest.mark.parametrize("prompt, expected", [
    ("an oil painting of a sheep and a car", ["an oil painting", "a sheep", "a car"]),
    ("a photo of a cup of coffee on a wooden table", ["a cup of coffee", "a wooden table"]),
    ("a black and white photo of a cat wearing a hat, in the style of van gogh",
     ["a black and white photo", "a cat", "a hat", "van gogh style"]),
    ("two cats next to a red car with a surfboard on top of it", ["two cats", "a red car", "a surfboard"]),
    ("a herd of sheep in a field at sunset", ["a herd of sheep", "a field", "sunset"]),
    ("A Dog", ["A Dog"]),
    ("a dog; a DOG, and a dog", ["a dog"]),
    ("  a   lighthouse   by the sea.  ", ["a lighthouse", "the sea"]),
    ("a robot in front of a castle & a dragon", ["a robot", "a castle", "a dragon"]),
    ("an image of", ["an image of"]),
    ("", []),
])
def test_clip_split_phrases(prompt, expected):
    assert split_phrases(prompt) == expected


def test_clip_split_phrases_keeps_words_containing_boundaries():
    # "on", "in", "and" inside words are not boundaries
    assert split_phrases("a lion onto an island with sandy beaches") == ["a lion", "an island", "sandy beaches"]
