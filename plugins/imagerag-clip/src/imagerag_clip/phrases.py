"""Split a text-to-image prompt into short concept phrases with a few plain rules (no parser).

``split_phrases("an oil painting of a sheep and a car")`` → ``["an oil painting", "a sheep", "a car"]``.

Rules, in order:
1. ``in the style of X`` becomes the phrase ``X style``.
2. A few fixed compounds are kept whole (``black and white``), and ``of`` after a quantity or
   container word is not a boundary (``a cup of coffee``, ``a herd of sheep``).
3. Boundaries: punctuation (``, ; : . ! ? & +``) and the words ``and, with, of, in, on, at, by,
   next to, in front of, on top of, beside, near, under, over, above, below, behind, holding,
   wearing, while, inside, from, against, among, between, along, through, into, onto``.
4. Phrases that carry no concept (only articles/stop words, or a bare medium such as
   ``a photo`` / ``an image``) are dropped; duplicates (case-insensitive) are dropped, order kept.
5. If nothing is left, the whole prompt is the one phrase.
"""

from __future__ import annotations

import re

_GLUE = "\x01"  # stands for a space that must not split

_BOUNDARY_WORDS = (
    "in front of", "on top of", "next to", "and", "with", "of", "in", "on", "at", "by", "beside",
    "near", "under", "over", "above", "below", "behind", "holding", "wearing", "while", "inside",
    "from", "against", "among", "between", "along", "through", "into", "onto",
)
_SPLIT = re.compile(
    r"\s*[,;:.!?&+]+\s*|\s+(?:" + "|".join(w.replace(" ", r"\s+") for w in _BOUNDARY_WORDS) + r")\s+",
    re.IGNORECASE)
_STYLE_OF = re.compile(r"\bin\s+the\s+style\s+of\s+([^,;:.!?]+)", re.IGNORECASE)
_COMPOUNDS = ("black and white", "salt and pepper", "rock and roll", "fish and chips",
              "bread and butter", "arts and crafts")
_QUANTITY = ("cup", "glass", "bowl", "plate", "piece", "slice", "pair", "group", "herd", "flock",
             "bunch", "bouquet", "pile", "stack", "bottle", "box", "bag", "basket", "crowd", "row",
             "lot", "couple", "handful", "jar", "pack", "set", "swarm", "school", "pod", "loaf",
             "mug", "can", "spoonful", "sheet", "cluster", "family", "pack", "team", "field")
_OF_AFTER_QUANTITY = re.compile(r"\b(" + "|".join(_QUANTITY) + r")(e?s)?\s+of\s+", re.IGNORECASE)
_STOP = {"a", "an", "the", "some", "this", "that", "these", "those", "very", "is", "are", "it",
         "its", "there", "one", "and", "with", "of", "to", "as"}
_MEDIA = {"photo", "photos", "image", "images", "picture", "pictures", "photograph", "photographs",
          "shot", "view", "scene"}
_LEADING = re.compile(r"^(?:and|with|of|or|also|then)\s+", re.IGNORECASE)


def split_phrases(prompt: str) -> list[str]:
    """The prompt's concept phrases, in prompt order (see the module docstring for the rules)."""
    text = " ".join(str(prompt).split())
    if not text:
        return []
    text = _STYLE_OF.sub(lambda m: ", " + m.group(1).strip() + " style", text)
    for compound in _COMPOUNDS:
        text = re.sub(r"\b" + compound.replace(" ", r"\s+") + r"\b", compound.replace(" ", _GLUE),
                      text, flags=re.IGNORECASE)
    text = _OF_AFTER_QUANTITY.sub(lambda m: m.group(1) + (m.group(2) or "") + _GLUE + "of" + _GLUE, text)
    phrases: list[str] = []
    seen: set[str] = set()
    for part in _SPLIT.split(text):
        phrase = part.replace(_GLUE, " ").strip(" \t\"'()[]{}-")
        while True:
            stripped = _LEADING.sub("", phrase)
            if stripped == phrase:
                break
            phrase = stripped
        words = [w for w in re.findall(r"[\w'-]+", phrase.lower())]
        content = [w for w in words if w not in _STOP]
        if not content or all(w in _MEDIA for w in content):
            continue
        key = " ".join(words)
        if key in seen:
            continue
        seen.add(key)
        phrases.append(phrase)
    return phrases or [" ".join(str(prompt).split())]
