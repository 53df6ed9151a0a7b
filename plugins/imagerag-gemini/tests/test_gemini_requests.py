"""What the gemini critic really sends, and how it reads Gemini-specific answers and errors."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from imagerag_gemini import GeminiCritic
from imagerag_sdk.critique import FUSED_SCHEMA, VLMRequest
from imagerag_sdk.errors import AuthenticationError, ProviderError, ProviderTimeoutError
from imagerag_sdk.testing.contracts import assert_imports_light
from imagerag_sdk.testing.fake_server import FakeAPIServer
from imagerag_sdk.testing.provider_contract import FUSED_NO, PROMPT, sample_image

KEY = "AIza-imagerag-test-key-0123456789"


@pytest.fixture
def gemini_server():
    with FakeAPIServer() as server:
        yield server


def critic(server, **options):
    options.setdefault("retry_initial_delay", 0.01)
    return GeminiCritic(api_key=KEY, base_url=server.url, **options)


def gen_config(request):
    return request.json["generationConfig"]


def test_fused_sends_json_mime_type_and_schema(gemini_server):
    gemini_server.reply(json_data=FUSED_NO)
    got = critic(gemini_server).critique(PROMPT, sample_image())
    req = gemini_server.requests[0]
    assert req.path.endswith("/models/gemini-2.5-flash:generateContent")
    conf = gen_config(req)
    assert conf["responseMimeType"] == "application/json"
    assert conf["responseJsonSchema"] == FUSED_SCHEMA
    assert conf["temperature"] == 0.0 and conf["maxOutputTokens"] == 4096
    assert got.exchanges[0].parsed["missing"][0][0] == "a sheep"


def test_three_step_sends_no_schema(gemini_server):
    gemini_server.reply("Yes")
    critic(gemini_server, protocol="three_step").critique(PROMPT, sample_image())
    conf = gen_config(gemini_server.requests[0])
    assert "responseMimeType" not in conf and "responseJsonSchema" not in conf


def test_image_part_comes_before_the_text(gemini_server):
    gemini_server.reply("Yes")
    critic(gemini_server, protocol="three_step").critique(PROMPT, sample_image())
    parts = gemini_server.requests[0].json["contents"][0]["parts"]
    assert list(parts[0]) == ["inlineData"] and parts[0]["inlineData"]["mime_type"] == "image/png"
    assert PROMPT in parts[1]["text"]


def test_jpeg_upload_option(gemini_server):
    gemini_server.reply("Yes")
    critic(gemini_server, protocol="three_step", image_format="jpeg").critique(PROMPT, sample_image())
    part = gemini_server.requests[0].json["contents"][0]["parts"][0]
    assert part["inlineData"]["mime_type"] == "image/jpeg"


def test_send_temperature_never_omits_it(gemini_server):
    gemini_server.reply("Yes")
    c = critic(gemini_server, protocol="three_step", send_temperature="never")
    c.critique(PROMPT, sample_image())
    assert "temperature" not in gen_config(gemini_server.requests[0])


def test_thinking_budget_and_seed_and_system_reach_the_server(gemini_server):
    gemini_server.reply("hi")
    c = critic(gemini_server, thinking_budget=0, max_tokens=None).load()
    c.ask(VLMRequest(text="hello", seed=7, system="be brief", max_tokens=300, temperature=0.4))
    body = gemini_server.requests[0].json
    conf = body["generationConfig"]
    # google-genai writes this field snake_case on the wire (the API takes both spellings)
    assert list(conf["thinkingConfig"].values()) == [0]
    assert conf["seed"] == 7 and conf["maxOutputTokens"] == 300 and conf["temperature"] == 0.4
    assert body["systemInstruction"]["parts"][0]["text"] == "be brief"


def test_invalid_json_under_a_schema_falls_back_to_text(gemini_server):
    # Gemini gives parsed=None silently; the text still goes to the core's tolerant parser
    gemini_server.reply('{"matches": false, "missing": [{"concept": "a sheep"')
    answer = critic(gemini_server).load().ask(
        VLMRequest(text="judge", json_schema=FUSED_SCHEMA, temperature=0.0))
    assert answer.data is None and answer.text.startswith('{"matches": false')


def test_finish_reason_recorded_when_not_stop(gemini_server):
    gemini_server.reply(body={"candidates": [{"content": {"role": "model", "parts": [{"text": "Ye"}]},
                                               "finishReason": "MAX_TOKENS"}]})
    answer = critic(gemini_server).load().ask(VLMRequest(text="x", temperature=0.0))
    assert answer.text == "Ye" and answer.usage == {"finish_reason": "MAX_TOKENS"}


def test_blocked_prompt_is_an_empty_answer_then_gives_up(gemini_server):
    gemini_server.set_default(body={"promptFeedback": {"blockReason": "SAFETY"}})
    got = critic(gemini_server, protocol="fused", retries=1).critique(PROMPT, sample_image())
    assert got.gave_up and len(gemini_server.requests) == 2
    assert got.exchanges[0].usage["finish_reason"] == "prompt blocked: SAFETY"


def test_timeout_is_sent_in_milliseconds(gemini_server):
    gemini_server.reply("Yes")
    critic(gemini_server, protocol="three_step", timeout=12.5).critique(PROMPT, sample_image())
    # google-genai derives this header from HttpOptions.timeout (ms) / 1000, rounded up
    assert gemini_server.requests[0].headers["x-server-timeout"] == "13"


def test_5xx_is_retried_by_http_retry_options(gemini_server):
    gemini_server.error(503, "overloaded").error(500).reply("Yes")
    got = critic(gemini_server, protocol="three_step", max_retries=2).critique(PROMPT, sample_image())
    assert got.matches and len(gemini_server.requests) == 3


def test_timeout_retried_then_mapped(gemini_server):
    gemini_server.set_default("Yes", delay=1.0)
    c = critic(gemini_server, protocol="three_step", timeout=0.2, max_retries=1)
    with pytest.raises(ProviderTimeoutError, match="after 2 requests"):
        c.critique(PROMPT, sample_image())
    assert len(gemini_server.requests) == 2


def test_invalid_key_400_is_an_authentication_error(gemini_server):
    # the real API answers a bad key with 400 INVALID_ARGUMENT "API key not valid"
    gemini_server.set_default(body={"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                              "message": "API key not valid. Please pass a valid API key."}},
                              status=400)
    with pytest.raises(AuthenticationError, match="GEMINI_API_KEY"):
        critic(gemini_server, protocol="three_step").critique(PROMPT, sample_image())


def test_unknown_model_names_the_option(gemini_server):
    gemini_server.error(404, "models/gemini-9 is not found")
    with pytest.raises(ProviderError, match="'model' option") as err:
        critic(gemini_server, protocol="three_step", model="gemini-9").critique(PROMPT, sample_image())
    assert "gemini-9" in str(err.value)


def test_unreachable_server_is_a_provider_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = GeminiCritic(api_key=KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0, protocol="three_step")
    with pytest.raises(ProviderError, match="cannot reach"):
        c.critique(PROMPT, sample_image())


def test_async_errors_are_mapped(gemini_server):
    gemini_server.set_default("boom", status=500)
    c = critic(gemini_server, max_retries=0).load()
    with pytest.raises(ProviderError, match="server error 500"):
        asyncio.run(c.aask(VLMRequest(text="x", temperature=0.0)))


def test_google_api_key_env_is_the_fallback(gemini_server, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-xyz")
    gemini_server.reply("Yes")
    GeminiCritic(base_url=gemini_server.url, protocol="three_step").critique(PROMPT, sample_image())
    assert gemini_server.requests[0].headers["x-goog-api-key"] == "google-key-xyz"


def test_registered_as_gemini(imagerag_registry):
    assert imagerag_registry.get("critic", "gemini").cls is GeminiCritic
    from imagerag_gemini import GeminiImageGenerator
    assert imagerag_registry.get("generator", "gemini-image").cls is GeminiImageGenerator


def test_import_does_not_load_google_genai():
    assert_imports_light("imagerag_gemini", ("google.genai", "httpx2", "torch", "anthropic", "openai"))


def _schema_refusal():
    return {"body": {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                               "message": "Invalid JSON payload received. Unknown name "
                                          "\"responseJsonSchema\" at 'generation_config'"}},
            "status": 400}


def test_refused_schema_falls_back_to_text_json(gemini_server):
    gemini_server.reply(**_schema_refusal())
    gemini_server.reply(json.dumps(FUSED_NO)).reply(json.dumps(FUSED_NO))
    c = critic(gemini_server)
    got = c.critique(PROMPT, sample_image())
    assert len(got.missing) == 2 and got.attempts == 1
    first, resent = (gen_config(r) for r in gemini_server.requests[:2])
    assert "responseJsonSchema" in first and "responseJsonSchema" not in resent
    assert "responseMimeType" not in resent and not c.sends_schema
    c.critique(PROMPT, sample_image())
    assert "responseJsonSchema" not in gen_config(gemini_server.requests[2])


def test_explicit_schema_mode_does_not_fall_back(gemini_server):
    gemini_server.set_default(**_schema_refusal())
    with pytest.raises(ProviderError, match="HTTP 400"):
        critic(gemini_server, structured="json_schema").critique(PROMPT, sample_image())
    assert len(gemini_server.requests) == 1


def test_structured_none_sends_no_schema_in_fused_mode(gemini_server):
    gemini_server.reply(json.dumps(FUSED_NO))
    got = critic(gemini_server, structured="none", protocol="fused").critique(PROMPT, sample_image())
    assert "responseJsonSchema" not in gen_config(gemini_server.requests[0]) and len(got.missing) == 2
