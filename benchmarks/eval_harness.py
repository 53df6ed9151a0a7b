"""Evaluation-harness benchmark: scorer throughput through the harness vs the bare model, and the
harness's own share of an ``imagerag eval``'s wall time.

Not a test. Two measurements, each printed as a ratio measured side by side in one run:

1. **Scorer throughput** (target ≥ 0.90): the harness's scoring path (``eval.runner.score_all`` →
   ``eval.scoring.score_units`` over cached units: PNG loading, ahead in threads, batching,
   ``outputs.check_scores``, a cache file per unit) against two anchors in the same batches: the
   scorer's loaded model called directly (``embed_texts`` + ``embed_images`` and the dot product)
   on the same images already decoded, and a plain one-thread loop that reads and decodes the PNG
   files and calls that model (the least work that scores files); repeats interleaved. For the ``clip`` scorer with a full-size ViT-B-32 of random weights
   (``weights: null``, nothing downloaded) in each ``--dtypes`` and with the tiny random CLIP.
2. **Harness overhead** (target ≤ 0.10): one whole eval (``runner.plan`` + ``runner.run``) over a
   small set, its wall time split into the components' calls (load, generate, critique, rephrase,
   search, rerank, score: every role method, timed at the outermost call), the pipeline's own work
   around them (``ImageRAG.run``: the run folder's images, trace, report) and the rest — the
   harness (planning, cache, image loading for scorers, rows, statistics, results pages).
   ``--components tiny`` uses the offline demo's ``tiny`` profile (examples/offline_demo.py:
   tiny SDXL + IP-Adapter, tiny CLIP critic and index) with the tiny ``clip`` and ``dino`` scorers;
   ``--components fake`` the ``fake`` profile with the ``colour`` scorer (no model at all).

    python benchmarks/eval_harness.py                       # both parts, the docs' figures
    python benchmarks/eval_harness.py --quick               # smallest settings (the test's)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

COLOURS = ["red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "cyan", "navy", "olive", "maroon"]
BIRDS = ["finch", "heron", "parrot", "owl", "wren", "gull", "robin", "crane", "stork", "swift", "lark", "kite"]
ROLE_METHODS = ("load", "generate", "critique", "rephrase", "search", "search_images", "rerank", "score",
                "score_detailed")


def write_set(path: Path, n: int, real_images: list[str] | None = None) -> Path:
    items = []
    for i in range(n):
        concept = f"{COLOURS[i % len(COLOURS)]} {BIRDS[(i // len(COLOURS)) % len(BIRDS)]}"
        item: dict[str, Any] = {"id": f"item-{i:04d}", "prompt": f"A photo of a {concept} number {i}",
                                "concept": concept}
        if real_images:
            item["real_images"] = real_images
        items.append(item)
    path.write_text(yaml.safe_dump({"items": items}, sort_keys=False))
    return path


# -- 1. scorer throughput ------------------------------------------------------------------------
def cached_plan(root: Path, scorer: dict[str, Any], units: int, batch: int, size: int) -> Any:
    """A plan of ``units`` units of the ``fake`` system whose generations are already cached: an
    initial and a different final ``size``² PNG each, as a generator leaves them."""
    from imagerag_sdk.eval import runner
    from imagerag_sdk.eval.cache import Cache

    bench = write_set(root / "set.yaml", units)
    p = runner.plan(bench, runner.system_args(["fake"], [], []), [scorer], root / "out", batch_size=batch)
    cache, rng = Cache(p.out), np.random.default_rng(0)
    for u in p.units():
        folder = p.out / "runs" / "fake" / u.item.id
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("initial.png", "final.png"):
            pixels = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR).save(folder / name)
        rel = folder.relative_to(p.out).as_posix()
        cache.write(cache.generation_path(u.system.hash, u.name),
                    {"status": "done", "run_dir": rel, "initial_image": f"{rel}/initial.png",
                     "final_image": f"{rel}/final.png", "references": [],
                     "critic": {"matched": False, "gave_up": False, "fell_back": False, "critic_error": None}})
    return p


def scorer_throughput(label: str, options: dict[str, Any], *, units: int, batch: int, size: int,
                      repeats: int) -> dict[str, Any]:
    from imagerag_sdk.eval import runner
    from imagerag_sdk.eval.cache import Cache
    from imagerag_sdk.images import load_rgb

    with tempfile.TemporaryDirectory() as tmp:
        p = cached_plan(Path(tmp), {"use": "clip", **options, "batch_size": 2 * batch}, units, batch, size)
        cache, scorer, todo = Cache(p.out), p.scorers[0], p.units()
        scorer.component.load()
        model = scorer.component.embedder
        gens = [runner._generated(cache, u) for u in todo]
        files = [p.out / g[key] for g in gens if g for key in ("initial_image", "final_image")]
        images = [load_rgb(f) for f in files]
        texts = [u.item.prompt for u in todo for _ in range(2)]

        def embed(t: list[str], batch_images: list[Any]) -> None:
            unique = list(dict.fromkeys(t))
            rows = dict(zip(unique, model.embed_texts(unique), strict=True))
            vecs = model.embed_images(batch_images)
            [float(np.dot(rows[x], v)) for x, v in zip(t, vecs, strict=True)]

        def bare() -> None:  # the model alone, on images already decoded
            for start in range(0, len(images), 2 * batch):
                embed(texts[start:start + 2 * batch], images[start:start + 2 * batch])

        def plain() -> None:  # the least work that scores files: read, decode, model; one thread
            for start in range(0, len(files), 2 * batch):
                embed(texts[start:start + 2 * batch], [load_rgb(f) for f in files[start:start + 2 * batch]])

        def harness() -> None:
            runner.score_all(p, cache, scorer, todo)
            assert not p.errors, p.errors

        runner.score_all(p, cache, scorer, todo[:1])  # warm-up of the paths
        model.embed_images(images[:2])
        times: dict[str, list[float]] = {"bare": [], "plain": [], "harness": []}
        for r in range(repeats):
            order = [("bare", bare), ("plain", plain), ("harness", harness)]
            for name, fn in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    bare_s, plain_s, harness_s = sum(times["bare"]), sum(times["plain"]), sum(times["harness"])
    n = len(images) * repeats

    def median(anchor: str) -> float:
        return statistics.median(a / h for a, h in zip(times[anchor], times["harness"], strict=True))

    return {"scorer": label, "images": len(images), "repeats": repeats, "bare_img_s": n / bare_s,
            "plain_img_s": n / plain_s, "harness_img_s": n / harness_s, "ratio": bare_s / harness_s,
            "ratio_median_repeat": median("bare"), "ratio_plain": plain_s / harness_s,
            "ratio_plain_median_repeat": median("plain")}


# -- 2. the harness's share of an eval -----------------------------------------------------------
class Clock:
    """Seconds spent inside wrapped calls; role methods count at their outermost call only (a
    critic's embedder inside ``critique`` is not counted twice)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.depth = 0

    def wrap(self, owner: Any, attr: str, label: str, *, component: bool,
             label_of: Callable[[Any], str] | None = None) -> None:
        """Time ``owner.attr`` under ``label`` (``label_of(first argument)`` for a method wrapped on
        its class)."""
        fn = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if component and self.depth:
                return fn(*args, **kwargs)
            self.depth += component
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label_of(args[0]) if label_of else label] += time.perf_counter() - t0
                self.depth -= component

        setattr(owner, attr, timed)


