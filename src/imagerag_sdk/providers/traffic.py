"""The record of one provider call's HTTP traffic (requests really sent, the reply really got),
filled by the HTTP client's event hooks, and the diagnosis of a reply that is not one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..errors import MalformedReplyError

# -- one provider call: the HTTP requests it really made, the reply it really got ----------------
MAX_RETRY_WAIT = 120.0
"""Seconds of a server's Retry-After the SDK clients may wait before a retry; a longer ask ends
the call at once (the openai SDK's own rule, applied to anthropic too, which would sleep)."""


@dataclass
class CallRecord:
    """Filled by the HTTP client's event hooks (:func:`event_hooks`) during :func:`record_call`."""

    requests: int = 0
    """HTTP requests sent, the SDK's retries included."""
    status: int | None = None
    content_type: str = ""
    body: bytes = b""
    """The last response's body."""
    retry_after: float | None = None
    """Seconds the last error response asked to wait (Retry-After), if it said."""

    @property
    def answered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def tries(self, max_wait: float | None = MAX_RETRY_WAIT) -> str:
        """'after 3 requests' — what really happened, for error messages; names a Retry-After
        longer than ``max_wait`` (the longest wait the client makes before a retry)."""
        n = self.requests
        out = f"after {n} request{'s' if n != 1 else ''}"
        wait = self.retry_after
        if wait is not None and max_wait is not None and wait > max_wait:
            out += f" (the server asked to wait {wait:g} s, longer than the {max_wait:g} s a retry waits)"
        elif wait is not None and max_wait is None and wait > 1:
            out += f" (the server asked to wait {wait:g} s)"
        return out


_CALL: ContextVar[CallRecord | None] = ContextVar("imagerag_provider_call", default=None)


@contextmanager
def record_call() -> Iterator[CallRecord]:
    """Record the HTTP traffic of the provider call made inside the block (this thread / task)."""
    record = CallRecord()
    token = _CALL.set(record)
    try:
        yield record
    finally:
        _CALL.reset(token)


def _retry_after(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value) / scale
            except ValueError:
                continue
    return None


def _on_request(request: Any) -> None:
    record = _CALL.get()
    if record is not None:
        record.requests += 1


def _on_response(response: Any) -> None:
    record = _CALL.get()
    if record is None:
        return
    record.status = response.status_code
    record.content_type = response.headers.get("content-type", "")
    record.body = response.content
    record.retry_after = _retry_after(response.headers) if response.status_code >= 400 else None
    if record.retry_after is not None and record.retry_after > MAX_RETRY_WAIT:
        response.headers["x-should-retry"] = "false"  # the stainless SDKs obey this header


def _read_then(response: Any) -> None:
    response.read()
    _on_response(response)


async def _aon_request(request: Any) -> None:
    _on_request(request)


async def _aread_then(response: Any) -> None:
    await response.aread()
    _on_response(response)


def event_hooks(*, is_async: bool = False) -> dict[str, list]:
    """``event_hooks`` for an httpx / httpx2 client: count requests and keep the last reply."""
    if is_async:
        return {"request": [_aon_request], "response": [_aread_then]}
    return {"request": [_on_request], "response": [_read_then]}


def reply_error(provider: str, record: CallRecord, detail: str | None = None, *,
                hint: str | None = None) -> MalformedReplyError:
    """The :class:`MalformedReplyError` for the reply in ``record``; ``detail`` says what is wrong
    with a body that is valid JSON (else the body itself is diagnosed)."""
    body = record.body
    raw = body.decode("utf-8", errors="replace")
    problem = body_problem(record)
    hint = hint or ("check base_url: it must be the API root of a server speaking this API "
                    "(an HTML page often means a proxy, a login page or a missing /v1)")
    return MalformedReplyError(problem or detail or "the reply is not a completion",
                               provider=provider, raw=raw, hint=hint)


def body_problem(record: CallRecord) -> str | None:
    """What makes the recorded body unreadable as a JSON reply, or ``None`` when it is JSON."""
    body = record.body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"the body is not UTF-8 text (byte 0x{body[exc.start]:02x} at offset {exc.start}); "
                "the server must send UTF-8 JSON")
    kind = record.content_type.split(";")[0].strip() or "no content type"
    if "html" in kind or text.lstrip()[:1] == "<":
        return f"an HTML page ({kind}, {len(body)} bytes), not a JSON completion"
    try:
        json.loads(text)
    except ValueError as exc:
        return f"the body is not JSON ({kind}): {exc}"
    return None
