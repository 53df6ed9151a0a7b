"""``create_app(pipeline, runs_dir=…)``: the FastAPI application over one loaded pipeline.

The JSON API is under ``/api`` (OpenAPI at ``/api/openapi.json``, its reference page at ``/api/docs``: ``imagerag_web.apidocs``), files
under ``/files`` and ``/thumbs``, the pages at ``/`` (``imagerag_web.pages``), their assets at
``/static``. One :class:`WebState` holds the pipeline, the corpora, the job queue and the limits.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

import imagerag_sdk
from imagerag_sdk.errors import ConfigError
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.types import Hit

from .corpora import Corpora, find_corpora
from .jobs import JobQueue, load_search
from .offload import Offload
from .security import BodyLimit, HostCheck, Secrets, TokenGate, install_errors, json_class
from .worker import Recreate

QUEUE_SIZE = 16
UPLOAD_MAX_BYTES = 20 * 1024 * 1024
BODY_OVERHEAD = 64 * 1024  # a request body may be this much larger than the upload (multipart framing)
STATIC = Path(__file__).parent / "static"


@dataclass
class WebState:
    pipeline: ImageRAG
    runs_dir: Path
    corpora: Corpora
    jobs: JobQueue
    secrets: Secrets
    upload_max_bytes: int
    hits: RecentHits = field(default_factory=lambda: RecentHits())
    offload: Offload = field(default_factory=Offload)
    """Where the text search runs (the event loop while searches are fast)."""


class RecentHits:
    """The hits answered lately by path, so that a picked path is generated with its hit's caption."""

    def __init__(self, keep: int = 10_000) -> None:
        self.keep = keep
        self._hits: OrderedDict[str, Hit] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, hit: Hit) -> None:
        with self._lock:
            self._hits[hit.path] = hit
            self._hits.move_to_end(hit.path)
            while len(self._hits) > self.keep:
                self._hits.popitem(last=False)

    def get(self, path: str) -> Hit | None:
        with self._lock:
            return self._hits.get(path)


def state(request: Request) -> WebState:
    web: WebState = request.app.state.web
    return web


def create_app(pipeline: ImageRAG, *, runs_dir: str | os.PathLike, token: str | None = None,
               queue_size: int = QUEUE_SIZE, upload_max_bytes: int = UPLOAD_MAX_BYTES,
               workers: int = 1, allowed_hosts: list[str] | None = None,
               jobs: Literal["thread", "process"] = "thread", recreate: Recreate | None = None) -> FastAPI:
    """The app serving ``pipeline`` (its components are loaded now unless they already are).

    ``token``: every request needs it (see :class:`~imagerag_web.security.TokenGate`);
    ``queue_size``: jobs that may wait (more get 429); ``upload_max_bytes``: largest upload (413
    beyond); ``workers``: generations run at once (default one per loaded generator);
    ``allowed_hosts``: the only ``Host`` names answered (``imagerag serve`` on loopback without a
    token passes the loopback names); ``jobs="process"``: generations run in worker processes,
    each building its pipeline with ``recreate()`` (picklable, e.g. ``functools.partial(
    build_pipeline, "profile")``), so a generator holding the GIL cannot slow the searches; this
    process then loads only the retriever and reranker, and returns once the workers have loaded."""
    if jobs == "process" and recreate is None:
        raise ConfigError("jobs='process' needs recreate, the callable that builds this pipeline in the worker process",
                          hint="pass recreate=functools.partial(build_pipeline, 'PROFILE') (or any picklable "
                               "module-level function), or use jobs='thread'")
    runs = Path(runs_dir).expanduser().resolve()
    runs.mkdir(parents=True, exist_ok=True)
    secrets = Secrets([*pipeline.secrets, *([token] if token else [])])
    queue = JobQueue(pipeline, runs, max_queued=queue_size, workers=workers, secrets=secrets,
                     recreate=recreate if jobs == "process" else None)
    if jobs == "process":
        load_search(pipeline)
        queue.start()
    else:
        pipeline.load()
    response = json_class(secrets)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        queue.close()

    app = FastAPI(title="imagerag", version=imagerag_sdk.__version__, docs_url=None,
                  openapi_url="/api/openapi.json", redoc_url=None, default_response_class=response,
                  lifespan=lifespan, description="Search the corpus, generate with picked references, "
                  "run the ImageRAG loop, follow jobs, browse runs.")
    app.state.web = WebState(pipeline=pipeline, runs_dir=runs, corpora=Corpora(find_corpora(pipeline.retriever)),
                             jobs=queue, secrets=secrets, upload_max_bytes=upload_max_bytes)
    install_errors(app, response)

    from . import api, apidocs, files, pages

    for path, endpoint, method in api.FAST_ROUTES:  # first: they answer, their FastAPI twins document them
        app.add_route(path, endpoint, methods=[method], include_in_schema=False)
    app.include_router(api.router)
    app.include_router(apidocs.router)
    app.include_router(files.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, max_bytes=upload_max_bytes + BODY_OVERHEAD)
    if token:  # added late: runs early, so nothing is read from a request without the token
        app.add_middleware(TokenGate, token=token)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, hosts=allowed_hosts)
    return app
