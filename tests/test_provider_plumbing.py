"""The shared API-provider layer (imagerag_sdk.providers): a provider written against it supplies
only its request/response mapping, and gets keys, errors, retries' counts, the structured-output
resend, usage and async from the core."""

from __future__ import annotations

import base64
import json
import re

import pytest

from imagerag_sdk.critique import FUSED_SCHEMA, VLMAnswer, VLMCriticOptions, VLMRequest
from imagerag_sdk.errors import AuthenticationError, ProviderError
from imagerag_sdk.images import encode
from imagerag_sdk.providers import APICritic, APIProvider, ConnectionOptions, SDKConnection, reply_error, usage_dict
from imagerag_sdk.providers.calls import _run_now
from imagerag_sdk.testing.fake_server import FakeAPIServer
from imagerag_sdk.testing.provider_contract import FUSED_NO, PROMPT, ProviderCriticContract, sample_image

pytest.importorskip("openai")


# -- a fourth provider: the OpenAI Responses API, written against the shared layer only ------------
class ToyConnection(SDKConnection):
    sdk, distribution = "openai", "imagerag-openai"
    client_class, async_client_class, base_error = "OpenAI", "AsyncOpenAI", "OpenAIError"
    provider = "toy"
    key_envs = ("TOY_API_KEY", "TOY_KEY")


class ToyOptions(VLMCriticOptions, ToyConnection):
    model: str = "toy-1"


class ToyCritic(APICritic):
    name = "toy"
    Options = ToyOptions
    structured_output = True

    def build_params(self, request):
        messages = []
        for role, text, images in request.messages():  # the conversation, ending with the question
            if role == "assistant":
                messages.append({"role": role, "content": text})
                continue
            content = [{"type": "input_text", "text": text}] + [
                {"type": "input_image", "image_url": "data:image/png;base64,"
                 + base64.b64encode(encode(img, fmt="PNG")).decode()} for img in images]
            messages.append({"role": role, "content": content})
        params = {"model": self.options.model, "input": messages}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.json_schema is not None and not self.structure_refused:
            params["text"] = {"format": {"type": "json_schema", "name": "a", "schema": request.json_schema}}
        return params

    def send(self, params):
        return self.client.responses.create(**params)

    async def asend(self, params):
        return await self.async_client().responses.create(**params)

    def to_answer(self, response, params, record):
        if not isinstance(getattr(response, "output", None), list) or not response.output:
            raise reply_error(self.provider, record, "no 'output' list in the reply")
        text = response.output_text
        try:
            data = json.loads(text) if "text" in params else None
        except ValueError:
            data = None
        return VLMAnswer(text=text, data=data, usage=usage_dict(getattr(response, "usage", None)))


class TestToyProviderContract(ProviderCriticContract):
    provider = "toy"
    api = "openai-responses"
    api_key_envs = ("TOY_API_KEY", "TOY_KEY")

    def make_critic(self, server, **options):
        options.setdefault("api_key", self.fake_api_key)
        return ToyCritic(base_url=server.url + "/v1", **options)


# -- the pieces ---------------------------------------------------------------------------------------
KEY = "toy-key-0123456789-secret"


@pytest.fixture
def server():
    with FakeAPIServer() as s:
        yield s


def toy(server, **options):
    return ToyCritic(api_key=KEY, base_url=server.url + "/v1", max_retries=0, **options)


def test_key_lookup_order_and_the_missing_key_line(monkeypatch):
    monkeypatch.delenv("TOY_API_KEY", raising=False)
    monkeypatch.delenv("TOY_KEY", raising=False)
    assert ToyCritic.preflight(ToyOptions()) == [
        "toy: no API key given — set TOY_API_KEY (or TOY_KEY), or api_key: {$env: TOY_API_KEY} "
        "in the profile"]
    with pytest.raises(AuthenticationError, match="set TOY_API_KEY"):
        ToyOptions().resolve_key()
    monkeypatch.setenv("TOY_KEY", "second")
    assert ToyOptions().resolve_key() == "second" and ToyCritic.preflight(ToyOptions()) == []
    monkeypatch.setenv("TOY_API_KEY", "first")
    assert ToyOptions().resolve_key() == "first"
    assert ToyOptions(api_key="option").resolve_key() == "option"


def test_a_key_the_server_echoes_is_redacted(server):
    server.set_default(f"Invalid request: unknown key {KEY} for model toy-1", status=400)
    with pytest.raises(ProviderError) as err:
        toy(server, protocol="three_step").critique(PROMPT, sample_image())
    assert KEY not in str(err.value) and "<redacted>" in str(err.value)
    assert "HTTP 400 after 1 request" in str(err.value)


def test_a_refused_schema_is_resent_once_without_it(server):
    class Strict(ToyCritic):
        structure_words = re.compile("json_schema")

        def without_structure(self, params):
            return {k: v for k, v in params.items() if k != "text"} if "text" in params else None

    server.error(400, "text.format json_schema is not supported here").reply(json.dumps(FUSED_NO))
    critic = Strict(api_key=KEY, base_url=server.url + "/v1", max_retries=0)
    answer = critic.load().ask(VLMRequest(text="judge", json_schema=FUSED_SCHEMA, temperature=0.0))
    first, resent = (r.json for r in server.requests)
    assert "text" in first and "text" not in resent and critic.structure_refused
    assert answer.data is None and json.loads(answer.text) == FUSED_NO
    server.error(400, "text.format json_schema is not supported here")
    with pytest.raises(ProviderError, match="HTTP 400"):  # without structure_words: no resend
        toy(server).load().ask(VLMRequest(text="judge", json_schema=FUSED_SCHEMA))
    assert len(server.requests) == 3


def test_usage_in_one_shape():
    assert usage_dict({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                       "details": {"reasoning_tokens": 1}, "tier": "default", "cached": None},
                      input="prompt_tokens", output="completion_tokens", finish_reason="length") == {
        "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "details": {"reasoning_tokens": 1},
        "input_tokens": 7, "output_tokens": 3, "finish_reason": "length"}
    assert usage_dict(None, finish_reason=None) is None
    assert usage_dict({}, stop_reason="max_tokens") == {"stop_reason": "max_tokens"}


def test_the_three_plugins_keep_no_copy_of_the_plumbing():
    from imagerag_anthropic import AnthropicCritic
    from imagerag_gemini import GeminiCritic, GeminiImageGenerator
    from imagerag_openai import GPTImageGenerator, OpenAICritic

    shared = ("preflight", "ask", "aask", "call", "acall", "_load", "async_client", "_exchange")
    for cls in (OpenAICritic, GPTImageGenerator, GeminiCritic, GeminiImageGenerator, AnthropicCritic):
        assert issubclass(cls, APIProvider) and issubclass(cls.Options, ConnectionOptions)
        assert [name for name in shared if name in vars(cls)] == [], cls
        assert cls.provider == cls.Options.provider


def test_a_sync_call_never_suspends():
    import asyncio

    async def sleeps():
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspended"):
        _run_now(sleeps())


def test_shared_fields_name_each_providers_key_variables():
    from imagerag_anthropic.critic import AnthropicCritic
    from imagerag_gemini.critic import GeminiCritic

    fields = GeminiCritic.Options.model_fields
    assert "GEMINI_API_KEY, then GOOGLE_API_KEY" in (fields["api_key"].description or "")
    assert "ANTHROPIC_API_KEY" in (AnthropicCritic.Options.model_fields["api_key"].description or "")
    assert "api.anthropic.com" in (AnthropicCritic.Options.model_fields["base_url"].description or "")
