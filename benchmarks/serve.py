"""The web server (``imagerag serve``, issue #15 item 6) against the direct Python call.

    python benchmarks/serve.py [--items 3000] [--queries 400] [--rounds 20] [--job-ms 300]
                               [--clients 50] [--duration 30] [--json FIG.json]

A real corpus index of ``--items`` captioned images (FakeEmbedder vectors, d = 512: hashed bag of
words, so a query's hits are real nearest neighbours) is built in a temporary folder. The app
(``create_app`` on uvicorn, as ``imagerag serve`` runs it, access log included) runs in a child
process on a free port of 127.0.0.1; the measurements are made from this process over real HTTP
(httpx, keep-alive; the app side is ``serve_app.py``):

1. ``POST /api/search`` against ``pipeline.retrieve(text, k)`` in this process
   (``serve_latency.py``), the same queries interleaved (the order rotating); the HTTP time
   includes encoding and decoding the JSON. An anchor in the same rotation gives the stack's
   floor: a minimal FastAPI app on uvicorn answering a constant body of the same size
   (``serve_anchor.py``). Each server is asked through httpx and
   through a lean ``http.client`` connection (``LeanClient``), both keep-alive, in the same rotation:
   the time added is the server's plus the client's. The server child times each
   ``pipeline.retrieve`` it runs (``serve_app.time_searches``), to set the search inside the server
   against the same call here.
2. search latency while a generator call runs against idle, in alternating blocks, for a
   generator that releases the GIL, one that holds it and one that sleeps
   (``serve_app.BusyGenerator``; the child logs each call's interval to place the searches),
   with jobs on a thread of the server and in a job worker process (``--jobs``): per kind one
   server per mode, their rounds interleaved; with the first kind, interleaved too, the anchor:
   the direct ``pipeline.retrieve`` here while another process burns one core, against idle
   (what the cores allow when a generator computes on one of them).
3. ``--clients`` concurrent clients for ``--duration`` s (asyncio + httpx): searches and jobs
   (``generate`` with two picked hits and the full ``run`` loop), each job followed through its
   event stream; at the end every submitted job must be done or failed, every request answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serve_app import WORDS, Gil, Jobs, Server, build_corpus, busy, make_pipeline
from serve_latency import K, pct, queries, server_vs_direct, summary


# -- 2. search during a generation against idle ---------------------------------------------------------------
class DuringJobs:
    """One server's arm: each :meth:`round` submits a ``generate`` job and searches until it has
    ended, then searches as long with no job. A search counts as "during" when it overlaps a
    generator call (the child logs each call's CLOCK_MONOTONIC interval, the same clock across
    processes); the searches while the job did its other work (its run folder, its trace written
    with fsync) are left out."""

    def __init__(self, server: Server, gil: Gil, jobs: Jobs) -> None:
        import httpx

        self.server, self.gil, self.jobs = server, gil, jobs
        self.client = httpx.Client(base_url=server.url, timeout=60)
        self.qs = queries(4000, seed=2)
        self.qi = 0
        self.idle: list[float] = []
        self.timed: list[tuple[float, float]] = []  # (start, end) monotonic of each search while a job existed
        self.refs = [h["path"] for h in self.client.post("/api/search", json={"text": "apple boat", "k": 2}
                                                         ).json()["hits"]]
        for _ in range(20):
            self.search()

    def search(self) -> tuple[float, float]:
        q = self.qs[self.qi % len(self.qs)]
        self.qi += 1
        t = time.monotonic()
        r = self.client.post("/api/search", json={"text": q, "k": K})
        r.raise_for_status()
        r.json()
        return t, time.monotonic()

    def round(self) -> None:
        r = self.client.post("/api/jobs", json={"kind": "generate", "prompt": "apple boat", "references": self.refs})
        r.raise_for_status()
        job_id, began = r.json()["job"]["id"], time.monotonic()
        while self.client.get(f"/api/jobs/{job_id}").json()["status"] not in ("done", "failed", "cancelled"):
            self.timed.append(self.search())
        end = time.monotonic() + (time.monotonic() - began)
        while time.monotonic() < end:
            t0, t1 = self.search()
            self.idle.append((t1 - t0) * 1000)

    def report(self) -> dict[str, float]:
        self.client.close()
        gil, jobs, idle = self.gil, self.jobs, self.idle
        calls = [tuple(map(float, line.split())) for line in self.server.times_file.read_text().split("\n") if line]
        during = [(t1 - t0) * 1000 for t0, t1 in self.timed if any(t0 < b and t1 > a for a, b in calls)]
        ratio = pct(during, 99) / pct(idle, 99)
        print(f"[2] gil={gil} jobs={jobs}: idle search: {summary(idle)}")
        print(f"[2] gil={gil} jobs={jobs}: search overlapping a generator call: {summary(during)} "
              f"({len(self.timed) - len(during)} searches while the job ran outside its generator call left out)")
        print(f"[2] gil={gil}: p99 during a generation / idle: {ratio:.2f}x (p50 {pct(during, 50) / pct(idle, 50):.2f}x; "
              f"target <= 1.5x; jobs={jobs})")
        key = f"{jobs}_{gil}"
        return {f"{key}_idle_p50_ms": pct(idle, 50), f"{key}_idle_p99_ms": pct(idle, 99),
                f"{key}_during_p50_ms": pct(during, 50), f"{key}_during_p99_ms": pct(during, 99),
                f"{key}_p99_ratio": ratio, f"{key}_during_n": len(during)}


def _burner(conn: Any) -> None:
    """The anchor's other process: burn one core (a pure-Python loop) for each number of seconds sent."""
    while True:
        seconds = conn.recv()
        if seconds is None:
            return
        busy(seconds, "hold")
        conn.send(True)