def components_of(plan: Any) -> Iterator[tuple[str, Any]]:
    for _, pipeline in plan.systems:
        yield from pipeline.components().items()
    for scorer in plan.scorers:
        yield "scorer", scorer.component


def eval_setup(kind: str, root: Path, items: int, home: Path | None) -> tuple[list[str], list[Any], str]:
    """The systems, scorers and set path of the profiled eval."""
    if kind == "fake":
        return ["fake"], ["colour"], str(write_set(root / "set.yaml", items))
    os.environ["IMAGERAG_HOME"] = str(home or root / "home")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from offline_demo import prepare

    from imagerag_clip.tiny import build_tiny_clip, build_tiny_dino
    from imagerag_sdk.paths import cache_dir

    prepare()  # reuses what is built under IMAGERAG_HOME
    models = cache_dir() / "demo" / "models"
    real = sorted(str(p) for p in (cache_dir() / "demo" / "corpus").rglob("*.png"))[:3]
    scorers = [{"use": "clip", **build_tiny_clip(models / "clip")},
               {"use": "dino", **build_tiny_dino(models / "dino")}]
    return ["tiny"], scorers, str(write_set(root / "set.yaml", items, real))


def harness_share(kind: str, *, items: int, seeds: int, home: Path | None) -> dict[str, Any]:
    from imagerag_sdk.eval import results, runner
    from imagerag_sdk.pipeline import ImageRAG
    from imagerag_sdk.roles import Component

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        profiles, scorers, set_path = eval_setup(kind, root, items, home)
        clock = Clock()
        saved = [(runner, "plan", runner.plan), (runner, "write_results", runner.write_results),
                 (results, "write_results", results.write_results), (ImageRAG, "run", ImageRAG.run)]
        clock.wrap(runner, "plan", "harness: planning", component=False)
        clock.wrap(runner, "write_results", "harness: rows, stats", component=False)
        clock.wrap(results, "write_results", "harness: results pages", component=False)
        clock.wrap(ImageRAG, "run", "pipeline.run", component=False)
        roles: dict[int, str] = {}
        saved.append((Component, "load", Component.load))
        clock.wrap(Component, "load", "load", component=True, label_of=lambda c: f"{roles.get(id(c), 'nested')}.load")
        try:
            t0 = time.perf_counter()
            p = runner.plan(set_path, runner.system_args(profiles, [], []), scorers, root / "out",
                            seeds=list(range(seeds)))
            for role, comp in components_of(p):
                roles[id(comp)] = role
                for method in ROLE_METHODS[1:]:  # load: wrapped on the class, whoever calls it
                    if callable(getattr(comp, method, None)):
                        clock.wrap(comp, method, f"{role}.{method}", component=True)
            summary = runner.run(p, show_progress=False)
            wall = time.perf_counter() - t0
        finally:
            for owner, attr, fn in saved:
                setattr(owner, attr, fn)
    sec = dict(clock.seconds)
    comps = {k: v for k, v in sec.items() if "." in k and k != "pipeline.run"}
    in_components = sum(comps.values())
    scoring = sum(v for k, v in comps.items() if k.startswith("scorer."))
    pipeline_own = sec.get("pipeline.run", 0.0) - (in_components - scoring)
    harness = wall - in_components - pipeline_own
    parts = {k: v for k, v in sec.items() if k.startswith("harness")}
    once = sum(parts.values())  # planning, rows and statistics, pages: once per eval, whatever its size
    loads = sum(v for k, v in comps.items() if k.endswith(".load"))
    done = sum(s["done"] for s in summary["systems"])
    return {"components": kind, "units": items * seeds, "done": done, "wall_s": wall, "calls": comps,
            "components_s": in_components, "pipeline_own_s": pipeline_own, "harness_s": harness,
            "harness_parts": parts, "harness_share": harness / wall,
            "not_components_share": (harness + pipeline_own) / wall,
            "per_unit_harness_share": (harness - once) / (wall - once - loads)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smallest settings: tiny scorer only, 4 units, fake components")
    ap.add_argument("--units", type=int, default=16, help="units scored per repeat (each 2 images), full-size model")
    ap.add_argument("--tiny-units", type=int, default=128, help="the same for the tiny model")
    ap.add_argument("--batch-size", type=int, default=8, help="harness batch in units (the scorer's: 2×)")
    ap.add_argument("--size", type=int, default=1024, help="side of the generated PNGs for the full-size model")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--dtypes", default="bf16,fp32", help="full-size ViT-B-32 dtypes; empty: tiny only")
    ap.add_argument("--components", choices=("tiny", "fake"), default="tiny")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--home", type=Path, help="IMAGERAG_HOME for the tiny demo (reused; default: a temp dir)")
    args = ap.parse_args(argv)
    if args.quick:
        args.units, args.tiny_units, args.batch_size, args.repeats, args.dtypes = 4, 4, 2, 2, ""
        args.components, args.items = "fake", 4
    try:
        from imagerag_clip.tiny import build_tiny_clip
    except ImportError:
        sys.exit("the CLIP plugin is not installed: pip install -e plugins/imagerag-clip")
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    print(f"1. clip scorer throughput, harness / bare model on decoded images and harness / a plain loop that "
          f"reads + decodes the files (target >= 0.90); batch {args.batch_size} units (2 images each), "
          f"{args.repeats} interleaved repeats")
    runs: list[tuple[str, dict[str, Any], int, int]] = []
    with tempfile.TemporaryDirectory() as tiny_dir:
        runs.append(("tiny CLIP", build_tiny_clip(tiny_dir), 64, args.tiny_units))
        for dtype in filter(None, args.dtypes.split(",")):
            runs.append((f"ViT-B-32 {dtype}", {"model": "ViT-B-32", "weights": None, "dtype": dtype,
                                               "device": "cpu"}, args.size, args.units))
        for label, options, size, units in runs:
            fig = scorer_throughput(label, options, units=units, batch=args.batch_size, size=size,
                                    repeats=args.repeats)
            print(f"   {label:>18} ({units} units, {size}² PNGs): bare {fig['bare_img_s']:8.1f} img/s, plain loop "
                  f"{fig['plain_img_s']:8.1f} img/s, harness {fig['harness_img_s']:8.1f} img/s, ratio "
                  f"{fig['ratio']:.3f} (median of repeats {fig['ratio_median_repeat']:.3f}); harness / plain loop "
                  f"{fig['ratio_plain']:.3f} (median {fig['ratio_plain_median_repeat']:.3f})")
    fig2 = harness_share(args.components, items=args.items, seeds=args.seeds, home=args.home)
    print(f"2. harness share of one eval (target <= 0.10): {args.components} components, "
          f"{fig2['units']} units ({fig2['done']} done), wall {fig2['wall_s']:.2f} s")
    for name, sec in sorted(fig2["calls"].items(), key=lambda kv: -kv[1]):
        print(f"   {name:>24}: {sec:8.3f} s")
    print(f"   {'components, all':>24}: {fig2['components_s']:8.3f} s  (a load inside a call counts for that call)")
    print(f"   {'pipeline.run, own':>24}: {fig2['pipeline_own_s']:8.3f} s  (run folder: images, trace, report)")
    for name, sec in fig2["harness_parts"].items():
        print(f"   {name:>24}: {sec:8.3f} s")
    print(f"   {'harness, all':>24}: {fig2['harness_s']:8.3f} s")
    print(f"   {'harness, the rest':>24}: {fig2['harness_s'] - sum(fig2['harness_parts'].values()):8.3f} s  "
          "(cache, the scoring path's image loading and checks, eval.json)")
    print(f"   harness share {fig2['harness_share']:.3f}; all but the components' calls "
          f"{fig2['not_components_share']:.3f}; per-unit harness share (without the once-per-eval "
          f"parts and the loads) {fig2['per_unit_harness_share']:.3f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
