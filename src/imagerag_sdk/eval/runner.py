"""``imagerag eval``: one ImageRAG run per item × seed × system, its initial image the baseline
("without"), its final image the result ("with"); every scorer over both; rows and statistics.

Everything is checked before anything runs (the set, each system's profile and overrides, each
scorer, real images for scorers that need them). Each finished generation and each score is a file
of ``OUT/cache`` (:mod:`.cache`), so running the same command again continues where it stopped.
One failing unit is recorded in its row and the rest go on. See docs/evaluation.md.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import ConfigError
from .cache import Cache, score_name, unit_name
from .results import MAX_ITEMS
from .scoring import Loaded, build_scorers, check_real_images, score_units
from .sets import BenchmarkSet, Item, load_set
from .systems import System, parse_system, resolve_system

DEFAULT_BATCH = 16


@dataclass(frozen=True)
class Unit:
    system: System
    item: Item
    seed: int

    @property
    def name(self) -> str:
        return unit_name(self.item.id, self.item.prompt, self.seed)

    @property
    def score_name(self) -> str:
        """The unit's score file: its name and a hash of what scorers read besides the images."""
        return score_name(self.name, self.item.concept, self.item.real_images)


@dataclass
class Plan:
    """What one evaluation will do, checked."""

    bench: BenchmarkSet
    seeds: list[int]
    systems: list[tuple[System, Any]]  # (system, its ImageRAG pipeline)
    scorers: list[Loaded]
    out: Path
    batch_size: int = DEFAULT_BATCH
    errors: dict[tuple[str, str], str] = field(default_factory=dict)  # (system, unit) -> error this run

    def units(self) -> list[Unit]:
        return [Unit(s, item, seed) for s, _ in self.systems for item in self.bench.items for seed in self.seeds]


