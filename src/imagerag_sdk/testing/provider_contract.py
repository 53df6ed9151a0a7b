"""A shared test battery for API-backed VLM critics (OpenAI, Gemini, Anthropic, compatible servers).

Subclass :class:`ProviderCriticContract` in a plugin's tests, set a few class attributes and
implement :meth:`~ProviderCriticContract.make_critic`; the real provider client then runs against
a local :class:`~imagerag_sdk.testing.fake_server.FakeAPIServer`, which answers in the shape of
the provider addressed by the request path::

    class TestOpenAICritic(ProviderCriticContract):
        provider = "openai"                 # the critic's ``provider`` (named in its errors)
        api_key_envs = ("OPENAI_API_KEY",)  # env vars the auth error message must name
        no_temperature_options = {"model": "gpt-5"}

        def make_critic(self, server, **options):
            options.setdefault("api_key", self.fake_api_key)
            return OpenAICritic(base_url=server.url + "/v1", **options)

``make_critic`` contract: pass every option through to the critic; ``api_key=None`` passed
explicitly means "no key in the options" (the test removes the env vars first). The critic's
options must include the :class:`~imagerag_sdk.critique.VLMCriticOptions` fields (protocol,
temperature, retries, max_image_side) and whatever :meth:`timeout_options` /
:meth:`retry_options` return. ``build_params`` must send a request's whole conversation
(:meth:`~imagerag_sdk.critique.VLMRequest.messages`: the earlier user turns with their images, the
model's answers, then the question): ``protocol: paper`` relies on it, and the server's record of it
(:meth:`~imagerag_sdk.testing.fake_server.Request.conversation`) is what the paper tests read.

The request hooks (:meth:`sent_temperature`, :meth:`sent_images`, :meth:`sent_text`) read the
three providers' body shapes out of the box; override them for a provider with another shape.
Nothing here imports a provider SDK or needs the network.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from PIL import Image

from ..errors import (
    AuthenticationError,
    ImageRAGError,
    MalformedReplyError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
)
from ..types import Critique
from .fake_server import MALFORMED_KINDS, FakeAPIServer, Request
from .payloads import decode_image_payload, sample_image, walk_json
from .provider_paper import PaperConversationChecks

__all__ = ["ProviderCriticContract", "decode_image_payload", "sample_image", "PROMPT", "CONCEPTS",
           "CAPTIONS_REPLY", "FUSED_NO", "YES_VARIANTS", "NO_VARIANTS", "LIST_SHAPES"]

PROMPT = "an oil painting of a sheep and a car"
CONCEPTS = ["a sheep", "oil painting style"]
CAPTIONS_REPLY = ("a sheep: a photo of a white woolly sheep standing on green grass\n"
                  "oil painting style: an oil painting with thick visible brush strokes")
FUSED_NO: dict[str, Any] = {"matches": False, "missing": [
    {"concept": "a sheep", "caption": "a photo of a white woolly sheep standing on green grass"},
    {"concept": "oil painting style", "caption": "an oil painting with thick visible brush strokes"}]}

YES_VARIANTS = ["Yes", "Yes.", "YES", "yes, it matches the prompt", "**Yes**", '{"answer": "yes"}',
                "Yes — the image shows the car and the sheep in oil.", "```\nyes\n```"]
NO_VARIANTS = ["No", "No.", "**No**", "no, it does not", "NO", "No. The sheep is missing.",
               '{"matches": false}', "The image does not match the prompt."]
LIST_SHAPES = [
    "- a sheep\n- oil painting style",
    "* a sheep\n* oil painting style",
    "1. a sheep\n2. oil painting style",
    "1) a sheep\n2) oil painting style",
    "a sheep, oil painting style",
    "Missing concepts:\n- a sheep\n- oil painting style",
    '["a sheep", "oil painting style"]',
    '```json\n["a sheep", "oil painting style"]\n```',
    "```\n- a sheep\n- oil painting style\n```",
    '{"missing": ["a sheep", "oil painting style"]}',
    "- **a sheep**\n- **oil painting style**",
]
_USAGE = {
    "openai": {"prompt_tokens": 123, "completion_tokens": 45, "total_tokens": 168},
    "openai-responses": {"input_tokens": 123, "output_tokens": 45, "total_tokens": 168},
    "anthropic": {"input_tokens": 123, "output_tokens": 45},
    "gemini": {"promptTokenCount": 123, "candidatesTokenCount": 45, "totalTokenCount": 168},
}


class ProviderCriticContract(PaperConversationChecks):
    """Behaviour every API-backed :class:`~imagerag_sdk.critique.VLMCritic` must show.

    Class attributes to set: ``provider`` (the critic's provider name, e.g. "openai"),
    ``api`` (the API it speaks, which names the usage counts the fake server reports: "openai"
    (chat completions) | "openai-responses" | "anthropic" | "gemini"; defaults to ``provider``;
    the server answers in the shape of the path addressed), ``api_key_envs``,
    ``temperature_options`` (options selecting a model that takes a temperature; ``None`` skips
    those tests) and ``no_temperature_options`` (a model that takes none; ``None`` skips).
    """

    provider: ClassVar[str] = ""
    api: ClassVar[str | None] = None
    api_key_envs: ClassVar[tuple[str, ...]] = ()
    fake_api_key: ClassVar[str] = "sk-imagerag-TEST-s3cr3t-0123456789abcdef"
    temperature_options: ClassVar[dict[str, Any] | None] = {}
    no_temperature_options: ClassVar[dict[str, Any] | None] = None
    supports_structured_output: ClassVar[bool] = True

    # -- to implement / override -----------------------------------------------------------------
    @abstractmethod
    def make_critic(self, server: FakeAPIServer, **options: Any):
        """The provider's critic pointed at ``server`` with :attr:`fake_api_key` (unless
        ``api_key`` is given, ``None`` meaning none)."""

    def timeout_options(self, seconds: float) -> dict[str, Any]:
        """Options giving a client-side timeout of ``seconds`` and no client retries."""
        return {"timeout": seconds, "max_retries": 0}

    def retry_options(self, retries: int) -> dict[str, Any]:
        """Options making the client retry 429/5xx ``retries`` times (with backoff)."""
        return {"max_retries": retries}

    def sent_temperature(self, request: Request) -> float | None:
        """The temperature the request carried (``None`` when the field was absent)."""
        body = request.json or {}
        if "temperature" in body:
            return body["temperature"]
        for key in ("generationConfig", "generation_config"):
            conf = body.get(key) or {}
            if "temperature" in conf:
                return conf["temperature"]
        return None

    def sent_images(self, request: Request) -> int:
        """How many images (base64 PNG/JPEG/WEBP, bare or as data URLs) the request body holds."""
        return len(self.sent_image_list(request))

    def sent_image_list(self, request: Request) -> list[Image.Image]:
        body = request.json
        return [img for _, v in walk_json(body) if (img := decode_image_payload(v)) is not None]

    def sent_text(self, request: Request) -> str:
        """All text of the request: messages, parts and system instructions, joined."""
        out: list[str] = []
        for key, v in walk_json(request.json):
            if isinstance(v, str) and key in ("text", "content", "system", "input"):
                if decode_image_payload(v) is None:
                    out.append(v)
        return "\n".join(out)

    # -- fixtures --------------------------------------------------------------------------------
    @pytest.fixture
    def fake_server(self) -> Iterator[FakeAPIServer]:
        with FakeAPIServer() as server:
            yield server

    @pytest.fixture
    def picture(self) -> Image.Image:
        return sample_image()

    def _api(self) -> str:
        return self.api or self.provider

    def _critic(self, server: FakeAPIServer, **options: Any):
        options.setdefault("retries", 3)
        return self.make_critic(server, **options)

    def _three_step(self, server: FakeAPIServer, **options: Any):
        return self._critic(server, protocol="three_step", **{**(self.temperature_options or {}), **options})

    # -- yes / no ---------------------------------------------------------------------------------
    @pytest.mark.parametrize("answer", YES_VARIANTS)
    def test_yes_variants_match(self, fake_server, picture, answer):
        fake_server.reply(answer)
        got = self._three_step(fake_server).critique(PROMPT, picture)
        assert isinstance(got, Critique)
        assert got.matches is True and got.missing == () and not got.gave_up
        assert len(fake_server.requests) == 1

    @pytest.mark.parametrize("answer", NO_VARIANTS)
    def test_no_variants_lead_to_concepts(self, fake_server, picture, answer):
        fake_server.reply(answer).reply("- a sheep\n- oil painting style").reply(CAPTIONS_REPLY)
        got = self._three_step(fake_server).critique(PROMPT, picture)
        assert got.matches is False
        assert [m.concept for m in got.missing] == CONCEPTS
        assert got.missing[0].caption.startswith("a photo of a white woolly sheep")
        assert len(fake_server.requests) == 3

    @pytest.mark.parametrize("shape", LIST_SHAPES)
    def test_concept_list_shapes(self, fake_server, picture, shape):
        fake_server.reply("No").reply(shape).reply(CAPTIONS_REPLY)
        got = self._three_step(fake_server).critique(PROMPT, picture)
        assert [m.concept for m in got.missing] == CONCEPTS, shape
        assert all(m.caption != m.concept for m in got.missing)

    def test_three_step_sends_the_paper_questions(self, fake_server, picture):
        fake_server.reply("No").reply("- a sheep").reply("a sheep: a photo of a sheep on grass")
        self._three_step(fake_server).critique(PROMPT, picture, max_concepts=2)
        decide, concepts, captions = (self.sent_text(r) for r in fake_server.requests)
        assert PROMPT in decide and "yes or no" in decide.lower()
        assert "oil painting style" in concepts and "at most 2" in concepts
        assert "- a sheep" in captions
        assert [self.sent_images(r) for r in fake_server.requests] == [1, 1, 0]

    # -- fused ------------------------------------------------------------------------------------
    def test_fused_valid_structured_answer(self, fake_server, picture):
        fake_server.reply(json_data=FUSED_NO)
        got = self._critic(fake_server, protocol="fused").critique(PROMPT, picture)
        assert got.matches is False and not got.gave_up
        assert [(m.concept, m.caption) for m in got.missing] == [
            (d["concept"], d["caption"]) for d in FUSED_NO["missing"]]
        assert len(fake_server.requests) == 1 and self.sent_images(fake_server.requests[0]) == 1

    def test_fused_matches(self, fake_server, picture):
        fake_server.reply(json_data={"matches": True, "missing": []})
        got = self._critic(fake_server, protocol="fused").critique(PROMPT, picture)
        assert got.matches is True and got.missing == ()

    def test_fused_fenced_json_in_text(self, fake_server, picture):
        fake_server.reply("Here you go:\n```json\n" + json.dumps(FUSED_NO) + "\n```")
        got = self._critic(fake_server, protocol="fused").critique(PROMPT, picture)
        assert [m.concept for m in got.missing] == CONCEPTS and not got.gave_up

    def test_fused_invalid_retries_then_gives_up(self, fake_server, picture):
        fake_server.set_default("I cannot tell, sorry {not json")
        got = self._critic(fake_server, protocol="fused", retries=2).critique(PROMPT, picture)
        assert got.gave_up is True and got.matches is False and got.missing == ()
        assert len(fake_server.requests) == 3 and got.attempts == 3
        assert [e.attempt for e in got.exchanges] == [1, 2, 3]
        assert all(e.error for e in got.exchanges)

    def test_fused_invalid_then_valid(self, fake_server, picture):
        fake_server.reply("not json").reply(json_data=FUSED_NO)
        got = self._critic(fake_server, protocol="fused").critique(PROMPT, picture)
        assert not got.gave_up and got.attempts == 2 and len(got.missing) == 2

    def test_auto_protocol_uses_fused_when_structured(self, fake_server, picture):
        if not self.supports_structured_output:
            pytest.skip("provider has no structured output")
        fake_server.reply(json_data=FUSED_NO)
        got = self._critic(fake_server).critique(PROMPT, picture)
        assert len(fake_server.requests) == 1 and got.exchanges[0].stage == "fused"

    # -- temperature ladder -------------------------------------------------------------------------
    def test_temperature_ladder_as_the_server_saw_it(self, fake_server, picture):
        if self.temperature_options is None:
            pytest.skip("no model of this provider takes a temperature")
        fake_server.reply("Hmm.").reply("Hmm.").reply("Hmm.").reply("Yes")
        got = self._three_step(fake_server, temperature=0.0, retries=3).critique(PROMPT, picture)
        temps = [self.sent_temperature(r) for r in fake_server.requests]
        assert len(temps) == 4 and temps[0] == pytest.approx(0.0)
        sent = [t for t in temps if t is not None]
        assert len(sent) == len(temps)
        assert all(b > a for a, b in itertools.pairwise(sent)), temps
        assert [e.temperature for e in got.exchanges] == pytest.approx(temps)
        assert got.matches is True and got.attempts == 4

    def test_no_temperature_model_varies_and_records(self, fake_server, picture):
        if self.no_temperature_options is None:
            pytest.skip("every model of this provider takes a temperature")
        fake_server.reply("Hmm.").reply("Hmm.").reply("Yes")
        critic = self._critic(fake_server, protocol="three_step", **self.no_temperature_options)
        assert critic.takes_temperature() is False
        got = critic.critique(PROMPT, picture)
        assert [self.sent_temperature(r) for r in fake_server.requests] == [None, None, None]
        assert got.exchanges[0].alternative is None
        assert all(e.alternative for e in got.exchanges[1:])
        assert all(e.temperature is None for e in got.exchanges)
        texts = [self.sent_text(r) for r in fake_server.requests]
        assert texts[1] != texts[0] and texts[2] != texts[1]

    # -- transport: retries, timeouts, auth -----------------------------------------------------
    def test_rate_limit_then_success(self, fake_server, picture):
        fake_server.error(429, "slow down").reply("Yes")
        got = self._three_step(fake_server, **self.retry_options(2)).critique(PROMPT, picture)
        assert got.matches is True
        assert len(fake_server.requests) == 2

    def test_rate_limit_exhausted(self, fake_server, picture):
        fake_server.set_default("slow down", status=429, headers={"retry-after-ms": "1", "retry-after": "0"})
        with pytest.raises(RateLimitError) as err:
            self._three_step(fake_server, **self.retry_options(1)).critique(PROMPT, picture)
        assert err.value.provider == self.provider and self.provider in str(err.value)
        assert len(fake_server.requests) == 2

    def test_server_error_is_a_provider_error(self, fake_server, picture):
        fake_server.set_default("boom", status=500)
        with pytest.raises(ProviderError) as err:
            self._three_step(fake_server, **self.retry_options(0)).critique(PROMPT, picture)
        assert self.provider in str(err.value)

    def test_long_retry_after_reports_the_real_request_count(self, fake_server, picture):
        fake_server.set_default("slow down", status=429,
                                headers={"retry-after": "3600", "retry-after-ms": "3600000"})
        with pytest.raises(RateLimitError) as err:
            self._three_step(fake_server, **self.retry_options(2)).critique(PROMPT, picture)
        n = fake_server.request_count
        assert err.value.provider == self.provider and self.provider in str(err.value)
        assert f"after {n} request{'s' if n != 1 else ''}" in str(err.value), (n, str(err.value))
        assert "\n" not in str(err.value)

    def test_server_error_reports_the_real_request_count(self, fake_server, picture):
        fake_server.set_default("boom", status=503)
        with pytest.raises(ProviderError) as err:
            self._three_step(fake_server, **self.retry_options(2)).critique(PROMPT, picture)
        assert fake_server.request_count == 3
        assert "after 3 requests" in str(err.value) and self.provider in str(err.value)

    def test_timeout(self, fake_server, picture):
        fake_server.reply("Yes", delay=3.0)
        critic = self._three_step(fake_server, **self.timeout_options(0.3))
        with pytest.raises(ProviderTimeoutError) as err:
            critic.critique(PROMPT, picture)
        assert err.value.provider == self.provider and self.provider in str(err.value)

    def test_bad_key_names_the_env_var(self, fake_server, picture):
        fake_server.set_default("Incorrect API key provided", status=401)
        with pytest.raises(AuthenticationError) as err:
            self._three_step(fake_server, **self.retry_options(0)).critique(PROMPT, picture)
        assert self.provider in str(err.value)
        assert any(env in str(err.value) for env in self.api_key_envs), str(err.value)
        assert self.fake_api_key not in str(err.value)

    def test_missing_key_names_the_env_var(self, fake_server, picture, monkeypatch):
        for env in self.api_key_envs:
            monkeypatch.delenv(env, raising=False)
        fake_server.set_default("Yes")
        with pytest.raises(ImageRAGError) as err:
            self.make_critic(fake_server, api_key=None, protocol="three_step").critique(PROMPT, picture)
        assert any(env in str(err.value) for env in self.api_key_envs), str(err.value)
        assert fake_server.requests == []

    def test_key_from_env(self, fake_server, picture, monkeypatch):
        for env in self.api_key_envs:
            monkeypatch.setenv(env, self.fake_api_key)
        fake_server.reply("Yes")
        got = self.make_critic(fake_server, api_key=None, protocol="three_step").critique(PROMPT, picture)
        assert got.matches is True
        assert self.fake_api_key in json.dumps(fake_server.requests[0].headers) + \
            fake_server.requests[0].path

    def test_no_key_in_critique_or_description(self, fake_server, picture):
        fake_server.reply("No").reply("- a sheep").reply("a sheep: a photo of a sheep")
        critic = self._three_step(fake_server)
        got = critic.critique(PROMPT, picture)
        sent = json.dumps(fake_server.requests[0].headers) + fake_server.requests[0].path
        assert self.fake_api_key in sent, "the key never reached the server: the test proves nothing"
        dumped = json.dumps(got.to_dict()) + json.dumps(critic.describe(), default=str) + repr(critic)
        assert self.fake_api_key not in dumped
        assert self.fake_api_key not in repr(critic.options)

    # -- replies that are not a completion: unusable answers, retried, then given up -----------------
    @pytest.mark.parametrize("kind", MALFORMED_KINDS)
    def test_malformed_reply_is_an_unusable_answer(self, fake_server, picture, kind):
        fake_server.set_default(malformed=kind)
        got = self._critic(fake_server, protocol="fused", retries=2).critique(PROMPT, picture)
        assert isinstance(got, Critique)
        assert got.gave_up is True and got.matches is False and got.missing == ()
        assert fake_server.request_count == 3 and [e.attempt for e in got.exchanges] == [1, 2, 3]
        for e in got.exchanges:
            assert e.error and e.error.startswith(f"malformed reply from {self.provider}: "), e.error
            assert e.answer, "the raw reply is kept in the exchange"
            assert len(e.answer) <= MalformedReplyError.RAW_CAP + 10

    @pytest.mark.parametrize("kind", ["html", "wrong_shape", "not_utf8"])
    def test_malformed_three_step_gives_up(self, fake_server, picture, kind):
        fake_server.set_default(malformed=kind)
        got = self._three_step(fake_server, retries=1).critique(PROMPT, picture)
        assert got.gave_up is True and got.matches is False
        assert [e.stage for e in got.exchanges] == ["decide", "decide", "concepts", "concepts"]
        assert all("malformed reply" in e.error for e in got.exchanges)

    def test_malformed_then_valid_answer(self, fake_server, picture):
        fake_server.malformed("html").reply(json_data=FUSED_NO)
        got = self._critic(fake_server, protocol="fused").critique(PROMPT, picture)
        assert not got.gave_up and got.attempts == 2 and len(got.missing) == 2
        assert "HTML" in got.exchanges[0].error and got.exchanges[0].answer.startswith("<!DOCTYPE html>")
        assert got.exchanges[1].error is None

    def test_aask_malformed_raises_malformed_reply_error(self, fake_server):
        from ..critique import VLMRequest

        fake_server.malformed("wrong_shape")
        critic = self._three_step(fake_server).load()
        with pytest.raises(MalformedReplyError) as err:
            asyncio.run(critic.aask(VLMRequest(text="say hello", temperature=0.0)))
        assert err.value.provider == self.provider and "nope" in err.value.raw

    # -- images, usage, async ---------------------------------------------------------------------
    @pytest.mark.parametrize("side", [128, 300])
    def test_image_sent_downscaled(self, fake_server, side):
        fake_server.reply("Yes")
        self._three_step(fake_server, max_image_side=side).critique(PROMPT, sample_image((1000, 600)))
        images = self.sent_image_list(fake_server.requests[0])
        assert len(images) == 1
        assert images[0].format in ("PNG", "JPEG", "WEBP")
        assert max(images[0].size) == side
        assert images[0].size[0] > images[0].size[1]  # aspect kept

    def test_small_image_not_upscaled(self, fake_server):
        fake_server.reply("Yes")
        self._three_step(fake_server, max_image_side=512).critique(PROMPT, sample_image((200, 100)))
        assert self.sent_image_list(fake_server.requests[0])[0].size == (200, 100)

    def test_usage_recorded(self, fake_server, picture):
        fake_server.reply("Yes", usage=_USAGE[self._api()])
        got = self._three_step(fake_server).critique(PROMPT, picture)
        usage = got.exchanges[0].usage
        assert usage, "token usage reported by the server was not recorded"
        assert 123 in usage.values() and 45 in usage.values(), usage

    def test_usage_has_the_shared_names(self, fake_server, picture):
        """Whatever the provider calls them, the counts are also input_tokens / output_tokens."""
        fake_server.reply("Yes", usage=_USAGE[self._api()])
        usage = self._three_step(fake_server).critique(PROMPT, picture).exchanges[0].usage
        assert usage and usage["input_tokens"] == 123 and usage["output_tokens"] == 45, usage

    def test_async_acritique(self, fake_server, picture):
        fake_server.reply("No").reply("- a sheep").reply("a sheep: a photo of a sheep on grass")
        critic = self._three_step(fake_server)
        got = asyncio.run(critic.acritique(PROMPT, picture))
        assert got.matches is False and [m.concept for m in got.missing] == ["a sheep"]
        assert len(fake_server.requests) == 3

    def test_async_aask(self, fake_server):
        from ..critique import VLMRequest

        fake_server.reply("hello there")
        critic = self._three_step(fake_server).load()
        answer = asyncio.run(critic.aask(VLMRequest(text="say hello", temperature=0.0)))
        assert answer.text == "hello there"
        assert "say hello" in self.sent_text(fake_server.requests[0])

    def test_rephrase(self, fake_server):
        fake_server.reply('"an oil painting of a white sheep beside a red car"')
        new, exchanges = self._three_step(fake_server).rephrase(PROMPT)
        assert new == "an oil painting of a white sheep beside a red car"
        assert exchanges[0].stage == "rephrase" and self.sent_images(fake_server.requests[0]) == 0
