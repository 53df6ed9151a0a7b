"""What keeps the app safe: the token on every request, secrets out of every answer, one-line
errors (never a traceback), and file paths confined to the corpora roots and the runs folder."""

from __future__ import annotations

import functools
import hmac
import json
import logging
import os
from collections.abc import Iterable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagerag_sdk.errors import ImageRAGError, PipelineError
from imagerag_sdk.redact import env_secrets, scrub

log = logging.getLogger("imagerag_web")
COOKIE = "imagerag_token"


class WebError(HTTPException):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, one_line(message))


def one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- secrets ---------------------------------------------------------------------------------------
class Secrets:
    """The values no answer may contain: the pipeline's (read from ``{$env: …}``), credential-like
    environment variables, and the app's token."""

    def __init__(self, values: Iterable[str]) -> None:
        self.fixed = {v for v in values if v}
        self._env: tuple[dict[Any, Any] | None, frozenset[str]] = (None, frozenset())

    def all(self) -> set[str]:
        return self.fixed | self._from_env()

    def _from_env(self) -> frozenset[str]:
        """:func:`env_secrets`, read again whenever the environment changed: ``os.environ``'s own
        mapping (CPython's ``_data``, names and values as the OS has them) is compared with a copy
        of it as it was when last read, a C-speed comparison; read every time without one."""
        data = getattr(os.environ, "_data", None)
        if not isinstance(data, dict):
            return frozenset(env_secrets())
        seen, found = self._env  # one tuple: another thread sees the copy with its secrets
        if data != seen:
            copy = dict(data)  # taken first: a change while reading makes the next answer read again
            found = frozenset(env_secrets())
            self._env = (copy, found)
        return found

    def clean(self, value: Any) -> Any:
        """``value`` (plain JSON data) with every secret in every string masked."""
        secrets = self.all()
        return _clean(value, secrets) if secrets else value

    def dumps(self, value: Any) -> bytes:
        """``value`` (plain JSON data) as compact UTF-8 JSON, every secret in every string masked.

        Serialized once and scanned: JSON escapes a string character by character, so a string
        holding a secret leaves the secret's escaped form in the text. Only when one is there
        (or looks so, e.g. inside a number) are the values masked one by one and serialized again."""
        text = _dumps(value)
        secrets = self.all()
        if any(_escaped(s) in text for s in secrets):
            text = _dumps(_clean(value, secrets))
        return text.encode("utf-8")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@functools.lru_cache(maxsize=1024)
def _escaped(secret: str) -> str:
    """``secret`` as it reads inside a JSON string written by :func:`_dumps`."""
    return json.dumps(secret, ensure_ascii=False)[1:-1]


