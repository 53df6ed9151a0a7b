"""``imagerag index``: bring a corpus up to date with a folder, embedding only what changed.

Decoding, hashing and (when the embedder declares ``supports_fast_path``) preprocessing run in
worker threads, a bounded window ahead of the model, which runs on the calling thread (a torch
model on one intra-op thread when that keeps up with the decoders, else on the thread count its
batches measure faster, see :mod:`.threads`). Each model
batch is committed on its own (vectors first, then the SQLite transaction), so an interrupted run
loses at most one batch and the next run picks up where it stopped.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import CorpusError, ImageRAGError
from ..images import MAX_PIXELS, BadImageError
from ..outputs import check_vectors
from ..resolutions import record
from ..roles import Embedder, normalize_rows
from ..specs import ComponentSpec
from .backends import EXACT_BELOW
from .changes import compare, items_state, note_unchanged, unchanged_since, walk_digest
from .confine import root_identity
from .graph_sync import sync_hnsw
from .items import Known, NewItem
from .records import write_records
from .scan import FileEntry, Problem, Stat, decode_image, read_and_hash, read_sidecars, scan
from .store import CorpusStore
from .threads import ModelThreads

COMPACT_ABOVE = 0.2
"""Rewrite vectors and rebuild HNSW when more than this fraction of stored rows is dead."""


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


class StrictIngestError(CorpusError):
    """``--strict``: the run finished but some files could not be indexed."""


@dataclass
class IngestReport:
    corpus: str
    index_dir: str
    root: str
    embedder: str = ""
    scanned: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    reused: int = 0
    """New rows whose vector was copied from identical content already indexed."""
    metadata_updated: int = 0
    embedded: int = 0
    """Images that went through the model in this run."""
    total: int = 0
    backend: str = "exact"
    hnsw_m: int = 0
    hnsw_ef_construction: int = 0
    """The graph's parameters (used once the corpus is large enough for the HNSW backend)."""
    seconds: float = 0.0
    bad: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    report_path: str = ""

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("bad", "skipped", "warnings")}
        out["images_per_second"] = round(self.images_per_second, 2)
        for key in ("bad", "skipped", "warnings"):
            out[key] = [p.to_dict() for p in getattr(self, key)]
        return out

    def summary(self) -> str:
        text = (f"corpus '{self.corpus}': {self.total} images indexed ({self.added} new, {self.changed} "
                f"changed, {self.removed} removed, {self.unchanged} unchanged); embedded {self.embedded} "
                f"in {self.seconds:.1f} s ({self.images_per_second:.1f} img/s)")
        if self.bad or self.skipped:
            text += f"; {len(self.bad)} bad, {len(self.skipped)} skipped"
            if self.report_path:
                text += f" (see {self.report_path})"
        return text


@dataclass
class _Work:
    entry: FileEntry
    kind: str  # touch | reuse | embed | bad
    hash: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    payload: Any = None
    label: int = -1
    reason: str = ""
    sidecar_problems: list[str] = field(default_factory=list)
    cpu: float = 0.0
    """CPU seconds the worker spent reading, hashing, decoding and preprocessing it."""


def resolve_embedder(embedder: Embedder | ComponentSpec | dict | str | None,
                     stored: dict[str, Any] | None) -> tuple[Embedder, dict[str, Any]]:
    """An embedder instance and the spec recorded for it (``None`` → the corpus's own, else clip)."""
    if isinstance(embedder, Embedder):
        return embedder, {"use": embedder.name, **embedder.options.model_dump(mode="json")}
    given = embedder if embedder is not None else (stored or {"use": "clip"})
    if isinstance(given, str):
        given = {"use": given}
    spec = given if isinstance(given, ComponentSpec) else ComponentSpec(**given)
    built = spec.build("embedder")
    if not isinstance(built, Embedder):
        raise CorpusError(f"'{spec.use}' is not an embedder")
    return built, {"use": spec.use, **spec.options()}


HNSW_M_RANGE = (4, 96)
EF_CONSTRUCTION_RANGE = (10, 2000)


def _check_graph_params(m: int | None, ef_construction: int | None) -> None:
    for name, value, (lo, hi) in (("M", m, HNSW_M_RANGE), ("ef_construction", ef_construction,
                                                           EF_CONSTRUCTION_RANGE)):
        if value is not None and not lo <= value <= hi:
            raise CorpusError(f"HNSW {name} must be between {lo} and {hi}, not {value}",
                              hint="defaults: M=16, ef_construction=100; larger = better recall, "
                                   "more memory (M) and a slower build")


