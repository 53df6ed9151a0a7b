"""The ``gemini`` critic: the core's chain-of-thought protocol over google-genai ``generate_content``.

Fused mode asks for JSON through ``response_mime_type="application/json"`` plus
``response_json_schema``. Gemini hands back ``parsed=None`` without an error when the text is not
valid JSON; the answer's text is then returned as is and the core parses it tolerantly or retries.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal

from pydantic import Field

from imagerag_sdk.critique import VLMAnswer, VLMCriticOptions, VLMRequest
from imagerag_sdk.providers import APICritic, CallRecord, reply_error, usage_dict

from . import _client
from ._client import GeminiConnection

_SCHEMA_WORDS = re.compile(r"response_?json_?schema|response_?schema|response_?mime_?type|json mode",
                           re.I)


class GeminiCriticOptions(VLMCriticOptions, GeminiConnection):
    model: str = Field("gemini-2.5-flash", description="Gemini model id, e.g. gemini-2.5-flash, "
                       "gemini-2.5-pro, gemini-3-pro-preview")
    send_temperature: Literal["auto", "always", "never"] = Field(
        "auto", description="Whether requests carry a temperature; auto: every Gemini model takes one")
    max_tokens: int | None = Field(
        4096, ge=16, description="max_output_tokens per request (thinking models spend part of "
        "it on thoughts); None: the core's per-request value")
    thinking_budget: int | None = Field(
        None, ge=-1, description="Thinking tokens for 2.5 models (0 turns thinking off on Flash, "
        "-1 dynamic); None: the model's default")
    structured: Literal["auto", "json_schema", "none"] = Field(
        "auto", description="How fused mode gets JSON: json_schema = response_mime_type "
        "application/json + response_json_schema; none = the prompt's instruction only; auto = "
        "json_schema, dropped for the critic's life if the server answers 400 naming it")
    image_format: Literal["png", "jpeg"] = Field("png", description="Encoding of uploaded images")


class GeminiCritic(APICritic[GeminiCriticOptions]):
    """Critic backed by a Gemini vision model through the google-genai SDK."""

    name = "gemini"
    description = ("Gemini (google-genai) judges the image; fused mode uses a JSON response schema. "
                   "Needs GEMINI_API_KEY or GOOGLE_API_KEY.")
    structured_output: ClassVar[bool] = True

    structure_words = _SCHEMA_WORDS

    @property
    def sends_schema(self) -> bool:
        """Whether a request with a JSON schema asks Gemini for structured output."""
        mode = self.options.structured
        return mode == "json_schema" or (mode == "auto" and not self.structure_refused)

    def takes_temperature(self) -> bool:
        return self.options.send_temperature != "never"

    # -- requests ----------------------------------------------------------------------------------
    def build_params(self, request: VLMRequest) -> dict[str, Any]:
        _, types = _client.import_genai()
        o = self.options
        contents: list[Any] = []
        for role, text, images in request.messages():
            parts: list[Any] = [_client.image_part(img, max_side=o.max_image_side, fmt=o.image_format)
                                for img in images]
            parts.append(types.Part.from_text(text=text))
            contents.append(types.Content(role="model" if role == "assistant" else "user", parts=parts))
        config: dict[str, Any] = {"max_output_tokens": o.max_tokens or request.max_tokens}
        if request.temperature is not None and self.takes_temperature():
            config["temperature"] = request.temperature
        if request.seed is not None:
            config["seed"] = request.seed
        if request.system:
            config["system_instruction"] = request.system
        if request.json_schema is not None and self.sends_schema:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = request.json_schema
        if o.thinking_budget is not None:
            config["thinking_config"] = types.ThinkingConfig(thinking_budget=o.thinking_budget)
        return {"model": o.model, "contents": contents,
                "config": types.GenerateContentConfig(**config)}

    def without_structure(self, args: dict[str, Any]) -> dict[str, Any] | None:
        """A model or proxy that refuses the JSON schema (400 naming it): stop sending it
        (``structured: auto`` only)."""
        config = args["config"]
        if self.options.structured != "auto" or config.response_json_schema is None:
            return None
        return {**args, "config": config.model_copy(update={"response_json_schema": None,
                                                            "response_mime_type": None})}

    def send(self, args: dict[str, Any]) -> Any:
        return self.client.models.generate_content(**args)

    async def asend(self, args: dict[str, Any]) -> Any:
        return await self.client.aio.models.generate_content(**args)

    def to_answer(self, response: Any, args: dict[str, Any], record: CallRecord) -> VLMAnswer:
        problem = _reply_problem(response, record)
        if problem:
            raise reply_error(self.provider, record, problem)
        text = response.text or ""
        data = None
        if args["config"].response_json_schema is not None:
            parsed = getattr(response, "parsed", None)  # None on invalid JSON: the core retries
            data = parsed if isinstance(parsed, (dict, list)) else None
        reason = _client.finish_reason(response)
        usage = usage_dict(_client.usage_fields(getattr(response, "usage_metadata", None)),
                           finish_reason=reason if reason != "STOP" else None)
        return VLMAnswer(text=text, data=data, usage=usage,
                         model=getattr(response, "model_version", None) or self.options.model)


def _reply_problem(response: Any, record: CallRecord) -> str | None:
    """What makes the reply no generateContent response, or ``None``: it must hold candidates
    (each with content or a finish reason), or none with the prompt's block reason. google-genai
    accepts any JSON object silently (``{"candidates": "nope"}`` reads as no candidates)."""
    raw = _raw_json(record)
    if not isinstance(raw, dict):
        return "the reply is not a JSON object"
    candidates = raw.get("candidates")
    if candidates is None or candidates == []:
        if _client.finish_reason(response):  # prompt blocked: a well-formed, empty answer
            return None
        return "no candidates and no prompt feedback in the reply"
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        return "'candidates' is not a list of objects"
    first = candidates[0]
    if not isinstance(first.get("content"), dict) and not first.get("finishReason"):
        return "the first candidate has neither content nor a finish reason"
    return None


def _raw_json(record: CallRecord) -> Any:
    return json.loads(record.body) if record.body else None
