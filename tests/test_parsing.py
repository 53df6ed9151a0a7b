"""Answer parsers: the shapes real models answer in, and no input that crashes them."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagerag_sdk import parsing


@pytest.mark.parametrize("text,expected", [
    ("Yes", True), ("yes.", True), ("**Yes**", True), ("YES, it matches.", True),
    ("No", False), ("no.", False), ("**No**", False), ("No, the sheep is missing.", False),
    ("The image does not match the prompt.", False), ('{"matches": true}', True),
    ('```json\n{"answer": "no"}\n```', False), ("I can't tell.", None), ("maybe", None), ("", None),
])
def test_yes_no(text, expected):
    assert parsing.parse_yes_no(text) is expected


@pytest.mark.parametrize("text", [
    "- oil painting style\n- a sheep",
    "1. oil painting style\n2. a sheep",
    "1) Oil painting style\n2) A sheep.",
    "* **oil painting style**\n* **a sheep**",
    "Missing concepts:\n- oil painting style\n- a sheep",
    "oil painting style, a sheep",
    '["oil painting style", "a sheep"]',
    '```json\n{"missing": ["oil painting style", "a sheep"]}\n```',
    "• oil painting style\n• a sheep",
])
def test_concept_lists(text):
    assert [c.lower() for c in parsing.parse_list(text)] == ["oil painting style", "a sheep"]


@pytest.mark.parametrize("text", ["", "None", "Nothing is missing.", "I am unable to respond to that.",
                                  "- none"])
def test_empty_lists(text):
    assert parsing.parse_list(text) == []


def test_list_limit():
    assert parsing.parse_list("- a\n- b\n- c\n- d", limit=2) == ["a", "b"]


def test_captions_by_name_and_by_order():
    concepts = ["a sheep", "oil painting style"]
    named = "a sheep: a fluffy white sheep on grass\noil painting style: thick oil brush strokes on canvas"
    assert parsing.parse_captions(named, concepts) == {
        "a sheep": "a fluffy white sheep on grass", "oil painting style": "thick oil brush strokes on canvas"}
    ordered = "1. a fluffy white sheep on grass\n2. thick oil brush strokes on canvas"
    assert parsing.parse_captions(ordered, concepts)["oil painting style"] == "thick oil brush strokes on canvas"
    as_json = json.dumps({"captions": [{"concept": "a sheep", "caption": "x"},
                                       {"concept": "oil painting style", "caption": "y"}]})
    assert parsing.parse_captions(as_json, concepts) == {"a sheep": "x", "oil painting style": "y"}


def test_fused_variants():
    good = {"matches": False, "missing": [{"concept": "a sheep", "caption": "a white sheep"}]}
    assert parsing.parse_fused(good) == (False, [("a sheep", "a white sheep")])
    assert parsing.parse_fused("```json\n" + json.dumps(good) + "\n```") == (False, [("a sheep", "a white sheep")])
    assert parsing.parse_fused('Sure! {"matches": "yes", "missing": []}') == (True, [])
    assert parsing.parse_fused("{not json") == (None, [])
    assert parsing.parse_fused({"missing": []}) == (None, [])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), json_values.map(json.dumps), st.text().map(lambda t: f"```json\n{t}\n```")))
def test_no_input_crashes_the_parsers(text):
    assert parsing.parse_yes_no(text) in (True, False, None)
    assert all(isinstance(x, str) and x for x in parsing.parse_list(text, limit=5))
    caps = parsing.parse_captions(text, ["a sheep", "a car"])
    assert set(caps) <= {"a sheep", "a car"}
    matches, pairs = parsing.parse_fused(text)
    assert matches in (True, False, None)
    assert all(isinstance(c, str) and isinstance(p, str) for c, p in pairs)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fused_accepts_any_object(value):
    matches, pairs = parsing.parse_fused(value)
    assert matches in (True, False, None)