def same_spec(model: Embedder, stored: dict[str, Any] | None) -> bool:
    """Whether ``model`` is the embedder ``stored`` describes (same name, same validated options)."""
    if not stored or stored.get("use") != model.name:
        return False
    try:
        recorded = type(model.options)(**{k: v for k, v in stored.items() if k != "use"})
    except (TypeError, ValueError):  # options of an older plugin version: not provably the same
        return False
    return recorded.model_dump(mode="json") == model.options.model_dump(mode="json")


def embed_batch(embedder: Embedder, payloads: list[Any], fast: bool) -> np.ndarray:
    """Rows for ``payloads``: :meth:`~Embedder.preprocess` outputs when ``fast``, else images."""
    if fast:
        batch = np.stack(payloads) if all(isinstance(p, np.ndarray) for p in payloads) else payloads
        out = embedder.embed_preprocessed(batch)
    else:
        out = embedder.embed_images(payloads)
    check_vectors(out, embedder, len(payloads), method="embed_preprocessed" if fast else "embed_images")
    return normalize_rows(np.asarray(out, dtype=np.float32))


def input_side(embedder: Embedder) -> int | None:
    """The longest side of the model input, for embedders that tell it (``preprocess_spec.size``)."""
    size = getattr(getattr(embedder, "preprocess_spec", None), "size", None)
    try:
        return int(max(size)) if size else None
    except (TypeError, ValueError):
        return None


def ingest(root: str | os.PathLike, *, corpus: str | None = None, index_dir: str | os.PathLike | None = None,
           embedder: Embedder | ComponentSpec | dict | str | None = None, batch_size: int = 32,
           workers: int | None = None, extensions: Iterable[str] | None = None,
           max_pixels: int | None = MAX_PIXELS, progress: Progress | None = None,
           exact_below: int = EXACT_BELOW, strict: bool = False, draft_jpeg: bool = True,
           graph_progress: Progress | None = None, hnsw_m: int | None = None,
           ef_construction: int | None = None) -> IngestReport:
    """Index (or update) ``root`` into a corpus; return what happened. See module docstring.

    ``hnsw_m`` / ``ef_construction``: the HNSW graph's parameters (default: the corpus's own,
    else M=16, ef_construction=100). They are kept with the corpus; new values rebuild the graph
    from the stored vectors (nothing is re-embedded).

    ``progress`` follows the files, ``graph_progress`` the vectors inserted into the HNSW graph
    afterwards (minutes for a first index of a million images; only shown for 20k or more).

    ``draft_jpeg``: when the embedder says its input size (``preprocess_spec.size``), decode JPEGs
    at a reduced DCT scale that still covers it (see :func:`~imagerag_sdk.index.scan.decode_image`).
    """
    t0 = time.perf_counter()
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise CorpusError(f"{root} is not a folder", hint="pass the folder holding your images")
    if batch_size < 1:
        raise CorpusError("batch size must be at least 1")
    _check_graph_params(hnsw_m, ef_construction)
    workers = workers or min(4, os.cpu_count() or 1)
    store = CorpusStore.open(corpus or (None if index_dir else root_path.name), index_dir, write=True)
    try:
        stored_spec = store.embedder_spec
        model: Embedder | None = None
        # The stored embedder, asked again: it is built (the plugin registry read) and its
        # identity checked (which may mean loading the model) only once there is something to embed.
        deferred = store.next_label > 0 and bool(store.embedder_identity) and _own_spec(embedder, stored_spec)
        spec = stored_spec
        if not deferred:
            model, spec = resolve_embedder(embedder, stored_spec)
            deferred = store.next_label > 0 and same_spec(model, stored_spec)
        store.bind(root=root_path, identity=None if deferred or model is None else model.identity, spec=spec)
        if spec is not None:  # the record of how the registry resolved these names (when it was
            # built: not for a run that embeds nothing), which a search builds them from
            store.note_resolved(record(("embedder", spec["use"]), ("retriever", "index")))
        report = IngestReport(corpus=store.name, index_dir=str(store.path), root=str(root_path),
                              embedder=store.embedder_identity or (model.identity if model else ""))
        if hnsw_m is not None or ef_construction is not None:
            m, efc = store.graph_params
            store.set_graph_params(hnsw_m or m, ef_construction or efc)
        walked = root_identity(root_path)  # before the walk: a root replaced during it is checked again
        found = scan(root_path, extensions)
        report.scanned = len(found.stats)
        report.skipped = list(found.skipped)
        state, digest = items_state(store), walk_digest(found.stats)
        fresh: list[Stat] = []
        existing: dict[str, Known] = {}
        gone: list[str] = []
        recorded = unchanged_since(store, state, digest)
        if not recorded:  # else the rows this same walk matched: not read
            fresh, existing, gone = compare(store, found.stats)
        gone_hashes = store.hash_labels(gone)  # their vectors stay readable for a renamed file
        if gone:
            store.commit([], np.zeros((0, 1), np.float32), deletes=gone)
            report.removed = len(gone)
        store.note_root(walked)  # every file under it checked: none left that leads out
        report.unchanged = report.scanned - len(fresh)
        todo: list[FileEntry] = []
        meta_updates: list[NewItem] = []
        for stat in fresh:
            entry = found.entry(stat)
            old = existing.get(entry.path)
            if old is None or old.size != entry.size or old.mtime_ns != entry.mtime_ns:
                todo.append(entry)
            else:  # only its sidecars differ from the row
                fields, problems = read_sidecars(root_path, entry)
                report.warnings += [Problem(entry.path, p, "sidecar") for p in problems]
                meta_updates.append(NewItem(entry.path, old.hash, entry.size, entry.mtime_ns,
                                            entry.sidecar_sig, fields))
        if meta_updates:
            store.commit([], np.zeros((0, 1), np.float32), updates=meta_updates)
            report.metadata_updated = len(meta_updates)
            report.unchanged += len(meta_updates)
        if todo:
            if model is None:
                model, spec = resolve_embedder(embedder, stored_spec)
            if deferred:
                store.bind(root=root_path, identity=model.identity, spec=spec)
            _run(store, model, root_path, todo, existing, gone_hashes, report, batch_size=batch_size,
                 workers=workers, max_pixels=max_pixels, progress=progress, draft_jpeg=draft_jpeg)
        if store.dead_fraction() > COMPACT_ABOVE:
            store.compact()
        report.total = store.count()
        if store.dim and (report.total >= exact_below or store.hnsw_snapshots()):
            sync_hnsw(store, save=True, progress=graph_progress)
            report.backend = "hnsw"
        write_records(store)  # the items by label for searches, once they are all written
        if not fresh and not gone and not recorded:
            note_unchanged(store, state, digest)  # (if the items are still in that state)
        report.hnsw_m, report.hnsw_ef_construction = store.graph_params
        report.seconds = time.perf_counter() - t0
        report.report_path = str(store.write_report(report.to_dict()))
    finally:
        store.close()
    if strict and report.bad:
        raise StrictIngestError(f"{len(report.bad)} file(s) could not be indexed (--strict); "
                                f"first: {report.bad[0].path}: {report.bad[0].reason}",
                                hint=f"see {report.report_path}")
    return report


