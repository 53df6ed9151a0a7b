"""``results.md`` and ``results.html`` of an eval output folder (docs/evaluation.md, "The output
folder"): read from its ``eval.json``, ``summary.json`` and ``rows.jsonl``, never recomputed.

The Markdown holds, per system and metric, the mean ± standard error without retrieval (the
initial image) and with it (the final image), the paired difference with its bootstrap interval
and the win rate, the critic's statistics and the failed rows. The HTML page holds the same tables
(the scores shaped like the paper's Table 2, the best of each metric in bold), a bar chart with
error bars and a grid of initial / final / reference thumbnails per item and seed; it is one
self-contained file (images inlined as ``data:`` URIs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import ConfigError, MissingDependencyError
from . import pages
from .pages import Cell, Failure, GridItem, GridRow, Table, Thumbnails

MAX_ITEMS = 48
"""Items (item × seed) shown in the thumbnail grid unless told otherwise."""
KINDS = (("initial", "without (initial)"), ("final", "with (final)"))
RUN_HINT = "point at the folder `imagerag eval … --out DIR` wrote (run it again to finish an interrupted eval)"


@dataclass
class EvalFolder:
    """An eval output folder as written: what was asked, the statistics, the rows."""
    root: Path
    asked: dict[str, Any]
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    systems: list[dict[str, Any]] = field(init=False)
    metrics: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.systems = list(self.summary.get("systems") or [])
        named = [s.get("name") for s in self.asked.get("scorers") or []]
        seen = [m for s in self.systems for m in s.get("metrics") or {}]
        seen += [m for r in self.rows for m in r.get("scores") or {}]
        self.metrics = list(dict.fromkeys([m for m in named if m in seen] + seen))

    @property
    def bootstrap(self) -> dict[str, Any]:
        return dict(self.summary.get("bootstrap") or {})

    def path(self, rel: Any) -> Path | None:
        """A path of a row (relative to the folder, or absolute)."""
        return self.root / str(rel) if rel else None


@dataclass
class Written:
    markdown: Path
    html: Path
    notes: list[str]
    """What the pages could not show (no matplotlib, items left out of the grid)."""


def load_folder(out_dir: str | os.PathLike[str]) -> EvalFolder:
    """Read ``out_dir``; a missing or unreadable file is a :class:`ConfigError` naming it."""
    root = Path(out_dir).resolve()
    summary = _json(root / "summary.json")
    if not isinstance(summary.get("systems"), list):
        raise ConfigError(f"{root / 'summary.json'} has no 'systems' list", hint=RUN_HINT)
    asked = _json(root / "eval.json") if (root / "eval.json").exists() else {}
    rows_file = root / "rows.jsonl"
    rows = []
    try:
        lines = rows_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {rows_file}: {exc.strerror or exc}", hint=RUN_HINT) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{rows_file} line {number} is not JSON ({exc.msg})", hint=RUN_HINT) from None
        if not isinstance(row, dict):
            raise ConfigError(f"{rows_file} line {number} is not a JSON object", hint=RUN_HINT)
        rows.append(row)
    return EvalFolder(root, asked, summary, rows)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path.parent} is not an eval output folder: {path.name} is missing",
                          hint=RUN_HINT) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint=RUN_HINT) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object", hint=RUN_HINT)
    return data


# -- tables ---------------------------------------------------------------------------------------
Labelled = Sequence[tuple[str, dict[str, Any]]]
"""(label, summary.json system entry) pairs: a page's systems, each under the name it shows."""


def stat_of(system: dict[str, Any], metric: str, kind: str | None = None) -> dict[str, Any]:
    """A system's summary entry for ``metric`` (its ``kind``: ``initial`` / ``final``), ``{}`` if none."""
    stat = (system.get("metrics") or {}).get(metric) or {}
    return (stat.get(kind) or {}) if kind else stat


def places(systems: Labelled, metric: str) -> int:
    """Decimals for ``metric``'s column: its smallest standard error to two significant digits."""
    return pages.decimals([stat_of(s, metric, kind).get("se") for _, s in systems for kind, _ in KINDS])


def scores_table(systems: Labelled, metrics: Sequence[str], title: str = "Scores (mean ± s.e.)") -> Table:
    """Table 2's shape: a row per system without and with retrieval, a column per metric, the
    best mean of each column in bold."""
    best = {}
    for metric in metrics:
        means = [pages.finite(stat_of(s, metric, kind).get("mean")) for _, s in systems for kind, _ in KINDS]
        best[metric] = max((m for m in means if m is not None), default=None)
    rows = []
    for label, system in systems:
        for kind, shown in KINDS:
            row = [Cell(label), Cell(shown)]
            for metric in metrics:
                stat = stat_of(system, metric, kind)
                mean = pages.finite(stat.get("mean"))
                row.append(Cell(pages.mean_se(stat, places(systems, metric)), num=True,
                                bold=mean is not None and mean == best[metric]))
            rows.append(row)
    return Table(title, ["system", "images", *metrics], rows,
                 note="without: the initial image (same generator, same seed); with: the final image "
                      "after retrieval. Best of each column in bold.")


