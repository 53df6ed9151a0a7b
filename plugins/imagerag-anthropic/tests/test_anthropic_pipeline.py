"""A whole ImageRAG run from a YAML profile with the anthropic critic against the fake server."""

from __future__ import annotations

import json

from imagerag_sdk.profiles import build_pipeline, check, load_profile
from imagerag_sdk.testing.fake_server import FakeAPIServer

KEY = "sk-ant-imagerag-pipeline-secret-42"


def test_profile_runs_the_loop_through_claude(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeAPIServer() as server:
        profile = tmp_path / "claude.yaml"
        profile.write_text(f"""
name: claude
requires: [imagerag-anthropic]
generator: {{use: fake, size: 64, max_references: 3}}
critic: {{use: anthropic, model: claude-opus-4-7, base_url: "{server.url}",
          api_key: {{$env: ANTHROPIC_API_KEY}}, max_retries: 0}}
retriever: {{use: fake, corpus_dir: "{tmp_path / 'corpus'}"}}
loop: {{mode: captions, max_concepts: auto, images_per_concept: 1, max_rounds: 1}}
""")
        assert check(load_profile(profile)) == []
        server.reply("I think so")  # not JSON: the fused ladder asks again, varying the prompt
        server.reply(json_data={"matches": False, "missing": [
            {"concept": "a cup", "caption": "a photo of a white ceramic cup on a table"}]})
        result = build_pipeline(profile).run("a red apple next to a cup", seed=1, out=tmp_path / "runs")

        assert len(server.requests) == 2
        bodies = [r.json for r in server.requests]
        assert all(b["tool_choice"]["type"] == "tool" and "temperature" not in b for b in bodies)
        crit = result.critiques[0]
        assert [m.caption for m in crit.missing] == ["a photo of a white ceramic cup on a table"]
        assert crit.exchanges[1].alternative and crit.exchanges[1].temperature is None
        assert len(result.references) == 1
    written = "".join(p.read_text(errors="ignore") for p in (tmp_path / "runs").rglob("*")
                      if p.is_file() and p.suffix in (".json", ".jsonl", ".txt", ".md", ".yaml"))
    assert written and KEY not in written
    assert KEY not in json.dumps(result.trace.to_dict())
