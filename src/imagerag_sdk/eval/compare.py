"""``compare.md`` and ``compare.html``: two eval output folders side by side (``imagerag eval compare``).

Both folders' systems appear in one table, each labelled by its folder, over the metrics both
folders hold. A system present in both (same name, or paired by the caller) gets the per-item
paired difference between the two folders' final scores: second − first on each item and seed
done in both, with a bootstrap interval (the first folder's bootstrap settings) and a win rate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import ConfigError
from . import pages
from .pages import Cell, Table
from .results import (
    MAX_ITEMS,
    EvalFolder,
    Written,
    chart,
    critic_table,
    diffs_table,
    failures,
    grid,
    load_folder,
    markdown,
    places,
    scores_table,
    systems_table,
)
from .stats import paired


def labels(a: EvalFolder, b: EvalFolder) -> tuple[str, str]:
    """How each folder's systems are labelled: its name, or more of its path when both share it."""
    for depth in (1, 2, 3):
        la, lb = ("/".join(f.root.parts[-depth:]) for f in (a, b))
        if la != lb:
            return la, lb
    return "A", "B"


def pairing(a: EvalFolder, b: EvalFolder, extra: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Systems compared across the folders: those named alike, then ``extra`` (name in a, name in b)."""
    names_a = [str(s.get("name")) for s in a.systems]
    names_b = [str(s.get("name")) for s in b.systems]
    for first, second in extra:
        for name, names, folder in ((first, names_a, a), (second, names_b, b)):
            if name not in names:
                raise ConfigError(f"--pair names system '{name}', which {folder.root} does not hold",
                                  hint=f"its systems: {', '.join(names) or 'none'}")
    pairs = [(n, n) for n in names_a if n in names_b]
    return pairs + [p for p in extra if p not in pairs]


def final_scores(folder: EvalFolder, system: str, metric: str) -> dict[tuple[str, str], float]:
    """(item, seed) → the final score of ``system``'s done rows that have one."""
    out = {}
    for row in folder.rows:
        if row.get("system") != system or row.get("status") != "done":
            continue
        value = pages.finite(((row.get("scores") or {}).get(metric) or {}).get("final"))
        if value is not None:
            out[(str(row.get("item")), json.dumps(row.get("seed")))] = value
    return out


def between_table(a: EvalFolder, b: EvalFolder, la: str, lb: str, pairs: Sequence[tuple[str, str]],
                  metrics: Sequence[str], systems: Sequence[tuple[str, dict[str, Any]]]) -> Table:
    boot = a.bootstrap
    level = pages.finite(boot.get("level")) or 0.95
    resamples, seed = int(boot.get("resamples") or 10000), int(boot.get("seed") or 0)
    pct = f"{100 * level:g} %"
    rows = []
    for name_a, name_b in pairs:
        shown = name_a if name_a == name_b else f"{name_a} → {name_b}"
        for metric in metrics:
            first, second = final_scores(a, name_a, metric), final_scores(b, name_b, metric)
            common = [k for k in first if k in second]
            if not common:
                rows.append([Cell(shown), Cell(metric), Cell("0", num=True)] + [Cell(pages.DASH, num=True)] * 3)
                continue
            stat = paired([first[k] for k in common], [second[k] for k in common],
                          resamples=resamples, seed=seed, level=level)
            diff, d = stat["diff"], places(systems, metric)
            rows.append([Cell(shown), Cell(metric), Cell(str(diff["n"]), num=True),
                         Cell(pages.signed(diff["mean"], d), num=True),
                         Cell(pages.interval(diff["ci_low"], diff["ci_high"], d), num=True,
                              tone=pages.tone(diff["ci_low"], diff["ci_high"])),
                         Cell(pages.percent(stat["win_rate"]), num=True)])
    return Table(f"Final scores, {lb} − {la}", ["system", "metric", "pairs", "mean difference",
                                                f"{pct} interval", f"{lb} wins"], rows,
                 note=f"Per item and seed done in both folders: the final score in {lb} minus the one in "
                      f"{la}; {pct} percentile bootstrap interval over the pairs ({resamples} resamples, "
                      f"seed {seed}); wins: share of pairs where {lb} scores higher (ties count half).")


def write_compare(dir_a: str | os.PathLike[str], dir_b: str | os.PathLike[str], out: str | os.PathLike[str],
                  *, pairs: Sequence[tuple[str, str]] = (), max_items: int | None = MAX_ITEMS) -> Written:
    """Write ``compare.md`` and ``compare.html`` into ``out`` (made if missing) for the eval
    output folders ``dir_a`` and ``dir_b``."""
    a, b = load_folder(dir_a), load_folder(dir_b)
    la, lb = labels(a, b)
    metrics = [m for m in a.metrics if m in b.metrics]
    matched = pairing(a, b, pairs)
    systems = ([(f"{la}: {s.get('name')}", s) for s in a.systems]
               + [(f"{lb}: {s.get('name')}", s) for s in b.systems])
    notes = []
    alone = [f"{m} (only in {la if m in a.metrics else lb})" for m in dict.fromkeys(a.metrics + b.metrics)
             if m not in metrics]
    if alone:
        notes.append("Metrics not in both folders, left out: " + ", ".join(alone) + ".")
    set_a, set_b = a.summary.get("set"), b.summary.get("set")
    if set_a != set_b:
        notes.append(f"The folders evaluated different sets ({set_a} and {set_b}): only items in both are paired.")
    if not matched:
        notes.append("No system is in both folders: name pairs with --pair SYSTEM_A=SYSTEM_B.")
    tables = [scores_table(systems, metrics, "Scores (mean ± s.e.), both folders"),
              between_table(a, b, la, lb, matched, metrics, systems),
              diffs_table(systems, metrics, a.bootstrap.get("level")), critic_table(systems), systems_table(systems)]
    failed = failures(a, f"{la}: ") + failures(b, f"{lb}: ")
    target = Path(out).resolve()
    target.mkdir(parents=True, exist_ok=True)
    cards, total = grid([(f"{la}: ", a, {p[0] for p in matched}), (f"{lb}: ", b, {p[1] for p in matched})],
                        target, max_items)
    grid_note = None
    if len(cards) < total:
        grid_note = f"Showing the first {len(cards)} of {total} items × seeds (--max-items 0 shows all)."
        notes.append(grid_note)
    uri, chart_note = chart(metrics, systems)
    if chart_note:
        notes.append(chart_note)
    meta = [(la, str(a.root)), (lb, str(b.root)), ("metrics", ", ".join(metrics) or "none"),
            ("paired systems", ", ".join(x if x == y else f"{x} → {y}" for x, y in matched) or "none")]
    title = f"Comparison: {la} and {lb}"
    page_notes = [n for n in notes if n not in (grid_note, chart_note)]
    write_text(target / "compare.md", markdown(title, meta, tables, failed, page_notes))
    write_text(target / "compare.html", pages.render_html(
        title=title, meta=meta, notes=page_notes, tables=tables, chart=uri, chart_note=chart_note,
        failures=failed, grid=cards, grid_note=grid_note))
    return Written(target / "compare.md", target / "compare.html", notes)
