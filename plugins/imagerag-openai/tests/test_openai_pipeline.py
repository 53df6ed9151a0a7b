"""A whole ImageRAG run from a YAML profile: gpt-image generator + openai critic, fake server."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json

from PIL import Image

from imagerag_sdk.profiles import build_pipeline, check, load_profile
from imagerag_sdk.testing.fake_server import FakeAPIServer

KEY = "sk-openai-imagerag-pipeline-secret-77"


def _png_b64(color) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_profile_runs_the_loop_through_openai(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeAPIServer() as server:
        profile = tmp_path / "gpt.yaml"
        profile.write_text(f"""
name: gpt
requires: [imagerag-openai]
generator: {{use: gpt-image, base_url: "{server.url}/v1", api_key: {{$env: OPENAI_API_KEY}},
             quality: low, max_references: 3, max_retries: 0}}
critic: {{use: openai, base_url: "{server.url}/v1", api_key: {{$env: OPENAI_API_KEY}}, max_retries: 0}}
retriever: {{use: fake, corpus_dir: "{tmp_path / 'corpus'}"}}
loop: {{mode: captions, max_concepts: auto, images_per_concept: 1, max_rounds: 1}}
""")
        assert check(load_profile(profile)) == []
        server.reply(images_b64=[_png_b64((10, 10, 10))])                 # first pass
        server.reply(json_data={"matches": False, "missing": [             # critic, fused
            {"concept": "a cup", "caption": "a photo of a white ceramic cup on a table"}]})
        server.reply(images_b64=[_png_b64((200, 200, 200))])              # reference pass
        result = build_pipeline(profile).run("a red apple next to a cup", seed=1, out=tmp_path / "runs")

        paths = [r.path for r in server.requests]
        assert paths == ["/v1/images/generations", "/v1/chat/completions", "/v1/images/edits"]
        assert server.requests[1].json["response_format"]["type"] == "json_schema"
        assert server.requests[1].json["temperature"] == 0
        crit = result.critiques[0]
        assert [m.caption for m in crit.missing] == ["a photo of a white ceramic cup on a table"]
        assert len(result.references) == 1
        edit = server.requests[2]
        head = f"content-type: {edit.headers['content-type']}\r\n\r\n".encode()
        parts = list(email.parser.BytesParser(policy=email.policy.default)
                     .parsebytes(head + edit.body).iter_parts())
        assert sum(1 for p in parts if p.get_filename()) == 1
        prompt = next(p for p in parts if p.get_param("name", header="content-disposition") == "prompt")
        assert "a photo of a white ceramic cup on a table" in prompt.get_content()
    written = "".join(p.read_text(errors="ignore") for p in (tmp_path / "runs").rglob("*")
                      if p.is_file() and p.suffix in (".json", ".jsonl", ".txt", ".md", ".yaml"))
    assert written and KEY not in written
    assert KEY not in json.dumps(result.trace.to_dict())
