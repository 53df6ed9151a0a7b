"""The code around the graph against the graph: each corpus-index path next to raw hnswlib on the
same graph file, in one run.

Not a test. Builds (once, then reuses with ``--dir``) a corpus of ``--n`` synthetic 512-d vectors
with one empty file per item under a folder tree (so the folder walk and the confinement checks
are real), and its item record file (``items.rec``, as an index run ends: also written into a
reused corpus that lacks a current one, so ``--dir`` must be writable), then prints, each against
its anchor measured in the same process:

* search: ``IndexRetriever.search_vectors`` (k = 10, default dedupe; and dedupe off) / raw
  ``knn_query`` at the same fetched k and ef, and / a hand-written search over the same graph
  with the items in memory (``handwritten``), one query at a time in blocks of ``BLOCK`` per
  contender (p50 of per-query times, wall clock and the thread's CPU time: on a loaded machine
  the wall clock counts preemptions);
* open: ``CorpusIndex(...)`` / raw ``hnswlib.Index.load_index`` of the same file, each in a fresh
  process (the best of ``--repeats``); ``imagerag
  search`` (a fresh process) / a fresh process that loads the graph and runs one query (best and
  median, and the CPU time of each process: the medians' ratio and the median of what the command
  adds round by round; with ``--cli-base OLD/src`` the same command on an older ``src`` too,
  interleaved, on a copy of the corpus that holds that code's own resolution record, and whether
  it printed the same);
* memory: peak RSS of a process serving ``--memory-queries`` queries through ``IndexRetriever`` /
  one doing the same with raw hnswlib;
* incremental: an unchanged ``ingest`` re-run / the file walk alone; deleting 1 % (SQLite and the
  graph sync) in seconds; adding 1 %: the graph sync / inserting the same vectors (as new labels)
  into the already-loaded raw index, in all and per added vector;
* recent: with a recent-adds graph of 1 % and of ``FOLD_FRACTION`` (the threshold; fresh
  samples of the same mixture), the search of the pair / the main graph alone (``HnswBackend.search``,
  k = 10, interleaved query by query, wall and CPU p50), also with the recent graph at the main
  graph's ef (the rule before); recall@10 against the exact scan for random queries and for
  queries near a recent item, and self-retrieval of recent items, for the pair and for one graph
  holding every vector; the add that reaches the threshold (the costliest short of a fold) against
  inserting 1 % into the loaded main graph, the fold that 1 % more triggers, and the add cost
  per vector amortised over that cycle.

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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

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
T = TypeVar("T")
FOLDERS = 500
BLOCK = 25
"""Queries each search contender runs in turn (see measure_search)."""


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
    the incremental paths' commits leave it stale), and its resolution record, where this code
    writes them."""
    try:
        from imagerag_sdk.index.records import write_records
    except ImportError:  # older code (a before/after run): it reads SQLite
        return
    store = CorpusStore.open(index_dir=index, write=True)
    try:
        t0 = time.perf_counter()
        if write_records(store):
            print(f"  item records written in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        note_resolution(store)
    finally:
        store.close()


def note_resolution(store: CorpusStore) -> None:
    """The record of how the registry resolves the corpus's embedder and retriever names that an
    index run writes (``imagerag search`` builds those classes from it), where this code has one."""
    try:
        from imagerag_sdk.plugins import get_registry
        from imagerag_sdk.resolutions import record
    except ImportError:  # older code: every search builds the registry
        return
    get_registry()
    store.note_resolved(record(("embedder", SPEC["use"]), ("retriever", "index")))


def graph_file(index: Path) -> Path:
    """The main graph snapshot (not a recent-adds graph)."""
    (path,) = sorted(p for p in index.glob("hnsw-*.bin") if "-recent-" not in p.name)
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
    hand = handwritten(index, g, k, fetch)
    rows: dict[str, list[float]] = {"raw_fetch": [], "retriever_dedupe": [], "raw_k": [], "retriever_no_dedupe": [],
                                    "handwritten_dedupe": []}
    cpu: dict[str, list[float]] = {name: [] for name in rows}  # this thread's CPU time: no preemption
    runs: dict[str, Callable[[np.ndarray, list[str]], object]] = {
        "raw_fetch": lambda v, n: (g.set_ef(query_ef(fetch)), g.knn_query(v, k=fetch)),
        "retriever_dedupe": lambda v, n: r_on.search_vectors(v, n, k),
        "raw_k": lambda v, n: (g.set_ef(query_ef(k)), g.knn_query(v, k=k)),
        "retriever_no_dedupe": lambda v, n: r_off.search_vectors(v, n, k),
        "handwritten_dedupe": lambda v, n: hand(v)}
    # Interleaved in blocks of BLOCK queries, so load changes hit every column alike: each
    # contender runs a block's queries in turn, the order rotating block by block. Query by query
    # instead, each contender after the first searched nodes the one before had just cached
    # (the same query: at 1M the second search of a query took ~0.35 ms against ~0.5 ms).
    order = list(runs)
    for b, start in enumerate(range(0, len(q), BLOCK)):
        block = range(start, min(start + BLOCK, len(q)))
        for name in order[b % len(order):] + order[:b % len(order)]:
            fn = runs[name]
            for i in block:
                v, name_i = q[i:i + 1], names[i:i + 1]
                t0, c0 = time.perf_counter(), time.thread_time()
                fn(v, name_i)
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
    say("search_cpu_ratio_handwritten_to_raw", p50(cpu["handwritten_dedupe"]) / p50(cpu["raw_fetch"]), "{:.2f}x")
    say("search_cpu_ratio_dedupe_to_handwritten", p50(cpu["retriever_dedupe"]) / p50(cpu["handwritten_dedupe"]),
        "{:.2f}x")
    cache = getattr(r_on.index, "cached_items", lambda: None)()
    if cache is not None:
        say("items_cached_after_search", cache, "{}")


def handwritten(index: Path, g, k: int, fetch: int, dedupe: float = 0.95):
    """The same search written by hand over the same graph with every item already in memory: the
    work the retriever cannot skip (the fetched candidates, the Gram matrix of the first ``k``
    rows read from the vectors file, a hit dict with its path, score and metadata per hit kept),
    without what it adds (a consistent view, the change check, confinement, items read from
    disk); deleted items are skipped by a dict lookup. Loading the items takes a while at 1M (and about 1 KB each of memory)."""
    import sqlite3

    con = sqlite3.connect(f"file:{index / 'index.sqlite'}?mode=ro", uri=True)
    meta = dict(con.execute("SELECT key, value FROM meta"))
    root = meta["root"]
    table = {}
    for label, path, hash_, caption, extra in con.execute("SELECT label, path, hash, caption, extra FROM items"):
        md = json.loads(extra) if extra else {}
        if caption is not None:
            md["caption"] = caption
        md["relpath"], md["sha256"] = path, hash_
        table[label] = (f"{root}/{path}", md)
    con.close()
    vecs = np.load(index / meta["vectors_file"], mmap_mode="r")
    ef = query_ef(fetch)

    def search(v: np.ndarray) -> list[dict]:
        g.set_ef(ef)
        labels, dist = g.knn_query(v, k=fetch)
        live = [(label, 1.0 - dist) for label, dist in zip(labels[0].tolist(), dist[0].tolist(), strict=True)
                if label in table]  # a deleted item's label stays in the graph (marked deleted by the retriever)
        row = [label for label, _ in live]
        scores = [score for _, score in live]
        x = vecs[row[:k]]
        dup = x @ x.T >= dedupe
        np.fill_diagonal(dup, False)
        hits = []
        for j in range(len(row)):
            if j >= k or len(hits) == k:
                break  # (no duplicates among the first k on this data: the first k are the hits)
            if dup[j, :j].any():
                continue
            path, md = table[row[j]]
            hits.append({"path": path, "score": scores[j], "metadata": dict(md), "rank": len(hits)})
        return hits

    return search


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


def measure_open(index: Path, path: Path, d: int, q: np.ndarray, say, repeats: int,
                 base_src: str | None = None, cli_repeats: int | None = None) -> None:
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

    def cli_cmd(index_dir: Path) -> list[str]:
        return [sys.executable, "-c", "from imagerag_sdk.cli import main; main()", "search", "item 1",
                "--index-dir", str(index_dir), "-k", "10", "--json"]

    runs = [("raw_process", raw_cmd, env), ("imagerag_search", cli_cmd(index), env)]
    if base_src:  # the same command on an older src/, interleaved: before and after in one run
        base_env = {**env, "PYTHONPATH": base_src}
        runs.append(("imagerag_search_base", cli_cmd(base_twin(index, base_env)), base_env))
    t: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    outs: dict[str, set[bytes]] = {name: set() for name, _, _ in runs[1:]}
    for _ in range(cli_repeats or repeats):
        for name, cmd, run_env in runs:
            before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            out = subprocess.run(cmd, check=True, env=run_env, capture_output=True).stdout
            t[name].append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if name in outs:
                outs[name].add(out)
    for name, times in t.items():
        say(f"cli_s_{name}", min(times))
        say(f"cli_s_{name}_median", float(np.median(times)))
        say(f"cli_cpu_s_{name}_median", float(np.median(cpu[name])))
    for name in t:
        if name != "raw_process":
            tail = name[len("imagerag_search"):]
            say(f"cli_ratio{tail}", min(t[name]) / min(t["raw_process"]), "{:.2f}x")
            say(f"cli_ratio{tail}_median", float(np.median(t[name]) / np.median(t["raw_process"])), "{:.2f}x")
            say(f"cli_cpu_ratio{tail}_median", float(np.median(cpu[name]) / np.median(cpu["raw_process"])),
                "{:.2f}x")
            # what the command adds to load + query, round by round (the graph's read varies more
            # between rounds than between the commands of one round)
            say(f"cli_cpu_s_added{tail}_median",
                float(np.median(np.subtract(cpu[name], cpu["raw_process"]))))
    if base_src:
        say("cli_same_output_as_base", outs["imagerag_search"] == outs["imagerag_search_base"], "{}")


BASE_RECORD_CHILD = """
import sys
from imagerag_sdk.index.store import CorpusStore
try:
    from imagerag_sdk.plugins import get_registry
    from imagerag_sdk.resolutions import record
except ImportError:  # code from before the record: every search builds the registry
    sys.exit(0)
store = CorpusStore.open(index_dir=sys.argv[1], write=True)
try:
    get_registry()
    store.note_resolved(record(("embedder", sys.argv[2]), ("retriever", "index")))
finally:
    store.close()
"""


def base_twin(index: Path, base_env: dict[str, str]) -> Path:
    """A copy of the corpus for the older code, with the resolution record that code writes (it
    names that code's classes: the newer record may name a module the older code lacks, which
    would send its search to the full registry). The big files are hard links, the SQLite files
    copies; the corpus root is shared."""
    twin = index.parent / "index-base"
    shutil.rmtree(twin, ignore_errors=True)
    twin.mkdir()
    for f in index.iterdir():
        if f.is_file():
            if ".sqlite" in f.name:
                shutil.copy2(f, twin / f.name)
            else:
                try:
                    os.link(f, twin / f.name)
                except OSError:  # another file system
                    shutil.copy2(f, twin / f.name)
    subprocess.run([sys.executable, "-c", BASE_RECORD_CHILD, str(twin), SPEC["use"]], check=True, env=base_env)
    return twin


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


def _raw_walk(root: Path) -> int:
    """The floor of any walk: every folder listed, every file ``lstat``-ed once, nothing kept."""
    files, stack = 0, [str(root)]
    while stack:
        with os.scandir(stack.pop()) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    files += 1
    return files


def _timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """(wall s, CPU s of the process, result)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def measure_incremental(base: Path, path: Path, d: int, add: np.ndarray, n: int, say,
                        rerun_only: bool = False) -> None:
    root, index = base / "root", base / "index"
    say("unchanged_rerun_load_before", os.getloadavg()[0], "{:.2f}")
    walk, walk_cpu, _ = _timed(lambda: scan(root))
    raw, raw_cpu, _ = _timed(lambda: _raw_walk(root))
    rerun, rerun_cpu, report = _timed(lambda: ingest(root, index_dir=index, embedder={**SPEC, "dim": d}))
    walk2, walk2_cpu, _ = _timed(lambda: scan(root))
    assert report.unchanged == n and report.added == 0, report.summary()
    walk, walk_cpu = (walk + walk2) / 2, (walk_cpu + walk2_cpu) / 2  # before and after the re-run
    for name, wall, cpu in (("walk", walk, walk_cpu), ("raw_walk", raw, raw_cpu), ("ingest", rerun, rerun_cpu)):
        say(f"unchanged_rerun_s_{name}", wall)
        say(f"unchanged_rerun_cpu_s_{name}", cpu)
    say("unchanged_rerun_s_beyond_walk", rerun - walk)
    say("unchanged_rerun_cpu_s_beyond_walk", rerun_cpu - walk_cpu)
    say("unchanged_rerun_s_beyond_raw_walk", rerun - raw)
    say("unchanged_rerun_cpu_s_beyond_raw_walk", rerun_cpu - raw_cpu)
    say("unchanged_rerun_load_after", os.getloadavg()[0], "{:.2f}")
    if rerun_only:
        return

    say("incremental_vectors_added", len(add), "{}")
    g = raw_load(path, d)
    count = g.get_current_count()  # new labels: the file may already hold n + 1 % (an earlier run)
    g.resize_index(count + len(add))
    t0 = time.perf_counter()
    g.add_items(add, np.arange(count, count + len(add)))
    raw = time.perf_counter() - t0
    say("add_1pct_s_raw_insert_loaded", raw)
    say("add_1pct_us_per_vector_raw_insert", raw / len(add) * 1e6)
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
        say("add_1pct_us_per_vector_graph_sync", sync / len(add) * 1e6)
        say("add_1pct_ratio_graph_sync_to_raw_insert", sync / raw, "{:.2f}x")
        gone = [r.path for r in rows]
        for p in gone:
            (root / p).unlink()
        t0 = time.perf_counter()
        store.commit([], np.zeros((0, d), np.float32), deletes=gone)
        sync_hnsw(store, save=True)
        say("delete_1pct_s", time.perf_counter() - t0)
    finally:
        store.close()


def _merge_all(a, b, k):
    """The merge before the recent graph's own breadth (both sorted together, no shortcut)."""
    labels, scores = np.concatenate([a[0], b[0]], axis=1), np.concatenate([a[1], b[1]], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(labels, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _recall(want: np.ndarray, got: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(want, got, strict=True)]))


def measure_recent(base: Path, d: int, n: int, seed: int, k: int, say, queries: int = 1000) -> None:
    from imagerag_sdk.index import CorpusIndex
    from imagerag_sdk.index.backends import ExactBackend
    from imagerag_sdk.index.graph_pair import GraphPair
    from imagerag_sdk.index.graph_sync import FOLD_FRACTION

    root, index = base / "root", base / "index"
    fractions = sorted({0.01, FOLD_FRACTION})  # 1 % at a time, up to the threshold, then 1 % past: folded
    # the corpus's own vectors come first from the same generator: more image-like samples of the
    # same mixture serve as the queries and the recent adds
    _, fresh, _ = make_data(n + max(1, n // 100), d, 3000, queries + int((FOLD_FRACTION + 0.02) * n) + 1, seed=seed)
    q, fresh = fresh[:queries], fresh[queries:]
    added = 0
    rng = np.random.default_rng(seed + 1)
    # the anchor of an add: 1 % inserted into the loaded main graph (raw hnswlib)
    one_pct = int(0.01 * n)
    g = raw_load(graph_file(index), d)
    count = g.get_current_count()
    g.resize_index(count + one_pct)
    t0 = time.perf_counter()
    g.add_items(fresh[:one_pct], np.arange(count, count + one_pct))
    raw = time.perf_counter() - t0
    del g
    say("add_1pct_s_raw_insert_loaded", raw)
    syncs = []

    def add(upto: int, name: str) -> float:
        nonlocal added
        store = CorpusStore.open(index_dir=index, write=True)
        try:
            start = 3 * n + added  # file names no other part uses
            store.commit(make_files(root, start, start + upto - added), fresh[added:upto])
            added = upto
            t0 = time.perf_counter()
            sync_hnsw(store, save=True)
            took = time.perf_counter() - t0
            say(name, took)
            return took
        finally:
            store.close()

    for fraction in fractions:
        tag = f"recent_{fraction:.0%}"
        syncs.append(add(int(round(fraction * n)), f"{tag}_s_graph_sync"))
        corpus = CorpusIndex(index_dir=index, backend="hnsw")
        pair = corpus.backend
        assert isinstance(pair, GraphPair), "no recent-adds graph was saved"
        main, ef = pair.main, query_ef(k)
        ways: dict[str, Callable[[np.ndarray], object]] = {
                "pair": lambda v, pair=pair: pair.search(v, k),  # the recent graph at its breadth (recent_ef)
                "pair_same_ef": lambda v, pair=pair, main=main, ef=ef: _merge_all(
                    main.search(v, k), pair.recent.search(v, k, ef=ef), k),
                "main": lambda v, main=main: main.search(v, k)}
        for i in range(50):  # warm: the first queries fault the graphs in
            for fn in ways.values():
                fn(q[i:i + 1])
        wall: dict[str, list[float]] = {name: [] for name in ways}
        cpu: dict[str, list[float]] = {name: [] for name in ways}
        for i in range(len(q)):  # each query once per way, a third of the set apart (no warm repeat)
            for j, (name, fn) in enumerate(ways.items()):
                v = q[(i + j * len(q) // 3) % len(q)][None]
                t0, c0 = time.perf_counter(), time.thread_time()
                fn(v)
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - t0)
        say(f"{tag}_recent_graph_vectors", len(pair.recent), "{}")
        for name in wall:
            say(f"{tag}_search_p50_ms_{name}", p50(wall[name]) * 1e3)
            say(f"{tag}_search_cpu_p50_ms_{name}", p50(cpu[name]) * 1e3)
        for name in ("pair", "pair_same_ef"):
            say(f"{tag}_search_ratio_{name}_to_main", p50(wall[name]) / p50(wall["main"]), "{:.2f}x")
            say(f"{tag}_search_cpu_ratio_{name}_to_main", p50(cpu[name]) / p50(cpu["main"]), "{:.2f}x")
        # recall@k against the exact scan: random queries, queries near a recent item (its vector
        # plus noise of norm 0.15), and each recent item's own vector (found first?); the pair
        # against one graph holding every vector (the main graph with the recent vectors inserted)
        labels = corpus.labels
        exact = ExactBackend(corpus.vectors(labels), labels)
        recent_labels = labels[labels >= pair.split]
        pick = rng.choice(len(recent_labels), size=min(500, len(recent_labels)), replace=False)
        own = corpus.vectors(recent_labels[pick])
        near = own + rng.standard_normal(own.shape).astype(np.float32) * np.float32(0.15 / np.sqrt(d))
        near /= np.linalg.norm(near, axis=1, keepdims=True)
        one = raw_load(graph_file(index), d)
        one.resize_index(one.get_current_count() + len(recent_labels))
        one.add_items(corpus.vectors(recent_labels), recent_labels)
        for gone in np.setdiff1d(np.arange(pair.split), labels):  # the main graph's tombstones
            one.mark_deleted(int(gone))
        one.set_ef(ef)
        for kind, qs in (("random", q), ("near_recent", near)):
            want, _ = exact.search(qs, k)
            say(f"{tag}_recall_at_{k}_{kind}_pair", _recall(want, pair.search(qs, k)[0], k))
            say(f"{tag}_recall_at_{k}_{kind}_pair_same_ef",
                _recall(want, _merge_all(main.search(qs, k), pair.recent.search(qs, k, ef=ef), k)[0], k))
            say(f"{tag}_recall_at_{k}_{kind}_one_graph", _recall(want, one.knn_query(qs, k=k)[0].astype(np.int64), k))
        say(f"{tag}_self_first_pair", float(np.mean(pair.search(own, 1)[0][:, 0] == recent_labels[pick])))
        say(f"{tag}_self_first_one_graph", float(np.mean(one.knn_query(own, k=1)[0][:, 0] == recent_labels[pick])))
        del one
        corpus.close()
    # the last add short of a fold (the recent-adds graph at the threshold) against the raw insert
    say("add_1pct_to_threshold_ratio_graph_sync_to_raw_insert", syncs[-1] / raw, "{:.2f}x")
    assert [p for p in index.glob("hnsw-*-recent-*.bin")], "at the threshold: still a recent-adds graph"
    fold = add(added + one_pct, "fold_s_graph_sync_past_threshold")
    assert not [p for p in index.glob("hnsw-*-recent-*.bin")], "the fold left a recent-adds graph"
    # what an add costs per vector over one fold cycle (1 % at a time): the adds into the recent
    # graph and the fold, over the vectors they added
    say("fold_ms_per_folded_vector", fold / added * 1e3)
    say("amortised_ms_per_added_vector", (sum(syncs) + fold) / added * 1e3)
    say("raw_insert_ms_per_vector", raw / one_pct * 1e3)


fig: dict[str, object] = {}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--dir", required=True, help="where the corpus is built (kept and reused)")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="opens timed (the best is kept)")
    ap.add_argument("--cli-base", help="also time `imagerag search` on this older src/ folder, interleaved "
                    "(on a copy of the corpus with that code's resolution record: index-base/)")
    ap.add_argument("--cli-repeats", type=int, help="rounds of the `imagerag search` timing (default: --repeats)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["search", "open", "memory", "incremental", "recent"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--add", type=int, help="vectors the incremental part adds (default and at most 1 %%)")
    ap.add_argument("--rerun-only", action="store_true",
                    help="of the incremental part, only the unchanged re-run (the corpus stays as built)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    fig.clear()
    fig.update(n=args.n, d=args.d, k=args.k, cpus=os.cpu_count())

    def say(name, value, fmt="{:.4g}"):
        fig[name] = value
        print(f"{name:>42}: {fmt.format(value)}", flush=True)

    base = Path(args.dir)
    q, add = build(base, args.n, args.d, args.queries, args.seed)
    add = add[:args.add]
    index = base / "index"
    path = graph_file(index)
    if "search" not in args.skip:
        measure_search(index, path, args.d, q, args.k, say)
    if "open" not in args.skip:
        measure_open(index, path, args.d, q, say, args.repeats, args.cli_base, args.cli_repeats)
    if "memory" not in args.skip:
        measure_memory(index, path, q, say)
    if ("incremental" not in args.skip and not args.rerun_only) or "recent" not in args.skip:
        (base / "done.json").unlink()  # they change the corpus: the next run rebuilds it
    if "incremental" not in args.skip:
        measure_incremental(base, path, args.d, add, args.n, say, args.rerun_only)
    if "recent" not in args.skip:
        measure_recent(base, args.d, args.n, args.seed, args.k, say)
    fig["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")
    return dict(fig)


if __name__ == "__main__":
    main()
