"""The app side of ``benchmarks/serve.py``: the corpus, a generator that computes, the server.

    python benchmarks/serve_app.py INDEX RUNS PORT_FILE WORK_MS GIL QUEUE_SIZE TIMES_FILE [JOBS]

runs the app (the child process ``Server`` starts) on a free port of 127.0.0.1.
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast, get_args

from imagerag_sdk.testing.fakes import FakeGenerator
from imagerag_sdk.types import Reference

WORDS = ["apple", "boat", "cloud", "desert", "engine", "forest", "guitar", "harbor", "island", "jungle",
         "kettle", "lantern", "meadow", "needle", "orchard", "piano", "quarry", "river", "saddle", "tunnel",
         "umbrella", "violin", "walrus", "yacht", "zebra", "bridge", "castle", "dragon", "falcon", "glacier",
         "hammer", "igloo", "jacket", "koala", "lemon", "mirror", "nest", "owl", "pepper", "quilt"]
Gil = Literal["release", "hold", "sleep"]
Jobs = Literal["thread", "process"]


# -- the corpus, the pipeline, the generator ------------------------------------------------------------
def build_corpus(work: Path, items: int, dim: int = 512) -> Path:
    """``items`` captioned PNGs under ``work/photos`` indexed into ``work/index``; the index folder."""
    from PIL import Image, PngImagePlugin

    from imagerag_sdk.index import ingest

    rng = random.Random(0)
    root, index_dir = work / "photos", work / "index"
    for i in range(items):
        caption = " ".join(rng.sample(WORDS, 4)) + f" item{i}"
        path = root / f"sub{i % 10}" / f"img{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        info = PngImagePlugin.PngInfo()
        info.add_text("caption", caption)
        Image.new("RGB", (16, 16), (i % 256, (i * 7) % 256, (i * 13) % 256)).save(path, pnginfo=info)
    ingest(root, index_dir=index_dir, embedder={"use": "fake", "dim": dim}, progress=None)
    return index_dir


class BusyGenerator(FakeGenerator):
    """A FakeGenerator that first computes for ``work_ms`` of wall time on its own thread.

    ``gil="release"``: SHA-256 over 256 KiB blocks, which CPython runs with the GIL released, as
    torch runs its kernels (a generator on the CPU, or waiting for the GPU). ``gil="hold"``: a
    pure-Python loop, which holds the GIL except when the interpreter hands it over (every 5 ms by
    default), as a model's Python parts do (a diffusers pipeline's step loop, scheduler, hooks).
    ``gil="sleep"``: waits without computing (a remote API or a GPU doing the work): the control
    that separates the GIL's share from the CPU's on a machine with few cores."""

    name = "busy"

    def __init__(self, *args: Any, work_ms: float = 300.0, gil: Gil = "release", times: Path | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.work_ms, self.gil, self.times = work_ms, gil, times

    def generate(self, prompt: str, references: Sequence[Reference] = (), *, seed: int | None = None) -> Any:
        start = time.monotonic()
        busy(self.work_ms / 1000, self.gil)
        if self.times is not None:  # the call's interval, for the benchmark to place its searches
            with open(self.times, "a") as f:
                f.write(f"{start} {time.monotonic()}\n")
        return super().generate(prompt, references, seed=seed)


def busy(seconds: float, gil: Gil) -> int:
    """Compute for ``seconds`` of wall time, holding or releasing the GIL; a checksum of the work."""
    end = time.perf_counter() + seconds
    acc = 0
    if gil == "sleep":
        time.sleep(seconds)
        return acc
    if gil == "release":
        block = bytes(256 * 1024)
        while time.perf_counter() < end:
            acc ^= hashlib.sha256(block).digest()[0]
        return acc
    x = 1
    while time.perf_counter() < end:
        for _ in range(2000):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        acc ^= x
    return acc


def make_pipeline(index_dir: Path, work_ms: float = 300.0, gil: Gil = "release", times: Path | None = None) -> Any:
    from imagerag_sdk.index import IndexRetriever
    from imagerag_sdk.pipeline import ImageRAG
    from imagerag_sdk.testing.fakes import FakeCritic

    return ImageRAG(BusyGenerator(size=32, max_references=2, work_ms=work_ms, gil=gil, times=times), FakeCritic(),
                    IndexRetriever(index_dir=str(index_dir), dedupe=None), profile="bench-serve")


# -- the server (child process) -------------------------------------------------------------------------
def serve_child(index_dir: str, runs_dir: str, port_file: str, work_ms: float, gil: Gil, queue_size: int,
                times: str, jobs: Jobs = "thread") -> None:
    """Run the app on a free port of 127.0.0.1 as ``imagerag serve`` does; write the port to ``port_file``.
    ``jobs="process"``: the generations run in a job worker process that builds the same pipeline."""
    import functools

    import uvicorn

    from imagerag_web import create_app
    from imagerag_web.serve import LOOPBACK

    recreate = functools.partial(make_pipeline, Path(index_dir), work_ms, gil, Path(times))
    pipeline = recreate()
    mode: dict[str, Any] = {"jobs": jobs, "recreate": recreate} if jobs == "process" else {}  # an older src (--baseline) has no jobs=
    app = create_app(pipeline, runs_dir=runs_dir, queue_size=queue_size, allowed_hosts=list(LOOPBACK), **mode)
    time_searches(app, pipeline)
    # proto IPPROTO_TCP as uvicorn's own bind has it: asyncio sets TCP_NODELAY only on such sockets
    # (with proto 0 every answer waits ~40 ms for the client's delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    Path(port_file + ".tmp").write_text(str(sock.getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)  # the port appears whole
    server.run(sockets=[sock])


SEARCH_TIMES = "/bench/search-times"


def time_searches(app: Any, pipeline: Any) -> None:
    """Time each ``pipeline.retrieve`` inside the server (wall and thread CPU, ms), so that the
    benchmark can split the time the server adds into the search and the rest; ``GET
    SEARCH_TIMES`` answers those so far and starts afresh (a route after the app's own)."""
    from starlette.responses import JSONResponse

    retrieve = pipeline.retrieve
    seen: collections.deque[tuple[float, float]] = collections.deque(maxlen=100_000)

    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return retrieve(*args, **kwargs)
        finally:
            seen.append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))

    async def answer(request: Any) -> JSONResponse:
        out = list(seen)
        seen.clear()
        return JSONResponse(out)

    pipeline.retrieve = timed
    app.add_route(SEARCH_TIMES, answer, methods=["GET"])


