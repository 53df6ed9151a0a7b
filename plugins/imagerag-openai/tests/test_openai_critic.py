"""OpenAI-specific behaviour of the ``openai`` critic, with the real client against the fake server."""

from __future__ import annotations

import asyncio

import pytest

from imagerag_openai import OpenAICritic
from imagerag_sdk.critique import FUSED_SCHEMA, VLMRequest
from imagerag_sdk.errors import ProviderError
from imagerag_sdk.testing.contracts import CriticContract, assert_imports_light
from imagerag_sdk.testing.fake_server import FakeAPIServer
from imagerag_sdk.testing.provider_contract import FUSED_NO, PROMPT, sample_image

KEY = "sk-openai-plugin-test-key"


@pytest.fixture
def openai_server():
    with FakeAPIServer() as server:
        yield server


def critic(server, prefix="/v1", **options):
    options.setdefault("api_key", KEY)
    return OpenAICritic(base_url=server.url + prefix, **options)


def test_import_does_not_import_openai():
    assert_imports_light("imagerag_openai")


def test_fused_request_shape(openai_server):
    openai_server.reply(json_data=FUSED_NO)
    got = critic(openai_server).critique(PROMPT, sample_image())
    assert [m.concept for m in got.missing] == ["a sheep", "oil painting style"]
    req = openai_server.requests[0]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = req.json
    assert body["model"] == "gpt-4o-2024-08-06"
    assert body["temperature"] == 0 and body["max_tokens"] == 600
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "critique", "schema": FUSED_SCHEMA, "strict": True}}
    [message] = body["messages"]
    text, image = message["content"]
    assert message["role"] == "user" and text["type"] == "text" and PROMPT in text["text"]
    assert image["type"] == "image_url" and "detail" not in image["image_url"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    assert got.exchanges[0].usage["prompt_tokens"] == 10


def test_structured_output_off_means_three_step(openai_server):
    openai_server.reply("Yes")
    c = critic(openai_server, structured_output=False)
    assert c.effective_protocol == "three_step"
    assert c.critique(PROMPT, sample_image()).matches
    assert "response_format" not in openai_server.requests[0].json


def test_structured_output_off_in_fused_protocol_parses_text(openai_server):
    openai_server.reply('```json\n{"matches": true, "missing": []}\n```')
    got = critic(openai_server, structured_output=False, protocol="fused").critique(PROMPT, sample_image())
    assert got.matches and "response_format" not in openai_server.requests[0].json


def test_server_rejecting_response_format_falls_back(openai_server):
    openai_server.error(400, "response_format 'json_schema' is not supported by this server")
    openai_server.reply('{"matches": false, "missing": [{"concept": "a sheep", "caption": "a sheep"}]}')
    c = critic(openai_server, max_retries=0)
    got = c.critique(PROMPT, sample_image())
    assert [m.concept for m in got.missing] == ["a sheep"]
    first, second = (r.json for r in openai_server.requests)
    assert "response_format" in first and "response_format" not in second
    assert c.structured_output is False and c.effective_protocol == "three_step"


def test_other_bad_request_is_a_provider_error(openai_server):
    openai_server.error(400, "Invalid value for 'model'")
    with pytest.raises(ProviderError, match="HTTP 400.*Invalid value"):
        critic(openai_server, max_retries=0).critique(PROMPT, sample_image())
    assert len(openai_server.requests) == 1


def test_strict_structured_output_true_is_not_dropped(openai_server):
    openai_server.error(400, "response_format json_schema unsupported")
    with pytest.raises(ProviderError):
        critic(openai_server, structured_output=True, max_retries=0).critique(PROMPT, sample_image())


def test_base_url_of_a_compatible_server(openai_server):
    """vLLM / Ollama / LM Studio: same chat call under their own base path and model name."""
    openai_server.reply("Yes")
    c = critic(openai_server, prefix="/ollama/v1", model="qwen2.5vl:7b", api_key="ollama",
               protocol="three_step")
    assert c.critique(PROMPT, sample_image()).matches
    req = openai_server.requests[0]
    assert req.path == "/ollama/v1/chat/completions"
    assert req.json["model"] == "qwen2.5vl:7b" and req.headers["authorization"] == "Bearer ollama"


def test_organization_and_project_headers(openai_server):
    openai_server.reply("Yes")
    critic(openai_server, organization="org-123", project="proj-9", protocol="three_step").critique(PROMPT, sample_image())
    headers = openai_server.requests[0].headers
    assert headers["openai-organization"] == "org-123" and headers["openai-project"] == "proj-9"


@pytest.mark.parametrize("model,takes", [
    ("gpt-4o-2024-08-06", True), ("gpt-4o-mini", True), ("gpt-4.1", True),
    ("gpt-5", False), ("gpt-5-mini", False), ("gpt-5.1", False), ("o3", False), ("o4-mini", False),
    ("openai/gpt-5", False), ("gpt-5-chat-latest", True), ("Qwen/Qwen2.5-VL-7B-Instruct", True),
])
def test_model_temperature_capability(model, takes):
    assert OpenAICritic(model=model, api_key=KEY).takes_temperature() is takes


def test_temperature_capability_override():
    assert OpenAICritic(model="my-reasoner", send_temperature="never").takes_temperature() is False
    assert OpenAICritic(model="o3", send_temperature="always").takes_temperature() is True


def test_gpt5_request_has_no_temperature_and_no_token_cap(openai_server):
    openai_server.reply("Hmm.").reply("Yes")
    got = critic(openai_server, model="gpt-5", protocol="three_step",
                 reasoning_effort="low").critique(PROMPT, sample_image())
    first, second = (r.json for r in openai_server.requests)
    for body in (first, second):
        assert "temperature" not in body and "max_tokens" not in body
        assert "max_completion_tokens" not in body and body["reasoning_effort"] == "low"
    assert "seed" not in first and second["seed"] == 1
    assert got.exchanges[1].alternative.startswith("no temperature")


def test_gpt5_token_cap_uses_max_completion_tokens(openai_server):
    openai_server.reply("Yes")
    critic(openai_server, model="gpt-5", max_tokens=4000, protocol="three_step").critique(PROMPT, sample_image())
    assert openai_server.requests[0].json["max_completion_tokens"] == 4000


def test_jpeg_upload(openai_server):
    openai_server.reply("Yes")
    critic(openai_server, image_format="jpeg", detail="low", protocol="three_step").critique(
        PROMPT, sample_image())
    part = openai_server.requests[0].json["messages"][0]["content"][1]["image_url"]
    assert part["url"].startswith("data:image/jpeg;base64,/9j/") and part["detail"] == "low"


def test_refusal_is_an_unusable_answer(openai_server):
    openai_server.reply(body={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                              "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                  "role": "assistant", "content": None,
                                  "refusal": "I can't help with that."}}]})
    openai_server.reply(json_data={"matches": True, "missing": []})
    got = critic(openai_server).critique(PROMPT, sample_image())
    assert got.matches and got.exchanges[0].answer == "I can't help with that."
    assert got.exchanges[0].error and got.attempts == 2


