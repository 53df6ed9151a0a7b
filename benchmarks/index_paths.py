"""The code around the graph against the graph: each corpus-index path next to raw hnswlib on the
same graph file, in one run.

Not a test. Builds (once, then reuses with ``--dir``) a corpus of ``--n`` synthetic 512-d vectors
with one empty file per item under a folder tree (so the folder walk and the confinement checks
are real), and its item record file (``items.rec``, as an index run ends: also written into a
reused corpus that lacks a current one, so ``--dir`` must be writable), then prints, each against
its anchor measured in the same process:

* search: ``IndexRetriever.search_vectors`` (k = 10, default dedupe; and dedupe off) / raw
  ``knn_query`` at the same fetched k and ef, one query at a time (p50 of per-query times, wall
  clock and the thread's CPU time: on a loaded machine the wall clock counts preemptions);
* open: ``CorpusIndex(...)`` / raw ``hnswlib.Index.load_index`` of the same file, each in a fresh
  process (the best of ``--repeats``); ``imagerag
  search`` (a fresh process) / a fresh process that loads the graph and runs one query;
* memory: peak RSS of a process serving ``--memory-queries`` queries through ``IndexRetriever`` /
  one doing the same with raw hnswlib;
* incremental: an unchanged ``ingest`` re-run / the file walk alone; deleting 1 % (SQLite and the
  graph sync) in seconds; adding 1 %: the graph sync / inserting the same vectors into the
  already-loaded raw index.

    python benchmarks/index_paths.py --n 200000 --dir /tmp/ip-200k
    python benchmarks/index_paths.py --n 1000000 --dir /tmp/ip-1m --json results-1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval_data import make_data

from imagerag_sdk.index import CorpusStore, IndexRetriever, ingest
from imagerag_sdk.index.backends import query_ef
from imagerag_sdk.index.graph_sync import sync_hnsw
from imagerag_sdk.index.scan import scan
from imagerag_sdk.index.store import NewItem

SPEC = {"use": "fake"}
FOLDERS = 500


def rel(i: int) -> str:
    return f"d{i % FOLDERS:03d}/img{i:07d}.png"


def make_files(root: Path, start: int, stop: int) -> list[NewItem]:
    rows = []
    for i in range(start, stop):
        path = root / rel(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        st = path.stat()
        rows.append(NewItem(rel(i), f"{i:064x}", st.st_size, st.st_mtime_ns, "", {"caption": f"item {i}"}))
    return rows


def build(base: Path, n: int, d: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The corpus under ``base`` (root/ and index/), its query vectors and 1 % more vectors."""
    extra = max(1, n // 100)
    x, q, _ = make_data(n + extra, d, 3000, queries, seed=seed)
    done = base / "done.json"
    if done.exists() and json.loads(done.read_text()) == {"n": n, "d": d, "seed": seed}:
        records(base / "index")
        return q, x[n:]
    shutil.rmtree(base, ignore_errors=True)
    root, index = base / "root", base / "index"
    root.mkdir(parents=True)
    store = CorpusStore.open(index_dir=index, write=True)
    try:
        store.bind(root=root.resolve(), identity=f"fake-bow/dim={d}", spec={**SPEC, "dim": d})
        for s in range(0, n, 20_000):
            e = min(n, s + 20_000)
            store.commit(make_files(root, s, e), x[s:e])
            print(f"  stored {e}/{n}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        sync_hnsw(store, save=True)
        print(f"  graph built in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        store.close()
    records(index)
    done.write_text(json.dumps({"n": n, "d": d, "seed": seed}))
    return q, x[n:]


def records(index: Path) -> None:
    """The item record file an index run ends with (a corpus built by older code lacks it, and
    the incremental paths' commits leave it stale), where this code writes one."""
    try:
        from imagerag_sdk.index.records import write_records
    except ImportError:  # older code (a before/after run): it reads SQLite
        return
    store = CorpusStore.open(index_dir=index, write=True)
    try:
        t0 = time.perf_counter()
        if write_records(store):
            print(f"  item records written in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        store.close()


def graph_file(index: Path) -> Path:
    (path,) = sorted(index.glob("hnsw-*.bin"))
    return path


def raw_load(path: Path, d: int):
    import hnswlib

    g = hnswlib.Index(space="ip", dim=d)
    g.load_index(str(path))
    g.set_num_threads(os.cpu_count() or 1)
    return g


def p50(times: list[float]) -> float:
    return float(np.median(times))


def measure_search(index: Path, path: Path, d: int, q: np.ndarray, k: int, say) -> None:
    r_on = IndexRetriever(index_dir=str(index))
    r_off = IndexRetriever(index_dir=str(index), dedupe=None)
    r_on.load()
    r_off.load()
    g = raw_load(path, d)
    fetch = 4 * k + 4
    names = [f"q{i}" for i in range(len(q))]
    for r in (r_on, r_off):  # warm: the first queries fault the graph in
        r.search_vectors(q[:50], names[:50], k)
    rows: dict[str, list[float]] = {"raw_fetch": [], "retriever_dedupe": [], "raw_k": [], "retriever_no_dedupe": []}
    cpu: dict[str, list[float]] = {name: [] for name in rows}  # this thread's CPU time: no preemption
    for i in range(len(q)):  # interleaved, so load changes hit every column alike
        v = q[i:i + 1]
        name_i = names[i:i + 1]
        for name, fn in (("raw_fetch", lambda v=v: (g.set_ef(query_ef(fetch)), g.knn_query(v, k=fetch))),
                         ("retriever_dedupe", lambda v=v, n=name_i: r_on.search_vectors(v, n, k)),
                         ("raw_k", lambda v=v: (g.set_ef(query_ef(k)), g.knn_query(v, k=k))),
                         ("retriever_no_dedupe", lambda v=v, n=name_i: r_off.search_vectors(v, n, k))):
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            cpu[name].append(time.thread_time() - c0)
            rows[name].append(time.perf_counter() - t0)
    for name, t in rows.items():
        say(f"search_p50_ms_{name}", p50(t) * 1e3)
    say("search_ratio_dedupe", p50(rows["retriever_dedupe"]) / p50(rows["raw_fetch"]), "{:.2f}x")
    say("search_ratio_no_dedupe", p50(rows["retriever_no_dedupe"]) / p50(rows["raw_k"]), "{:.2f}x")
    for name, t in cpu.items():
        say(f"search_cpu_p50_ms_{name}", p50(t) * 1e3)
    say("search_cpu_ratio_dedupe", p50(cpu["retriever_dedupe"]) / p50(cpu["raw_fetch"]), "{:.2f}x")
    say("search_cpu_ratio_no_dedupe", p50(cpu["retriever_no_dedupe"]) / p50(cpu["raw_k"]), "{:.2f}x")
    cache = getattr(r_on.index, "cached_items", lambda: None)()
    if cache is not None:
        say("items_cached_after_search", cache, "{}")


OPEN_CHILD = """
import os, sys, time
sys.path[:0] = sys.argv[4].split(os.pathsep)
import hnswlib
from imagerag_sdk.index import CorpusIndex
t0 = time.perf_counter()
if sys.argv[1] == "raw":
    g = hnswlib.Index(space="ip", dim=int(sys.argv[3])); g.load_index(sys.argv[2])
else:
    c = CorpusIndex(index_dir=sys.argv[2])
print(time.perf_counter() - t0)
"""


def measure_open(index: Path, path: Path, d: int, q: np.ndarray, say, repeats: int) -> None:
    """Each open in a fresh process (imports done before the clock starts), the two kinds
    alternating: in one process the second open reuses the heap the first one freed."""
    extra = os.pathsep.join(sys.path[:2])
    times: dict[str, list[float]] = {"raw": [], "ours": []}
    for _ in range(repeats):
        for kind, target in (("raw", path), ("ours", index)):
            out = subprocess.run([sys.executable, "-c", OPEN_CHILD, kind, str(target), str(d), extra],
                                 check=True, capture_output=True, text=True).stdout
            times[kind].append(float(out.split()[-1]))
    raw, ours = times["raw"], times["ours"]
    say("open_s_raw_load_index", min(raw))
    say("open_s_corpus_index", min(ours))
    say("open_ratio", min(ours) / min(raw), "{:.2f}x")
    np.save(index.parent / "query.npy", q[:1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[:2])}
    raw_cmd = [sys.executable, "-c", "import sys, numpy as np, hnswlib; g = hnswlib.Index(space='ip', "
               f"dim={d}); g.load_index(sys.argv[1]); g.set_ef(100); "
               "print(g.knn_query(np.load(sys.argv[2]), k=10)[0][0][0])", str(path),
               str(index.parent / "query.npy")]
    cli_cmd = [sys.executable, "-c", "from imagerag_sdk.cli import main; main()", "search", "item 1",
               "--index-dir", str(index), "-k", "10", "--json"]
    t_raw, t_cli = [], []
    for _ in range(repeats):
        for cmd, out in ((raw_cmd, t_raw), (cli_cmd, t_cli)):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            out.append(time.perf_counter() - t0)
    say("cli_s_raw_process", min(t_raw))
    say("cli_s_imagerag_search", min(t_cli))
    say("cli_ratio", min(t_cli) / min(t_raw), "{:.2f}x")


MEMORY_CHILD = """
import os, resource, sys, numpy as np
sys.path[:0] = sys.argv[4].split(os.pathsep)
q = np.load(sys.argv[3])
if sys.argv[1] == "raw":
    import hnswlib
    g = hnswlib.Index(space="ip", dim=q.shape[1]); g.load_index(sys.argv[2]); g.set_ef(100)
    for i in range(len(q)):
        g.knn_query(q[i:i + 1], k=44)
else:
    from imagerag_sdk.index import IndexRetriever
    r = IndexRetriever(index_dir=sys.argv[2])
    for i in range(len(q)):
        r.search_vectors(q[i:i + 1], ["q"], 10)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0])
"""


def measure_memory(index: Path, path: Path, q: np.ndarray, say) -> None:
    np.save(index.parent / "queries.npy", q)
    extra = os.pathsep.join(sys.path[:2])
    peak = {}
    for kind, target in (("raw", path), ("retriever", index)):
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, kind, str(target),
                              str(index.parent / "queries.npy"), extra], check=True, capture_output=True,
                             text=True).stdout
        peak[kind] = int(out.split()[-1]) / 1024
        say(f"peak_rss_mb_{kind}", peak[kind], "{:.0f}")
    say("memory_ratio", peak["retriever"] / peak["raw"], "{:.2f}x")


def measure_incremental(base: Path, path: Path, d: int, add: np.ndarray, n: int, say) -> None:
    root, index = base / "root", base / "index"
    t0 = time.perf_counter()
    scan(root)
    walk = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = ingest(root, index_dir=index, embedder={**SPEC, "dim": d})
    rerun = time.perf_counter() - t0
    assert report.unchanged == n and report.added == 0, report.summary()
    say("unchanged_rerun_s_walk", walk)
    say("unchanged_rerun_s_ingest", rerun)
    say("unchanged_rerun_s_beyond_walk", rerun - walk)

    g = raw_load(path, d)
    g.resize_index(n + len(add))
    t0 = time.perf_counter()
    g.add_items(add, np.arange(n, n + len(add)))
    say("add_1pct_s_raw_insert_loaded", time.perf_counter() - t0)
    del g
    store = CorpusStore.open(index_dir=index, write=True)
    try:
        rows = make_files(root, n, n + len(add))
        t0 = time.perf_counter()
        store.commit(rows, add)
        commit = time.perf_counter() - t0
        t0 = time.perf_counter()
        sync_hnsw(store, save=True)
        sync = time.perf_counter() - t0
        say("add_1pct_s_sqlite_and_vectors", commit)
        say("add_1pct_s_graph_sync", sync)
        say("add_1pct_ratio_graph_sync_to_raw_insert", sync / fig["add_1pct_s_raw_insert_loaded"], "{:.2f}x")
        gone = [r.path for r in rows]
        for p in gone:
            (root / p).unlink()
        t0 = time.perf_counter()
        store.commit([], np.zeros((0, d), np.float32), deletes=gone)
        sync_hnsw(store, save=True)
        say("delete_1pct_s", time.perf_counter() - t0)
    finally:
        store.close()


fig: dict[str, object] = {}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--dir", required=True, help="where the corpus is built (kept and reused)")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="opens timed (the best is kept)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["search", "open", "memory", "incremental"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    fig.clear()
    fig.update(n=args.n, d=args.d, k=args.k, cpus=os.cpu_count())

    def say(name, value, fmt="{:.4g}"):
        fig[name] = value
        print(f"{name:>42}: {fmt.format(value)}", flush=True)

    base = Path(args.dir)
    q, add = build(base, args.n, args.d, args.queries, args.seed)
    index = base / "index"
    path = graph_file(index)
    if "search" not in args.skip:
        measure_search(index, path, args.d, q, args.k, say)
    if "open" not in args.skip:
        measure_open(index, path, args.d, q, say, args.repeats)
    if "memory" not in args.skip:
        measure_memory(index, path, q, say)
    if "incremental" not in args.skip:  # last: it changes the corpus (the next run rebuilds it)
        (base / "done.json").unlink()
        measure_incremental(base, path, args.d, add, args.n, say)
    fig["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")
    return dict(fig)


if __name__ == "__main__":
    main()
