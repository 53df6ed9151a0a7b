"""The HTML pages without a browser: each route renders its shell, the assets are served, and
nothing from the URL or the server is ever inserted as markup (the browser test drives them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import imagerag_web
from imagerag_sdk.profiles import build_pipeline
from imagerag_web.app import create_app

PAGES = {"/": "search", "/generate": "generate", "/auto": "auto", "/runs": "runs", "/runs/some-run": "run",
         "/compare?a=x&b=y": "compare", "/corpus": "corpus"}
STATIC = Path(imagerag_web.__file__).parent / "static"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("IMAGERAG_HOME", str(tmp_path / "home"))  # the fake corpus is written there
    return TestClient(create_app(build_pipeline("fake"), runs_dir=tmp_path / "runs"))


@pytest.mark.parametrize(("path", "page"), PAGES.items())
def test_every_page_renders_its_shell(client: TestClient, path: str, page: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert f'data-page="{page}"' in r.text
    for script in ("base", "trace", "app"):  # in this order: app.js uses the other two
        assert f'<script src="/static/{script}.js" defer></script>' in r.text
    assert r.text.index("/static/base.js") < r.text.index("/static/trace.js") < r.text.index("/static/app.js")
    assert re.search(r'<main id="main">', r.text)
    assert "http://" not in r.text and "https://" not in r.text  # vendored: nothing from another site


def test_the_assets_are_served(client: TestClient) -> None:
    for name in ("base.js", "trace.js", "app.js", "app.css", "favicon.svg"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.content == (STATIC / name).read_bytes(), name


def test_url_text_is_escaped_in_the_pages(client: TestClient) -> None:
    r = client.get("/compare", params={"a": '"><script>alert(1)</script>', "b": "y"})
    assert "<script>alert(1)" not in r.text
    assert "&#34;&gt;&lt;script&gt;" in r.text
    r = client.get("/runs/%3Cimg%20src%3Dx%3E")
    assert "<img src=x>" not in r.text and "&lt;img src=x&gt;" in r.text


@pytest.mark.parametrize("script", ["base.js", "trace.js", "app.js"])
def test_the_scripts_never_insert_markup(script: str) -> None:
    js = (STATIC / script).read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert "https://" not in js and "http://" not in js  # no CDN, nothing fetched from elsewhere
