"""A critic whose provider keeps failing: the run fails on one line, or keeps the initial image."""

import json

import pytest

from imagerag_sdk.errors import PipelineError
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.settings import LoopSettings
from imagerag_sdk.testing import FakeGenerator, FakeRetriever, ScriptedCritic

PROMPT = "an oil painting of a sheep and a car"
CAUSE = "HTTP 503: upstream connect error\nor disconnect/reset before headers"


def pipeline(tmp_path, fail_as="provider", **loop):
    critic = ScriptedCritic(fail_with=CAUSE, fail_as=fail_as, structured=True)
    gen = FakeGenerator()
    return ImageRAG(gen, critic, FakeRetriever(corpus_dir=str(tmp_path / "corpus")), loop=loop), gen


def only_run(tmp_path):
    return next((tmp_path / "runs").iterdir())


def test_default_fails_on_one_line_naming_provider_and_cause(tmp_path):
    pipe, gen = pipeline(tmp_path)
    with pytest.raises(PipelineError) as err:
        pipe.run(PROMPT, out=tmp_path / "runs")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("stage 'critique' (critic 'scripted' from imagerag-sdk): scripted: HTTP 503: "
                          "upstream connect error or disconnect/reset before headers"), msg
    run_dir = only_run(tmp_path)
    trace = json.loads((run_dir / "trace.json").read_text())
    assert trace["status"] == "failed" and "HTTP 503" in trace["error"]
    assert (run_dir / "initial.png").exists() and (run_dir / "report.html").exists()
    assert not (run_dir / "final.png").exists() and len(gen.calls) == 1


@pytest.mark.parametrize("fail_as", ["provider", "timeout", "rate_limit"])
def test_keep_initial_returns_the_initial_image_and_says_why(tmp_path, fail_as):
    pipe, gen = pipeline(tmp_path, fail_as=fail_as, on_critic_error="keep_initial")
    result = pipe.run(PROMPT, out=tmp_path / "runs")
    assert result.image is result.initial_image and len(gen.calls) == 1
    assert result.critic_error and "scripted: HTTP 503" in result.critic_error
    assert result.matched is None and result.critiques == []
    run_dir = only_run(tmp_path)
    trace = json.loads((run_dir / "trace.json").read_text())
    assert trace["status"] == "done" and trace["critic_error"] == result.critic_error
    assert trace["final_image"] == "final.png" and (run_dir / "final.png").exists()
    critique_stage = [s for s in trace["stages"] if s["stage"] == "critique"][0]
    assert critique_stage["status"] == "failed"
    note = trace["rounds"][0]["notes"][0]
    assert note.startswith("the critic failed, the image is kept") and "HTTP 503" in note
    assert "the critic failed, the image is kept" in (run_dir / "report.html").read_text()


def test_keep_initial_still_fails_a_rejected_key(tmp_path):
    pipe, _ = pipeline(tmp_path, fail_as="auth", on_critic_error="keep_initial")
    with pytest.raises(PipelineError, match="stage 'critique'"):
        pipe.run(PROMPT, out=None)


def test_keep_initial_does_not_hide_a_broken_critic(tmp_path):
    class DictCritic(ScriptedCritic):
        def critique(self, prompt, image, *, max_concepts=3, user_images=()):
            return {"matches": True}

    pipe = ImageRAG(FakeGenerator(), DictCritic(), loop={"on_critic_error": "keep_initial"})
    with pytest.raises(PipelineError, match="expected a Critique"):
        pipe.run(PROMPT, out=None)


def test_on_critic_error_is_validated():
    assert LoopSettings().on_critic_error == "fail"
    with pytest.raises(ValueError, match="on_critic_error"):
        LoopSettings(on_critic_error="ignore")


def test_cli_says_the_critic_failed_and_the_image_was_kept(tmp_path):
    import os
    import subprocess
    import sys

    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\ngenerator: {use: fake}\nretriever: {use: fake}\n"
                       "critic: {use: scripted, fail_with: 'HTTP 502: bad gateway'}\n"
                       "loop: {on_critic_error: keep_initial}\n")
    out = subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", "generate", "a cat", "--profile",
                          str(profile), "--out", str(tmp_path / "runs")], capture_output=True, text=True,
                         env={**os.environ, "IMAGERAG_HOME": str(tmp_path / "home")}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "the critic failed; kept the image made so far" in out.stderr
    assert os.path.isfile(os.path.join(out.stdout.strip().splitlines()[-1], "final.png"))