def test_system_message_and_async_client_per_loop(openai_server):
    openai_server.set_default("ok")
    c = critic(openai_server).load()
    for _ in range(2):  # a fresh event loop each time must not reuse a closed client
        answer = asyncio.run(c.aask(VLMRequest(text="hi", system="be brief", temperature=0.0)))
        assert answer.text == "ok"
    assert openai_server.requests[0].json["messages"][0] == {"role": "system", "content": "be brief"}


def test_describe_masks_the_key():
    c = OpenAICritic(api_key=KEY)
    assert c.describe()["options"]["api_key"] == "**********"
    assert KEY not in repr(c.options)


def test_registered_through_the_entry_point():
    from imagerag_sdk.plugins import build_registry, get_plugin_manager

    registry = build_registry(*get_plugin_manager())
    assert registry.get("critic", "openai").cls is OpenAICritic
    assert registry.get("generator", "gpt-image").cls.__name__ == "GPTImageGenerator"


class TestOpenAICriticContract(CriticContract):
    @pytest.fixture
    def component(self, openai_server):
        openai_server.set_default(json_data=FUSED_NO)
        return critic(openai_server)


def test_same_image_encoded_once_but_changes_are_seen(openai_server, monkeypatch):
    import imagerag_openai.critic as mod

    calls = []
    real = mod.data_url
    monkeypatch.setattr(mod, "data_url", lambda img, **kw: calls.append(1) or real(img, **kw))
    openai_server.reply("No").reply("- a sheep").reply("a sheep: a photo of a sheep")
    c = critic(openai_server, protocol="three_step")
    img = sample_image()
    c.critique(PROMPT, img)
    assert len(calls) == 1  # decide and concepts share one encoding
    img.paste((0, 0, 0), (0, 0, 50, 50))  # edited in place: must be re-encoded
    openai_server.reply("Yes")
    c.critique(PROMPT, img)
    assert len(calls) == 2
    sent = [r.json["messages"][0]["content"][1]["image_url"]["url"] for r in openai_server.requests
            if len(r.json["messages"][0]["content"]) > 1]
    assert sent[0] == sent[1] != sent[2]


def test_truncated_answer_is_recorded(openai_server):
    openai_server.reply(body={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                              "choices": [{"index": 0, "finish_reason": "length", "message": {
                                  "role": "assistant", "content": '{"matches": fal'}}],
                              "usage": {"prompt_tokens": 1, "completion_tokens": 600, "total_tokens": 601}})
    openai_server.reply(json_data={"matches": True, "missing": []})
    got = critic(openai_server).critique(PROMPT, sample_image())
    assert got.matches and got.exchanges[0].usage["finish_reason"] == "length"
    assert got.exchanges[0].usage["completion_tokens"] == 600
    assert "finish_reason" not in got.exchanges[1].usage


def test_missing_openai_package_says_what_to_install():
    import subprocess
    import sys

    code = ("import sys; sys.modules['openai'] = None\n"
            "from imagerag_openai import OpenAICritic\n"
            "from imagerag_sdk.errors import MissingDependencyError\n"
            "try:\n    OpenAICritic(api_key='x').load()\n"
            "except MissingDependencyError as e:\n    print('MISSING', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MISSING") and "imagerag-sdk[openai]" in out
