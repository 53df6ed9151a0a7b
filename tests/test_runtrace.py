"""The typed run trace: real trace.json files validate against RunTrace, and the published schema is current."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagerag_sdk.errors import ConfigError, PipelineError
from imagerag_sdk.pipeline import ImageRAG, RunResult
from imagerag_sdk.runtrace import SCHEMA_VERSION, RunTrace, json_schema
from imagerag_sdk.testing import FakeGenerator, FakeReranker, FakeRetriever, ScriptedCritic

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "an oil painting of a sheep and a car"
FUSED = {"matches": False, "missing": [{"concept": "sheep", "caption": "a sheep standing in a green field"},
                                       {"concept": "car", "caption": "a red sports car parked on a street"}]}


class InterruptingRetriever(FakeRetriever):
    name = "interrupting"

    def search(self, queries, k):
        raise KeyboardInterrupt


def _pipe(tmp_path, critic=None, retriever=None, reranker=None, **loop):
    return ImageRAG(FakeGenerator(), critic or ScriptedCritic(answers=[FUSED], structured=True),
                    retriever or FakeRetriever(corpus_dir=str(tmp_path / "corpus")), reranker, loop)


def _run(tmp_path, kind):
    out = tmp_path / "runs"
    if kind == "fake profile":
        ImageRAG.from_profile("fake").run(PROMPT, seed=2, out=out)
    elif kind == "reranked, thresholded":
        _pipe(tmp_path, reranker=FakeReranker(), min_similarity=0.2, candidates=4).run(PROMPT, out=out)
    elif kind == "truncated":
        long = {"matches": False, "missing": [{"concept": "sheep " * 100, "caption": "a sheep " * 500}]}
        _pipe(tmp_path, ScriptedCritic(answers=[long], structured=True)).run("a sheep " * 3000, out=out)
    elif kind == "rephrase":
        critic = ScriptedCritic(answers=[FUSED, "a painting of a woolly sheep beside a red car"], structured=True)
        _pipe(tmp_path, critic, mode="rephrase").run(PROMPT, out=out)
    elif kind == "keep_initial":
        critic = ScriptedCritic(fail_with="HTTP 503: upstream", structured=True)
        _pipe(tmp_path, critic, on_critic_error="keep_initial").run(PROMPT, out=out)
    elif kind == "failed":
        with pytest.raises(PipelineError, match="HTTP 500"):
            _pipe(tmp_path, ScriptedCritic(fail_with="HTTP 500", structured=True)).run(PROMPT, out=out)
    elif kind == "interrupted":
        with pytest.raises(KeyboardInterrupt):
            _pipe(tmp_path, retriever=InterruptingRetriever(corpus_dir=str(tmp_path / "corpus"))).run(PROMPT, out=out)
    elif kind == "picked":
        pipe = ImageRAG.from_profile("fake")
        pipe.generate_with(PROMPT, pipe.retrieve("a sheep", k=2), out=out)
    return next(out.iterdir())


@pytest.mark.parametrize("kind, status", [
    ("fake profile", "done"), ("reranked, thresholded", "done"), ("truncated", "done"), ("rephrase", "done"),
    ("keep_initial", "done"), ("failed", "failed"), ("interrupted", "interrupted"), ("picked", "done")])
def test_written_traces_validate_against_the_model(tmp_path, kind, status):
    run_dir = _run(tmp_path, kind)
    on_disk = json.loads((run_dir / "trace.json").read_text())
    trace = RunTrace.load(run_dir)  # extra="forbid": an unknown key fails here
    assert trace.status == status and on_disk["schema"] == SCHEMA_VERSION == trace.schema_version
    assert trace.to_dict() == on_disk, "nothing in trace.json is lost or added by the model"
    assert trace.stages and all(s.status in ("done", "failed", "interrupted") for s in trace.stages)
    if kind == "truncated":
        assert {t.what for t in trace.rounds[0].truncated} == {"concept", "caption"}
        assert all((run_dir / t.full_text).is_file() for t in trace.rounds[0].truncated if t.full_text)
    if kind == "keep_initial":
        assert trace.critic_error and trace.rounds[0].critique is None and trace.final_image == "final.png"
    if kind == "reranked, thresholded":
        assert trace.rounds[0].reranked is not None
    if kind == "rephrase":
        assert trace.rounds[0].rephrase and trace.rounds[0].rephrase.prompt.startswith("a painting")


def test_run_result_trace_is_the_typed_trace(tmp_path):
    result: RunResult = ImageRAG.from_profile("fake").run(PROMPT, out=None)
    assert isinstance(result.trace, RunTrace) and result.run_dir is None
    assert result.trace.status == "done" and result.trace.generations[-1].references
    used = result.trace.rounds[0].used
    assert [u.path for u in used] == [r.path for r in result.references]
    assert all(u.query in result.trace.rounds[0].hits for u in used)


def test_published_schema_is_current():
    published = (ROOT / "docs" / "trace-schema.json").read_text()
    assert published == json_schema(), (
        "docs/trace-schema.json is out of date: python -m imagerag_sdk.runtrace --schema > docs/trace-schema.json")
    schema = json.loads(published)
    assert schema["properties"]["schema"]["default"] == SCHEMA_VERSION
    assert {"Round", "StageTiming", "HitRecord", "DroppedRecord", "CritiqueRecord"} <= set(schema["$defs"])


def test_the_schema_command_prints_the_schema():
    out = subprocess.run([sys.executable, "-m", "imagerag_sdk.runtrace", "--schema"],
                         capture_output=True, text=True, check=True)
    assert out.stdout == json_schema()


def test_loading_a_bad_or_newer_trace_says_what_is_wrong(tmp_path):
    run_dir = _run(tmp_path, "fake profile")
    data = json.loads((run_dir / "trace.json").read_text())
    (tmp_path / "newer.json").write_text(json.dumps({**data, "schema": SCHEMA_VERSION + 1}))
    with pytest.raises(ConfigError, match=f"schema {SCHEMA_VERSION + 1}.*upgrade imagerag-sdk"):
        RunTrace.load(tmp_path / "newer.json")
    data["rounds"][0]["hits"] = "not a mapping"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"is not a run trace: rounds\.0\.hits"):
        RunTrace.load(tmp_path / "bad.json")


def test_import_does_not_load_jinja2():
    code = "import sys, imagerag_sdk, imagerag_sdk.pipeline; print('jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_version_1_trace_still_loads():
    """trace.json of imagerag-sdk before the typed trace (schema 1, a reranked, thresholded run)."""
    trace = RunTrace.load(ROOT / "tests" / "data" / "trace-v1-reranked.json")
    assert trace.schema_version == 1 and trace.status == "done"
    rnd = trace.rounds[0]
    assert rnd.reranked and rnd.used and rnd.dropped and rnd.truncated == [] and rnd.rephrase is None
