"""``POST /api/search`` is answered by a plain Starlette route ahead of its FastAPI twin, which
documents it: the same answers for every body (good, malformed, wrong fields, too large), the
limits applied before the body is read, the OpenAPI entry complete."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imagerag_web import api, create_app

J = {"content-type": "application/json"}
BODIES: list[tuple[str, dict[str, Any]]] = [
    ("ok", {"json": {"text": "a red apple", "k": 2}}),
    ("default k", {"json": {"text": "a blue boat"}}),
    ("k as a string", {"json": {"text": "x", "k": "3"}}),
    ("k as 2.0", {"json": {"text": "x", "k": 2.0}}),
    ("k as true", {"json": {"text": "x", "k": True}}),
    ("+json media type", {"content": b'{"text":"apple","k":1}', "headers": {"content-type": "application/vnd.x+json"}}),
    ("charset", {"content": b'{"text":"apple","k":1}', "headers": {"content-type": "Application/JSON; charset=utf-8"}}),
    ("a BOM", {"content": b'\xef\xbb\xbf{"text":"apple","k":1}', "headers": J}),
    ("a repeated key", {"content": b'{"text":"x","text":"apple","k":1}', "headers": J}),
    ("malformed JSON", {"content": b"{not json", "headers": J}),
    ("trailing text", {"content": b'{"text":"apple","k":1} x', "headers": J}),
    ("empty body", {"content": b"", "headers": J}),
    ("empty body, no type", {"content": b""}),
    ("no content type", {"content": b'{"text":"apple"}'}),
    ("text/plain", {"content": b'{"text":"apple"}', "headers": {"content-type": "text/plain"}}),
    ("missing text", {"json": {}}),
    ("k 0", {"json": {"text": "x", "k": 0}}),
    ("k too large", {"json": {"text": "x", "k": api.MAX_K + 1}}),
    ("k 2.5", {"json": {"text": "x", "k": 2.5}}),
    ("k NaN", {"content": b'{"text":"x","k":NaN}', "headers": J}),
    ("text a number", {"json": {"text": 5}}),
    ("text empty", {"json": {"text": ""}}),
    ("text too long", {"json": {"text": "x" * 2001}}),
    ("an extra field", {"json": {"text": "x", "kk": 1}}),
    ("three errors", {"json": {"k": 0, "zz": 1}}),
    ("a list", {"json": ["x"]}),
    ("null", {"json": None}),
    ("a string", {"content": b'"x"', "headers": J}),
    ("a long text", {"content": b'{"text":"' + b"a" * 3000 + b'"}', "headers": J}),
    ("over the body limit", {"content": b'{"text":"' + b"a" * 70_000 + b'"}', "headers": J}),
]


@pytest.fixture
def twins(pipeline, tmp_path, monkeypatch):
    """(the app as served, the app without its fast routes: FastAPI's documented twin answers)."""
    fast = TestClient(create_app(pipeline, runs_dir=tmp_path / "runs", upload_max_bytes=1000))
    monkeypatch.setattr(api, "FAST_ROUTES", [])
    documented = TestClient(create_app(pipeline, runs_dir=tmp_path / "runs", upload_max_bytes=1000))
    with fast, documented:
        yield fast, documented


def _answer(out) -> tuple[int, Any]:
    body = out.json()
    if out.status_code == 200:
        return 200, [(h["path"], h["score"]) for h in body["hits"]]
    assert list(body) == ["error"] and "\n" not in body["error"] and "Traceback" not in body["error"], body
    return out.status_code, body["error"]


@pytest.mark.parametrize("name, request_kw", BODIES, ids=[b[0] for b in BODIES])
def test_the_fast_route_answers_every_body_as_its_documented_twin(twins, name, request_kw):
    fast, documented = twins
    got = _answer(fast.post("/api/search", **request_kw))
    assert got == _answer(documented.post("/api/search", **request_kw))
    if got[0] != 200:
        assert 400 <= got[0] < 500 and got[1], got


def test_bad_bodies_get_their_one_line_4xx(make_client, pipeline):
    client = make_client(pipeline, upload_max_bytes=1000)
    cases = {"malformed JSON": (400, "the body is not valid JSON"), "null": (422, "body: Field required"),
             "a list": (422, "body: Input should be a valid dictionary"), "k NaN": (422, "k: Input should be a finite"),
             "three errors": (422, "text: Field required (and 2 more)"), "an extra field": (422, "kk: Extra inputs"),
             "text/plain": (422, "body: Input should be a valid dictionary"),
             "over the body limit": (413, "the request body is over 66,536 bytes")}
    kw = dict(BODIES)
    for name, (status, start) in cases.items():
        got = _answer(client.post("/api/search", **kw[name]))
        assert got[0] == status and got[1].startswith(start), (name, got)
    got = _answer(client.post("/api/search", content='{"text":"café"}'.encode("latin-1"), headers=J))
    assert got == (400, "the body is not UTF-8 text — send it as JSON in UTF-8")


def test_the_search_is_served_by_the_fast_route_and_documented_by_its_twin(client):
    paths = {r.path: r for r in client.app.routes if getattr(r, "path", None) == "/api/search"}
    assert paths and not hasattr(paths["/api/search"], "dependant"), "a plain Starlette route, ahead of the others"
    assert client.app.routes.index(paths["/api/search"]) < 2
    op = client.get("/api/openapi.json").json()["paths"]["/api/search"]["post"]
    assert op["operationId"] == "search_api_search_post" and op["requestBody"]["required"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SearchBody"}
    assert set(op["responses"]) == {"200", "422"}


def _asgi_post(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int, bytes]:
    """``POST /api/search`` straight through the app's ASGI interface: (status, chunks the app read, body)."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        if read > len(chunks):
            await asyncio.sleep(3600)  # a client that sends no more: the app must not wait for it
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/search", "raw_path": b"/api/search", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8000"), *headers], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 60))
    return sent[0]["status"], read, b"".join(m.get("body", b"") for m in sent[1:])


def test_an_oversized_search_body_is_refused_before_it_is_read_whole(make_client, pipeline):
    app = make_client(pipeline, upload_max_bytes=1000).app
    limit = 1000 + 64 * 1024
    ok = json.dumps({"text": "a red apple", "k": 1}).encode()
    status, read, body = _asgi_post(app, [ok], [(b"content-type", b"application/json"),
                                                (b"content-length", str(len(ok)).encode())])
    assert status == 200 and read == 1 and len(json.loads(body)["hits"]) == 1
    chunks = [b"y" * 10_000] * 100  # 1 MB
    status, read, body = _asgi_post(app, chunks, [(b"content-type", b"application/json"),
                                                  (b"content-length", str(10_000 * 100).encode())])
    assert (status, read) == (413, 0), "refused on its Content-Length, nothing read"
    assert "request body is over" in json.loads(body)["error"]
    status, read, body = _asgi_post(app, chunks, [(b"content-type", b"application/json")])  # no length: counted
    assert status == 413 and read == limit // 10_000 + 1, "refused as soon as the limit is passed"
    assert "request body is over" in json.loads(body)["error"]


def test_the_fast_route_is_behind_the_token_and_the_host_check(make_client, pipeline):
    token = "tok-route-61d0"
    client = make_client(pipeline, token=token, allowed_hosts=["127.0.0.1"])
    search = {"text": "a red apple", "k": 1}
    host = {"Host": "127.0.0.1:8000"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "imagerag_token=wrong"}):
        out = client.post("/api/search", json=search, headers={**host, **headers})
        assert out.status_code == 401 and "a token is required" in out.json()["error"], headers
    out = client.post("/api/search", json=search, headers={"Host": "evil.example", "Authorization": f"Bearer {token}"})
    assert out.status_code == 400 and "unexpected Host header" in out.json()["error"]
    assert client.post("/api/search", content=b"{not json", headers={**host, **J}).status_code == 401, "token first"
    out = client.post("/api/search", content=b"{not json", headers={**host, "Authorization": f"Bearer {token}", **J})
    assert _answer(out)[0] == 400 and "not valid JSON" in _answer(out)[1]
    out = client.post("/api/search", json=search, headers={**host, "Authorization": f"Bearer {token}"})
    assert out.status_code == 200 and len(out.json()["hits"]) == 1
    out = client.post("/api/search?token=" + token, json=search, headers=host)
    assert out.status_code == 200 and "imagerag_token" in out.headers.get("set-cookie", "")