class Server:
    """The app in a child process; ``url`` once it answers."""

    def __init__(self, work: Path, index_dir: Path, *, work_ms: float, gil: Gil, queue_size: int = 16,
                 jobs: Jobs = "thread") -> None:
        tag = f"{gil}-{jobs}-{time.monotonic_ns()}"
        port_file = work / f"port-{tag}"
        self.log = work / f"server-{tag}.log"
        self.times_file = work / f"generator-calls-{tag}.txt"
        self.times_file.touch()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, str(index_dir), str(work / "runs"), str(port_file),
                 str(work_ms), gil, str(queue_size), str(self.times_file), jobs], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not start; its log:\n{self.log.read_text()}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"
        import httpx

        while True:  # the socket is bound before uvicorn starts answering
            try:
                httpx.get(self.url + "/api/info", timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"the server does not answer; its log:\n{self.log.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    index_dir, runs_dir, port_file, work_ms, kind, queue_size, times = sys.argv[1:8]
    jobs = sys.argv[8] if len(sys.argv) > 8 else "thread"
    if kind not in get_args(Gil):
        raise SystemExit(f"GIL must be one of {', '.join(get_args(Gil))}, not {kind!r}")
    if jobs not in get_args(Jobs):
        raise SystemExit(f"JOBS must be one of {', '.join(get_args(Jobs))}, not {jobs!r}")
    serve_child(index_dir, runs_dir, port_file, float(work_ms), cast(Gil, kind), int(queue_size), times,
                cast(Jobs, jobs))
