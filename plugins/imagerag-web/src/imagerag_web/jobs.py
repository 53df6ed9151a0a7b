"""Generation jobs: a bounded queue in front of the pipeline's generator, worker threads, stage
events for server-sent events, and cancel.

By default one worker thread per loaded generator runs one job at a time; searches never go
through here. With ``recreate`` (``imagerag serve --jobs process``) each worker thread drives a
job worker process (:mod:`imagerag_web.worker`) that runs the generation, so a generator holding
the GIL cannot slow the searches either; everything below behaves the same in both modes. A job
cancelled while queued never runs; one cancelled while running stops at the next stage boundary:
the pipeline's progress callback raises :class:`Cancelled` (a ``KeyboardInterrupt``), so the run
folder's trace ends ``interrupted`` with the error ``cancelled …``. A failed job keeps its run
folder (trace ``failed``), as does one whose worker process died.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from imagerag_sdk.pipeline import ImageRAG, Progress, _stage_errors  # the loop's wrapping of a load failure
from imagerag_sdk.runtrace import Capabilities, RunTrace, now
from imagerag_sdk.types import Hit

from .security import Secrets, one_line
from .worker import STOP_WAIT, Cancelled, Recreate, WorkerDied, WorkerProcess, mark_trace_failed

log = logging.getLogger("imagerag_web")
Kind = Literal["generate", "run"]
Status = Literal["queued", "running", "done", "failed", "cancelled"]
FINAL = ("done", "failed", "cancelled")


class QueueFull(Exception):
    """More jobs are waiting than the queue holds."""


@dataclass
class Job:
    id: str
    kind: Kind
    prompt: str
    seed: int
    references: list[str] = field(default_factory=list)
    picked: list[Hit | str] = field(default_factory=list)
    """What the generator gets: the hits the paths came from (with their captions) where known."""
    status: Status = "queued"
    created: str = field(default_factory=now)
    started: str | None = None
    finished: str | None = None
    events: list[dict[str, str]] = field(default_factory=list)
    run: str | None = None
    error: str | None = None
    cancel_requested: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "prompt": self.prompt, "seed": self.seed,
                "references": list(self.references), "created": self.created, "started": self.started,
                "finished": self.finished, "events": list(self.events), "run": self.run, "error": self.error}


class JobQueue:
    """Jobs for one pipeline. ``workers`` threads (default 1: one generation at a time) take queued
    jobs in order; at most ``max_queued`` wait, :meth:`submit` raises :class:`QueueFull` beyond.
    With ``recreate`` (a picklable callable building the same pipeline) each thread runs its jobs
    in a worker process instead (:meth:`start` starts them and waits until they have loaded)."""

    def __init__(self, pipeline: ImageRAG, runs_dir: str | os.PathLike, *, max_queued: int = 16,
                 workers: int = 1, keep_finished: int = 500, secrets: Secrets | None = None,
                 recreate: Recreate | None = None) -> None:
        self.pipeline = pipeline
        self.workers: tuple[WorkerProcess, ...] = tuple(WorkerProcess(recreate) for _ in range(workers)) \
            if recreate is not None else ()
        self.runs_dir = Path(runs_dir)
        self.max_queued = max_queued
        self.n_workers = workers
        self.keep_finished = keep_finished
        self.secrets = secrets or Secrets(pipeline.secrets)
        self._lock = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._listeners: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self) -> None:
        """Process mode: start the worker processes and wait until each has loaded the pipeline
        (raising why one could not); then the threads that feed them (in thread mode the first
        :meth:`submit` starts the threads)."""
        try:
            for worker in self.workers:
                worker.start()
            for worker in self.workers:
                worker.wait_loaded()
        except BaseException:
            for worker in self.workers:
                worker.stop()
            raise
        with self._lock:
            self._start_workers()

    def worker_pids(self) -> list[int]:
        """Process mode: the worker processes' ids (those started)."""
        return [w.pid for w in self.workers if w.pid is not None]

    # -- the API's side ------------------------------------------------------------------------
    def submit(self, kind: Kind, prompt: str, seed: int = 0, references: list[str] | None = None,
               picked: list[Hit | str] | None = None) -> Job:
        """Queue a job; ``picked``: the references as hits where known (default: the paths)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job queue is closed")
            if len(self._waiting) >= self.max_queued:
                raise QueueFull(f"the job queue is full ({len(self._waiting)} waiting): try again when a "
                                "job has finished")
            job = Job(id=uuid.uuid4().hex[:12], kind=kind, prompt=prompt, seed=seed,
                      references=list(references or []), picked=list(picked or references or []))
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._start_workers()
            self._lock.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def snapshot(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.to_dict() if job is not None else None

    def all_jobs(self) -> list[dict[str, Any]]:
        """Every job, newest first."""
        with self._lock:
            return [j.to_dict() for j in reversed(self._jobs.values())]

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a queued job (it never runs) or ask a running one to stop at its next stage."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status == "queued":
                self._waiting.remove(job)
                self._event(job, "cancelled", "cancelled before it started")
                self._finish(job, "cancelled", None)
            elif job.status == "running" and not job.cancel_requested:
                job.cancel_requested = True
                self._event(job, "cancel", "cancel requested: stopping at the next stage")
            return job.to_dict()

    def close(self, timeout: float | None = 10.0) -> None:
        """Cancel what waits, ask what runs to stop, and join the workers. A worker process still
        running a job after ``timeout`` gets SIGTERM (its trace: interrupted), then SIGKILL."""
        with self._lock:
            self._closed = True
            for job in list(self._waiting):
                self.cancel(job.id)
            for job in self._jobs.values():
                if job.status == "running":
                    job.cancel_requested = True
            self._lock.notify_all()
        for worker in self.workers:
            if worker.loading:  # a worker reloading after a death: nothing to wait for
                worker.terminate()
        for thread in self._threads:
            thread.join(timeout)
        for stop in (WorkerProcess.terminate, WorkerProcess.kill):
            for worker, thread in zip(self.workers, self._threads, strict=False):  # () in thread mode
                if thread.is_alive():
                    stop(worker)
                    thread.join(STOP_WAIT)
        for worker in self.workers:  # those whose thread never started
            worker.stop()

    # -- events (replayed, then live) -------------------------------------------------------------
    def events_since(self, job_id: str, start: int, loop: asyncio.AbstractEventLoop,
                     wake: asyncio.Event) -> tuple[list[dict[str, str]], dict[str, Any] | None]:
        """Events from index ``start`` and, once the job is final, its JOB; ``wake`` is set (on
        ``loop``) at the next event. Registering and reading under one lock loses no event."""
        with self._lock:
            job = self._jobs[job_id]
            self._listeners.setdefault(job_id, []).append((loop, wake))
            return list(job.events[start:]), (job.to_dict() if job.status in FINAL else None)

    def forget_listener(self, job_id: str, wake: asyncio.Event) -> None:
        with self._lock:
            left = [(lp, w) for lp, w in self._listeners.get(job_id, []) if w is not wake]
            if left:
                self._listeners[job_id] = left
            else:
                self._listeners.pop(job_id, None)

    def _event(self, job: Job, stage: str, message: str) -> None:  # under self._lock
        job.events.append({"stage": stage, "message": self.secrets.clean(one_line(message)), "time": now()})
        for loop, wake in self._listeners.pop(job.id, []):
            loop.call_soon_threadsafe(wake.set)

    def _finish(self, job: Job, status: Status, error: str | None) -> None:  # under self._lock
        job.status, job.error, job.finished = status, error, now()
        self._event(job, "end", status if error is None else f"{status}: {error}")
        finished = [j for j in self._jobs.values() if j.status in FINAL]
        for old in finished[:max(0, len(finished) - self.keep_finished)]:
            del self._jobs[old.id]
            self._listeners.pop(old.id, None)

    # -- the workers -------------------------------------------------------------------------------
    def _start_workers(self) -> None:  # under self._lock
        while len(self._threads) < self.n_workers:
            worker = self.workers[len(self._threads)] if self.workers else None
            thread = threading.Thread(target=self._work, args=(worker,), name=f"imagerag-job-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def _work(self, worker: WorkerProcess | None) -> None:
        try:
            while self._next(worker):
                pass
        finally:
            if worker is not None:
                worker.stop()

    def _next(self, worker: WorkerProcess | None) -> bool:
        """Run the next job; False once the queue is closed and empty."""
        with self._lock:
            while not self._waiting and not self._closed:
                self._lock.wait()
            if self._closed and not self._waiting:
                return False
        # a worker process reloading (after a death) does so while the job still waits (cancellable)
        problem = worker.ready() if worker is not None else None
        with self._lock:
            if not self._waiting:  # cancelled meanwhile
                return not self._closed
            job = self._waiting.popleft()
            if problem is not None:  # it never started: no run folder
                self._finish(job, "failed", self.secrets.clean(one_line(problem)))
                return True
            job.status, job.started = "running", now()
            self._event(job, "start", f"{job.kind} started")
        self._execute(job, worker)
        return True

    def _execute(self, job: Job, worker: WorkerProcess | None = None) -> None:
        with self._lock:  # the run folder is named after the job: the job knows it from the start
            job.run = run_name(job)

        def progress(stage: str, message: str) -> None:
            with self._lock:
                if job.cancel_requested:  # before the stage starts: it never does
                    raise Cancelled(f"cancelled from the web app (job {job.id}) before stage '{stage}'")
                self._event(job, stage, message)

        status: Status = "done"
        error: str | None = None
        try:
            if worker is None:
                self._call(job, progress)
            else:
                self._call_worker(worker, job, progress)
        except Cancelled as exc:
            status, error = "cancelled", str(exc)
        except Exception as exc:  # the pipeline recorded it in the run folder; the job reports it
            status, error = "failed", self.secrets.clean(one_line(str(exc) or type(exc).__name__))
            log.info("job %s failed: %s", job.id, error)
        with self._lock:
            if status == "done" and job.cancel_requested:
                self._event(job, "cancel", "the cancel came after the last stage had started: the run finished")
            self._finish(job, status, error)

    def _call(self, job: Job, progress: Callable[[str, str], None]) -> None:
        if job.kind == "generate":
            self.pipeline.generate_with(job.prompt, job.picked, seed=job.seed, out=self.runs_dir,
                                        progress=progress, run_name=job.run)
        else:
            self.pipeline.run(job.prompt, seed=job.seed, out=self.runs_dir, progress=progress, run_name=job.run)

    def _call_worker(self, worker: WorkerProcess, job: Job, progress: Callable[[str, str], None]) -> None:
        """The job in the worker process; a death fails it, marks its trace, and starts a new worker."""
        assert job.run is not None
        spec = {"kind": job.kind, "prompt": job.prompt, "seed": job.seed, "run": job.run,
                "runs_dir": str(self.runs_dir), "picked": [p.to_dict() if isinstance(p, Hit) else p for p in job.picked]}
        try:
            worker.run(spec, progress)  # raises Cancelled or JobFailed as the thread's call would
        except WorkerDied as exc:
            reason = self.secrets.clean(one_line(str(exc)))
            log.warning("job %s: %s", job.id, reason)
            mark_trace_failed(self.runs_dir / job.run, reason, secrets=self.secrets.all(),
                              fallback=lambda: self._fallback_trace(job))
            if not self._closed:
                worker.start()  # loads in the background: ready for the next job
            raise WorkerDied(reason) from None

    def _fallback_trace(self, job: Job) -> RunTrace:
        """The trace of a job whose worker died before writing one."""
        caps = self.pipeline.generator.capabilities
        return RunTrace(prompt=job.prompt, seed=job.seed, mode="picked" if job.kind == "generate" else self.pipeline.loop.mode,
                        profile=self.pipeline.profile, started_at=job.started or now(),
                        capabilities=Capabilities(max_references=caps.max_references, conditioning=caps.conditioning,
                                                  uses_captions=caps.uses_captions,
                                                  image_placeholder=caps.image_placeholder))


def load_search(pipeline: ImageRAG, progress: Progress | None = None) -> None:
    """Process mode: load what the server's searches need (the retriever and the reranker); the
    worker process loads the whole pipeline, so the generator's weights are not loaded twice."""
    for role, comp in pipeline.components().items():
        if role in ("retriever", "reranker"):
            if progress is not None:
                progress("load", f"{role} {comp.name}")
            with _stage_errors("load", comp):
                comp.load()


def run_name(job: Job) -> str:
    """The job's run folder: when it started and the job's id (not the prompt, which may hold text
    the app masks)."""
    stamp = (job.started or now()).replace("-", "").replace(":", "").replace("T", "-")[:15]
    return f"{stamp}-job-{job.id}"
