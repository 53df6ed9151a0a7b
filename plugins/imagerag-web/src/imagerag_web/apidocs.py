"""``/api/docs``: the JSON API's reference, rendered on the server from the app's own OpenAPI schema.

FastAPI's stock Swagger UI loads its script and styles from a public CDN: on an offline server
the page stays blank, and anywhere else it runs third-party code in the app's origin, where the
token cookie lives. This page is plain HTML from the same schema as ``/api/openapi.json``: every
operation with its parameters, request body fields and answers; no script of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .pages import NAV, templates

router = APIRouter()
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Field:
    name: str
    where: str
    type: str
    required: bool
    about: str


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    about: str
    fields: list[Field] = field(default_factory=list)
    body: str = ""
    answers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"{self.method}-{self.path}".replace("/", "-").replace("{", "").replace("}", "").strip("-")


def operations(schema: dict[str, Any]) -> list[Operation]:
    """The schema's operations in path order, their ``$ref`` s resolved against its components."""
    out = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            about = (op.get("description") or "").strip()
            summary = op.get("summary") or about.split("\n", 1)[0]
            entry = Operation(method.upper(), path, summary, about if about != summary else "")
            for p in op.get("parameters", []):
                entry.fields.append(Field(p["name"], p.get("in", ""), type_name(p.get("schema", {}), schema),
                                          bool(p.get("required")), (p.get("description") or "").strip()))
            content = op.get("requestBody", {}).get("content", {})
            for media, spec in content.items():
                entry.body = media
                body = resolve(spec.get("schema", {}), schema)
                required = set(body.get("required", []))
                for name, prop in body.get("properties", {}).items():
                    prop = resolve(prop, schema)
                    entry.fields.append(Field(name, "body", type_name(prop, schema), name in required,
                                              (prop.get("description") or "").strip()))
            entry.answers = [(code, (r.get("description") or "").strip()) for code, r in op.get("responses", {}).items()]
            out.append(entry)
    return out


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with a ``$ref`` (``#/components/schemas/Name``) followed."""
    seen = 0
    while "$ref" in spec and seen < 16:
        node: Any = schema
        for part in spec["$ref"].lstrip("#/").split("/"):
            node = node.get(part, {})
        spec, seen = node, seen + 1
    return spec


def type_name(spec: dict[str, Any], schema: dict[str, Any]) -> str:
    """A short type for a schema: ``string``, ``integer (1–100)``, ``array of string``, ``A or B``."""
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in spec:
            names = [type_name(s, schema) for s in spec[key]]
            return " or ".join(n for n in names if n != "null") + (" (optional)" if "null" in names else "")
    kind = spec.get("type", "object")
    if spec.get("format") == "binary" or spec.get("contentMediaType") == "application/octet-stream":
        return "file"
    if kind == "array":
        return f"array of {type_name(spec.get('items', {}), schema)}"
    if "enum" in spec:
        return " | ".join(map(str, spec["enum"]))
    lo = spec.get("minimum", spec.get("minLength"))
    hi = spec.get("maximum", spec.get("maxLength"))
    if lo is not None or hi is not None:
        return f"{kind} ({_number(lo)}–{_number(hi)})"
    return str(kind)


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


@router.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    """The API reference page (same schema as ``/api/openapi.json``)."""
    schema = request.app.openapi()
    return templates.TemplateResponse(request, "apidocs.html", {
        "page": "apidocs", "title": "API documentation", "nav": NAV, "operations": operations(schema),
        "version": schema.get("info", {}).get("version", "")})
