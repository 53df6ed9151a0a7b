"""The job worker process (``imagerag serve --jobs process``): generations run in a process of
their own, so a generator that holds the GIL (a diffusers step loop) never stalls the server's
searches.

The server starts it with multiprocessing's *spawn* context (never fork: the server has threads,
and torch must not be forked). The child re-creates the pipeline with a picklable ``recreate()``
(for ``imagerag serve``: ``build_pipeline`` of the same profile), loads it once (progress on the
console), then runs one job at a time. Its stage boundaries are a round trip: before each stage
the child asks the server, which records the event or answers "cancel" under the job queue's lock,
exactly as a job thread's progress callback does; so events, cancel and the traces are the same in
both modes. A worker that dies (SIGKILL, the OOM killer) fails its running job with a one-line
reason, the server marks the run folder's trace ``failed`` (or writes one), and a fresh worker is
started for the next job.

Messages (tuples over one :func:`multiprocessing.Pipe`): server → child ``("job", spec)``,
``("go",)``, ``("cancel", message)``, ``("stop",)``; child → server ``("ready", pid)``,
``("load-failed", message, hint)``, ``("stage", stage, message)``, ``("end", status, error)``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from imagerag_sdk.errors import ConfigError, ImageRAGError
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.redact import env_secrets, scrub
from imagerag_sdk.types import Hit

Recreate = Callable[[], ImageRAG]
STOP_WAIT = 5.0  # seconds a stopped or terminated worker gets before the next, harder signal


class Cancelled(KeyboardInterrupt):
    """Raised at a stage boundary of a job cancelled while running."""


class JobFailed(Exception):
    """The worker's job raised: the one-line error it sent."""


