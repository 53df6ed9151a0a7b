"""imagerag-web: ``imagerag serve``, a web app and JSON API over one loaded pipeline.

* :func:`create_app` — the FastAPI application (JSON API under ``/api``, files, pages).
* ``imagerag serve --profile P`` — loads the profile's components once and serves them (uvicorn).

``import imagerag_web`` imports no web framework: FastAPI and uvicorn load when the app is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagerag_sdk import hookimpl

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    """``create_app`` is imported on first use (it imports FastAPI)."""
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'imagerag_web' has no attribute {name!r}")


@hookimpl
def register_commands(cli):
    """``imagerag serve``."""
    from .serve import serve_cmd

    cli.add_command(serve_cmd)


@hookimpl
def heavy_imports():
    return ["fastapi", "uvicorn", "starlette"]