def diffs_table(systems: Labelled, metrics: Sequence[str], level: Any) -> Table:
    """The paired difference final − initial per system and metric, with interval and win rate."""
    pct = f"{100 * (pages.finite(level) or 0.95):g} %"
    rows = []
    for label, system in systems:
        for metric in metrics:
            stat = stat_of(system, metric)
            if not stat:
                rows.append([Cell(label), Cell(metric), Cell("0", num=True)] + [Cell(pages.DASH, num=True)] * 3)
                continue
            diff = stat.get("diff") or {}
            d = places(systems, metric)
            rows.append([Cell(label), Cell(metric), Cell(str(diff.get("n", 0)), num=True),
                         Cell(pages.signed(diff.get("mean"), d), num=True),
                         Cell(pages.interval(diff.get("ci_low"), diff.get("ci_high"), d), num=True,
                              tone=pages.tone(diff.get("ci_low"), diff.get("ci_high"))),
                         Cell(pages.percent(stat.get("win_rate")), num=True)])
    return Table("Paired difference, with − without", ["system", "metric", "pairs", "mean difference",
                                                       f"{pct} interval", "win rate"], rows,
                 note=f"final − initial on the same item and seed; {pct} percentile bootstrap interval "
                      "over the pairs; win rate: share of pairs where the final image scores higher "
                      "(ties count half).")


def critic_table(systems: Labelled) -> Table:
    def count(n: Any, of: Any) -> Cell:
        share = f" ({100 * n / of:.0f} %)" if isinstance(n, int) and isinstance(of, int) and of > 0 else ""
        return Cell(f"{n}{share}" if n is not None else pages.DASH, num=True)

    rows = []
    for label, system in systems:
        critic = system.get("critic") or {}
        judged = critic.get("judged")
        rows.append([Cell(label), Cell(str(system.get("rows", pages.DASH)), num=True),
                     Cell(str(system.get("done", pages.DASH)), num=True),
                     Cell(str(system.get("failed", pages.DASH)), num=True), count(judged, None),
                     count(critic.get("matched"), judged), count(critic.get("gave_up"), judged),
                     count(critic.get("fell_back"), judged)])
    return Table("Critic", ["system", "rows", "done", "failed", "judged", "said matches", "gave up",
                            "fell back"], rows,
                 note="said matches: the initial image was kept (final = initial); gave up: no missing "
                      "concept could be named; fell back: retrieval used the prompt. Shares of judged.")


def systems_table(systems: Labelled) -> Table:
    rows = [[Cell(label), Cell(str(s.get("hash") or "")[:12]), Cell(str(s.get("profile") or "")),
             Cell(" ".join(map(str, s.get("overrides") or [])) or pages.DASH)] for label, s in systems]
    return Table("Systems", ["system", "hash", "profile", "overrides"], rows)


# -- rows -----------------------------------------------------------------------------------------
def failures(folder: EvalFolder, label: str = "") -> list[Failure]:
    """Rows that failed, or that lack a score (``error`` says which scorer failed)."""
    out = []
    for row in folder.rows:
        if row.get("status") != "done" or row.get("error"):
            system = str(row.get("system", "?"))
            out.append(Failure(f"{label}{system}", str(row.get("item", "?")), row.get("seed"),
                               str(row.get("prompt") or ""),
                               " ".join(str(row.get("error") or f"status {row.get('status')!r}").split())))
    return out


def grid_row(folder: EvalFolder, row: dict[str, Any], label: str, thumbs: Thumbnails, page_dir: Path) -> GridRow:
    """A row's initial, final and reference thumbnails, the scores under each image, the verdict."""
    scores = row.get("scores") or {}

    def caption(kind: str) -> list[str]:
        values = [(m, pages.finite((scores.get(m) or {}).get(kind))) for m in folder.metrics]
        return [f"{m} {v:.3f}" for m, v in values if v is not None]

    done = row.get("status") == "done"
    images = [("initial", row.get("initial_image"), caption("initial")),
              ("final", row.get("final_image"), caption("final"))]
    images += [(f"reference {i}", ref, []) for i, ref in enumerate(row.get("references") or [], 1)]
    # a failed row shows what it wrote; a done one shows a missing image as missing
    shots = [thumbs.get(folder.path(rel), what, lines) for what, rel, lines in images if done or rel]
    critic = row.get("critic") or {}
    verdict = ("failed" if not done
               else "critic error: " + " ".join(str(critic["critic_error"]).split()) if critic.get("critic_error")
               else "critic: matches (final = initial)" if critic.get("matched")
               else "critic: does not match" + ("; gave up naming concepts" if critic.get("gave_up") else "")
               + ("; retrieved by the prompt" if critic.get("fell_back") else ""))
    report = None
    run_dir = folder.path(row.get("run_dir"))
    if run_dir is not None and (run_dir / "report.html").exists():
        report = Path(os.path.relpath(run_dir / "report.html", page_dir)).as_posix()
    error = " ".join(str(row["error"]).split()) if row.get("error") else None
    return GridRow(label, shots, verdict, error, report)


