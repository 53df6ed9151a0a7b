"""Connection options, client construction, image blocks and error mapping for the anthropic SDK.

``anthropic`` is imported only inside functions that ``_load()`` (or a request) calls.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import Field, SecretStr

from imagerag_sdk.providers import CallRecord, api_key, event_hooks, reply_error, require
from imagerag_sdk.errors import (AuthenticationError, ProviderError,
                                 ProviderTimeoutError, RateLimitError)
from imagerag_sdk.images import encode, fit_within, to_rgb
from imagerag_sdk.roles import Options

PROVIDER = "anthropic"
KEY_ENV = "ANTHROPIC_API_KEY"
KEY_HINT = (f"set {KEY_ENV} (or api_key: {{$env: {KEY_ENV}}} in the profile); keys are made in "
            "the Claude Console")


class ConnectionOptions(Options):
    """Where and how to reach the Anthropic messages API."""

    api_key: SecretStr | None = Field(
        None, description=f"API key; default: the {KEY_ENV} environment variable. Never logged.")
    base_url: str | None = Field(None, description="API endpoint (a proxy, an Anthropic-compatible "
                                 "server or a test server); default: api.anthropic.com")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one HTTP request")
    max_retries: int = Field(2, ge=0, le=10, description="SDK retries with exponential backoff "
                             "on connection errors, 408, 409, 429, 5xx and 529 (overloaded); a Retry-After "
                             "over 120 s ends the call instead of sleeping")


def import_anthropic():
    return require("anthropic", "imagerag-anthropic")


def resolve_key(options: ConnectionOptions) -> str:
    return api_key(options.api_key, (KEY_ENV,), provider=PROVIDER, hint=KEY_HINT)


def key_problems(options: ConnectionOptions) -> list[str]:
    """The components' preflight: the missing-key line when neither the ``api_key`` option nor
    the environment gives one (known without importing the SDK); ``[]`` otherwise."""
    try:
        resolve_key(options)
    except AuthenticationError as exc:
        return [str(exc)]
    return []


def client_kwargs(options: ConnectionOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"api_key": resolve_key(options), "timeout": options.timeout,
                              "max_retries": options.max_retries}
    if options.base_url:
        kwargs["base_url"] = options.base_url
    return kwargs


def make_client(options: ConnectionOptions):
    """A client whose HTTP client records each call's requests and reply (``record_call``) and
    does not sleep through a Retry-After longer than ``MAX_RETRY_WAIT``."""
    anthropic = import_anthropic()
    return anthropic.Anthropic(**client_kwargs(options),
                               http_client=anthropic.DefaultHttpxClient(event_hooks=event_hooks()))


def make_async_client(options: ConnectionOptions):
    anthropic = import_anthropic()
    return anthropic.AsyncAnthropic(**client_kwargs(options), http_client=anthropic.DefaultAsyncHttpxClient(
        event_hooks=event_hooks(is_async=True)))


def image_block(img, *, max_side: int, fmt: Literal["png", "jpeg"] = "png",
                quality: int = 90) -> dict[str, Any]:
    """A base64 image content block, downscaled to ``max_side`` and re-encoded."""
    data = encode(fit_within(to_rgb(img), max_side), fmt="JPEG" if fmt == "jpeg" else "PNG",
                  quality=quality)
    return {"type": "image", "source": {"type": "base64", "media_type": f"image/{fmt}",
                                        "data": base64.b64encode(data).decode("ascii")}}


def usage_dict(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    out = {name: getattr(usage, name, None) for name in
           ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
    return {k: v for k, v in out.items() if v is not None} or None


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, "<redacted>") if key and key in text else text


def error_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"])
    return str(getattr(exc, "message", None) or exc)


def map_error(exc: BaseException, *, options: ConnectionOptions, what: str,
              record: CallRecord | None = None) -> BaseException:
    """The SDK error for an ``anthropic`` exception; names the provider and the fix. ``record``
    (the call's HTTP traffic) makes "after N requests" true; a reply the client could not read
    (not UTF-8, HTML, not JSON) becomes a MalformedReplyError.

    Other exceptions (programming errors) are returned unchanged."""
    anthropic = import_anthropic()
    if record is not None and record.answered and isinstance(
            exc, (ValueError, TypeError, AttributeError, KeyError, anthropic.APIResponseValidationError)):
        return reply_error(PROVIDER, record, f"the anthropic client could not read it: "
                           f"{type(exc).__name__}: {exc}")
    if not isinstance(exc, anthropic.AnthropicError):
        return exc
    try:
        key: str | None = resolve_key(options)
    except AuthenticationError:
        key = None
    detail = _redact(error_detail(exc), key)
    where = options.base_url or "api.anthropic.com"
    retried = record.tries() if record is not None else f"after up to {options.max_retries} retries"
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderTimeoutError(f"{what} timed out ({options.timeout:g} s per request, {retried}; {where})",
                                    provider=PROVIDER, hint="raise the 'timeout' option or retry later")
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError(f"{what}: cannot reach {where}: {detail}", provider=PROVIDER,
                             hint="check the network and base_url")
    if isinstance(exc, anthropic.AuthenticationError):
        return AuthenticationError(f"{what}: the API key was rejected (401): {detail}",
                                   provider=PROVIDER, hint=KEY_HINT.replace("set", "set a valid", 1))
    if isinstance(exc, anthropic.PermissionDeniedError):
        return AuthenticationError(f"{what}: permission denied (403): {detail}", provider=PROVIDER,
                                   hint=f"check that the key in {KEY_ENV} may use this model")
    if isinstance(exc, anthropic.RateLimitError):
        return RateLimitError(f"{what}: rate limited (429) {retried}: {detail}", provider=PROVIDER,
                              hint="wait, lower concurrency, raise 'max_retries', or check the "
                              "organization's rate limits")
    if isinstance(exc, anthropic.NotFoundError):
        return ProviderError(f"{what}: not found (404): {detail}", provider=PROVIDER,
                             hint="check the 'model' option (e.g. claude-sonnet-4-6) and base_url")
    if isinstance(exc, anthropic.BadRequestError) and "temperature" in detail.lower():
        return ProviderError(f"{what}: the model refused the temperature: {detail}",
                             provider=PROVIDER, hint="set send_temperature: never for this model")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return ProviderError(f"{what}: server error {status} {retried}: {detail}",
                                 provider=PROVIDER, hint="the service is overloaded or failing; "
                                 "retry later or raise 'max_retries'")
        return ProviderError(f"{what}: HTTP {status}: {detail}", provider=PROVIDER,
                             hint="check the model and the options sent")
    return ProviderError(f"{what}: {type(exc).__name__}: {detail}", provider=PROVIDER)
