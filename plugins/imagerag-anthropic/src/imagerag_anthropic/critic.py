"""The ``anthropic`` critic: the core's chain-of-thought protocol over the Claude messages API.

Images travel as base64 content blocks before the question. Fused mode forces a tool call whose
``input_schema`` is the core's answer schema, so Claude answers with a ``tool_use`` block holding
the JSON object (``structured: json_schema`` uses ``output_config.format`` instead). The
temperature goes in ``extra_body`` (the SDK 1.0+ has no keyword for it) and only for models that
take one — see :mod:`imagerag_anthropic.models`.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, ClassVar, Literal

from pydantic import Field

from imagerag_sdk.critique import VLMAnswer, VLMCritic, VLMCriticOptions, VLMRequest
from imagerag_sdk.providers import CallRecord, body_problem, record_call, reply_error

from . import _client
from ._client import PROVIDER, ConnectionOptions
from .models import accepts_temperature

log = logging.getLogger(__name__)
TOOL_NAME = "report_critique"
TOOL_DESCRIPTION = "Report whether the image matches the prompt and what is missing."
_STRUCTURE_WORDS = re.compile(r"tool_choice|tool use|tools|output_config|output_format|json_schema",
                              re.I)


class AnthropicCriticOptions(VLMCriticOptions, ConnectionOptions):
    model: str = Field("claude-sonnet-4-6", description="Claude model id, e.g. claude-sonnet-4-6, "
                       "claude-opus-4-7, claude-sonnet-5, claude-haiku-4-5")
    send_temperature: Literal["auto", "always", "never"] = Field(
        "auto", description="Whether requests carry a temperature; auto: Claude up to Opus/Sonnet "
        "4.6 and Haiku 4.5 (and non-Claude models) do, Opus 4.7+ and Claude 5 do not")
    max_tokens: int = Field(4096, ge=16, description="Output token ceiling per request (on models "
                            "that think by default it bounds thinking and answer together)")
    structured: Literal["auto", "tool", "json_schema", "none"] = Field(
        "auto", description="How fused mode gets JSON: tool = a forced tool call with the answer "
        "schema; json_schema = output_config.format; none = the prompt's instruction only; auto = "
        "tool, dropped for the critic's life if the server answers 400 naming tools")
    image_format: Literal["png", "jpeg"] = Field("png", description="Encoding of uploaded images")


class AnthropicCritic(VLMCritic[AnthropicCriticOptions]):
    """Critic backed by a Claude vision model through the anthropic SDK."""

    name = "anthropic"
    provider: ClassVar[str] = PROVIDER
    description = ("Claude (anthropic messages API) judges the image; fused mode forces a tool "
                   "call with the answer schema. Needs ANTHROPIC_API_KEY.")
    structured_output: ClassVar[bool] = True

    options: AnthropicCriticOptions

    @classmethod
    def preflight(cls, options: Any) -> list[str]:
        """A missing API key, found before anything loads."""
        from ._client import key_problems

        return key_problems(options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client = None
        self._tool_rejected = False

    @property
    def structure(self) -> str:
        """How a request with a JSON schema is sent now: tool, json_schema or none."""
        mode = self.options.structured
        if mode == "auto":
            return "none" if self._tool_rejected else "tool"
        return mode

    def _load(self) -> None:
        self._client = _client.make_client(self.options)

    def takes_temperature(self) -> bool:
        mode = self.options.send_temperature
        return mode == "always" or (mode == "auto" and accepts_temperature(self.options.model))

    # -- requests ----------------------------------------------------------------------------------
    def _call_args(self, request: VLMRequest) -> dict[str, Any]:
        o = self.options
        content: list[dict[str, Any]] = [
            _client.image_block(img, max_side=o.max_image_side, fmt=o.image_format)
            for img in request.images]
        content.append({"type": "text", "text": request.text})
        args: dict[str, Any] = {"model": o.model, "max_tokens": o.max_tokens,
                                "messages": [{"role": "user", "content": content}]}
        if request.system:
            args["system"] = request.system
        extra: dict[str, Any] = {}
        if request.temperature is not None and self.takes_temperature():
            extra["temperature"] = request.temperature
        if request.json_schema is not None and self.structure == "tool":
            args["tools"] = [{"name": TOOL_NAME, "description": TOOL_DESCRIPTION,
                              "input_schema": request.json_schema}]
            args["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        elif request.json_schema is not None and self.structure == "json_schema":
            args["output_config"] = {"format": {"type": "json_schema", "schema": request.json_schema}}
        if extra:
            args["extra_body"] = extra
        return args

    def _answer(self, message: Any, record: CallRecord) -> VLMAnswer:
        if record.answered and body_problem(record):  # e.g. Latin-1 text decoded without complaint
            raise reply_error(PROVIDER, record)
        content = getattr(message, "content", None)
        if not isinstance(content, list):
            raise reply_error(PROVIDER, record, "no 'content' list of blocks in the reply")
        texts: list[str] = []
        data = None
        for block in content:
            kind = getattr(block, "type", None)
            if kind == "text":
                if not isinstance(getattr(block, "text", None), str):
                    raise reply_error(PROVIDER, record, "a text block without text")
                texts.append(block.text)
            elif kind == "tool_use" and getattr(block, "name", None) == TOOL_NAME:
                data = block.input
        text = "\n".join(texts)
        if data is not None and not text:
            text = json.dumps(data, ensure_ascii=False)  # the trace shows what the model said
        usage = _client.usage_dict(getattr(message, "usage", None))
        stop = getattr(message, "stop_reason", None)
        if stop in ("max_tokens", "refusal", "pause_turn"):
            usage = {**(usage or {}), "stop_reason": stop}
        return VLMAnswer(text=text, data=data, usage=usage,
                         model=getattr(message, "model", None) or self.options.model)

    def _raise_mapped(self, exc: BaseException, record: CallRecord) -> None:
        mapped = _client.map_error(exc, options=self.options, what=f"model {self.options.model}",
                                   record=record)
        if mapped is exc:
            raise exc
        raise mapped from exc

    def _tool_refused(self, exc: BaseException, args: dict[str, Any]) -> bool:
        """A model or server that refuses the forced tool call (400 naming it, e.g. with thinking
        on): stop forcing it (``structured: auto`` only); the caller re-sends the request once."""
        anthropic = _client.import_anthropic()
        if (self.options.structured == "auto" and "tool_choice" in args
                and isinstance(exc, anthropic.BadRequestError)
                and _STRUCTURE_WORDS.search(_client.error_detail(exc))):
            self._tool_rejected = True
            args.pop("tools", None)
            args.pop("tool_choice", None)
            log.warning("anthropic: %s refused the forced tool call; fused answers are now parsed "
                        "from text", self.options.model)
            return True
        return False

    def ask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        args = self._call_args(request)
        with record_call() as record:
            try:
                try:
                    message = self._client.messages.create(**args)
                except Exception as exc:
                    if not self._tool_refused(exc, args):
                        raise
                    message = self._client.messages.create(**args)
            except Exception as exc:
                self._raise_mapped(exc, record)
            return self._answer(message, record)

    async def aask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        args = self._call_args(request)
        # an async client is bound to the event loop it first runs in: one per call
        async with _client.make_async_client(self.options) as client:
            with record_call() as record:
                try:
                    try:
                        message = await client.messages.create(**args)
                    except Exception as exc:
                        if not self._tool_refused(exc, args):
                            raise
                        message = await client.messages.create(**args)
                except Exception as exc:
                    self._raise_mapped(exc, record)
                return self._answer(message, record)
