"""The ``openai`` critic: GPT models (or any OpenAI-compatible server) over chat completions."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import Field

from imagerag_sdk.critique import VLMAnswer, VLMCriticOptions, VLMRequest
from imagerag_sdk.providers import APICritic, CallRecord, reply_error, usage_dict

from ._client import OpenAIConnection, data_url

# Reasoning models reject any temperature but the default, and count hidden reasoning tokens
# against max_completion_tokens.
_REASONING = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)(?![\w.]*-chat)", re.I)
_UPLOADS_KEPT = 8
"""Encoded images a critic keeps (a personalized conversation sends up to four)."""
# Models without json_schema structured output.
_NO_SCHEMA = re.compile(r"^(?:[\w.-]+/)?(?:gpt-4-(?:vision|turbo)|gpt-4-\d{4}|gpt-4$|gpt-3\.5)", re.I)


class OpenAICriticOptions(VLMCriticOptions, OpenAIConnection):
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


class OpenAICritic(APICritic[OpenAICriticOptions]):
    """GPT-4o / GPT-5 / any OpenAI-compatible vision model as the ImageRAG critic."""

    name = "openai"
    description = ("OpenAI chat-completions critic (GPT-4o by default); also any OpenAI-compatible "
                   "server via base_url (vLLM, Ollama, LM Studio). Fused structured protocol or the "
                   "paper's questions (protocol: paper, three_step). Needs OPENAI_API_KEY.")
    structure_words = re.compile(r"response_format|json_schema|structured", re.I)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._uploads: dict[tuple[bytes, tuple], str] = {}

    def _data_url(self, img: Any) -> str:
        """Encode once per image: a critique sends the same images in several requests (the
        generated one, and the user's in a personalized ``protocol: paper`` conversation)."""
        o = self.options
        settings = (o.max_image_side, o.image_format, o.jpeg_quality, img.mode, img.size)
        key = (hashlib.blake2b(img.tobytes(), digest_size=16).digest(), settings)
        url = self._uploads.get(key)
        if url is None:
            url = data_url(img, max_side=o.max_image_side, fmt=o.image_format, quality=o.jpeg_quality)
            if len(self._uploads) >= _UPLOADS_KEPT:
                self._uploads.pop(next(iter(self._uploads)))  # the oldest
            self._uploads[key] = url
        return url

    def _user_content(self, text: str, images: tuple[Any, ...]) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        for img in images:
            part: dict[str, Any] = {"url": self._data_url(img)}
            if self.options.detail != "auto":  # auto is OpenAI's default; compatible servers may not know it
                part["detail"] = self.options.detail
            content.append({"type": "image_url", "image_url": part})
        return content

    # -- capabilities --------------------------------------------------------------------------
    @property
    def is_reasoning_model(self) -> bool:
        return bool(_REASONING.match(self.options.model))

    def takes_temperature(self) -> bool:
        setting = self.options.send_temperature
        return setting == "always" or (setting == "auto" and not self.is_reasoning_model)

    @property
    def structured_output(self) -> bool:  # type: ignore[override]  # per model and server, not per class

        setting = self.options.structured_output
        if setting is True or setting is False:
            return setting
        return not self.structure_refused and not _NO_SCHEMA.match(self.options.model)

    # -- requests ------------------------------------------------------------------------------
    def build_params(self, request: VLMRequest) -> dict[str, Any]:
        """The chat.completions.create arguments for one request."""
        o = self.options
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for role, text, images in request.messages():
            messages.append({"role": role, "content": self._user_content(text, images)}
                            if role == "user" else {"role": role, "content": text})
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

    def without_structure(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """A compatible server that refuses response_format: turn it off (auto mode only)."""
        if self.options.structured_output != "auto" or "response_format" not in params:
            return None
        return {k: v for k, v in params.items() if k != "response_format"}

    def send(self, params: dict[str, Any]) -> Any:
        return self.client.chat.completions.create(**params)

    async def asend(self, params: dict[str, Any]) -> Any:
        return await self.async_client().chat.completions.create(**params)

    def to_answer(self, response: Any, params: dict[str, Any], record: CallRecord) -> VLMAnswer:
        """The answer in a completion; :class:`MalformedReplyError` when the reply is none."""
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise reply_error(self.provider, record, "no 'choices' list with an answer in the reply"
                              if not isinstance(choices, list) else "'choices' is empty")
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        refusal = getattr(message, "refusal", None)
        if not isinstance(content, str) and not isinstance(refusal, str):
            raise reply_error(self.provider, record, "the first choice has no message with text content")
        text = content or refusal or ""
        data = None
        if "response_format" in params and text:
            try:
                data = json.loads(text)
            except ValueError:
                data = None  # the core falls back to tolerant text parsing and retries
        finish = getattr(choice, "finish_reason", None)
        usage = usage_dict(getattr(response, "usage", None), input="prompt_tokens",
                           output="completion_tokens",  # length, content_filter: worth seeing
                           finish_reason=finish if finish not in (None, "stop") else None)
        return VLMAnswer(text=text, data=data, usage=usage, model=getattr(response, "model", None))
