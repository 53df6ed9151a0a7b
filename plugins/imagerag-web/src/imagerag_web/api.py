"""The JSON API under ``/api`` (docs/web-api.md): info, corpus, search, jobs, runs.

Plain ``def`` endpoints run in the server's thread pool; the text search runs where
:class:`~imagerag_web.offload.Offload` puts it (the event loop while searches are fast). Neither
waits for a running generation: generations run on the job queue's own threads."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import imagerag_sdk
from imagerag_sdk.errors import ConfigError
from imagerag_sdk.images import MAX_PIXELS, BadImageError, decode_rgb
from imagerag_sdk.pipeline import _stage_errors  # the loop's own wrapping of a component's failure
from imagerag_sdk.types import Hit, ImageQuery

from .app import WebState, state
from .corpora import Corpus
from .files import file_url, run_detail, run_summary
from .jobs import QueueFull
from .security import WebError, inside_lexically

router = APIRouter(prefix="/api")
MAX_K = 200


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchBody(_Body):
    text: str = Field(min_length=1, max_length=2000, description="What to look for")
    k: int = Field(12, ge=1, le=MAX_K, description="How many hits")


class SimilarBody(_Body):
    path: str = Field(min_length=1, max_length=4096, description="A hit's path, as /api/search gave it")
    k: int = Field(12, ge=1, le=MAX_K)


class GenerateJob(_Body):
    kind: Literal["generate"]
    prompt: str = Field(min_length=1, max_length=4000)
    references: list[str] = Field(default_factory=list, max_length=64,
                                  description="Paths of picked hits (as the search gave them)")
    seed: int = Field(0, ge=0, le=2**32 - 1)


class RunJob(_Body):
    kind: Literal["run"]
    prompt: str = Field(min_length=1, max_length=4000)
    seed: int = Field(0, ge=0, le=2**32 - 1)


# -- info and corpus ---------------------------------------------------------------------------------
@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    """The profile and its components; the generator's reference budget."""
    p = state(request).pipeline
    caps = p.generator.capabilities
    return {"profile": p.profile,
            "generator": {"name": p.generator.name, "max_references": caps.max_references,
                          "conditioning": caps.conditioning},
            "critic": p.critic.name if p.critic else None, "retriever": p.retriever.name if p.retriever else None,
            "reranker": p.reranker.name if p.reranker else None, "version": imagerag_sdk.__version__}


@router.get("/corpus")
def corpus(request: Request) -> dict[str, Any]:
    """What is indexed: count, embedder, last update per corpus."""
    return {"corpora": [c.info() for c in state(request).corpora.all]}


# -- search ------------------------------------------------------------------------------------------
def hit_json(web: WebState, hit: Hit) -> dict[str, Any]:
    found = _hit_file(web, hit.path)
    if found:
        web.hits.add(hit)
    urls = file_url("corpus", found[0].name, found[1]) if found else None
    return {"path": hit.path, "score": hit.score, "rank": hit.rank, "corpus": hit.corpus, "caption": hit.caption,
            "metadata": dict(hit.metadata), "file": urls[0] if urls else None, "thumb": urls[1] if urls else None}


def _hit_file(web: WebState, path: str) -> tuple[Corpus, str] | None:
    """The corpus holding a hit's file and its path there, for the hit's URLs. A path written
    under a corpus's resolved root with plain parts needs no file-system call: the index keeps its
    hits inside the root (docs/corpus-index.md), and ``/files`` resolves the file again when it is
    asked for. Any other path is resolved (:meth:`Corpora.locate`)."""
    for corpus in web.corpora.all:
        if corpus.prefix is not None:
            rel = inside_lexically(corpus.prefix, path)
            if rel is not None:
                return corpus, rel
    return web.corpora.locate(path)


def _image_retriever(web: WebState) -> Any:
    r = web.pipeline.retriever
    if r is None:
        raise WebError(400, "this profile has no retriever: add a 'retriever:' section to search")
    if not r.supports_image_search:
        raise WebError(400, f"retriever '{r.name}' cannot search by image: use a text search")
    return r