def grid(folders: Sequence[tuple[str, EvalFolder, set[str] | None]], page_dir: Path,
         max_items: int | None) -> tuple[list[GridItem], int]:
    """Cards per (item, seed) in the order first met, each with a row per (label, system); only
    the systems named where a set is given. Returns the first ``max_items`` cards and the count."""
    cards: dict[tuple[str, str], GridItem] = {}
    thumbs = Thumbnails()
    rows_of: dict[tuple[str, str], list[tuple[str, EvalFolder, dict[str, Any]]]] = {}
    for label, folder, only in folders:
        for row in folder.rows:
            if only is not None and row.get("system") not in only:
                continue
            key = (str(row.get("item")), json.dumps(row.get("seed")))
            if key not in cards:
                cards[key] = GridItem(key[0], row.get("seed"), str(row.get("prompt") or ""),
                                      str(row.get("concept") or ""))
            rows_of.setdefault(key, []).append((f"{label}{row.get('system')}", folder, row))
    keys = list(cards)[: max_items if max_items is not None else None]
    for key in keys:
        cards[key].rows = [grid_row(folder, row, name, thumbs, page_dir) for name, folder, row in rows_of[key]]
    return [cards[k] for k in keys], len(cards)


# -- the pages ------------------------------------------------------------------------------------
def chart(metrics: Sequence[str], systems: Labelled) -> tuple[str | None, str | None]:
    """The bar chart as a data URI, or ``None`` and the reason (matplotlib missing)."""
    from .charts import Bars, bar_chart

    if not metrics:
        return None, "No chart: no scores were recorded (the eval had no scorer, or every scorer failed)."
    bars = [Bars(label, {m: {kind: (stat_of(s, m, kind).get("mean"), stat_of(s, m, kind).get("se"))
                             for kind, _ in KINDS} for m in metrics}) for label, s in systems]
    try:
        return pages.data_uri(bar_chart(metrics, bars), "image/png"), None
    except MissingDependencyError as exc:
        return None, f"No chart: {exc}"


def meta(folder: EvalFolder) -> list[tuple[str, str]]:
    summary, boot = folder.summary, folder.bootstrap
    seeds = summary.get("seeds", folder.asked.get("seeds")) or []
    out = [("set", str(summary.get("set") or folder.asked.get("set") or "?")),
           ("items", str(summary.get("items", "?"))), ("seeds", ", ".join(map(str, seeds)) or "?"),
           ("metrics", ", ".join(folder.metrics) or "none")]
    if boot:
        out.append(("bootstrap", f"{boot.get('resamples', '?')} resamples, seed {boot.get('seed', '?')}, "
                                 f"level {boot.get('level', '?')}"))
    if folder.asked.get("created"):
        out.append(("created", str(folder.asked["created"])))
    return out


def markdown(title: str, meta_lines: Sequence[tuple[str, str]], tables: Sequence[Table],
             failed: Sequence[Failure], notes: Sequence[str]) -> str:
    parts = [f"# {title}\n", "\n".join(f"- {k}: {pages.md_text(v)}" for k, v in meta_lines) + "\n"]
    parts += [pages.md_text(n) + "\n" for n in notes]
    parts += [pages.markdown_table(t) for t in tables]
    lines = [f"## Failed rows ({len(failed)})", ""]
    lines += [f"- **{pages.md_text(f.system)}** · item {pages.md_text(f.item)} · seed {pages.md_text(f.seed)}: "
              f"{pages.md_text(f.error)}" for f in failed] or ["none"]
    parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def write_results(out_dir: str | os.PathLike[str], *, max_items: int | None = MAX_ITEMS) -> Written:
    """Write ``results.md`` and ``results.html`` into the eval output folder ``out_dir``
    (atomically); the grid shows the first ``max_items`` items × seeds (``None``: all)."""
    folder = load_folder(out_dir)
    systems = [(str(s.get("name", "?")), s) for s in folder.systems]
    tables = [scores_table(systems, folder.metrics),
              diffs_table(systems, folder.metrics, folder.bootstrap.get("level")),
              critic_table(systems), systems_table(systems)]
    failed = failures(folder)
    cards, total = grid([("", folder, None)], folder.root, max_items)
    notes = []
    grid_note = None
    if len(cards) < total:
        grid_note = (f"Showing the first {len(cards)} of {total} items × seeds; "
                     "imagerag eval with --max-items 0 shows all (cached work is not redone).")
        notes.append(grid_note)
    uri, chart_note = chart(folder.metrics, systems)
    if chart_note:
        notes.append(chart_note)
    title = "Evaluation results"
    md = markdown(title, meta(folder), tables, failed, [])
    html = pages.render_html(title=title, meta=meta(folder), notes=[], tables=tables, chart=uri,
                             chart_note=chart_note, failures=failed, grid=cards, grid_note=grid_note)
    write_text(folder.root / "results.md", md)
    write_text(folder.root / "results.html", html)
    return Written(folder.root / "results.md", folder.root / "results.html", notes)
