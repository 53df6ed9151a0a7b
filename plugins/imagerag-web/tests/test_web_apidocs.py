"""``/api/docs``: every operation of the OpenAPI schema on one server-rendered page that loads
nothing from outside the app."""

from __future__ import annotations

import re

from imagerag_web.apidocs import operations


def test_the_page_lists_every_operation_with_its_fields(client):
    schema = client.get("/api/openapi.json").json()
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    ops = operations(schema)
    listed = {(m.upper(), p) for p, item in schema["paths"].items() for m in item}
    assert {(op.method, op.path) for op in ops} == listed and len(listed) > 10
    for op in ops:
        assert f"<code>{op.method} {op.path}</code>" in page.text
    search = next(op for op in ops if (op.method, op.path) == ("POST", "/api/search"))
    fields = {f.name: f for f in search.fields}
    assert fields["text"].where == "body" and fields["text"].required, "a $ref'd body schema is resolved"
    assert "integer (1–" in fields["k"].type, "its bounds are shown"
    cancel = next(op for op in ops if op.path == "/api/jobs/{job_id}/cancel")
    assert [f.where for f in cancel.fields] == ["path"]
    upload = next(op for op in ops if op.path == "/api/search/image")
    assert {f.name: f.type for f in upload.fields}["image"] == "file"


def test_the_page_loads_nothing_from_another_origin(client):
    page = client.get("/api/docs").text
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert srcs and all(s.startswith(("/", "#")) for s in srcs), [s for s in srcs if not s.startswith(("/", "#"))]
    assert "cdn" not in page.lower()
