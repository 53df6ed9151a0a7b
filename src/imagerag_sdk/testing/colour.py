"""A constructed benchmark with a known effect: the ``colour`` scorer and a corpus of coloured images.

* :class:`ColourScorer` scores how close an image's mean colour is to its concept's colour (a colour
  word in the concept, "red finch", or the ``colours`` option), 1 = the same colour, 0 = black
  against white.
* :func:`colour_corpus` writes one plain image per caption in the colour given for it, so retrieval
  by the concept finds the one reference of the concept's colour. With ``FakeGenerator``'s
  ``references: colour`` the final image takes that colour and the score goes up; with
  ``references: ignore`` nothing but chance moves it (docs/evaluation.md, tests/eval/).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import Field

from ..atomic import replacing, write_text
from ..roles import Options, Scorer
from ..types import ScoreItem
from .fakes import words

_FAR = 255.0 * math.sqrt(3.0)


def colour_of(concept: str, colours: Mapping[str, tuple[int, int, int] | str] | None = None) -> tuple[int, int, int]:
    """The RGB colour of ``concept``: ``colours[concept]`` (RGB or a colour name), else the first
    word of the concept that is a colour name; :class:`ValueError` when there is none."""
    from PIL import ImageColor

    given = (colours or {}).get(concept)
    if given is not None:
        if isinstance(given, str):
            rgb = ImageColor.getrgb(given)
            return rgb[0], rgb[1], rgb[2]
        return given
    for word in words(concept):
        if word in ImageColor.colormap:
            rgb = ImageColor.getrgb(word)
            return rgb[0], rgb[1], rgb[2]
    raise ValueError(f"concept '{concept}' names no colour: add it to the colour scorer's 'colours' option")


class ColourScorerOptions(Options):
    colours: dict[str, tuple[int, int, int] | str] = Field(
        default_factory=dict, description="Concept → its colour (RGB or a colour name); default: a colour "
        "word in the concept")


class ColourScorer(Scorer[ColourScorerOptions]):
    """1 − (distance of the image's mean colour to the concept's colour) / (white − black)."""

    name = "colour"
    description = "How close an image's mean colour is to its concept's colour (tests, no model)."

    def score(self, batch: Sequence[ScoreItem]) -> list[float]:
        import numpy as np

        self.load()  # nothing to load; counted like any scorer's load (the Scorer contract)
        out = []
        for item in batch:
            target = np.asarray(colour_of(item.concept, self.options.colours), dtype=np.float64)
            mean = np.asarray(item.image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
            out.append(float(1.0 - np.linalg.norm(mean - target) / _FAR))
        return out


def colour_corpus(root: str | Path, captions: Mapping[str, tuple[int, int, int]], size: int = 32) -> Path:
    """One plain ``size``² PNG per caption, in its colour, with a ``.txt`` caption sidecar."""
    from PIL import Image, PngImagePlugin

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, (caption, rgb) in enumerate(captions.items()):
        path = root / f"c{i:03d}-{'-'.join(words(caption))[:40]}.png"
        info = PngImagePlugin.PngInfo()
        info.add_text("caption", caption)
        write_text(path.with_suffix(".txt"), caption + "\n")
        with replacing(path) as tmp:
            Image.new("RGB", (size, size), rgb).save(tmp, format="PNG", pnginfo=info)
    return root
