"""The openai critic's server keeps answering 500: fail on one line, or keep the initial image."""

from __future__ import annotations

import json

import pytest

from imagerag_sdk.errors import PipelineError
from imagerag_sdk.profiles import build_pipeline
from imagerag_sdk.testing.fake_server import FakeAPIServer

KEY = "sk-openai-critic-failure-secret-31"


def profile(tmp_path, server, on_critic_error):
    path = tmp_path / "p.yaml"
    path.write_text(f"""
name: fake-gen-openai-critic
generator: {{use: fake}}
critic: {{use: openai, base_url: "{server.url}/v1", api_key: {{$env: OPENAI_API_KEY}}, max_retries: 1}}
retriever: {{use: fake, corpus_dir: "{tmp_path / 'corpus'}"}}
loop: {{on_critic_error: {on_critic_error}}}
""")
    return path


@pytest.mark.parametrize("policy", ["fail", "keep_initial"])
def test_critic_server_answering_500(tmp_path, monkeypatch, policy):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeAPIServer() as server:
        server.set_default("the model is overloaded", status=500)
        pipe = build_pipeline(profile(tmp_path, server, policy))
        if policy == "fail":
            with pytest.raises(PipelineError) as err:
                pipe.run("a red apple", out=tmp_path / "runs")
            message = str(err.value)
        else:
            result = pipe.run("a red apple", out=tmp_path / "runs")
            message = result.critic_error
            assert result.image is result.initial_image and result.matched is None
        assert len(server.requests) == 2, "the client's own retry, then the error"
    assert "\n" not in message
    assert message.startswith("stage 'critique' (critic 'openai' from imagerag-openai): openai: ")
    assert "HTTP 500" in message and "the model is overloaded" in message
    run_dir = next((tmp_path / "runs").iterdir())
    trace = json.loads((run_dir / "trace.json").read_text())
    assert (run_dir / "initial.png").exists() and (run_dir / "report.html").exists()
    if policy == "fail":
        assert trace["status"] == "failed" and "HTTP 500" in trace["error"]
    else:
        assert trace["status"] == "done" and trace["critic_error"] == message
        assert (run_dir / "final.png").exists()
    assert KEY not in (run_dir / "trace.json").read_text()
