"""What an SDK exception means, written once: a provider plugin names which of its exception
classes is a timeout, a connection failure, an HTTP status error or an unreadable reply (a small
table); the SDK error, its message (with the real request count) and its hint come from here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import ModuleType
from typing import Literal

from ..errors import AuthenticationError, ImageRAGError, ProviderError, ProviderTimeoutError, RateLimitError
from .connection import ConnectionOptions
from .traffic import MAX_RETRY_WAIT, CallRecord, reply_error

Kind = Literal["timeout", "connection", "status", "malformed", "error"]
"""``timeout`` / ``connection``: no answer; ``status``: an HTTP error answer (its code says which
error: 401/403 a rejected key, 404 not found, 429 rate limited, 5xx server error …);
``malformed``: a 2xx reply the SDK could not read; ``error``: any other failure of the SDK."""
ErrorKinds = Sequence[tuple[type[BaseException], Kind]]
"""Exception class → kind, most specific class first (the first ``isinstance`` match counts)."""

_USUAL_NAMES: tuple[tuple[str, Kind], ...] = (
    ("APITimeoutError", "timeout"), ("APIConnectionError", "connection"),
    ("APIResponseValidationError", "malformed"), ("APIStatusError", "status"))
_NAMES_KEY = re.compile(r"api[ _-]?key", re.I)
_READ_ERRORS = (ValueError, TypeError, AttributeError, KeyError)


def sdk_error_kinds(module: ModuleType, base: str) -> list[tuple[type[BaseException], Kind]]:
    """The table for an SDK whose exceptions carry the usual names (``APITimeoutError``,
    ``APIConnectionError``, ``APIResponseValidationError``, ``APIStatusError``), as the openai
    and anthropic SDKs do; ``base`` names its root exception (any other failure)."""
    return [(getattr(module, name), kind) for name, kind in _USUAL_NAMES] + [
        (getattr(module, base), "error")]


def kind_of(exc: BaseException, kinds: ErrorKinds) -> Kind | None:
    return next((kind for cls, kind in kinds if isinstance(exc, cls)), None)


def error_detail(exc: BaseException) -> str:
    """The server's own message: ``body.error.message``, else the exception's ``message``."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"])
    return str(getattr(exc, "message", None) or exc)


def status_of(exc: BaseException) -> tuple[int, str]:
    """(HTTP status code, the API's status name or ``""``) of a status error."""
    code = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    name = getattr(exc, "status", None)
    return (code if isinstance(code, int) else 0), (name if isinstance(name, str) else "")


def map_error(exc: BaseException, *, options: ConnectionOptions, kinds: ErrorKinds, what: str,
              record: CallRecord) -> BaseException:
    """The SDK error for what a provider's client raised during the call in ``record``: names
    the provider, what was asked (``what``), the requests really made and the fix; the key is
    redacted. A reply the client could not read is a :class:`MalformedReplyError`. An exception
    that is no failure of the SDK (a programming error) is returned unchanged."""
    kind = kind_of(exc, kinds)
    detail = options.redact(error_detail(exc))
    if record.answered and (kind == "malformed" or (kind is None and isinstance(exc, _READ_ERRORS))):
        return reply_error(options.provider, record, options.redact(
            f"the client could not read it: {type(exc).__name__}: {detail}"))
    if kind is None or kind == "malformed":
        return exc
    tries = record.tries(MAX_RETRY_WAIT if options.honours_retry_after else None)
    error: ImageRAGError
    if kind == "timeout":
        error = ProviderTimeoutError(
            f"{what} timed out ({options.timeout:g} s per request, {tries}; {options.where})",
            provider=options.provider, hint="raise the 'timeout' option or retry later")
    elif kind == "connection":
        cause = exc.__cause__ or exc.__context__
        why = (options.redact(f" ({type(cause).__name__}: {cause})")
               if cause is not None and str(cause) else "")
        error = ProviderError(f"{what}: cannot reach {options.where} ({tries}): {detail}{why}",
                              provider=options.provider,
                              hint="check the network, base_url and that the server is running")
    elif kind == "status":
        error = _status_error(exc, detail, options=options, what=what, tries=tries)
    else:
        error = ProviderError(f"{what}: {type(exc).__name__}: {detail}", provider=options.provider)
    return error


def _status_error(exc: BaseException, detail: str, *, options: ConnectionOptions, what: str,
                  tries: str) -> ImageRAGError:
    code, name = status_of(exc)
    status = f"{code} {name}".strip()
    provider = options.provider
    if code == 401 or (code == 400 and _NAMES_KEY.search(detail)):
        return AuthenticationError(f"{what}: the API key was rejected ({status}): {detail}",
                                   provider=provider, hint=options.key_hint(valid=True))
    if code == 403:
        access = f" ({options.access_note})" if options.access_note else ""
        return AuthenticationError(
            f"{what}: permission denied ({status}): {detail}", provider=provider,
            hint=f"check that the key in {' / '.join(options.key_envs)} may use this model{access}")
    if code == 404:
        return ProviderError(f"{what}: not found ({status}): {detail}", provider=provider,
                             hint="check the 'model' option and base_url")
    if code == 429:
        return RateLimitError(f"{what}: rate limited ({status}) {tries}: {detail}", provider=provider,
                              hint="wait, lower concurrency, raise 'max_retries', or check the "
                              "account's quota and billing")
    if code == 400 and "temperature" in detail.lower() and "send_temperature" in type(options).model_fields:
        return ProviderError(f"{what}: the model refused the temperature: {detail}",
                             provider=provider, hint="set send_temperature: never for this model")
    if code >= 500:
        return ProviderError(f"{what}: server error {code} (HTTP {status}) {tries}: {detail}",
                             provider=provider, hint="the service is overloaded or failing; retry "
                             "later or raise 'max_retries'")
    return ProviderError(f"{what}: HTTP {status} {tries}: {detail}", provider=provider,
                         hint="check the model and the options sent")

