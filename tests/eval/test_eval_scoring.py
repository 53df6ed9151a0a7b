"""What the harness accepts from a scorer is ``outputs.check_scores``' verdict (the one scorer check),
one unit failing that check is isolated from its batch, and the ``colour`` scorer keeps the
Scorer contract."""

import json

import numpy as np
import pytest

from imagerag_sdk import Scorer
from imagerag_sdk.eval import runner
from imagerag_sdk.hookspecs import hookimpl
from imagerag_sdk.roles import Options
from imagerag_sdk.testing.colour import ColourScorer
from imagerag_sdk.testing.contracts import ScorerContract
from imagerag_sdk.types import Score


class NumpyScores(Scorer[Options]):
    """Details beside numpy float32 values, as a scorer computing in numpy naturally returns them."""

    name = "numpy-scores"

    def score(self, batch):
        return [float(len(item.prompt)) for item in batch]

    def score_detailed(self, batch):
        return [Score(np.float32(len(item.prompt)), {"chars": len(item.prompt)}) for item in batch]


class OddDetail(Scorer[Options]):
    """A detail that cannot be written to rows.jsonl for the 'red' items."""

    name = "odd-detail"

    def score(self, batch):
        return [1.0 for _ in batch]

    def score_detailed(self, batch):
        return [Score(1.0, {"raw": object() if "red" in item.concept else "ok"}) for item in batch]


class Plugin:
    @hookimpl
    def register_scorers(self, register):
        register(NumpyScores)
        register(OddDetail)


def rows_of(bench, tmp_path, colour_profile, scorer):
    profile = colour_profile(tmp_path, "colour")
    plan = runner.plan(bench, runner.system_args([str(profile)], [], []), [scorer], tmp_path / "out", seeds=[0])
    runner.run(plan, show_progress=False)
    return {r["item"]: r for r in map(json.loads, (tmp_path / "out" / "rows.jsonl").read_text().splitlines())}


def test_numpy_float32_scores_are_accepted_as_floats(bench, tmp_path, colour_profile, register_plugin):
    register_plugin(Plugin(), name="check-plugin")
    rows = rows_of(bench, tmp_path, colour_profile, "numpy-scores")
    assert all(r["error"] is None for r in rows.values()), [r["error"] for r in rows.values()]
    value = rows["red-finch"]["scores"]["numpy-scores"]["initial"]
    assert type(value) is float and value == len("A photo of a red finch")


def test_a_detail_that_is_not_json_fails_its_unit_only(bench, tmp_path, colour_profile, register_plugin):
    register_plugin(Plugin(), name="check-plugin")
    rows = rows_of(bench, tmp_path, colour_profile, "odd-detail")
    red = rows["red-finch"]
    assert red["status"] == "done" and "odd-detail" not in red["scores"]
    assert red["error"].startswith("scorer 'odd-detail' failed:") and "JSON" in red["error"]
    assert "\n" not in red["error"]
    others = [r for k, r in rows.items() if k != "red-finch"]
    assert len(others) == 11 and all(r["scores"]["odd-detail"] == {"initial": 1.0, "final": 1.0} for r in others)
    assert all(r["score_details"]["odd-detail"]["initial"] == {"raw": "ok"} for r in others)


class TestColourScorer(ScorerContract):
    @pytest.fixture
    def component(self):
        # the contract's items are a red car, a sheep and a blue boat: give the sheep its colour
        return ColourScorer(colours={"sheep": "white"})


def test_cache_files_are_renamed_into_place_without_a_disk_flush(tmp_path, monkeypatch):
    """Two fsyncs per score file cost more than a tiny scorer's batch (docs/benchmarks.md); a file
    lost or torn by a power cut is redone (next test), so the cache does not flush."""
    import os

    from imagerag_sdk.eval.cache import Cache

    flushes = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushes.append(fd), real_fsync(fd)))
    path = tmp_path / "cache" / "score" / "a" / "b" / "unit.json"
    Cache.write(path, {"initial": {"value": 0.5, "detail": {}}})
    Cache.write(path, {"initial": {"value": 0.25, "detail": {}}})
    assert flushes == []
    assert Cache.read(path) == {"initial": {"value": 0.25, "detail": {}}}
    assert [p.name for p in path.parent.iterdir()] == ["unit.json"]  # no temporary file left


def test_an_empty_or_torn_score_file_is_scored_again(bench, tmp_path, colour_profile):
    profile = colour_profile(tmp_path, "colour")
    args = runner.system_args([str(profile)], [], [])

    def run():
        runner.run(runner.plan(bench, args, ["colour"], tmp_path / "out", seeds=[0]), show_progress=False)
        return {r["item"]: r for r in map(json.loads, (tmp_path / "out" / "rows.jsonl").read_text().splitlines())}

    before = run()
    files = sorted((tmp_path / "out" / "cache" / "score").rglob("*.json"))
    assert len(files) == 12
    files[0].write_text("")
    files[1].write_text(files[1].read_text()[:20])
    after = run()
    assert after == before and all(r["error"] is None for r in after.values())
    assert all(json.loads(f.read_text())["initial"]["value"] >= 0 for f in files[:2])


def test_env_references_in_a_scorer_spec_are_resolved(monkeypatch):
    """A VLM scorer's critic key comes from the environment, as in a profile (docs/evaluation.md's
    Table 1 command); an unset variable is a one-line error naming it."""
    from imagerag_sdk.errors import ConfigError
    from imagerag_sdk.eval.scoring import build_scorers

    spec = "{use: vlm, critic: {use: openai, model: gpt-4o-2024-08-06, api_key: {$env: EVAL_SCORER_KEY}}}"
    monkeypatch.setenv("EVAL_SCORER_KEY", "sk-eval-test")
    (loaded,) = build_scorers([spec])
    assert loaded.component.options.critic.model_extra["api_key"] == "sk-eval-test"
    assert "sk-eval-test" not in json.dumps(loaded.spec.spec)  # the reference is what is recorded
    monkeypatch.delenv("EVAL_SCORER_KEY")
    with pytest.raises(ConfigError, match="EVAL_SCORER_KEY") as err:
        build_scorers([spec])
    assert "\n" not in str(err.value)
