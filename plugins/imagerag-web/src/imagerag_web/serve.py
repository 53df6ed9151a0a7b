"""``imagerag serve``: load a profile's components once, then serve them over HTTP (uvicorn)."""

from __future__ import annotations

import functools
import os
from typing import Literal

import click

from imagerag_sdk.cli import _ProfileOption  # --profile as generate has it: lists the profiles when missing
from imagerag_sdk.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "IMAGERAG_SERVE_TOKEN"


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen on a non-loopback address without a token."""
    if host not in LOOPBACK and not token:
        raise ConfigError(f"--host {host} makes the app reachable from other machines, and no token is set",
                          hint=f"pass --token T (or set {TOKEN_ENV}); every request must then carry it")


@click.command("serve")
@click.option("--profile", "-p", cls=_ProfileOption, required=True,
              help="Profile name or YAML path ('imagerag profiles list').")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--runs", "runs_dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder the run folders are written to and browsed from.")
@click.option("--token", envvar=TOKEN_ENV, show_envvar=True, default=None,
              help="Require this token on every request (Authorization: Bearer T, or visit ?token=T once).")
@click.option("--queue-size", default=16, show_default=True, type=click.IntRange(1),
              help="Jobs that may wait for the generator; more get 429.")
@click.option("--upload-max-mb", default=20, show_default=True, type=click.IntRange(1),
              help="Largest image upload accepted (MiB).")
@click.option("--jobs", "jobs_mode", type=click.Choice(["process", "thread"]), default="process", show_default=True,
              help="Run generations in a worker process (searches stay fast while one runs) or on a thread "
                   "of the server (one copy of the models; see docs/web.md).")
def serve_cmd(profile: str, host: str, port: int, runs_dir: str, token: str | None, queue_size: int,
              upload_max_mb: int, jobs_mode: Literal["process", "thread"]) -> None:
    """Serve the web app and JSON API (/api/docs) for PROFILE's pipeline, loaded once at start-up."""
    from imagerag_sdk.cli import _console, _progress_printer
    from imagerag_sdk.profiles import build_pipeline, load_profile

    check_bind(host, token)
    spec = load_profile(profile)  # the worker process builds its pipeline from the same spec
    pipeline = build_pipeline(spec)
    console = _console()
    if jobs_mode == "process":
        from .jobs import load_search

        load_search(pipeline, _progress_printer(console))
    else:
        pipeline.load(_progress_printer(console))

    import uvicorn

    from .app import create_app

    app = create_app(pipeline, runs_dir=os.path.abspath(runs_dir), token=token or None,
                     queue_size=queue_size, upload_max_bytes=upload_max_mb * 1024 * 1024,
                     allowed_hosts=None if token else list(LOOPBACK), jobs=jobs_mode,
                     recreate=functools.partial(build_pipeline, spec))
    console.print(f"serving profile '{pipeline.profile}' (pages at /, API docs at /api/docs, runs in "
                  f"{os.path.abspath(runs_dir)}; jobs {'in a worker process' if jobs_mode == 'process' else 'on a thread'})"
                  f"{'; a token is required' if token else ''}")
    uvicorn.run(app, host=host, port=port, log_level="info")  # it prints the address it listens on
