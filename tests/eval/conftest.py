"""A constructed benchmark with a known effect (docs/evaluation.md, "Testing the harness").

Each item's concept names a colour ("red finch"); the corpus holds, for each concept, one image of
exactly that colour captioned with it; the ``colour`` scorer measures how close an image's mean
colour is to its concept's. A generator whose output takes its colour from its references
(``references: colour``) makes the final image better than the initial one; one that ignores them
(``references: ignore``) changes nothing but chance.
"""

from pathlib import Path

import pytest
import yaml
from PIL import ImageColor

from imagerag_sdk.testing.colour import colour_corpus

COLOURS = ["red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "cyan", "navy", "olive",
           "maroon"]
BIRDS = ["finch", "heron", "parrot", "owl", "wren", "gull", "robin", "crane", "stork", "swift", "lark", "kite"]


def known_effect_set(root: Path, n: int = 12) -> Path:
    items = [{"id": f"{c}-{b}", "prompt": f"A photo of a {c} {b}", "concept": f"{c} {b}"}
             for c, b in zip(COLOURS[:n], BIRDS[:n], strict=True)]
    path = root / "set.yaml"
    path.write_text(yaml.safe_dump({"items": items}, sort_keys=False))
    colour_corpus(root / "corpus", {f"a photo of a {c} {b}": ImageColor.getrgb(c)[:3]
                                    for c, b in zip(COLOURS[:n], BIRDS[:n], strict=True)})
    return path


def colour_profile(root: Path, references: str, delay: float = 0.0) -> Path:
    path = root / f"colour-{references}.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"colour-{references}",
        "generator": {"use": "fake", "size": 32, "references": references, "delay": delay},
        "critic": {"use": "fake"},
        "retriever": {"use": "fake", "corpus_dir": str(root / "corpus"), "synthetic": False},
        "loop": {"mode": "captions"}}, sort_keys=False))
    return path


@pytest.fixture
def bench(tmp_path):
    """The set file of the constructed benchmark (its corpus beside it)."""
    return known_effect_set(tmp_path)


@pytest.fixture(name="colour_profile")
def colour_profile_fixture():
    """``colour_profile(root, references, delay=0.0)``: a fake profile over the benchmark's corpus."""
    return colour_profile
