"""What the critic and the image generator share: the connection options, which make the
google-genai client and name its errors, image parts and finish reasons.

``google.genai`` is imported only inside functions that ``load()`` (or a request) calls, never
when this module is imported.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from imagerag_sdk.images import encode, fit_within, to_rgb
from imagerag_sdk.providers import ConnectionOptions, ErrorKinds, event_hooks, require

RETRY_STATUS = (408, 429, 500, 502, 503, 504)


def import_genai() -> tuple[Any, Any]:
    """``(genai, types)`` or a :class:`MissingDependencyError` with the pip command."""
    genai = require("google.genai", "imagerag-gemini")
    return genai, require("google.genai.types", "imagerag-gemini")


class GeminiConnection(ConnectionOptions):
    """Where and how to reach the Gemini API."""

    provider = "gemini"
    key_envs = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    key_note = "keys are made at aistudio.google.com"
    endpoint = "the Gemini API"
    honours_retry_after = False  # google-genai retries on its own backoff

    api_version: str | None = Field(None, description="API version path segment, e.g. v1beta; "
                                    "default: the google-genai default")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one HTTP request "
                           "(converted to the milliseconds google-genai expects)")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of one request on timeouts, "
                             "connection errors, 408, 429 and 5xx (google-genai retries nothing "
                             "unless told; this sets its HttpRetryOptions)")
    retry_initial_delay: float = Field(1.0, ge=0, description="Seconds before the first retry; "
                                       "doubles each retry (with jitter)")
    retry_max_delay: float = Field(30.0, ge=0, description="Ceiling of one retry delay, seconds")

    def http_options(self) -> Any:
        """google-genai ``HttpOptions``: timeout in milliseconds, retries with exponential backoff."""
        _, types = import_genai()
        retry = types.HttpRetryOptions(
            attempts=self.max_retries + 1, initial_delay=self.retry_initial_delay,
            max_delay=self.retry_max_delay, exp_base=2.0,
            jitter=min(1.0, self.retry_initial_delay), http_status_codes=list(RETRY_STATUS))
        kwargs: dict[str, Any] = {"timeout": max(1, round(self.timeout * 1000)), "retry_options": retry,
                                  # count each call's requests and keep its reply (record_call)
                                  "client_args": {"event_hooks": event_hooks()},
                                  "async_client_args": {"event_hooks": event_hooks(is_async=True)}}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        if self.api_version:
            kwargs["api_version"] = self.api_version
        return types.HttpOptions(**kwargs)

    def make_client(self) -> Any:
        """A ``genai.Client`` (Gemini Developer API, never Vertex). Keep it referenced while its
        ``.models`` / ``.aio.models`` are in use: the client owns the HTTP connections."""
        genai, _ = import_genai()
        return genai.Client(api_key=self.resolve_key(), vertexai=False, http_options=self.http_options())

    def error_kinds(self) -> ErrorKinds:
        import httpx2  # google-genai's HTTP client
        from google.genai import errors

        return [(httpx2.TimeoutException, "timeout"), (httpx2.TransportError, "connection"),
                (errors.UnknownApiResponseError, "malformed"), (errors.APIError, "status")]


def image_part(img: Any, *, max_side: int, fmt: Literal["png", "jpeg"] = "png", quality: int = 90) -> Any:
    """A ``types.Part`` with the image downscaled to ``max_side`` and re-encoded."""
    _, types = import_genai()
    fmt_name = "JPEG" if fmt == "jpeg" else "PNG"
    data = encode(fit_within(to_rgb(img), max_side), fmt=fmt_name, quality=quality)
    return types.Part.from_bytes(data=data, mime_type=f"image/{fmt}")


def usage_fields(meta: Any) -> dict[str, Any]:
    """``usage_metadata`` under the shared names (google-genai's own are its Python names)."""
    names = {"prompt_token_count": "input_tokens", "candidates_token_count": "output_tokens",
             "total_token_count": "total_tokens", "thoughts_token_count": "thinking_tokens",
             "cached_content_token_count": "cached_tokens"}
    return {new: getattr(meta, old, None) for old, new in names.items() if getattr(meta, old, None)
            is not None}


def finish_reason(response: Any) -> str | None:
    """Why the model stopped (``STOP``, ``SAFETY``, ``MAX_TOKENS`` …) or why the prompt was blocked."""
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and getattr(feedback, "block_reason", None):
        return f"prompt blocked: {_enum_name(feedback.block_reason)}"
    for cand in getattr(response, "candidates", None) or []:
        if getattr(cand, "finish_reason", None):
            return _enum_name(cand.finish_reason)
    return None


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", None) or getattr(value, "name", None) or value)
