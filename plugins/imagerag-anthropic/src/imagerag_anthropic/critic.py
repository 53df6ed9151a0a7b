"""The ``anthropic`` critic: the core's chain-of-thought protocol over the Claude messages API.

Images travel as base64 content blocks before the question. Fused mode forces a tool call whose
``input_schema`` is the core's answer schema, so Claude answers with a ``tool_use`` block holding
the JSON object (``structured: json_schema`` uses ``output_config.format`` instead). The
temperature goes in ``extra_body`` (the SDK 1.0+ has no keyword for it) and only for models that
take one — see :mod:`imagerag_anthropic.models`.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal

from pydantic import Field

from imagerag_sdk.critique import VLMAnswer, VLMCriticOptions, VLMRequest
from imagerag_sdk.providers import APICritic, CallRecord, reply_error, usage_dict

from . import _client
from ._client import AnthropicConnection
from .models import accepts_temperature

TOOL_NAME = "report_critique"
TOOL_DESCRIPTION = "Report whether the image matches the prompt and what is missing."
_STRUCTURE_WORDS = re.compile(r"tool_choice|tool use|tools|output_config|output_format|json_schema",
                              re.I)


class AnthropicCriticOptions(VLMCriticOptions, AnthropicConnection):
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


class AnthropicCritic(APICritic[AnthropicCriticOptions]):
    """Critic backed by a Claude vision model through the anthropic SDK."""

    name = "anthropic"
    description = ("Claude (anthropic messages API) judges the image; fused mode forces a tool "
                   "call with the answer schema. Needs ANTHROPIC_API_KEY.")
    structured_output: ClassVar[bool] = True

    structure_words = _STRUCTURE_WORDS

    @property
    def structure(self) -> str:
        """How a request with a JSON schema is sent now: tool, json_schema or none."""
        mode = self.options.structured
        if mode == "auto":
            return "none" if self.structure_refused else "tool"
        return mode

    def takes_temperature(self) -> bool:
        mode = self.options.send_temperature
        return mode == "always" or (mode == "auto" and accepts_temperature(self.options.model))

    # -- requests ----------------------------------------------------------------------------------
    def build_params(self, request: VLMRequest) -> dict[str, Any]:
        o = self.options
        messages: list[dict[str, Any]] = []
        for role, text, images in request.messages():
            content: list[dict[str, Any]] = [
                _client.image_block(img, max_side=o.max_image_side, fmt=o.image_format)
                for img in images]  # images before the question, as Anthropic recommends
            content.append({"type": "text", "text": text})
            messages.append({"role": role, "content": content})
        args: dict[str, Any] = {"model": o.model, "max_tokens": o.max_tokens, "messages": messages}
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

    def without_structure(self, args: dict[str, Any]) -> dict[str, Any] | None:
        """A model or server that refuses the forced tool call (400 naming it, e.g. with thinking
        on): stop forcing it (``structured: auto`` only)."""
        if self.options.structured != "auto" or "tool_choice" not in args:
            return None
        return {k: v for k, v in args.items() if k not in ("tools", "tool_choice")}

    def send(self, args: dict[str, Any]) -> Any:
        return self.client.messages.create(**args)

    async def asend(self, args: dict[str, Any]) -> Any:
        return await self.async_client().messages.create(**args)

    def to_answer(self, message: Any, args: dict[str, Any], record: CallRecord) -> VLMAnswer:
        content = getattr(message, "content", None)
        if not isinstance(content, list):
            raise reply_error(self.provider, record, "no 'content' list of blocks in the reply")
        texts: list[str] = []
        data = None
        for block in content:
            kind = getattr(block, "type", None)
            if kind == "text":
                if not isinstance(getattr(block, "text", None), str):
                    raise reply_error(self.provider, record, "a text block without text")
                texts.append(block.text)
            elif kind == "tool_use" and getattr(block, "name", None) == TOOL_NAME:
                data = block.input
        text = "\n".join(texts)
        if data is not None and not text:
            text = json.dumps(data, ensure_ascii=False)  # the trace shows what the model said
        stop = getattr(message, "stop_reason", None)
        usage = usage_dict(getattr(message, "usage", None),
                           stop_reason=stop if stop in ("max_tokens", "refusal", "pause_turn") else None)
        return VLMAnswer(text=text, data=data, usage=usage,
                         model=getattr(message, "model", None) or self.options.model)
