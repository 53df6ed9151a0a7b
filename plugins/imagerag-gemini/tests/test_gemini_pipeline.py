"""A whole ImageRAG run from a YAML profile: gemini-image generator + gemini critic, fake server."""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

from imagerag_sdk.profiles import build_pipeline, check, load_profile
from imagerag_sdk.testing.fake_server import FakeAPIServer

KEY = "AIza-imagerag-pipeline-secret-42"


def _png_b64(color) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_profile_runs_the_loop_through_gemini(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeAPIServer() as server:
        profile = tmp_path / "gemini-rage.yaml"
        profile.write_text(f"""
name: gemini-rage
requires: [imagerag-gemini]
generator: {{use: gemini-image, base_url: "{server.url}", api_key: {{$env: GEMINI_API_KEY}}}}
critic: {{use: gemini, base_url: "{server.url}", api_key: {{$env: GEMINI_API_KEY}}, max_retries: 0}}
retriever: {{use: fake, corpus_dir: "{tmp_path / 'corpus'}"}}
loop: {{mode: captions, max_concepts: auto, images_per_concept: 1, max_rounds: 1}}
""")
        assert check(load_profile(profile)) == []
        server.reply(images_b64=[_png_b64((200, 0, 0))])
        server.reply(json_data={"matches": False, "missing": [
            {"concept": "a red apple", "caption": "a photo of a single red apple on a table"}]})
        server.reply(images_b64=[_png_b64((0, 200, 0))])
        result = build_pipeline(profile).run("a red apple next to a cup", seed=1, out=tmp_path / "runs")

        assert [r.path.rsplit(":", 1)[-1] for r in server.requests] == ["generateContent"] * 3
        assert "gemini-2.5-flash-image" in server.requests[2].path
        parts = server.requests[2].json["contents"][0]["parts"]
        assert sum("inlineData" in p for p in parts) == len(result.references) == 1
        assert "a photo of a single red apple" in parts[-1]["text"]
        assert result.image.getpixel((0, 0)) == (0, 200, 0)
        assert all(KEY == r.headers["x-goog-api-key"] for r in server.requests)
    written = "".join(p.read_text(errors="ignore") for p in (tmp_path / "runs").rglob("*")
                      if p.is_file() and p.suffix in (".json", ".jsonl", ".txt", ".md", ".yaml"))
    assert written and KEY not in written
    assert KEY not in json.dumps(result.trace.to_dict())
