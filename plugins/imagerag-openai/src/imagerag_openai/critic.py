"""The ``openai`` critic: GPT models (or any OpenAI-compatible server) over chat completions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import weakref
from typing import Any, Literal

from pydantic import Field

from imagerag_sdk.critique import VLMAnswer, VLMCritic, VLMCriticOptions, VLMRequest
from imagerag_sdk.providers import CallRecord, body_problem, record_call, reply_error

from ._client import (PROVIDER, ConnectionOptions, data_url, import_openai, make_async_client,
                      make_clients, map_error, usage_dict)

# Reasoning models reject any temperature but the default, and count hidden reasoning tokens
# against max_completion_tokens.
_REASONING = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)(?![\w.]*-chat)", re.I)
# Models without json_schema structured output.
_NO_SCHEMA = re.compile(r"^(?:[\w.-]+/)?(?:gpt-4-(?:vision|turbo)|gpt-4-\d{4}|gpt-4$|gpt-3\.5)", re.I)


class OpenAICriticOptions(VLMCriticOptions, ConnectionOptions):
    model: str = Field("gpt-4o-2024-08-06", description="Chat model with vision (the paper: "
                       "gpt-4o-2024-08-06); for a compatible server, the name it serves")
    structured_output: Literal["auto", True, False] = Field(
        "auto", description="Send response_format json_schema (strict) in fused mode; auto: on, "
        "except for old models, and switched off for this critic if the server rejects it")
    send_temperature: Literal["auto", "always", "never"] = Field(
        "auto", description="Whether requests carry a temperature; auto: by model name (GPT-5 "
        "family and o-series take none, gpt-5-chat and every other model do)")
    max_tokens: int | None = Field(
        None, ge=1, description="Cap on answer tokens; default 600 for chat models, none for "
        "reasoning models (their hidden reasoning counts against it)")
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        None, description="For reasoning models only (GPT-5, o-series)")
    image_format: Literal["png", "jpeg"] = Field("png", description="Re-encoding of uploaded images")
    jpeg_quality: int = Field(90, ge=1, le=100, description="Quality when image_format is jpeg")
    detail: Literal["auto", "low", "high"] = Field("auto", description="OpenAI image detail level")


class OpenAICritic(VLMCritic[OpenAICriticOptions]):
    """GPT-4o / GPT-5 / any OpenAI-compatible vision model as the ImageRAG critic."""

    name = "openai"
    provider = PROVIDER
    description = ("OpenAI chat-completions critic (GPT-4o by default); also any OpenAI-compatible "
                   "server via base_url (vLLM, Ollama, LM Studio). Fused structured mode or the "
                   "paper's three questions. Needs OPENAI_API_KEY.")

    @classmethod
    def preflight(cls, options: Any) -> list[str]:
        """A missing API key, found before anything loads."""
        from ._client import key_problems

        return key_problems(options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client = None
        self._async_clients: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
        self._schema_rejected = False
        self._last_upload: tuple[bytes, tuple, str] | None = None

    def _data_url(self, img: Any) -> str:
        """Encode once per image: three-step mode sends the same image twice."""
        o = self.options
        settings = (o.max_image_side, o.image_format, o.jpeg_quality, img.mode, img.size)
        digest = hashlib.blake2b(img.tobytes(), digest_size=16).digest()
        last = self._last_upload
        if last is not None and last[0] == digest and last[1] == settings:
            return last[2]
        url = data_url(img, max_side=o.max_image_side, fmt=o.image_format, quality=o.jpeg_quality)
        self._last_upload = (digest, settings, url)
        return url

    # -- capabilities --------------------------------------------------------------------------
    @property
    def is_reasoning_model(self) -> bool:
        return bool(_REASONING.match(self.options.model))

    def takes_temperature(self) -> bool:
        setting = self.options.send_temperature
        return setting == "always" or (setting == "auto" and not self.is_reasoning_model)

    @property
    def structured_output(self) -> bool:  # type: ignore[override]
        setting = self.options.structured_output
        if setting is True or setting is False:
            return setting
        return not self._schema_rejected and not _NO_SCHEMA.match(self.options.model)

    # -- lifecycle -----------------------------------------------------------------------------
    def _load(self) -> None:
        self._client = make_clients(self.options)

    def _async_client(self):
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = make_async_client(self.options)
        return client

    # -- requests ------------------------------------------------------------------------------
    def build_params(self, request: VLMRequest) -> dict[str, Any]:
        """The chat.completions.create arguments for one request."""
        o = self.options
        content: list[dict[str, Any]] = [{"type": "text", "text": request.text}]
        for img in request.images:
            part: dict[str, Any] = {"url": self._data_url(img)}
            if o.detail != "auto":  # auto is OpenAI's default; compatible servers may not know it
                part["detail"] = o.detail
            content.append({"type": "image_url", "image_url": part})
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": content})
        params: dict[str, Any] = {"model": o.model, "messages": messages}
        if request.temperature is not None and self.takes_temperature():
            params["temperature"] = request.temperature
        if request.seed is not None:
            params["seed"] = request.seed
        if self.is_reasoning_model:
            if o.max_tokens:
                params["max_completion_tokens"] = o.max_tokens
            if o.reasoning_effort:
                params["reasoning_effort"] = o.reasoning_effort
        else:
            params["max_tokens"] = o.max_tokens or request.max_tokens
        if request.json_schema is not None and self.structured_output:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "critique", "schema": request.json_schema, "strict": True}}
        return params

    def _answer(self, response: Any, structured: bool, record: CallRecord) -> VLMAnswer:
        """The answer in a completion; :class:`MalformedReplyError` when the reply is none."""
        problem = body_problem(record) if record.answered else None
        if problem:  # e.g. Latin-1 text the SDK decoded without complaint
            raise reply_error(PROVIDER, record)
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise reply_error(PROVIDER, record, "no 'choices' list with an answer in the reply"
                              if not isinstance(choices, list) else "'choices' is empty")
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        refusal = getattr(message, "refusal", None)
        if not isinstance(content, str) and not isinstance(refusal, str):
            raise reply_error(PROVIDER, record, "the first choice has no message with text content")
        text = content or refusal or ""
        data = None
        if structured and text:
            try:
                data = json.loads(text)
            except ValueError:
                data = None  # the core falls back to tolerant text parsing and retries
        usage = usage_dict(getattr(response, "usage", None)) or {}
        finish = getattr(choice, "finish_reason", None)
        if finish not in (None, "stop"):  # length, content_filter: worth seeing in the trace
            usage["finish_reason"] = finish
        return VLMAnswer(text=text, data=data, usage=usage or None,
                         model=getattr(response, "model", None))

    def _rejected_schema(self, exc: Exception, params: dict[str, Any]) -> bool:
        """A compatible server that refuses response_format: turn it off (auto mode only)."""
        openai = import_openai()
        if (self.options.structured_output == "auto" and "response_format" in params
                and isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError))
                and re.search(r"response_format|json_schema|structured", str(exc), re.I)):
            self._schema_rejected = True
            params.pop("response_format")
            return True
        return False

    def _failed(self, exc: Exception, record: CallRecord) -> Exception:
        """The SDK error for what the openai client raised; a reply the client could not read
        (not UTF-8, HTML, not JSON) is a :class:`MalformedReplyError`, anything else re-raised."""
        openai = import_openai()
        if isinstance(exc, openai.OpenAIError):
            return map_error(exc, options=self.options, what=f"chat completion with {self.options.model}",
                             record=record)
        if record.answered and isinstance(exc, (ValueError, TypeError, AttributeError, KeyError)):
            return reply_error(PROVIDER, record, f"the openai client could not read it: "
                               f"{type(exc).__name__}: {exc}")
        return exc

    def ask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        openai = import_openai()
        params = self.build_params(request)
        with record_call() as record:
            try:
                try:
                    response = self._client.chat.completions.create(**params)
                except openai.APIStatusError as exc:
                    if not self._rejected_schema(exc, params):
                        raise
                    response = self._client.chat.completions.create(**params)
            except Exception as exc:
                failed = self._failed(exc, record)
                if failed is exc:
                    raise
                raise failed from exc
            return self._answer(response, "response_format" in params, record)

    async def aask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        openai = import_openai()
        params = self.build_params(request)
        client = self._async_client()
        with record_call() as record:
            try:
                try:
                    response = await client.chat.completions.create(**params)
                except openai.APIStatusError as exc:
                    if not self._rejected_schema(exc, params):
                        raise
                    response = await client.chat.completions.create(**params)
            except Exception as exc:
                failed = self._failed(exc, record)
                if failed is exc:
                    raise
                raise failed from exc
            return self._answer(response, "response_format" in params, record)