def _own_spec(embedder: Embedder | ComponentSpec | dict | str | None, stored: dict[str, Any] | None) -> bool:
    """Whether ``embedder`` asks for the corpus's own embedder: none given, or its very spec."""
    if stored is None or embedder is None:
        return stored is not None
    if isinstance(embedder, str):
        return {"use": embedder} == stored
    if isinstance(embedder, ComponentSpec):
        return {"use": embedder.use, **embedder.options()} == stored
    return isinstance(embedder, dict) and embedder == stored


def _run(store: CorpusStore, model: Embedder, root: Path, todo: list[FileEntry],
         existing: dict[str, Known], gone_hashes: dict[str, int], report: IngestReport, *,
         batch_size: int, workers: int, max_pixels: int | None, progress: Progress | None, draft_jpeg: bool = True) -> None:
    model.load()
    fast = model.supports_fast_path
    min_side = input_side(model) if draft_jpeg else None
    hash_labels = {**gone_hashes, **store.hash_labels()}

    def work(entry: FileEntry) -> _Work:
        start = time.thread_time()
        w = prepare(entry)
        w.cpu = time.thread_time() - start
        return w

    def prepare(entry: FileEntry) -> _Work:
        fields, problems = read_sidecars(root, entry)
        try:
            data, digest = read_and_hash(root / entry.path)
        except OSError as exc:
            return _Work(entry, "bad", reason=f"cannot read: {exc.strerror or exc}")
        old = existing.get(entry.path)
        if old is not None and old.hash == digest:
            return _Work(entry, "touch", digest, fields, sidecar_problems=problems)
        if digest in hash_labels:
            return _Work(entry, "reuse", digest, fields, label=hash_labels[digest], sidecar_problems=problems)
        try:
            img = decode_image(data, entry.path, max_pixels, min_side)
            payload = model.preprocess(img) if fast else img
        except BadImageError as exc:
            return _Work(entry, "bad", digest, reason=exc.message)
        except Exception as exc:  # a preprocessing failure on one file must not stop the run
            return _Work(entry, "bad", digest, reason=f"preprocessing failed: {type(exc).__name__}: {exc}")
        return _Work(entry, "embed", digest, fields, payload, sidecar_problems=problems)

    adds: list[NewItem] = []
    add_vecs: list[np.ndarray] = []
    embeds: list[_Work] = []
    updates: list[NewItem] = []
    deletes: list[str] = []

    def new_item(w: _Work) -> NewItem:
        return NewItem(w.entry.path, w.hash, w.entry.size, w.entry.mtime_ns, w.entry.sidecar_sig, w.fields)

    def flush() -> None:
        vecs = list(add_vecs)
        rows = list(adds)
        if embeds:
            ok, out = _embed_isolating(model, embeds, fast, report, threads)
            rows += [new_item(w) for w in ok]
            vecs += list(out)
            report.embedded += len(ok)
        dim = vecs[0].shape[0] if vecs else 1
        start = store.next_label
        store.commit(rows, np.stack(vecs) if vecs else np.zeros((0, dim), np.float32),
                     updates=updates, deletes=deletes)
        for i, row in enumerate(rows):
            hash_labels[row.hash] = start + i
            if row.path in existing:
                report.changed += 1
            else:
                report.added += 1
        for done in (adds, add_vecs, embeds, updates, deletes):
            done.clear()

    if progress is not None:
        progress.start(len(todo))
    window = max(2 * batch_size, 4 * workers)
    pending: deque = deque()
    entries = iter(todo)
    threads = ModelThreads(batch_size, enabled=model.uses_torch_threads)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imagerag-ingest") as pool:
            def fill() -> None:
                while len(pending) < window:
                    entry = next(entries, None)
                    if entry is None:
                        return
                    pending.append(pool.submit(work, entry))

            fill()
            while pending:
                w: _Work = pending.popleft().result()
                fill()
                report.warnings += [Problem(w.entry.path, p, "sidecar") for p in w.sidecar_problems]
                if w.kind == "bad":
                    report.bad.append(Problem(w.entry.path, w.reason))
                    if w.entry.path in existing:
                        deletes.append(w.entry.path)
                elif w.kind == "touch":
                    updates.append(new_item(w))
                    report.unchanged += 1
                elif w.kind == "reuse":
                    adds.append(new_item(w))
                    add_vecs.append(store.get_vectors([w.label])[0])
                    report.reused += 1
                else:
                    embeds.append(w)
                if progress is not None:
                    progress.advance(1)
                if len(embeds) >= batch_size or len(adds) + len(updates) + len(deletes) >= 4 * batch_size:
                    flush()
            flush()
    finally:
        threads.restore()
        for fut in pending:
            fut.cancel()
        if progress is not None:
            progress.close()