async def search_fast(request: Request) -> Response:
    """``POST /api/search`` as it is served: a plain Starlette route that ``create_app`` puts ahead
    of :func:`search` (:data:`FAST_ROUTES`), the FastAPI route that documents it (OpenAPI entry,
    body model) and would answer alike. It skips FastAPI's per-request body parsing and dependency
    resolution (docs/benchmarks.md, "Web server"); :func:`search_body` validates the same model
    with the same answers, and errors reach the app's handlers as from any route (the middleware,
    token, Host and body limits, runs first)."""
    return await answer_search(state(request), search_body(await request.body(), request.headers.get("content-type")))


FAST_ROUTES = [("/api/search", search_fast, "POST")]
"""(path, endpoint, method) of the routes served ahead of their documented twins."""


@router.post("/search", response_model=dict[str, Any])
async def search(body: SearchBody, request: Request) -> Response:
    """Text → image search (reranked when the profile has a reranker)."""
    return await answer_search(state(request), body)


async def answer_search(web: WebState, body: SearchBody) -> Response:
    def answer() -> bytes:
        return web.secrets.dumps({"hits": [hit_json(web, h) for h in web.pipeline.retrieve(body.text, k=body.k)]})

    return Response(await web.offload.run(answer), media_type="application/json")


def search_body(raw: bytes, content_type: str | None) -> SearchBody:
    """``POST /api/search``'s body validated, with FastAPI's rules for a JSON body (the same
    answers, at a fraction of its per-request cost): an empty or ``null`` body is missing; only a
    JSON ``Content-Type`` (``application/json``, ``…+json``) is parsed, any other body is no object;
    errors are located under ``body`` (:class:`RequestValidationError`, answered by the app's one-line handler)."""
    value: Any = None
    if raw:
        value = raw
        if content_type and _is_json(content_type):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos),
                                               "msg": "JSON decode error", "input": {}}]) from exc
            except ValueError as exc:  # not UTF-8/16/32 text
                raise WebError(400, "the body is not UTF-8 text — send it as JSON in UTF-8") from exc
    if value is None:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    if not isinstance(value, dict):
        raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "input": value,
                                       "msg": "Input should be a valid dictionary or object to extract fields from"}])
    try:
        return SearchBody.model_validate(value)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("application/") and (media == "application/json" or media.endswith("+json"))


@router.post("/search/image")
async def search_image(request: Request, image: Annotated[UploadFile, File(description="The query image")],
                       k: Annotated[int, Form(ge=1, le=MAX_K)] = 12) -> dict[str, Any]:
    """Image → image search with an uploaded image (size-limited, decoded with the indexer's limits)."""
    web = state(request)
    data = await image.read(web.upload_max_bytes + 1)
    if len(data) > web.upload_max_bytes:
        raise WebError(413, f"the upload is over {web.upload_max_bytes:,} bytes: send a smaller image")
    name = f"upload:{image.filename or 'image'}"
    retriever = _image_retriever(web)

    def run() -> list[Hit]:
        try:
            img = decode_rgb(data, name=name, max_pixels=MAX_PIXELS)
        except BadImageError as exc:
            raise WebError(415, f"{exc.message}: upload a complete PNG, JPEG or WebP image") from exc
        with _stage_errors("retrieve", retriever):  # a failing retriever: 502 naming it
            return retriever.search_images([ImageQuery(img, name)], k)[0]

    hits = await asyncio.get_running_loop().run_in_executor(None, run)
    return {"hits": [hit_json(web, h) for h in hits]}


@router.post("/search/similar")
def search_similar(body: SimilarBody, request: Request) -> dict[str, Any]:
    """More like this: the corpus images nearest a hit's image (the hit itself left out)."""
    web = state(request)
    path = corpus_path(web, body.path)
    retriever = _image_retriever(web)
    try:
        query = ImageQuery.open(path)
    except BadImageError as exc:
        raise WebError(415, f"{exc.message}: pick another hit") from exc
    with _stage_errors("retrieve", retriever):
        hits = retriever.search_images([query], body.k + 1)[0]
    return {"hits": [hit_json(web, h) for h in hits if h.path != path][:body.k]}