def _clean(value: Any, secrets: set[str]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {_clean(k, secrets): _clean(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, secrets) for v in value]
    return value


class SafeJSON(JSONResponse):
    """The app's JSON answers: secrets masked (from the app's :class:`Secrets`)."""

    secrets: Secrets | None = None  # set per app by install_errors(); a class attribute of a subclass

    def render(self, content: Any) -> bytes:
        if self.secrets is None:
            return _dumps(content).encode("utf-8")
        return self.secrets.dumps(content)


def json_class(secrets: Secrets) -> type[SafeJSON]:
    """A :class:`SafeJSON` bound to ``secrets`` (one class per app)."""
    return type("AppJSON", (SafeJSON,), {"secrets": secrets})


# -- errors ------------------------------------------------------------------------------------------
def install_errors(app: FastAPI, response: type[SafeJSON]) -> None:
    """Every error as ``{"error": one line}``: 4xx for bad requests, 500 (logged) for a bug."""

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return response({"error": one_line(message)}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else _reason(exc.status_code)
        if exc.status_code == 404 and not isinstance(exc, WebError):
            message = f"not found: {request.url.path}"
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return error(400, "the body is not valid JSON — send a JSON object "
                              "(Content-Type: application/json)")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return error(422, f"{where}: {first.get('msg', 'invalid')}{more} — see /api/docs for the fields")

    @app.exception_handler(ImageRAGError)
    async def library_error(request: Request, exc: ImageRAGError) -> JSONResponse:
        if isinstance(exc, PipelineError):  # a component failed (a provider down …): not the request's fault
            log.warning("%s %s: %s", request.method, request.url.path, one_line(str(exc)))
            return error(502, str(exc))
        return error(400, str(exc))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


# -- the token ---------------------------------------------------------------------------------------
class TokenGate:
    """ASGI middleware: with a token, every request (pages and files included) needs
    ``Authorization: Bearer T``, the cookie ``imagerag_token=T``, or ``?token=T`` (which sets the
    cookie, HttpOnly and SameSite=Strict, on the answer). Compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode("utf-8")

    def _ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the app has none: refuse them all
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cookie = None
        if "cookie" in headers:
            jar: SimpleCookie = SimpleCookie()
            jar.load(headers["cookie"])
            cookie = jar[COOKIE].value if COOKIE in jar else None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        if self._ok(bearer) or self._ok(cookie):
            await self.app(scope, receive, send)
            return
        if self._ok(query):
            await self.app(scope, receive, _setting_cookie(send, query or ""))
            return
        await _send_error(send, 401, "a token is required: send 'Authorization: Bearer <token>' or open "
                                     "the page once with ?token=<token>", [(b"www-authenticate", b"Bearer")])


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _header(scope: Scope, name: bytes) -> str:
    """The (last) value of header ``name`` (lower case), as :func:`_headers` has it; "" without one."""
    found = b""
    for k, v in scope.get("headers", []):
        if k.lower() == name:
            found = v
    return found.decode("latin-1")


async def _send_error(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    """ASGI middleware: only requests whose ``Host`` is one of ``hosts`` (any port). A server on
    loopback without a token uses it against DNS rebinding: a web page whose name resolves to
    127.0.0.1 would otherwise reach the API from the user's browser as its own origin."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = _header(scope, b"host").lower()
            name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0] if ":" in host else host
            if name not in self.hosts:
                await _send_error(send, 400, f"unexpected Host header '{host}': open the app as "
                                             "http://127.0.0.1:<port>/ or http://localhost:<port>/")
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 — at once when its
    Content-Length says so, else as soon as that many bytes arrived (nothing is spooled beyond)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"the request body is over {self.max_bytes:,} bytes: send a smaller image"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length.isdigit() and int(length) > self.max_bytes:
            await _send_error(send, 413, self._message())
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # raised inside the body parsing: answered by the app's handler
                    raise WebError(413, self._message())
            return message

        await self.app(scope, limited, send)


def _setting_cookie(send: Send, token: str) -> Send:
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)

    return wrapped


# -- file confinement --------------------------------------------------------------------------------
def confined(root: str | os.PathLike, relpath: str) -> Path:
    """The file ``relpath`` names under ``root``, resolved (links followed) and still inside the
    resolved root; :class:`WebError` 400/404 otherwise. Refuses NUL bytes, absolute paths,
    backslashes and ``..`` parts before touching the file system."""
    if not relpath or "\x00" in relpath or "\\" in relpath:
        raise WebError(400, "bad file path: empty, or a NUL byte or backslash in it")
    parts = relpath.split("/")
    if relpath.startswith("/") or any(p in ("..", ".", "") for p in parts) or (len(parts[0]) > 1 and parts[0][1] == ":"):
        raise WebError(400, "bad file path: give a path relative to its folder, without '..'")
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, target]) != real_root:
        raise WebError(404, "no such file here (it leads outside the folders this app serves)")
    if not os.path.isfile(target):
        raise WebError(404, f"no such file: {relpath}")
    return Path(target)


def inside(root: str | os.PathLike, path: str | os.PathLike) -> str | None:
    """``path`` relative to the resolved ``root`` (links followed), or ``None`` when it is not inside."""
    real_root = os.path.realpath(root)
    target = os.path.realpath(path)
    if os.path.commonpath([real_root, target]) != real_root or target == real_root:
        return None
    return os.path.relpath(target, real_root).replace(os.sep, "/")


def inside_lexically(root: str | os.PathLike, path: str) -> str | None:
    """``path`` relative to ``root`` when it is written under ``root`` with plain parts (no ``..``,
    ``.``, empty part, backslash or NUL), without touching the file system; ``None`` otherwise.
    ``root`` given as a string ending in the separator (:attr:`Corpus.prefix`) is taken as is."""
    prefix = root if isinstance(root, str) and root.endswith(os.sep) else os.path.join(os.fspath(root), "")
    if not path.startswith(prefix) or "\x00" in path or "\\" in path:
        return None
    rel = path[len(prefix):]
    if not rel or rel[0] == "/" or rel[-1] == "/" or "//" in rel:
        return None
    if "." in rel and any(p in (".", "..") for p in rel.split("/")):
        return None
    return rel
