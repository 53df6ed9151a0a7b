"""Part 1 of ``benchmarks/serve.py``: ``POST /api/search`` against the direct ``pipeline.retrieve``
call, through httpx and a lean ``http.client`` connection, with the anchor and a baseline app; and
the statistics the parts share."""

from __future__ import annotations

import http.client
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from serve_anchor import Anchor
from serve_app import SEARCH_TIMES, WORDS, Server, cpu_seconds, make_pipeline

K = 12


# -- statistics -------------------------------------------------------------------------------------------
def pct(values: Sequence[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def summary(ms: Sequence[float]) -> str:
    return f"p50 {pct(ms, 50):.2f} ms, p99 {pct(ms, 99):.2f} ms (n={len(ms)})"


def queries(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(n)]


# -- 1. server against the direct call -----------------------------------------------------------------------
class LeanClient:
    """An HTTP/1.1 keep-alive client with the least work per request (the standard library's
    ``http.client``: one ``send`` for the request line, headers and body; TCP_NODELAY): the answer
    read whole, its status checked. Beside httpx it shows how much of the added time is the client's."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)

    def post_json(self, path: str, value: Any) -> Any:
        body, headers = json.dumps(value).encode(), {"Content-Type": "application/json"}
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            answer = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.conn.close()  # the server closed the idle connection (uvicorn: after 5 s): once more, as httpx does
            self.conn.request("POST", path, body=body, headers=headers)
            answer = self.conn.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST {path}: {answer.status} {data[:200]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()


CLIENTS = {"httpx": "httpx", "lean": "http.client"}
"""Part 1's HTTP clients: the key of their figures, the name printed."""


def server_vs_direct(url: str, pid: int, index_dir: Path, n: int, work: Path,
                     baseline: Server | None = None, baseline_name: str = "") -> dict[str, float]:
    """The same queries through ``pipeline.retrieve`` here, ``POST /api/search`` and the anchor (the
    web stack's floor: ``serve_anchor.py`` answering a real answer's bytes, no middleware, no
    search), and ``baseline`` (another version of the app) when given, each server through httpx
    and through :class:`LeanClient`, interleaved query by query, the order rotating."""
    import httpx

    pipeline = make_pipeline(index_dir)
    pipeline.load()
    qs = queries(n)
    body = httpx.post(url + "/api/search", json={"text": qs[0], "k": K}, timeout=60).content
    servers = {"http": url, **({"baseline": baseline.url} if baseline else {})}
    pids = {"http": pid, **({"baseline": baseline.proc.pid} if baseline else {})}
    with Anchor(work, body) as anchor:
        servers["anchor"], pids["anchor"] = anchor.url, anchor.proc.pid
        httpx_clients = {name: httpx.Client(base_url=u, timeout=60) for name, u in servers.items()}
        lean_clients = {name: LeanClient(u) for name, u in servers.items()}

        def via_httpx(c: httpx.Client) -> Any:
            def post(q: str) -> Any:
                r = c.post("/api/search", json={"text": q, "k": K})
                r.raise_for_status()
                return r.json()["hits"]
            return post

        def via_lean(c: LeanClient) -> Any:
            return lambda q: c.post_json("/api/search", {"text": q, "k": K})["hits"]

        paths = {"direct": lambda q: pipeline.retrieve(q, k=K)}
        for name in servers:
            paths[f"httpx_{name}"] = via_httpx(httpx_clients[name])
            paths[f"lean_{name}"] = via_lean(lean_clients[name])
        times: dict[str, list[float]] = {p: [] for p in paths}
        thread_cpu: dict[str, float] = dict.fromkeys(paths, 0.0)

        def timed(name: str, q: str) -> None:
            cpu, t = time.thread_time(), time.perf_counter()
            hits = paths[name](q)
            dt = (time.perf_counter() - t) * 1000
            thread_cpu[name] += time.thread_time() - cpu
            assert len(hits) == K, hits  # the same work as the direct call; the anchor's answer decoded alike
            times[name].append(dt)

        try:
            for q in qs[:20]:  # warm every path (connection, caches, the server's choice of thread)
                for name in paths:
                    timed(name, q)
            for v in times.values():
                v.clear()
            thread_cpu = dict.fromkeys(paths, 0.0)
            for name, c in httpx_clients.items():
                if name != "anchor":
                    c.get(SEARCH_TIMES).raise_for_status()  # the warm-up's searches left out
            cpu = {name: cpu_seconds(p) for name, p in pids.items()}
            own_cpu = time.process_time()
            order = list(paths)
            for i, q in enumerate(qs):
                for name in order[i % len(order):] + order[:i % len(order)]:
                    timed(name, q)
            cpu = {name: (cpu_seconds(p) - cpu[name]) / (2 * n) * 1000 for name, p in pids.items()}
            own_cpu = (time.process_time() - own_cpu) / n * 1000
            inside = {name: np.asarray(c.get(SEARCH_TIMES).json()).reshape(-1, 2)
                      for name, c in httpx_clients.items() if name != "anchor"}
        finally:
            for c in httpx_clients.values():
                c.close()
            for lean in lean_clients.values():
                lean.close()
    direct = times["direct"]
    fig: dict[str, float] = {"direct_p50_ms": pct(direct, 50), "direct_p99_ms": pct(direct, 99),
                             "server_cpu_per_search_ms": cpu["http"], "anchor_cpu_per_request_ms": cpu["anchor"],
                             "client_and_direct_cpu_per_query_ms": own_cpu}
    print(f"[1] direct pipeline.retrieve: {summary(direct)}")
    for key, client in CLIENTS.items():
        http, floor = times[f"{key}_http"], times[f"{key}_anchor"]
        added = pct(http, 50) - pct(direct, 50)
        paired = float(np.median(np.subtract(http, direct)))
        client_cpu = thread_cpu[f"{key}_http"] / n * 1000
        prefix = "" if key == "httpx" else f"{key}_"  # httpx's figures keep their names
        print(f"[1] {client}: POST /api/search over HTTP: {summary(http)}")
        print(f"[1] {client}: anchor (constant answer of {len(body):,} bytes, same stack, no search): {summary(floor)}")
        print(f"[1] {client}: added by the server at p50: {added:.2f} ms (median of paired differences {paired:.2f} ms; "
              f"target <= 2 ms); of it the stack's floor (the anchor's p50): {pct(floor, 50):.2f} ms; "
              f"the client's CPU per request {client_cpu:.2f} ms")
        fig.update({f"{prefix}http_p50_ms": pct(http, 50), f"{prefix}http_p99_ms": pct(http, 99),
                    f"{prefix}anchor_p50_ms": pct(floor, 50), f"{prefix}anchor_p99_ms": pct(floor, 99),
                    f"{prefix}added_p50_ms": added, f"{prefix}added_paired_median_ms": paired,
                    f"{key}_client_cpu_per_request_ms": client_cpu})
        share = f"the app's own share (added less the anchor's p50) {added - pct(floor, 50):.2f} ms"
        if baseline:
            old = times[f"{key}_baseline"]
            old_added = pct(old, 50) - pct(direct, 50)
            fig.update({f"{prefix}baseline_p50_ms": pct(old, 50), f"{prefix}baseline_added_p50_ms": old_added})
            print(f"[1] {client}: baseline app ({baseline_name}): {summary(old)}; added at p50 {old_added:.2f} ms")
            share += f" (the baseline's {old_added - pct(floor, 50):.2f} ms); added, baseline → this: " \
                     f"{old_added:.2f} → {added:.2f} ms"
        print(f"[1] {client}: {share}")
    for name, t in inside.items():  # the search inside the server, against the same call here
        label = f"baseline app ({baseline_name})" if name == "baseline" else "this app"
        wall, thread = pct(t[:, 0], 50), pct(t[:, 1], 50)
        fig.update({f"{name}_inside_search_p50_ms": wall, f"{name}_inside_search_cpu_p50_ms": thread})
        print(f"[1] {label}: pipeline.retrieve inside the server p50 {wall:.2f} ms (thread CPU {thread:.2f} ms; "
              f"n={len(t)}) against {pct(direct, 50):.2f} ms here: {wall - pct(direct, 50):+.2f} ms of the added time")
    if baseline:
        fig["baseline_cpu_per_search_ms"] = cpu["baseline"]
    print(f"[1] CPU per request: server process {cpu['http']:.2f} ms, anchor process {cpu['anchor']:.2f} ms"
          + (f", baseline app {cpu['baseline']:.2f} ms" if baseline else "")
          + f"; this process (clients and direct call) per query {own_cpu:.2f} ms")
    return fig
