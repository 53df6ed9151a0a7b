"""Connection options, client construction and error mapping shared by the critic and generator.

The ``openai`` SDK is imported only inside functions called from ``_load()``.
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import Field, SecretStr

from imagerag_sdk.providers import CallRecord, api_key, event_hooks, reply_error, require
from imagerag_sdk.errors import (AuthenticationError, ProviderError,
                                 ProviderTimeoutError, RateLimitError)
from imagerag_sdk.images import encode, fit_within, to_rgb
from imagerag_sdk.roles import Options

PROVIDER = "openai"
KEY_ENV = "OPENAI_API_KEY"
KEY_HINT = (f"set {KEY_ENV} (or api_key: {{$env: {KEY_ENV}}} in the profile); for a local "
            "OpenAI-compatible server that ignores keys, set api_key to any string")


class ConnectionOptions(Options):
    """Where and how to reach an OpenAI(-compatible) API."""

    api_key: SecretStr | None = Field(
        None, description=f"API key; default: the {KEY_ENV} environment variable. Never logged.")
    base_url: str | None = Field(
        None, description="Any OpenAI-compatible server, e.g. http://localhost:8000/v1 (vLLM), "
        "http://localhost:11434/v1 (Ollama), http://localhost:1234/v1 (LM Studio); "
        "default: api.openai.com (or OPENAI_BASE_URL)")
    organization: str | None = Field(None, description="OpenAI organization id (optional)")
    project: str | None = Field(None, description="OpenAI project id (optional)")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one HTTP request")
    max_retries: int = Field(2, ge=0, le=10, description="SDK retries with exponential backoff "
                             "on connection errors, 408, 409, 429 and 5xx")


def import_openai():
    return require("openai", "imagerag-openai")


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
    for name in ("base_url", "organization", "project"):
        value = getattr(options, name)
        if value:
            kwargs[name] = value
    return kwargs


def make_clients(options: ConnectionOptions):
    """A sync client; the async one is made per event loop by :func:`make_async_client`.
    Its HTTP client records each call's requests and reply (:func:`~imagerag_sdk.providers.record_call`)."""
    openai = import_openai()
    return openai.OpenAI(**client_kwargs(options),
                         http_client=openai.DefaultHttpxClient(event_hooks=event_hooks()))


def make_async_client(options: ConnectionOptions):
    openai = import_openai()
    return openai.AsyncOpenAI(**client_kwargs(options), http_client=openai.DefaultAsyncHttpxClient(
        event_hooks=event_hooks(is_async=True)))


def _redact(text: str, key: str | None) -> str:
    if key and key in text:
        text = text.replace(key, "<redacted>")
    return text


def map_error(exc: Exception, *, options: ConnectionOptions, what: str,
              record: CallRecord | None = None) -> Exception:
    """The SDK error for an ``openai`` exception: names the provider and the fix; ``record``
    (the call's HTTP traffic) makes "after N requests" true and spots malformed replies."""
    openai = import_openai()
    tries = record.tries() if record is not None else f"after up to {options.max_retries + 1} requests"
    key = None
    try:
        key = resolve_key(options)
    except AuthenticationError:
        pass
    where = options.base_url or "api.openai.com"
    detail = _redact(str(getattr(exc, "message", None) or exc), key)
    if record is not None and record.answered and isinstance(exc, openai.APIResponseValidationError):
        return reply_error(PROVIDER, record, f"{type(exc).__name__}: {detail}")
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeoutError(f"{what} timed out ({options.timeout:g} s per request, {tries}; "
                                    f"{where})",
                                    provider=PROVIDER, hint="raise the 'timeout' option or retry later")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"{what}: cannot connect to {where} ({tries}): {detail}", provider=PROVIDER,
                             hint="check base_url and that the server is running")
    if isinstance(exc, openai.AuthenticationError):
        return AuthenticationError(f"{what}: the API key was rejected (401): {detail}",
                                   provider=PROVIDER, hint=KEY_HINT.replace("set", "set a valid", 1))
    if isinstance(exc, openai.PermissionDeniedError):
        return AuthenticationError(f"{what}: permission denied (403): {detail}", provider=PROVIDER,
                                   hint=f"check that the key in {KEY_ENV} may use this model "
                                   "(organization / project access, verified organization for gpt-image)")
    if isinstance(exc, openai.RateLimitError):
        return RateLimitError(f"{what}: rate limited (429) {tries}: {detail}",
                              provider=PROVIDER, hint="wait, lower concurrency, raise 'max_retries', "
                              "or check the account's quota and billing")
    if isinstance(exc, openai.NotFoundError):
        return ProviderError(f"{what}: not found (404): {detail}", provider=PROVIDER,
                             hint="check the 'model' option (and base_url for a compatible server)")
    if isinstance(exc, openai.APIStatusError):
        return ProviderError(f"{what}: HTTP {exc.status_code} {tries}: {detail}",
                             provider=PROVIDER,
                             hint="check the model and options; 5xx errors are retried "
                             "'max_retries' times")
    return ProviderError(f"{what}: {type(exc).__name__}: {detail}", provider=PROVIDER)


def data_url(img, *, max_side: int, fmt: str = "png", quality: int = 90) -> str:
    """The image downscaled to ``max_side`` and re-encoded, as a ``data:`` URL."""
    fmt = "jpeg" if fmt.lower() in ("jpg", "jpeg") else "png"
    raw = encode(fit_within(to_rgb(img), max_side), fmt=fmt.upper(), quality=quality)
    return f"data:image/{fmt};base64,{base64.b64encode(raw).decode('ascii')}"


def usage_dict(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    dump = usage.model_dump(exclude_none=True) if hasattr(usage, "model_dump") else dict(usage)
    return {k: v for k, v in dump.items() if v not in ({}, [])} or None