def corpus_path(web: WebState, path: str) -> str:
    """``path`` if it is a file inside one of the corpora (links resolved); 400 otherwise."""
    if "\x00" in path:
        raise WebError(400, "bad path: it holds a NUL byte")
    found = web.corpora.locate(path)
    if found is None or found[0].root is None:
        raise WebError(400, "that path is not an image of this app's corpora: send a hit's 'path' from /api/search")
    if not (found[0].root / found[1]).is_file():
        raise WebError(404, "that corpus image no longer exists: search again")
    return path


# -- jobs ----------------------------------------------------------------------------------------------
@router.post("/jobs", status_code=202)
def submit_job(body: GenerateJob | RunJob, request: Request) -> dict[str, Any]:
    """Queue a generation with picked references (``generate``) or the full loop (``run``)."""
    web = state(request)
    p = web.pipeline
    refs: list[str] = []
    if isinstance(body, GenerateJob):
        budget = p.generator.capabilities.max_references
        if len(body.references) > budget:
            raise WebError(400, f"{len(body.references)} references picked, generator '{p.generator.name}' "
                                f"takes at most {budget}: pick fewer")
        refs = [corpus_path(web, r) for r in body.references]
    elif p.critic is None:
        raise ConfigError("this profile has no critic, which the full loop needs",
                          hint="use kind 'generate', or a profile with a 'critic:' section")
    picked: list[Hit | str] = [web.hits.get(r) or r for r in refs]
    try:
        job = web.jobs.submit(body.kind, body.prompt, body.seed, refs, picked)
    except QueueFull as exc:
        raise WebError(429, str(exc)) from exc
    return {"job": job.to_dict()}


@router.get("/jobs")
def list_jobs(request: Request) -> dict[str, Any]:
    """Every job this server knows, newest first."""
    return {"jobs": state(request).jobs.all_jobs()}


def _job(web: WebState, job_id: str) -> dict[str, Any]:
    job = web.jobs.snapshot(job_id)
    if job is None:
        raise WebError(404, f"no job '{job_id}' (jobs are kept while the server runs): see /api/jobs")
    return job


@router.get("/jobs/{job_id}")
def get_job(job_id: str, request: Request) -> dict[str, Any]:
    return _job(state(request), job_id)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
    """Queued: it never runs. Running: it stops at the next stage (the trace says interrupted)."""
    web = state(request)
    job = web.jobs.cancel(job_id)
    if job is None:
        raise WebError(404, f"no job '{job_id}': see /api/jobs")
    return job


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    """Server-sent events: every past ``stage`` event, then live ones, then ``end`` with the JOB."""
    web = state(request)
    _job(web, job_id)
    return StreamingResponse(_stream(web, job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(web: WebState, job_id: str) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    sent = 0
    while True:
        wake = asyncio.Event()
        events, final = web.jobs.events_since(job_id, sent, loop, wake)
        try:
            for event in events:
                yield _sse("stage", web.secrets.clean(event))
            sent += len(events)
            if final is not None:
                yield _sse("end", web.secrets.clean(final))
                return
            try:
                await asyncio.wait_for(wake.wait(), timeout=15)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
        finally:
            web.jobs.forget_listener(job_id, wake)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# -- runs ----------------------------------------------------------------------------------------------
@router.get("/runs")
def list_runs(request: Request) -> dict[str, Any]:
    """The run folders, newest first."""
    web = state(request)
    found = (run_summary(web.runs_dir, d.name) for d in web.runs_dir.iterdir() if d.is_dir())
    runs = [dict(s) for s in found if s]  # copies: the summaries are cached
    runs.sort(key=lambda r: (r["created"] or "", r["id"]), reverse=True)
    return {"runs": runs}


@router.get("/runs/{run_id}")
def get_run(run_id: str, request: Request) -> dict[str, Any]:
    """One run: its trace and the URLs of its images and report."""
    return run_detail(state(request).runs_dir, run_id)