def _embed_isolating(model: Embedder, works: list[_Work], fast: bool, report: IngestReport,
                     threads: ModelThreads | None = None) -> tuple[list[_Work], np.ndarray]:
    """Embed a batch; if the model fails on it, retry one by one so only the culprits are dropped.

    ``threads``: the run's first batch probes the model there first (a failing probe is a failing
    batch) and keeps the probe's rows; every batch runs on the torch thread count it picks, timed
    for its choice."""
    payloads = [w.payload for w in works]
    try:
        if threads is None:
            return works, embed_batch(model, payloads, fast)
        head = threads.probe(lambda some: embed_batch(model, list(some), fast), payloads,
                             float(np.mean([w.cpu for w in works])))
        if head is not None and len(head) == len(payloads):
            return works, head
        done = 0 if head is None else len(head)
        rest = threads.run(lambda: embed_batch(model, payloads[done:], fast), len(payloads) - done)
        return works, rest if head is None else np.concatenate([head, rest])
    except ImageRAGError:
        raise
    except Exception as first:
        ok, rows = [], []
        for w in works:
            try:
                rows.append(embed_batch(model, [w.payload], fast)[0])
                ok.append(w)
            except Exception as exc:
                report.bad.append(Problem(w.entry.path, f"embedder failed: {type(exc).__name__}: {exc}"))
        if not ok and report.embedded == 0:
            raise first  # nothing has ever embedded: the model itself is broken
        return ok, np.stack(rows) if rows else np.zeros((0, 1), np.float32)
