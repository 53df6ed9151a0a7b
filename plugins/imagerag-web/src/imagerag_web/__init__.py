"""imagerag-web: ``imagerag serve``, a web app and JSON API over one loaded pipeline.

* :func:`create_app` — the FastAPI application (JSON API under ``/api``, files, pages).
* ``imagerag serve --profile P`` — loads the profile's components once and serves them (uvicorn).

``import imagerag_web`` imports no web framework: FastAPI and uvicorn load when the app is built.
"""

from __future__ import annotations

from typing import Any

from imagerag_sdk import hookimpl

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """:func:`imagerag_web.app.create_app` (imported on call: it imports FastAPI)."""
    from .app import create_app as create

    return create(*args, **kwargs)


@hookimpl
def register_commands(cli):
    """``imagerag serve``."""
    from .serve import serve_cmd

    cli.add_command(serve_cmd)


@hookimpl
def heavy_imports():
    return ["fastapi", "uvicorn", "starlette"]