class WorkerDied(Exception):
    """The worker process ended without answering (killed, out of memory, crashed)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- the child --------------------------------------------------------------------------------------
def worker_main(recreate: Recreate, conn: Connection) -> None:
    """The child process: build and load the pipeline, then run the jobs sent until ``stop``."""
    from imagerag_sdk.cli import _console, _progress_printer
    from imagerag_sdk.interrupts import Terminated, sigterm_as_interrupt

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    console = _console()
    secrets = env_secrets()
    with sigterm_as_interrupt():  # the server's last resort before SIGKILL: the trace says interrupted
        try:
            console.print(f"job worker (pid {os.getpid()}): loading the pipeline for the jobs")
            pipeline = recreate()
            secrets |= pipeline.secrets
            pipeline.load(_progress_printer(console))
        except (Exception, Terminated) as exc:
            hint = exc.hint if isinstance(exc, ImageRAGError) else None
            message = scrub(_one_line(exc.message if isinstance(exc, ImageRAGError) else str(exc) or type(exc).__name__),
                            secrets)
            console.print(f"job worker (pid {os.getpid()}): could not load the pipeline: {message}")
            conn.send(("load-failed", message, scrub(hint, secrets) if hint else None))
            return
        console.print(f"job worker (pid {os.getpid()}): ready")
        conn.send(("ready", os.getpid()))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError, Terminated):  # the server is gone, or stops us
                return
            if message[0] != "job":  # "stop"
                return
            try:
                status, error = _run_job(pipeline, message[1], conn)
            except Terminated as exc:  # after the pipeline recorded it: the trace says interrupted
                status, error = "cancelled", f"{exc}: the server stopped the job worker"
            try:
                conn.send(("end", status, scrub(_one_line(error), secrets) if error else None))
            except OSError:  # the server went away mid-job
                return


def _run_job(pipeline: ImageRAG, spec: dict[str, Any], conn: Connection) -> tuple[str, str | None]:
    """Run one job; (status, error) as the job queue reports them."""

    def progress(stage: str, message: str) -> None:
        conn.send(("stage", stage, message))
        answer = conn.recv()
        if answer[0] == "cancel":  # before the stage starts: it never does
            raise Cancelled(answer[1])

    picked = [Hit(**p) if isinstance(p, dict) else p for p in spec["picked"]]
    try:
        if spec["kind"] == "generate":
            pipeline.generate_with(spec["prompt"], picked, seed=spec["seed"], out=spec["runs_dir"],
                                   progress=progress, run_name=spec["run"])
        else:
            pipeline.run(spec["prompt"], seed=spec["seed"], out=spec["runs_dir"], progress=progress,
                         run_name=spec["run"])
    except Cancelled as exc:
        return "cancelled", str(exc)
    except Exception as exc:  # the pipeline recorded it in the run folder; the job reports it
        return "failed", str(exc) or type(exc).__name__
    return "done", None


# -- the server's handle ------------------------------------------------------------------------------
class WorkerProcess:
    """One job worker process as the server sees it. Only the job queue's thread that owns it
    talks to it; :meth:`terminate` and :meth:`kill` (signals) may come from any thread."""

    def __init__(self, recreate: Recreate) -> None:
        self.recreate = recreate
        self.proc: Any = None  # multiprocessing's SpawnProcess
        self.conn: Connection | None = None
        self.loaded = False
        self.load_error: tuple[str, str | None] | None = None
        """Why the last worker could not load: (message, hint)."""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def exitcode(self) -> int | None:
        return self.proc.exitcode if self.proc is not None else None

    @property
    def loading(self) -> bool:
        return self.proc is not None and not self.loaded and self.proc.exitcode is None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def start(self) -> None:
        """Start a fresh worker (it loads the pipeline in the background)."""
        if self.proc is not None:  # the one before, dead: reaped, its pipe closed
            self.proc.join()
        if self.conn is not None:
            self.conn.close()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker_main, args=(self.recreate, child), name="imagerag-job-worker",
                           daemon=True)  # never outlives the server, even one that did not close()
        try:
            proc.start()
        except Exception as exc:  # the recreate callable could not be pickled
            parent.close()
            raise ConfigError(f"the job worker process could not be started: {type(exc).__name__}: {exc}",
                              hint="jobs='process' needs a picklable recreate (a module-level function, or "
                                   "functools.partial of one), or use jobs='thread'") from exc
        finally:
            child.close()
        self.proc, self.conn, self.loaded = proc, parent, False

    def ready(self) -> str | None:
        """Wait until the worker has loaded the pipeline (starting one if there is none alive);
        ``None`` once ready, else the one-line reason it could not load."""
        if self.loaded and self.alive():
            return None
        if not self.loading:
            self.start()
        try:
            message = self._recv()
        except WorkerDied as exc:
            message = ("load-failed", str(exc), None)
        if message[0] == "ready":
            self.loaded, self.load_error = True, None
            return None
        self.proc.join(STOP_WAIT)
        self.load_error = (f"the job worker process could not load the pipeline: {message[1]}", message[2])
        return self.load_error[0] + (f" — {message[2]}" if message[2] else "")

    def wait_loaded(self) -> None:
        """:meth:`ready`, raising the reason (at start-up, as loading in the server would)."""
        if self.ready() is not None:
            assert self.load_error is not None
            message, hint = self.load_error
            raise ImageRAGError(message, hint=hint or "fix the profile or the component it names")

    def run(self, spec: dict[str, Any], progress: Callable[[str, str], None]) -> None:
        """Run one job in the worker; ``progress(stage, message)`` decides each stage boundary
        (raising :class:`Cancelled` stops the job there). Returns when the job is done; raises
        :class:`Cancelled`, :class:`JobFailed` or :class:`WorkerDied`."""
        self._send(("job", spec))
        stage = None
        while True:
            try:
                message = self._recv()
            except WorkerDied as exc:
                where = f" during stage '{stage}'" if stage else ""
                raise WorkerDied(f"the job worker process died{where} ({exc}): a fresh worker is "
                                 "started for the next job") from None
            if message[0] == "stage":
                stage = message[1]
                try:
                    progress(message[1], message[2])
                except Cancelled as exc:
                    self._send(("cancel", str(exc)))
                else:
                    self._send(("go",))
            elif message[1] == "done":
                return
            elif message[1] == "cancelled":
                raise Cancelled(message[2])
            else:
                raise JobFailed(message[2])

    def stop(self) -> None:
        """Ask an idle worker to exit; terminate, then kill, one that does not."""
        if self.proc is None:
            return
        if self.alive():
            try:
                self._send(("stop",))
            except WorkerDied:
                pass  # it is gone already: joined below
            self.proc.join(STOP_WAIT)
        if self.alive():
            self.terminate()
            self.proc.join(STOP_WAIT)
        if self.alive():
            self.kill()
        self.proc.join()
        if self.conn is not None:
            self.conn.close()

    def terminate(self) -> None:
        if self.alive():
            self.proc.terminate()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()

    # -- the pipe ------------------------------------------------------------------------------
    def _send(self, message: tuple[Any, ...]) -> None:
        assert self.conn is not None
        try:
            self.conn.send(message)
        except OSError:  # BrokenPipe: the child is gone
            raise WorkerDied(self._death()) from None

    def _recv(self) -> tuple[Any, ...]:
        """The worker's next message; :class:`WorkerDied` (with how it ended) if it ended first."""
        assert self.conn is not None and self.proc is not None
        while True:
            wait([self.conn, self.proc.sentinel])
            if self.conn.poll():  # what it sent before it ended is read first
                try:
                    message: tuple[Any, ...] = self.conn.recv()
                    return message
                except (EOFError, OSError):
                    raise WorkerDied(self._death()) from None
            if self.proc.exitcode is not None or not self.proc.is_alive():
                raise WorkerDied(self._death())

    def _death(self) -> str:
        self.loaded = False
        assert self.proc is not None
        self.proc.join(STOP_WAIT)
        code = self.proc.exitcode
        if code is None:
            return "it stopped answering"
        if code < 0:
            name = signal.Signals(-code).name
            why = "; out of memory? the kernel's OOM killer sends it" if -code == signal.SIGKILL else ""
            return f"killed by {name}{why}"
        return f"exit code {code}"


def mark_trace_failed(run_dir: Path, reason: str, *, fallback: Callable[[], Any], secrets: set[str]) -> None:
    """After the worker died mid-job: the run folder's trace says ``failed`` with ``reason``. The
    trace the child left (status ``running``) is updated; if it left none, ``fallback()`` (a new
    :class:`~imagerag_sdk.runtrace.RunTrace`) is written. A trace already final is left alone."""
    from imagerag_sdk.runtrace import RunTrace, now
    from imagerag_sdk.trace import RunRecorder, round_s

    trace = RunTrace.load(run_dir) if (run_dir / "trace.json").is_file() else fallback()
    if trace.status != "running":
        return
    trace.status, trace.error, trace.finished_at = "failed", reason, now()
    started = _parse_time(trace.started_at)
    trace.seconds = round_s(time.time() - started) if started is not None else None
    rec = RunRecorder(run_dir, trace, secrets=secrets)
    rec.save()
    rec.write_report()


def _parse_time(stamp: str) -> float | None:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
