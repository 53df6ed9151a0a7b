"""The token on every request (header, cookie, ?token=), no secret in any answer, and errors as
one line: a bug is a logged 500 with a one-line body, never a traceback."""

from __future__ import annotations

import json
import logging

import pytest

from imagerag_sdk.profiles import build_pipeline
from imagerag_sdk.testing.fake_server import FakeAPIServer

TOKEN = "tok-3f9a1c0e5b7d"


@pytest.fixture
def guarded(make_client, pipeline):
    return make_client(pipeline, token=TOKEN)


URLS = ["/api/info", "/api/corpus", "/api/jobs", "/api/runs", "/api/docs", "/api/openapi.json", "/",
        "/files/corpus/index/00-red.png", "/thumbs/corpus/index/00-red.png", "/static/app.js"]


@pytest.mark.parametrize("url", URLS)
def test_without_the_right_token_every_url_is_401(guarded, url):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Cookie": "imagerag_token=wrong"}):
        out = guarded.get(url, headers=headers)
        assert out.status_code == 401, (url, headers)
        assert "a token is required" in out.json()["error"] and TOKEN not in out.text
    assert guarded.get(url + "?token=wrong").status_code == 401
    assert guarded.post("/api/search", json={"text": "x"}).status_code == 401


def test_the_token_as_a_header_or_through_the_cookie_set_by_a_visit(guarded):
    assert guarded.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get("/api/docs", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert guarded.get("/files/corpus/index/00-red.png", headers={"Authorization": f"Bearer {TOKEN}"}
                       ).status_code == 200
    visit = guarded.get(f"/api/info?token={TOKEN}")
    assert visit.status_code == 200
    cookie = visit.headers["set-cookie"]
    assert cookie.startswith(f"imagerag_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert guarded.get("/api/corpus").status_code == 200, "the client now sends the cookie"
    guarded.cookies.clear()
    assert guarded.get("/api/corpus").status_code == 401
    assert guarded.get("/api/corpus", headers={"Cookie": f"imagerag_token={TOKEN}"}).status_code == 200


def test_no_token_needed_without_one(client):
    assert client.get("/api/info").status_code == 200 and "set-cookie" not in client.get("/api/info").headers


SECRET = "cred-7b1e94d2c6a05f38"  # read through {$env: …} by a name that does not look like a credential


def test_no_secret_in_any_answer(make_client, tmp_path, monkeypatch, search_paths, wait_job):
    monkeypatch.setenv("WEB_TEST_CRITIC_CREDENTIAL", SECRET)
    (tmp_path / "corpus").mkdir()
    profile = tmp_path / "p.yaml"
    with FakeAPIServer() as server:
        server.set_default(f"invalid api key {SECRET}", status=500)
        profile.write_text(f"""
name: leaky
generator: {{use: fake}}
critic: {{use: openai, base_url: "{server.url}/v1", api_key: {{$env: WEB_TEST_CRITIC_CREDENTIAL}}, max_retries: 0}}
retriever: {{use: fake, corpus_dir: "{tmp_path / 'corpus'}"}}
""")
        pipeline = build_pipeline(profile)
        assert SECRET in pipeline.secrets
        client = make_client(pipeline, token=TOKEN)
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        failed = wait_job(client, client.post("/api/jobs", json={"kind": "run", "prompt": "a red apple"}
                                              ).json()["job"]["id"])
        ok = wait_job(client, client.post("/api/jobs", json={
            "kind": "generate", "prompt": "a red car", "references": search_paths(client, "a red car", 1)}
        ).json()["job"]["id"])
    assert failed["status"] == "failed" and "invalid api key" in failed["error"]
    assert ok["status"] == "done"
    bodies = {}
    for url in ["/api/info", "/api/corpus", "/api/jobs", f"/api/jobs/{failed['id']}", "/api/runs",
                f"/api/runs/{failed['run']}", f"/api/runs/{ok['run']}", f"/files/runs/{failed['run']}/trace.json",
                f"/files/runs/{failed['run']}/report.html", f"/api/jobs/{SECRET}", f"/api/runs/{SECRET}",
                "/api/openapi.json"]:
        bodies[url] = client.get(url)
    with client.stream("GET", f"/api/jobs/{failed['id']}/events") as stream:
        bodies["events"] = stream.read()
    bodies["search"] = client.post("/api/search", json={"text": f"a red car {SECRET}"})
    bodies["bad"] = client.post("/api/search", json={"text": SECRET, "k": SECRET})
    for url, out in bodies.items():
        text = out.decode() if isinstance(out, bytes) else out.text
        assert SECRET not in text and TOKEN not in text, url
    assert bodies[f"/api/jobs/{SECRET}"].status_code == 404
    assert json.loads(bodies[f"/api/runs/{failed['run']}"].text)["trace"]["status"] == "failed"


class _Broken:
    name = "broken"


def test_a_bug_is_a_logged_500_with_a_one_line_body(make_client, pipeline, caplog, search_paths):
    client = make_client(pipeline, raise_server_exceptions=False)
    path = search_paths(client, "a red apple", 1)[0]

    def broken(queries, k):
        raise ZeroDivisionError("a bug deep inside")

    pipeline.retriever.search_images = broken  # a retriever with a bug
    with caplog.at_level(logging.ERROR, logger="imagerag_web"):
        out = client.post("/api/search/similar", json={"path": path, "k": 2})
    assert out.status_code == 500
    assert out.json() == {"error": "internal error (ZeroDivisionError); the server log has the details"}
    assert "Traceback" not in out.text
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records), "the traceback is logged"


def test_a_component_failure_is_502_with_the_stage_and_component(make_client, pipeline):
    client = make_client(pipeline)

    def failing(queries, k):
        raise OSError("the index disk went away")

    pipeline.retriever.search = failing
    out = client.post("/api/search", json={"text": "x"})
    assert out.status_code == 502 and "stage 'retrieve'" in out.json()["error"]
    assert "the index disk went away" in out.json()["error"]


def test_only_loopback_host_names_when_asked(make_client, pipeline):
    """What imagerag serve does on loopback without a token: a page of another site whose name
    resolves to 127.0.0.1 (DNS rebinding) is refused."""
    client = make_client(pipeline, allowed_hosts=["127.0.0.1", "localhost", "::1"])
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000", "LOCALHOST:1"):
        assert client.get("/api/info", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example:8000", "127.0.0.1.evil.example", "testserver", ""):
        out = client.get("/api/info", headers={"Host": host})
        assert out.status_code == 400 and "unexpected Host header" in out.json()["error"], host