class DirectUnderLoad:
    """The anchor's arm: ``pipeline.retrieve`` in this process while another process burns one
    core for ``block_s``, then as long idle (no server, no HTTP): what the cores allow."""

    def __init__(self, index_dir: Path, block_s: float) -> None:
        import multiprocessing

        self.pipeline = make_pipeline(index_dir)
        self.pipeline.load()
        self.block_s = block_s
        self.qs = queries(4000, seed=3)
        self.qi = 0
        self.loaded: list[float] = []
        self.idle: list[float] = []
        ctx = multiprocessing.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.burner = ctx.Process(target=_burner, args=(theirs,), daemon=True)
        self.burner.start()
        self._block([], time.monotonic() + 0.2)  # warm

    def _block(self, out: list[float], until: float) -> None:
        while time.monotonic() < until:
            t = time.perf_counter()
            self.pipeline.retrieve(self.qs[self.qi % len(self.qs)], k=K)
            out.append((time.perf_counter() - t) * 1000)
            self.qi += 1

    def round(self) -> None:
        self.conn.send(self.block_s)
        self._block(self.loaded, time.monotonic() + self.block_s * 0.9)  # inside the burn
        self.conn.recv()
        self._block(self.idle, time.monotonic() + self.block_s)

    def report(self) -> dict[str, float]:
        self.conn.send(None)
        self.burner.join(10)
        loaded, idle = self.loaded, self.idle
        ratio = pct(loaded, 99) / pct(idle, 99)
        print(f"[2] anchor: direct pipeline.retrieve idle: {summary(idle)}; while another process burns one core: "
              f"{summary(loaded)}")
        print(f"[2] anchor: direct p99 while one core burns / idle: {ratio:.2f}x "
              f"(p50 {pct(loaded, 50) / pct(idle, 50):.2f}x)")
        return {"anchor_idle_p99_ms": pct(idle, 99), "anchor_loaded_p99_ms": pct(loaded, 99), "anchor_p99_ratio": ratio,
                "anchor_p50_ratio": pct(loaded, 50) / pct(idle, 50)}


