"""The ``gemini`` critic: the core's chain-of-thought protocol over google-genai ``generate_content``.

Fused mode asks for JSON through ``response_mime_type="application/json"`` plus
``response_json_schema``. Gemini hands back ``parsed=None`` without an error when the text is not
valid JSON; the answer's text is then returned as is and the core parses it tolerantly or retries.
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

log = logging.getLogger(__name__)
_SCHEMA_WORDS = re.compile(r"response_?json_?schema|response_?schema|response_?mime_?type|json mode",
                           re.I)


class GeminiCriticOptions(VLMCriticOptions, ConnectionOptions):
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


class GeminiCritic(VLMCritic[GeminiCriticOptions]):
    """Critic backed by a Gemini vision model through the google-genai SDK."""

    name = "gemini"
    provider: ClassVar[str] = PROVIDER
    description = ("Gemini (google-genai) judges the image; fused mode uses a JSON response schema. "
                   "Needs GEMINI_API_KEY or GOOGLE_API_KEY.")
    structured_output: ClassVar[bool] = True

    options: GeminiCriticOptions

    @classmethod
    def preflight(cls, options: Any) -> list[str]:
        """A missing API key, found before anything loads."""
        from ._client import key_problems

        return key_problems(options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client = None
        self._schema_rejected = False

    @property
    def sends_schema(self) -> bool:
        """Whether a request with a JSON schema asks Gemini for structured output."""
        mode = self.options.structured
        return mode == "json_schema" or (mode == "auto" and not self._schema_rejected)

    def _load(self) -> None:
        self._client = _client.make_client(self.options)

    def takes_temperature(self) -> bool:
        return self.options.send_temperature != "never"

    # -- requests ----------------------------------------------------------------------------------
    def _call_args(self, request: VLMRequest) -> dict[str, Any]:
        _, types = _client.import_genai()
        o = self.options
        parts: list[Any] = [_client.image_part(img, max_side=o.max_image_side, fmt=o.image_format)
                            for img in request.images]
        parts.append(request.text)
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
        return {"model": o.model, "contents": parts,
                "config": types.GenerateContentConfig(**config)}

    def _answer(self, response: Any, args: dict[str, Any], record: CallRecord) -> VLMAnswer:
        _check_reply(response, record)
        text = response.text or ""
        data = None
        if args["config"].response_json_schema is not None:
            parsed = getattr(response, "parsed", None)  # None on invalid JSON: the core retries
            data = parsed if isinstance(parsed, (dict, list)) else None
        usage = _client.usage_dict(getattr(response, "usage_metadata", None))
        reason = _client.finish_reason(response)
        if reason and reason != "STOP":
            usage = {**(usage or {}), "finish_reason": reason}
        return VLMAnswer(text=text, data=data, usage=usage,
                         model=getattr(response, "model_version", None) or self.options.model)

    def _schema_refused(self, exc: BaseException, args: dict[str, Any]) -> bool:
        """A model or proxy that refuses the JSON schema (400 naming it): stop sending it
        (``structured: auto`` only) and let the caller re-send the request once."""
        from google.genai import errors as genai_errors

        config = args["config"]
        if (self.options.structured == "auto" and config.response_json_schema is not None
                and isinstance(exc, genai_errors.ClientError) and exc.code == 400
                and _SCHEMA_WORDS.search(f"{exc.message} {exc.details}")):
            self._schema_rejected = True
            args["config"] = config.model_copy(update={"response_json_schema": None,
                                                       "response_mime_type": None})
            log.warning("gemini: %s refused the JSON response schema; fused answers are now "
                        "parsed from text", self.options.model)
            return True
        return False

    def _raise_mapped(self, exc: BaseException, record: CallRecord) -> None:
        mapped = _client.map_error(exc, options=self.options, what=f"model {self.options.model}",
                                   record=record)
        if mapped is exc:
            raise exc
        raise mapped from exc

    def ask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        args = self._call_args(request)
        with record_call() as record:
            try:
                try:
                    response = self._client.models.generate_content(**args)
                except Exception as exc:
                    if not self._schema_refused(exc, args):
                        raise
                    response = self._client.models.generate_content(**args)
            except Exception as exc:
                self._raise_mapped(exc, record)
            return self._answer(response, args, record)

    async def aask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        args = self._call_args(request)
        with record_call() as record:
            try:
                try:
                    response = await self._client.aio.models.generate_content(**args)
                except Exception as exc:
                    if not self._schema_refused(exc, args):
                        raise
                    response = await self._client.aio.models.generate_content(**args)
            except Exception as exc:
                self._raise_mapped(exc, record)
            return self._answer(response, args, record)


def _check_reply(response: Any, record: CallRecord) -> None:
    """:class:`MalformedReplyError` unless the reply is a generateContent response: candidates
    (each with content or a finish reason), or none with the prompt's block reason. google-genai
    accepts any JSON object silently (``{"candidates": "nope"}`` reads as no candidates)."""
    problem = body_problem(record) if record.answered else None
    if problem:  # e.g. Latin-1 text, decoded by the client with replacement characters
        raise reply_error(PROVIDER, record)
    raw = _raw_json(record)
    if not isinstance(raw, dict):
        raise reply_error(PROVIDER, record, "the reply is not a JSON object")
    candidates = raw.get("candidates")
    if candidates is None or candidates == []:
        if _client.finish_reason(response):  # prompt blocked: a well-formed, empty answer
            return
        raise reply_error(PROVIDER, record, "no candidates and no prompt feedback in the reply")
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise reply_error(PROVIDER, record, "'candidates' is not a list of objects")
    first = candidates[0]
    if not isinstance(first.get("content"), dict) and not first.get("finishReason"):
        raise reply_error(PROVIDER, record, "the first candidate has neither content nor a finish reason")


def _raw_json(record: CallRecord) -> Any:
    return json.loads(record.body) if record.body else None
