"""Connection options, client construction, request parts and error mapping for google-genai.

Shared by the critic and the image generator. ``google.genai`` is imported only inside functions
that ``_load()`` (or a request) calls, never when this module is imported.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from imagerag_sdk.providers import CallRecord, api_key, event_hooks, reply_error
from imagerag_sdk.errors import (AuthenticationError, MissingDependencyError, ProviderError,
                                 ProviderTimeoutError, RateLimitError, install_hint)
from imagerag_sdk.images import encode, fit_within, to_rgb
from imagerag_sdk.roles import Options

PROVIDER = "gemini"
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
KEY_HINT = ("set GEMINI_API_KEY (or GOOGLE_API_KEY), or api_key: {$env: GEMINI_API_KEY} in the "
            "profile; keys are made at aistudio.google.com")
RETRY_STATUS = (408, 429, 500, 502, 503, 504)


class ConnectionOptions(Options):
    """Where and how to reach the Gemini API."""

    api_key: SecretStr | None = Field(
        None, description="Gemini API key; default: GEMINI_API_KEY, then GOOGLE_API_KEY. Never logged.")
    base_url: str | None = Field(
        None, description="API endpoint (a proxy or a test server); default: the public Gemini API")
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


def import_genai():
    """``(genai, types)`` or a :class:`MissingDependencyError` with the pip command."""
    try:
        from google import genai
        from google.genai import types
    except ImportError as exc:  # pragma: no cover - the distribution depends on it
        raise MissingDependencyError("the 'google-genai' package is not installed",
                                     hint=install_hint("imagerag-gemini")) from exc
    return genai, types


def resolve_key(options: ConnectionOptions) -> str:
    return api_key(options.api_key, KEY_ENVS, provider=PROVIDER, hint=KEY_HINT)


def key_problems(options: ConnectionOptions) -> list[str]:
    """The components' preflight: the missing-key line when neither the ``api_key`` option nor
    the environment gives one (known without importing the SDK); ``[]`` otherwise."""
    try:
        resolve_key(options)
    except AuthenticationError as exc:
        return [str(exc)]
    return []


def http_options(options: ConnectionOptions):
    """google-genai ``HttpOptions``: timeout in milliseconds, retries with exponential backoff."""
    _, types = import_genai()
    retry = types.HttpRetryOptions(
        attempts=options.max_retries + 1, initial_delay=options.retry_initial_delay,
        max_delay=options.retry_max_delay, exp_base=2.0,
        jitter=min(1.0, options.retry_initial_delay), http_status_codes=list(RETRY_STATUS))
    kwargs: dict[str, Any] = {"timeout": max(1, round(options.timeout * 1000)), "retry_options": retry,
                              # count each call's requests and keep its reply (record_call)
                              "client_args": {"event_hooks": event_hooks()},
                              "async_client_args": {"event_hooks": event_hooks(is_async=True)}}
    if options.base_url:
        kwargs["base_url"] = options.base_url
    if options.api_version:
        kwargs["api_version"] = options.api_version
    return types.HttpOptions(**kwargs)


def make_client(options: ConnectionOptions):
    """A ``genai.Client`` (Gemini Developer API, never Vertex). Keep it referenced while its
    ``.models`` / ``.aio.models`` are in use: the client owns the HTTP connections."""
    genai, _ = import_genai()
    return genai.Client(api_key=resolve_key(options), vertexai=False,
                        http_options=http_options(options))


def image_part(img, *, max_side: int, fmt: Literal["png", "jpeg"] = "png", quality: int = 90):
    """A ``types.Part`` with the image downscaled to ``max_side`` and re-encoded."""
    _, types = import_genai()
    fmt_name = "JPEG" if fmt == "jpeg" else "PNG"
    data = encode(fit_within(to_rgb(img), max_side), fmt=fmt_name, quality=quality)
    return types.Part.from_bytes(data=data, mime_type=f"image/{fmt}")


def usage_dict(meta: Any) -> dict[str, Any] | None:
    """Token counts from ``usage_metadata`` under provider-neutral names (plus thinking tokens)."""
    if meta is None:
        return None
    names = {"prompt_token_count": "input_tokens", "candidates_token_count": "output_tokens",
             "total_token_count": "total_tokens", "thoughts_token_count": "thinking_tokens",
             "cached_content_token_count": "cached_tokens"}
    out = {new: getattr(meta, old, None) for old, new in names.items()}
    return {k: v for k, v in out.items() if v is not None} or None


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, "<redacted>") if key and key in text else text


def map_error(exc: BaseException, *, options: ConnectionOptions, what: str,
              record: CallRecord | None = None) -> BaseException:
    """The SDK error for a google-genai / httpx2 exception; names the provider and the fix.
    ``record`` (the call's HTTP traffic) makes "after N requests" true; a reply the client could
    not read (not UTF-8, HTML, not JSON) becomes a MalformedReplyError.

    Exceptions that are neither (programming errors) are returned unchanged."""
    from google.genai import errors as genai_errors

    if (record is not None and record.answered
            and isinstance(exc, (ValueError, TypeError, AttributeError, KeyError,
                                 genai_errors.UnknownApiResponseError))):
        return reply_error(PROVIDER, record, f"the google-genai client could not read it: "
                           f"{type(exc).__name__}: {exc}")

    try:
        key: str | None = resolve_key(options)
    except AuthenticationError:
        key = None
    where = options.base_url or "the Gemini API"
    # google-genai ignores Retry-After: it retries on its own backoff
    retried = (record.tries(max_wait=None) if record is not None
               else f"after up to {options.max_retries} retries")
    if isinstance(exc, genai_errors.APIError):
        code = exc.code or 0
        detail = _redact(str(exc.message or exc.status or exc), key)
        status = str(exc.status or "")
        key_problem = "api key" in detail.lower() or "API_KEY" in str(exc.details)
        if code in (401, 403) or (code == 400 and key_problem):
            return AuthenticationError(
                f"{what}: the API key was rejected ({code} {status}): {detail}", provider=PROVIDER,
                hint=KEY_HINT.replace("set", "set a valid", 1) + "; check that the key may use this model")
        if code == 429:
            return RateLimitError(f"{what}: rate limited (429 {status}) {retried}: {detail}",
                                  provider=PROVIDER, hint="wait, lower concurrency, raise "
                                  "'max_retries', or check the project's quota and billing")
        if code == 404:
            return ProviderError(f"{what}: not found (404): {detail}", provider=PROVIDER,
                                 hint="check the 'model' option (e.g. gemini-2.5-flash) and base_url")
        if code >= 500:
            return ProviderError(f"{what}: server error {code} {status} {retried}: {detail}",
                                 provider=PROVIDER, hint="retry later or raise 'max_retries'")
        return ProviderError(f"{what}: HTTP {code} {status}: {detail}", provider=PROVIDER,
                             hint="check the model and the options sent")
    try:
        import httpx2
    except ImportError:  # pragma: no cover - google-genai 3.x depends on it
        httpx2 = None
    if httpx2 is not None and isinstance(exc, httpx2.TimeoutException):
        return ProviderTimeoutError(f"{what} timed out ({options.timeout:g} s per request, {retried}; {where})",
                                    provider=PROVIDER, hint="raise the 'timeout' option or retry later")
    if httpx2 is not None and isinstance(exc, httpx2.TransportError):
        return ProviderError(f"{what}: cannot reach {where}: {type(exc).__name__}: "
                             f"{_redact(str(exc), key)}", provider=PROVIDER,
                             hint="check the network and base_url")
    return exc


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
