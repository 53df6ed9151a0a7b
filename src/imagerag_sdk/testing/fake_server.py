"""A local HTTP server that plays OpenAI, Anthropic and Gemini for tests of the real clients.

The provider SDKs send through their own HTTP stacks (respx cannot intercept them), so tests point
the real client at this server instead::

    with FakeAPIServer() as server:
        server.reply(text="Yes")                       # queue scripted replies
        server.reply(status=429, headers={"retry-after-ms": "1"})
        client = OpenAI(base_url=server.url + "/v1", api_key="sk-test")
        ...
        server.requests[0].json["temperature"]         # what the client really sent

Replies that are not a well-formed completion, for every provider: ``server.malformed(kind)``
with a kind of :data:`MALFORMED_KINDS` (a body that is not UTF-8, an HTML page, JSON of the wrong
shape …); ``server.error(429, retry_after=3600)`` for a long Retry-After; ``delay=`` for a slow
reply. ``server.request_count`` is the number of HTTP requests that reached the server.

Routing is on the path suffix: ``/chat/completions``, ``/responses``, ``/images/generations``,
``/images/edits``, ``/messages``, ``:generateContent``. Each queued reply is rendered in the
shape of the provider the request was addressed to. With the queue empty the server answers 500.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str | None = None
    json_data: Any = None
    """Structured answer: sent as the provider's JSON text / tool call input."""
    body: Any = None
    """A raw body, sent as is (overrides text/json_data)."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: dict[str, int] | None = None
    images_b64: list[str] | Callable[[Request], list[str]] | None = None
    """For image endpoints: base64 PNGs to return, or a function of the request that makes them
    (e.g. :func:`images_from_references`)."""
    malformed: str | None = None
    """One of :data:`MALFORMED_KINDS`: a reply that is not a well-formed completion."""
    content_type: str = "application/json"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def provider(self) -> str:
        return _provider(self.path)

    def conversation(self) -> list[tuple[str, str, int]]:
        """The chat messages the request carried, oldest first, as ``(role, text, images)``
        whatever the provider's shape (OpenAI ``messages`` / Responses ``input``, Anthropic
        ``messages``, Gemini ``contents``): ``role`` is user, assistant (Gemini's "model") or
        system, ``text`` the message's text parts joined by newlines, ``images`` how many images
        it holds."""
        from .payloads import decode_image_payload, walk_json

        body = self.json if isinstance(self.json, dict) else {}
        messages = body.get("messages") or body.get("contents") or body.get("input") or []
        out = []
        for message in messages if isinstance(messages, list) else []:
            if not isinstance(message, dict):
                continue
            content = message.get("content", message.get("parts", []))
            if isinstance(content, str):
                texts, images = [content], 0
            else:
                values = [(k, v) for k, v in walk_json(content) if isinstance(v, str)]
                images = sum(decode_image_payload(v) is not None for _, v in values)
                texts = [v for k, v in values if k == "text"]
            role = message.get("role", "user")
            out.append(("assistant" if role == "model" else role, "\n".join(texts), images))
        return out


def _provider(path: str) -> str:
    p = path.split("?")[0]
    if p.endswith("/messages"):
        return "anthropic"
    if ":generateContent" in p or ":streamGenerateContent" in p or ":predict" in p:
        return "gemini"
    return "openai"


class FakeAPIServer:
    """Threaded fake of the three provider APIs on 127.0.0.1, a free port."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.replies: deque[Reply] = deque()
        self.requests: list[Request] = []
        self.default: Reply | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(req)
                    reply = server.replies.popleft() if server.replies else server.default
                if server.latency:
                    time.sleep(server.latency)
                if reply is None:
                    self._send(500, {"error": {"message": "fake server: no reply queued"}}, {})
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                content_type = "text/html" if reply.malformed == "html" else reply.content_type
                self._send(reply.status, render(req, reply), reply.headers, content_type)

            def _send(self, status: int, payload: Any, headers: dict[str, str],
                      content_type: str = "application/json") -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to deliver

            do_POST = do_GET = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"  # the address __init__ binds

    def start(self) -> FakeAPIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeAPIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def request_count(self) -> int:
        """How many HTTP requests reached the server (client retries included)."""
        with self._lock:
            return len(self.requests)

    # -- scripting ---------------------------------------------------------------------------
    def reply(self, text: str | None = None, **kwargs: Any) -> FakeAPIServer:
        """Queue one reply; ``status`` ≥ 400 sends the provider's error shape."""
        self.replies.append(Reply(text=text, **kwargs))
        return self

    def error(self, status: int, message: str = "fake error", *, retry_after: float | None = None,
              **kwargs: Any) -> FakeAPIServer:
        """Queue an error reply; a 429 asks for a 1 ms wait unless ``retry_after`` (seconds,
        sent as both Retry-After and retry-after-ms) says otherwise."""
        headers = kwargs.pop("headers", {})
        if retry_after is not None:
            headers = {"retry-after": f"{retry_after:g}", "retry-after-ms": f"{retry_after * 1000:g}",
                       **headers}
        elif status == 429:
            headers = {"retry-after-ms": "1", "retry-after": "0", **headers}
        return self.reply(message, status=status, headers=headers, **kwargs)

    def malformed(self, kind: str, **kwargs: Any) -> FakeAPIServer:
        """Queue a 200 reply that is not a well-formed completion (see :data:`MALFORMED_KINDS`)."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformed kind {kind!r}; one of {', '.join(MALFORMED_KINDS)}")
        return self.reply(malformed=kind, **kwargs)

    def set_default(self, text: str | None = None, **kwargs: Any) -> None:
        """The reply used whenever the queue is empty."""
        self.default = Reply(text=text, **kwargs)


MALFORMED_KINDS = ("not_utf8", "html", "not_json", "not_object", "wrong_shape", "empty", "no_content")
"""Replies with status 200 that no client can read as a completion: ``not_utf8`` (the provider's
own shape, but the answer text in Latin-1), ``html`` (a web server's page, text/html), ``not_json``
(cut-off JSON), ``not_object`` (a JSON list), ``wrong_shape`` (the main field of another type:
``{"choices": "nope"}``), ``empty`` (no answer list: ``{"choices": []}``) and ``no_content`` (an
answer without its message / text)."""

_HTML = (b"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
         b"<body><h1>Welcome to nginx!</h1><p>If you see this page, the web server works.</p>"
         b"</body></html>\n")
_LATIN1 = "caf\u00e9 cr\u00e8me"  # sent Latin-1 encoded: not UTF-8
_SHAPES = {
    "openai": {"wrong_shape": {"choices": "nope"}, "empty": {"choices": []},
               "no_content": {"choices": [{"index": 0, "finish_reason": "stop"}]}},
    "anthropic": {"wrong_shape": {"type": "message", "role": "assistant", "content": "nope"},
                  "empty": {"type": "message", "role": "assistant"},
                  "no_content": {"type": "message", "role": "assistant", "content": [{"type": "text"}]}},
    "gemini": {"wrong_shape": {"candidates": "nope"}, "empty": {"candidates": []},
               "no_content": {"candidates": [{"index": 0}]}},
}


def _render_malformed(req: Request, reply: Reply, kind: str) -> bytes:
    if kind == "html":
        return _HTML
    if kind == "not_json":
        return b'{"choices": [{"index": 0, "message": {"role": "assist'
    if kind == "not_object":
        return b'["Yes"]'
    if kind == "not_utf8":
        good = render(req, Reply(text="@@TEXT@@", usage=reply.usage))
        return json.dumps(good).encode().replace(b"@@TEXT@@", _LATIN1.encode("latin-1"))
    return json.dumps(_SHAPES[req.provider][kind]).encode()


def images_from_references(req: Request) -> list[str]:
    """One PNG painted from the reference images the request carries: a stand-in image model for
    which the same references give the same image and other references another one."""
    import base64
    import email.parser
    import email.policy
    import hashlib
    import io

    from PIL import Image

    digest = hashlib.sha256()
    body = req.json if req.headers.get("content-type", "").startswith("application/json") else None
    if isinstance(body, dict):  # gemini: inline image parts
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                digest.update(str((part.get("inlineData") or {}).get("data", "")).encode())
    elif req.headers.get("content-type", "").startswith("multipart/"):  # openai images/edits
        head = f"content-type: {req.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(head + req.body)
        for part in message.iter_parts():
            if part.get_filename():
                payload = part.get_payload(decode=True)  # bytes (None for a multipart part)
                if isinstance(payload, bytes):
                    digest.update(payload)
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), tuple(digest.digest()[:3])).save(buf, format="PNG")
    return [base64.b64encode(buf.getvalue()).decode()]


def render(req: Request, reply: Reply) -> Any:
    """The body of ``reply`` in the shape the addressed provider uses."""
    if reply.body is not None:
        return reply.body
    if reply.malformed is not None:
        return _render_malformed(req, reply, reply.malformed)
    images = reply.images_b64(req) if callable(reply.images_b64) else reply.images_b64
    provider = req.provider
    if reply.status >= 400:
        return _error_body(provider, reply)
    path = req.path.split("?")[0]
    text = reply.text if reply.text is not None else json.dumps(reply.json_data)
    if provider == "anthropic":
        content: list[dict[str, Any]]
        body = req.json or {}
        if reply.json_data is not None and body.get("tool_choice", {}).get("type") == "tool":
            content = [{"type": "tool_use", "id": "toolu_fake", "name": body["tool_choice"]["name"],
                        "input": reply.json_data}]
        else:
            content = [{"type": "text", "text": text}]
        out: dict[str, Any] = {"id": "msg_fake", "type": "message", "role": "assistant",
                               "model": body.get("model", "fake"), "content": content,
                               "stop_reason": "end_turn"}
        out["usage"] = reply.usage or {"input_tokens": 10, "output_tokens": 5}
        return out
    if provider == "gemini":
        parts: list[dict[str, Any]] = []
        if images:
            parts += [{"inlineData": {"mimeType": "image/png", "data": b}} for b in images]
        if reply.text is not None or reply.json_data is not None or not parts:
            parts.insert(0, {"text": text})
        usage = reply.usage or {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
        return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                                "index": 0}], "usageMetadata": usage}
    if path.endswith("/images/generations") or path.endswith("/images/edits"):
        return {"created": 0, "data": [{"b64_json": b} for b in (images or [])],
                "usage": reply.usage or {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}}
    if path.endswith("/responses"):
        return {"id": "resp_fake", "object": "response", "created_at": 0, "model": "fake",
                "status": "completed",
                "output": [{"type": "message", "id": "msg_fake", "role": "assistant", "status": "completed",
                            "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                "usage": reply.usage or {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}}
    usage = reply.usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": usage}


def _error_body(provider: str, reply: Reply) -> Any:
    message = reply.text or "fake error"
    if provider == "anthropic":
        kind = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error",
                529: "overloaded_error"}.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if provider == "gemini":
        status = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}.get(reply.status, "UNKNOWN")
        return {"error": {"code": reply.status, "message": message, "status": status}}
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}
