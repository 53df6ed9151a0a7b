"""The scorer output check (outputs.check_scores) and the ScorerContract, on two tiny scorers
defined here and on broken ones the contract must fail."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagerag_sdk.errors import ConfigError, PipelineError
from imagerag_sdk.outputs import check_scores
from imagerag_sdk.roles import Scorer
from imagerag_sdk.testing.contracts import ScorerContract, score_items
from imagerag_sdk.types import Score, ScoreItem

HERE = f"from module {__name__}"


@pytest.fixture(autouse=True)
def _importable_here(monkeypatch):
    """The contract imports the scorer's module (``tests.test_scorer_contract``) in a fresh
    interpreter: let it find this file from any working directory."""
    folder = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH")) if p))


def _mean_colour(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0) / 255.0


class BrightnessScorer(Scorer):
    """Mean brightness of the image, 0–1 (a tiny 'testing' scorer)."""

    name = "brightness"

    def score(self, batch: Sequence[ScoreItem]) -> list[float]:
        self.load()
        return [float(_mean_colour(item.image).mean()) for item in batch]


class RealColourScorer(Scorer):
    """1 − the mean distance of the image's mean colour to each real image's (needs real images)."""

    name = "real-colour"
    needs_real_images = True

    def score(self, batch: Sequence[ScoreItem]) -> list[float]:
        self.load()
        out = []
        for i, item in enumerate(batch):
            if not item.real_images:
                raise ConfigError(f"scorer '{self.name}': item {i + 1} has no real_images",
                                  hint="give each item real images of its concept")
            mine = _mean_colour(item.image)
            dists = [np.abs(mine - _mean_colour(Image.open(p))).mean() for p in item.real_images]
            out.append(float(1.0 - np.mean(dists)))
        return out

    def score_detailed(self, batch: Sequence[ScoreItem]) -> list[Score]:
        return [Score(v, {"real_images": len(item.real_images)})
                for v, item in zip(self.score(batch), batch, strict=True)]


class TestBrightnessScorer(ScorerContract):
    @pytest.fixture
    def component(self):
        return BrightnessScorer()


class TestRealColourScorer(ScorerContract):
    @pytest.fixture
    def component(self):
        return RealColourScorer()


# -- check_scores ------------------------------------------------------------------------------
@pytest.mark.parametrize("values,what", [
    (np.array([0.1, 0.2]), "score() returned ndarray, expected a list (call .tolist() on an array)"),
    ([0.1], "score() returned 1 scores for 2 items, expected one per item"),
    ([0.1, math.nan], "score() returned nan for item 2, expected a finite float"),
    ([0.1, math.inf], "score() returned inf for item 2, expected a finite float"),
    ([0.1, "0.2"], "score() returned str for item 2, expected a float"),
    ([True, 0.2], "score() returned bool for item 1, expected a float"),
    ([0.1, None], "score() returned None for item 2, expected a float"),
    ([Score(0.1, {"raw": object()}), 0.2], "a detail for item 1 that is not JSON-serialisable"),
    ([Score(0.1, ["yes"]), 0.2], "returned a list detail for item 1, expected a mapping"),  # type: ignore[arg-type]  # the wrong output under test
])
def test_check_scores_names_the_scorer_and_the_problem(values, what):
    with pytest.raises(PipelineError) as err:
        check_scores(values, BrightnessScorer(), 2)
    message = str(err.value)
    assert what in message
    assert message.startswith(f"stage 'score' (scorer 'brightness' {HERE})"), message
    assert "\n" not in message


def test_check_scores_accepts_numbers_and_scores():
    out = check_scores([np.float32(0.25), 1, Score(0.5, {"answer": "yes"})], BrightnessScorer(), 3)
    assert out == [Score(0.25), Score(1.0), Score(0.5, {"answer": "yes"})]
    assert all(type(s.value) is float for s in out)
    assert check_scores((), BrightnessScorer(), 0) == []


# -- the contract fails scorers that break its promises ------------------------------------------
class ReversedScorer(BrightnessScorer):
    name = "reversed"

    def score(self, batch):
        return super().score(batch)[::-1]


class DetailDisagrees(BrightnessScorer):
    name = "disagrees"

    def score_detailed(self, batch):
        return [Score(v + 0.5) for v in self.score(batch)]


class ReloadsEachCall(BrightnessScorer):
    name = "reloads"

    def score(self, batch):
        self._loaded = False
        return super().score(batch)


class NoRealImagesCheck(RealColourScorer):
    name = "crashes"

    def score(self, batch):
        return [float(np.mean([0.0 for _ in item.real_images])) for item in batch]  # NaN when empty


def _fails(test, *args) -> str:
    with pytest.raises((pytest.fail.Exception, AssertionError)) as err:
        test(*args)
    return str(err.value)


def test_contract_fails_broken_scorers(tmp_path):
    contract = ScorerContract()
    items = score_items(tmp_path)
    assert "a batch must score each item as scoring it alone does" in _fails(contract.test_batch_equals_single_in_order,
                                                      ReversedScorer(), items)
    assert "score_detailed() values must equal score()" in _fails(contract.test_detailed_equals_score,
                                                                  DetailDisagrees(), items)
    assert "scoring loaded 2 times, expected once" in _fails(contract.test_loads_once_while_scoring,
                                                             ReloadsEachCall(), items)
    with pytest.warns(RuntimeWarning):  # numpy: mean of an empty list
        assert "DID NOT RAISE" in _fails(contract.test_real_images_as_declared, NoRealImagesCheck(), items)
    contract.test_real_images_as_declared(RealColourScorer(), items)
