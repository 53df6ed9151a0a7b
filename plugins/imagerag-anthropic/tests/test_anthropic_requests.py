"""What the anthropic critic really sends, the temperature rule, and Anthropic-specific errors."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from imagerag_anthropic import AnthropicCritic, accepts_temperature
from imagerag_anthropic.critic import TOOL_NAME
from imagerag_sdk.critique import FUSED_SCHEMA, VLMRequest
from imagerag_sdk.errors import AuthenticationError, ProviderError, RateLimitError
from imagerag_sdk.testing.contracts import assert_imports_light
from imagerag_sdk.testing.fake_server import FakeAPIServer
from imagerag_sdk.testing.provider_contract import FUSED_NO, PROMPT, sample_image

KEY = "sk-ant-imagerag-test-0123456789"


@pytest.fixture
def anthropic_server():
    with FakeAPIServer() as server:
        yield server


def critic(server, **options):
    return AnthropicCritic(api_key=KEY, base_url=server.url, **options)


def test_fused_forces_the_tool_with_the_schema(anthropic_server):
    anthropic_server.reply(json_data=FUSED_NO)
    got = critic(anthropic_server).critique(PROMPT, sample_image())
    body = anthropic_server.requests[0].json
    assert anthropic_server.requests[0].path.endswith("/v1/messages")
    assert body["tools"] == [{"name": TOOL_NAME, "description": body["tools"][0]["description"],
                              "input_schema": FUSED_SCHEMA}]
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert body["max_tokens"] == 4096 and body["model"] == "claude-sonnet-4-6"
    # the answer came back as a tool_use block and was read from its input
    assert got.exchanges[0].answer.startswith('{"matches": false')
    assert [m.concept for m in got.missing] == ["a sheep", "oil painting style"]


def test_json_schema_mode_uses_output_config(anthropic_server):
    anthropic_server.reply(json_data=FUSED_NO)
    got = critic(anthropic_server, structured="json_schema").critique(PROMPT, sample_image())
    body = anthropic_server.requests[0].json
    assert "tools" not in body and "tool_choice" not in body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": FUSED_SCHEMA}}
    assert len(got.missing) == 2


def test_three_step_sends_no_tool(anthropic_server):
    anthropic_server.reply("Yes")
    critic(anthropic_server, protocol="three_step").critique(PROMPT, sample_image())
    body = anthropic_server.requests[0].json
    assert "tools" not in body and "output_config" not in body


def test_image_block_precedes_the_text(anthropic_server):
    anthropic_server.reply("Yes")
    critic(anthropic_server, protocol="three_step", image_format="jpeg").critique(PROMPT, sample_image())
    content = anthropic_server.requests[0].json["messages"][0]["content"]
    assert content[0]["type"] == "image" and content[0]["source"]["type"] == "base64"
    assert content[0]["source"]["media_type"] == "image/jpeg"
    assert content[1]["type"] == "text" and PROMPT in content[1]["text"]


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-3-5-sonnet-20241022"])
def test_temperature_travels_in_the_body_for_models_that_take_it(anthropic_server, model):
    anthropic_server.reply("Yes")
    critic(anthropic_server, model=model, protocol="three_step", temperature=0.2).critique(PROMPT, sample_image())
    assert anthropic_server.requests[0].json["temperature"] == 0.2


@pytest.mark.parametrize("model", ["claude-opus-4-7", "claude-sonnet-5", "claude-fable-5"])
def test_no_temperature_for_current_models(anthropic_server, model):
    anthropic_server.reply("Yes")
    c = critic(anthropic_server, model=model, protocol="three_step")
    assert c.takes_temperature() is False
    c.critique(PROMPT, sample_image())
    assert "temperature" not in anthropic_server.requests[0].json


def test_send_temperature_overrides_the_rule(anthropic_server):
    assert critic(anthropic_server, model="claude-opus-4-8", send_temperature="always").takes_temperature()
    assert not critic(anthropic_server, model="claude-sonnet-4-6", send_temperature="never").takes_temperature()


@pytest.mark.parametrize("model, takes", [
    ("claude-sonnet-4-6", True), ("claude-opus-4-6", True), ("claude-opus-4-5-20251101", True),
    ("claude-sonnet-4-5-20250929", True), ("claude-haiku-4-5-20251001", True),
    ("claude-sonnet-4-20250514", True), ("claude-opus-4-1@20250805", True),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", True), ("claude-3-7-sonnet-latest", True),
    ("claude-3-opus-20240229", True), ("claude-2.1", True), ("claude-instant-1.2", True),
    ("claude-opus-4-7", False), ("claude-opus-4-8", False), ("claude-sonnet-5", False),
    ("claude-opus-5-5", False), ("claude-haiku-5-5", False), ("claude-fable-5-2", False),
    ("claude-mythos-preview", False), ("claude-next", False), ("Qwen2.5-VL-7B-Instruct", True),
])
def test_temperature_rule(model, takes):
    assert accepts_temperature(model) is takes


def test_temperature_refused_names_the_option(anthropic_server):
    anthropic_server.set_default(body={"type": "error", "error": {
        "type": "invalid_request_error", "message": "`temperature` is deprecated for this model."}},
        status=400)
    with pytest.raises(ProviderError, match="send_temperature: never"):
        critic(anthropic_server, model="my-proxy-model", protocol="three_step").critique(PROMPT, sample_image())


def test_system_and_usage(anthropic_server):
    anthropic_server.reply("hi", usage={"input_tokens": 7, "output_tokens": 3,
                                        "cache_read_input_tokens": 2})
    answer = critic(anthropic_server).load().ask(VLMRequest(text="x", system="be brief", temperature=0.0))
    assert anthropic_server.requests[0].json["system"] == "be brief"
    assert answer.usage == {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2}


def test_stop_reason_recorded(anthropic_server):
    anthropic_server.reply(body={"id": "m", "type": "message", "role": "assistant", "model": "c",
                                 "content": [{"type": "text", "text": "Ye"}], "stop_reason": "max_tokens",
                                 "usage": {"input_tokens": 1, "output_tokens": 1}})
    answer = critic(anthropic_server).load().ask(VLMRequest(text="x"))
    assert answer.text == "Ye" and answer.usage["stop_reason"] == "max_tokens"


def test_overloaded_529_retried_then_success(anthropic_server):
    anthropic_server.error(529, "Overloaded", headers={"retry-after-ms": "1"}).reply("Yes")
    got = critic(anthropic_server, protocol="three_step", max_retries=1).critique(PROMPT, sample_image())
    assert got.matches and len(anthropic_server.requests) == 2


def test_permission_denied_is_an_auth_error(anthropic_server):
    anthropic_server.set_default("not allowed", status=403)
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        critic(anthropic_server, protocol="three_step", max_retries=0).critique(PROMPT, sample_image())


def test_unknown_model_names_the_option(anthropic_server):
    anthropic_server.error(404, "model: claude-nope")
    with pytest.raises(ProviderError, match="'model' option"):
        critic(anthropic_server, protocol="three_step", model="claude-nope").critique(PROMPT, sample_image())


def test_unreachable_server_is_a_provider_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = AnthropicCritic(api_key=KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0,
                        protocol="three_step")
    with pytest.raises(ProviderError, match="cannot reach"):
        c.critique(PROMPT, sample_image())


def test_async_errors_are_mapped(anthropic_server):
    anthropic_server.set_default("slow down", status=429)
    c = critic(anthropic_server, max_retries=0).load()
    with pytest.raises(RateLimitError, match="anthropic"):
        asyncio.run(c.aask(VLMRequest(text="x")))


def test_async_fused_tool_call(anthropic_server):
    anthropic_server.reply(json_data=FUSED_NO)
    c = critic(anthropic_server).load()
    answer = asyncio.run(c.aask(VLMRequest(text="x", json_schema=FUSED_SCHEMA)))
    assert answer.data == FUSED_NO
    assert anthropic_server.requests[0].json["tool_choice"]["name"] == TOOL_NAME


def test_registered_as_anthropic(imagerag_registry):
    assert imagerag_registry.get("critic", "anthropic").cls is AnthropicCritic


def test_import_does_not_load_the_sdk():
    assert_imports_light("imagerag_anthropic", ("anthropic", "httpx2", "torch", "openai", "google.genai"))


def _refusal(message):
    return {"body": {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
            "status": 400}


def test_refused_forced_tool_falls_back_to_text_json(anthropic_server):
    anthropic_server.reply(**_refusal("Thinking may not be enabled when tool_choice forces tool use."))
    anthropic_server.reply(json.dumps(FUSED_NO))
    anthropic_server.reply(json.dumps(FUSED_NO))
    c = critic(anthropic_server)
    got = c.critique(PROMPT, sample_image())
    assert len(got.missing) == 2 and got.attempts == 1
    first, resent = (r.json for r in anthropic_server.requests[:2])
    assert "tool_choice" in first and "tool_choice" not in resent and "tools" not in resent
    assert c.structure == "none"
    c.critique(PROMPT, sample_image())  # later critiques send no tool at all
    assert "tools" not in anthropic_server.requests[2].json and len(anthropic_server.requests) == 3


def test_explicit_tool_mode_does_not_fall_back(anthropic_server):
    anthropic_server.set_default(**_refusal("tool_choice is not supported"))
    with pytest.raises(ProviderError, match="HTTP 400"):
        critic(anthropic_server, structured="tool").critique(PROMPT, sample_image())
    assert len(anthropic_server.requests) == 1


def test_unrelated_400_is_not_a_fallback(anthropic_server):
    anthropic_server.set_default(**_refusal("messages: image too large"))
    with pytest.raises(ProviderError, match="image too large"):
        critic(anthropic_server).critique(PROMPT, sample_image())
    assert len(anthropic_server.requests) == 1