def search_during_jobs(work: Path, index_dir: Path, gils: Sequence[Gil], modes: Sequence[Jobs], rounds: int,
                       work_ms: float) -> dict[str, Any]:
    """For each generator kind, one server per jobs mode, their rounds interleaved (the order
    alternating), and with the first kind the anchor's rounds too."""
    fig: dict[str, Any] = {}
    for i, gil in enumerate(gils):
        servers = [Server(work, index_dir, work_ms=work_ms, gil=gil, jobs=m) for m in modes]
        try:
            arms: list[DuringJobs | DirectUnderLoad] = [DuringJobs(s, gil, m) for s, m in zip(servers, modes, strict=True)]
            if i == 0:
                arms.append(DirectUnderLoad(index_dir, work_ms / 1000))
            for r in range(rounds):
                for arm in (arms if r % 2 == 0 else arms[::-1]):
                    arm.round()
            for arm in arms:
                fig.update(arm.report())
        finally:
            for server in servers:
                server.stop()
    return fig


# -- 3. concurrent clients --------------------------------------------------------------------------------------
async def _client(url: str, deadline: float, seed: int, job_share: float, out: dict[str, Any]) -> None:
    import httpx

    rng = random.Random(seed)
    refs: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.perf_counter() < deadline:
            want_job = rng.random() < job_share and len(refs) >= 2
            t = time.perf_counter()
            try:
                if not want_job:
                    r = await client.post("/api/search", json={"text": " ".join(rng.sample(WORDS, 2)), "k": K})
                    out["search_ms"].append((time.perf_counter() - t) * 1000)
                    if r.status_code != 200:
                        out["errors"].append(f"search {r.status_code}: {r.text[:200]}")
                        continue
                    refs = [h["path"] for h in r.json()["hits"]]
                    continue
                body: dict[str, Any] = ({"kind": "run", "prompt": "a walrus on a yacht", "seed": seed}
                                        if rng.random() < 0.3 else
                                        {"kind": "generate", "prompt": "a walrus on a yacht",
                                         "references": rng.sample(refs, 2), "seed": seed})
                r = await client.post("/api/jobs", json=body)
                out["submit_ms"].append((time.perf_counter() - t) * 1000)
                if r.status_code == 429:
                    out["refused"] += 1
                    continue
                if r.status_code != 202:
                    out["errors"].append(f"job {r.status_code}: {r.text[:200]}")
                    continue
                job_id = r.json()["job"]["id"]
                out["submitted"].append(job_id)
                async with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
                    last = ""
                    async for line in stream.aiter_lines():
                        if line.startswith("event:"):
                            last = line
                        elif line.startswith("data:") and last == "event: end":
                            out["ended"][job_id] = json.loads(line[5:])["status"]
                out["job_ms"].append((time.perf_counter() - t) * 1000)
            except httpx.HTTPError as exc:  # a request not answered: counted, the run goes on
                out["errors"].append(f"{type(exc).__name__}: {exc}")