def system_args(profiles: Sequence[str], systems: Sequence[str], overrides: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """``(name, profile, overrides)`` of each ``--profile P`` (named after P) and each
    ``--system 'NAME=PROFILE key=value …'``; ``overrides`` (``--set``) apply to all of them."""
    out = []
    for p in profiles:
        name = Path(p).stem if p.endswith((".yaml", ".yml")) else p
        out.append((name, p, list(overrides)))
    for text in systems:
        name, profile, own = parse_system(text)
        out.append((name, profile, list(overrides) + own))
    if not out:
        raise ConfigError("no system to evaluate", hint="pass --profile NAME (repeatable) or --system 'NAME=PROFILE key=value'")
    seen: set[str] = set()
    for name, *_ in out:
        if name in seen:
            raise ConfigError(f"two systems are named '{name}'",
                              hint="name each with --system 'NAME=PROFILE key=value …' (e.g. the same profile "
                                   "twice with different overrides)")
        seen.add(name)
    return out


def plan(set_path: str | Path, systems: Sequence[tuple[str, str, list[str]]], scorers: Sequence[str | dict[str, Any]],
         out: str | Path, *, seeds: Sequence[int] = (0,), limit: int | None = None,
         batch_size: int = DEFAULT_BATCH) -> Plan:
    """Check everything and build (not load) every component; raise before anything runs."""
    from ..profiles import build_pipeline

    bench = load_set(set_path)
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit {limit}: give at least 1")
        bench = BenchmarkSet(bench.path, bench.items[:limit])
    if not seeds:
        raise ConfigError("no seed given", hint="e.g. --seeds 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"a seed is given twice ({', '.join(map(str, seeds))})", hint="list each seed once")
    if not scorers:
        raise ConfigError("no scorer given", hint="pass --scorer NAME (clip, siglip, dino, vlm; 'imagerag plugins' lists them)")
    loaded = build_scorers(scorers)
    check_real_images(loaded, bench.without_real_images(), str(bench.path))
    built = []
    for name, profile, overrides in systems:
        system, resolved = resolve_system(name, profile, overrides)
        built.append((system, build_pipeline(resolved)))
    return Plan(bench, list(seeds), built, loaded, Path(out).expanduser().resolve(), batch_size)


def run(p: Plan, *, show_progress: bool = True, max_items: int | None = MAX_ITEMS) -> dict[str, Any]:
    """Generate, score, write ``rows.jsonl``, ``rows.csv``, ``summary.json``, ``results.md`` and
    ``results.html`` (its image grid: the first ``max_items`` items × seeds, ``None`` all); the summary."""
    from ..pipeline import _stage_errors
    from .progress import Bar
    from .results import write_results as write_pages

    p.out.mkdir(parents=True, exist_ok=True)
    cache = Cache(p.out)
    write_text(p.out / "eval.json", json.dumps(_asked(p), indent=2, ensure_ascii=False))
    units = p.units()
    gen_todo = [u for u in units if cache.read(cache.generation_path(u.system.hash, u.name)) is None]
    with Bar(show_progress) as bar:
        bar.phase("generate", len(gen_todo))
        pipelines = {s.name: pipe for s, pipe in p.systems}
        for u in gen_todo:
            bar.note(f"{u.system.name} · {u.item.id} · seed {u.seed}")
            if _generated(cache, u) is None:  # two systems of the same configuration share their runs
                _generate(p, cache, pipelines[u.system.name], u)
            bar.advance()
        for scorer in p.scorers:
            todo = [u for u in units if _generated(cache, u) is not None
                    and cache.read(cache.score_path(scorer.spec.hash, u.system.hash, u.score_name)) is None]
            bar.phase(f"score {scorer.spec.name}", len(todo))
            if todo:  # a scorer that cannot load stops the eval; what is done stays cached
                with _stage_errors("load", scorer.component):
                    scorer.component.load()
            score_all(p, cache, scorer, todo, bar.advance)
    summary = write_results(p, cache)
    write_pages(p.out, max_items=max_items)
    return summary


def _asked(p: Plan) -> dict[str, Any]:
    return {"set": str(p.bench.path), "seeds": p.seeds, "items": len(p.bench.items),
            "systems": [s.describe() for s, _ in p.systems], "scorers": [s.spec.describe() for s in p.scorers],
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _generated(cache: Cache, u: Unit) -> dict[str, Any] | None:
    return cache.read(cache.generation_path(u.system.hash, u.name))


def _rel(path: Path, out: Path) -> str:
    return path.resolve().relative_to(out).as_posix()


def _generate(p: Plan, cache: Cache, pipeline: Any, u: Unit) -> None:
    from ..errors import ImageRAGError
    from .scoring import one_line

    try:
        result = pipeline.run(u.item.prompt, seed=u.seed, out=p.out / "runs" / u.system.name)
    except Exception as exc:  # one failing unit is recorded in its row; the rest go on
        what = str(exc) if isinstance(exc, ImageRAGError) else f"{type(exc).__name__}: {exc}"
        p.errors[(u.system.name, u.name)] = one_line(f"generation failed: {what}")
        return
    trace, run_dir = result.trace, Path(result.run_dir)
    last = trace.generations[-1].round if trace.generations else 0
    used = trace.rounds[last - 1].used if last > 0 and len(trace.rounds) >= last else []
    first = trace.rounds[0].critique if trace.rounds else None
    record = {
        "status": "done", "run_dir": _rel(run_dir, p.out),
        "initial_image": _rel(run_dir / "initial.png", p.out),
        "final_image": _rel(run_dir / (trace.final_image or "initial.png"), p.out),
        "references": [_rel(run_dir / r.copied_to, p.out) for r in used if r.copied_to],
        "critic": {"matched": first.matches if first is not None else None,
                   "gave_up": any(r.critique is not None and r.critique.gave_up for r in trace.rounds),
                   "fell_back": any(r.fallback for r in trace.rounds),
                   "critic_error": trace.critic_error},
        "seconds": trace.seconds}
    cache.write(cache.generation_path(u.system.hash, u.name), record)


def score_all(p: Plan, cache: Cache, scorer: Loaded, todo: Sequence[Unit],
              advance: Callable[[int], None] = lambda n: None) -> None:
    """Score ``todo`` in batches of ``p.batch_size``, the next batch's images decoded in threads
    (:mod:`.prefetch`) while this one is scored; ``advance(len(batch))`` after each."""
    from .prefetch import Prefetch, decode_pair

    def images(u: Unit) -> list[Any]:
        gen = _generated(cache, u)
        assert gen is not None  # only generated units are scored
        return decode_pair(p.out / gen["initial_image"], p.out / gen["final_image"])

    batches = [todo[start:start + p.batch_size] for start in range(0, len(todo), p.batch_size)]
    with Prefetch(images) as ahead:
        for batch, decoded in ahead.batches(batches):
            _score(p, cache, scorer, list(zip(batch, decoded, strict=True)))
            advance(len(batch))


def _score(p: Plan, cache: Cache, scorer: Loaded, chunk: list[tuple[Unit, Future[list[Any]]]]) -> None:
    """Score one batch: each unit with the future of its decoded images (one image when the initial
    and final files are the same content, so a scorer that is not deterministic, a VLM, cannot make
    a difference out of nothing)."""
    from ..runtrace import plain
    from ..types import ScoreItem

    def items(pair: tuple[Unit, Future[list[Any]]]) -> list[ScoreItem]:
        u, decoded = pair
        return [ScoreItem(prompt=u.item.prompt, image=image, concept=u.item.concept,
                          real_images=u.item.real_images) for image in decoded.result()]

    def done(pair: tuple[Unit, Any], scores: list[Any]) -> None:
        u, first, last = pair[0], scores[0], scores[-1]
        cache.write(cache.score_path(scorer.spec.hash, u.system.hash, u.score_name),
                    {"initial": {"value": float(first.value), "detail": plain(dict(first.detail))},
                     "final": {"value": float(last.value), "detail": plain(dict(last.detail))}})

    def failed(pair: tuple[Unit, Any], error: str) -> None:
        u = pair[0]
        p.errors[(u.system.name, f"{u.name}:{scorer.spec.name}")] = error

    score_units(scorer, chunk, items, done, failed)


def rows(p: Plan, cache: Cache) -> list[dict[str, Any]]:
    """One row per (system, item, seed), from the cache and this run's errors."""
    out = []
    for u in p.units():
        gen = _generated(cache, u)
        row: dict[str, Any] = {"system": u.system.name, "system_hash": u.system.hash, "item": u.item.id,
                               "seed": u.seed, "prompt": u.item.prompt, "concept": u.item.concept}
        if gen is None:
            error = p.errors.get((u.system.name, u.name), "not generated (interrupted); rerun the command")
            row.update(status="failed", error=error, run_dir=None, initial_image=None, final_image=None,
                       references=[], critic=None, scores={}, score_details={})
            out.append(row)
            continue
        scores: dict[str, Any] = {}
        details: dict[str, Any] = {}
        errors = []
        for scorer in p.scorers:
            got = cache.read(cache.score_path(scorer.spec.hash, u.system.hash, u.score_name))
            if got is None:
                errors.append(p.errors.get((u.system.name, f"{u.name}:{scorer.spec.name}"),
                                           f"scorer '{scorer.spec.name}' did not run"))
                continue
            scores[scorer.spec.name] = {"initial": got["initial"]["value"], "final": got["final"]["value"]}
            if got["initial"]["detail"] or got["final"]["detail"]:
                details[scorer.spec.name] = {"initial": got["initial"]["detail"], "final": got["final"]["detail"]}
        row.update(status="done", error="; ".join(errors) or None,
                   **{k: gen[k] for k in ("run_dir", "initial_image", "final_image", "references", "critic")},
                   scores=scores, score_details=details)
        out.append(row)
    return out


def write_results(p: Plan, cache: Cache) -> dict[str, Any]:
    """``rows.jsonl``, ``rows.csv`` and ``summary.json`` from the cache; the summary. (The pages,
    results.md and results.html, are drawn from these files by :mod:`.results`.)"""
    from .stats import summarize
    from .tables import write_csv

    all_rows = rows(p, cache)
    write_text(p.out / "rows.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in all_rows))
    metrics = [s.spec.name for s in p.scorers]
    write_csv(p.out / "rows.csv", all_rows, metrics)
    summary = summarize(all_rows, set_path=str(p.bench.path), items=len(p.bench.items), seeds=p.seeds,
                        systems=[s.describe() for s, _ in p.systems], metrics=metrics)
    write_text(p.out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