def concurrency(url: str, clients: int, duration: float, job_share: float) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {"search_ms": [], "submit_ms": [], "job_ms": [], "errors": [], "refused": 0,
                           "submitted": [], "ended": {}}

    async def main() -> None:
        deadline = time.perf_counter() + duration
        await asyncio.gather(*(_client(url, deadline, i, job_share, out) for i in range(clients)))

    t = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t
    known = {j["id"]: j["status"] for j in httpx.get(url + "/api/jobs", timeout=60).json()["jobs"]}
    statuses = [known.get(j, "missing") for j in out["submitted"]]
    done, failed = statuses.count("done"), statuses.count("failed")
    lost = len(statuses) - done - failed
    mismatched = sum(1 for j in out["submitted"] if out["ended"].get(j) != known.get(j))
    print(f"[3] {clients} clients for {duration:g} s (all over at {wall:.1f} s): {len(out['search_ms'])} searches, "
          f"{len(out['submitted'])} jobs accepted, {out['refused']} refused with 429 (answered, queue full)")
    print(f"[3] search {summary(out['search_ms'])}; job submit {summary(out['submit_ms'])}; "
          f"job submit-to-end {summary(out['job_ms'])}")
    print(f"[3] jobs: {done} done, {failed} failed, {lost} lost; event streams disagreeing with /api/jobs: "
          f"{mismatched}; requests not answered or errors: {len(out['errors'])}")
    for err in out["errors"][:5]:
        print(f"[3]   {err}")
    return {"clients": clients, "duration_s": duration, "searches": len(out["search_ms"]),
            "search_p50_ms": pct(out["search_ms"], 50), "search_p99_ms": pct(out["search_ms"], 99),
            "jobs_accepted": len(out["submitted"]), "jobs_refused_429": out["refused"], "jobs_done": done,
            "jobs_failed": failed, "jobs_lost": lost, "streams_mismatched": mismatched,
            "errors": len(out["errors"]), "job_p50_ms": pct(out["job_ms"], 50), "job_p99_ms": pct(out["job_ms"], 99)}


def baseline_server(work: Path, index_dir: Path, src: str) -> Server:
    """The app (same child, same corpus) with ``src`` first on its ``PYTHONPATH``."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([os.path.abspath(src), *([saved] if saved else [])])
    try:
        server = Server(work, index_dir, work_ms=300.0, gil="release")
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return server


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=3000, help="corpus size")
    ap.add_argument("--queries", type=int, default=400, help="[1] queries, each through both paths")
    ap.add_argument("--rounds", type=int, default=20, help="[2] generation jobs per generator kind")
    ap.add_argument("--job-ms", type=float, default=300.0, help="time one generator call computes")
    ap.add_argument("--gil", nargs="+", choices=["release", "hold", "sleep"], default=["release", "hold", "sleep"],
                    help="[2] generator kinds (default: all three)")
    ap.add_argument("--jobs", nargs="+", choices=["thread", "process"], default=["thread", "process"],
                    help="[2] where the jobs run (default: both, side by side); the first also serves [1] and [3]")
    ap.add_argument("--clients", type=int, default=50, help="[3] concurrent clients")
    ap.add_argument("--duration", type=float, default=30.0, help="[3] seconds the clients run")
    ap.add_argument("--job-share", type=float, default=0.05, help="[3] share of a client's requests that submit a job")
    ap.add_argument("--parts", default="123", help="which measurements to run (default: 123, all)")
    ap.add_argument("--baseline", metavar="SRC", help="[1] another imagerag_web source folder (e.g. an older "
                    "commit's plugins/imagerag-web/src): its server joins part 1's rotation")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        index_dir = build_corpus(work, args.items)
        print(f"corpus: {args.items} images indexed in {time.perf_counter() - t:.1f} s; load {os.getloadavg()}")
        fig: dict[str, Any] = {"items": args.items, "job_ms": args.job_ms, "load_before": os.getloadavg()[0]}
        if "1" in args.parts or "3" in args.parts:
            with Server(work, index_dir, work_ms=args.job_ms, gil="release", jobs=args.jobs[0]) as server:
                if "1" in args.parts:
                    baseline = baseline_server(work, index_dir, args.baseline) if args.baseline else None
                    try:
                        fig.update(server_vs_direct(server.url, server.proc.pid, index_dir, args.queries, work,
                                                    baseline, args.baseline or ""))
                    finally:
                        if baseline:
                            baseline.stop()
                if "3" in args.parts:
                    fig.update(concurrency(server.url, args.clients, args.duration, args.job_share))
        if "2" in args.parts:
            all_kinds: tuple[Gil, ...] = ("release", "hold", "sleep")
            kinds = [g for g in all_kinds if g in args.gil]
            fig.update(search_during_jobs(work, index_dir, kinds, args.jobs, args.rounds, args.job_ms))
        fig["load_after"] = os.getloadavg()[0]
        print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))
    return fig


if __name__ == "__main__":
    main()
