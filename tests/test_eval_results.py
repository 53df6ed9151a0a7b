"""results.md / results.html and `eval compare`, over output folders built here from the schema in
docs/evaluation.md (real PNGs, rows.jsonl, summary.json, eval.json)."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imagerag_sdk.cli_eval_compare import compare_cmd
from imagerag_sdk.errors import ConfigError
from imagerag_sdk.eval.compare import write_compare
from imagerag_sdk.eval.results import write_results
from imagerag_sdk.eval.stats import paired

HOSTILE = "<script>alert('x')</script> | {{ 7 * 7 }} & *bold*"
BAD_ERROR = "stage 'generate' (fake): <img src=x onerror=alert(1)> broke"


# -- building an output folder ---------------------------------------------------------------------
def png(path: Path, colour: tuple[int, int, int], size: int = 24) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path.as_posix()


def make_out(root: Path, *, systems=(("fake", 0.02), ("concepts", 0.05)), items=4, seeds=(0, 1),
             metrics=("clip", "dino"), failed=(), scorer_failed=(), prompt=None, shift=None, seed=0) -> Path:
    """An eval output folder: each system's final score is its initial one plus its effect and noise;
    ``failed`` / ``scorer_failed`` hold (system, item index, seed) rows that failed / lack ``dino``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = []
    base = {m: rng.uniform(0.2, 0.6, size=items) for m in metrics}
    for name, effect in systems:
        for i in range(items):
            for s in seeds:
                item = f"item-{i:03d}"
                run = f"runs/{name}/{item}-s{s}"
                (root / run).mkdir(parents=True)
                (root / run / "report.html").write_text("<html></html>")
                row = {"system": name, "system_hash": f"{name}-hash-0123456789", "item": item, "seed": s,
                       "prompt": prompt or f"A photo of a bird number {i}", "concept": f"bird {i}",
                       "status": "done", "error": None, "run_dir": run,
                       "critic": {"matched": i == 0, "gave_up": i == 1, "fell_back": i == 2, "critic_error": None}}
                if (name, i, s) in failed:
                    row.update(status="failed", error=BAD_ERROR, scores={}, initial_image=None,
                               final_image=None, references=[])
                    rows.append(row)
                    continue
                row["initial_image"] = Path(png(root / run / "initial.png", (200, 40 * i % 255, 30))).relative_to(
                    root).as_posix()
                row["final_image"] = Path(png(root / run / "final.png", (30, 40 * i % 255, 200), 64)).relative_to(
                    root).as_posix()
                row["references"] = [Path(png(root / run / "refs/01.png", (20, 180, 20), 300)).relative_to(
                    root).as_posix()]
                scores = {}
                for m in metrics:
                    initial = float(base[m][i] + rng.normal(0, 0.01))
                    final = initial + effect + float(rng.normal(0, 0.01)) + (shift or {}).get((name, m), 0.0)
                    if row["critic"]["matched"]:  # the initial image was kept
                        final = initial
                    scores[m] = {"initial": round(initial, 6), "final": round(final, 6)}
                if (name, i, s) in scorer_failed:
                    del scores["dino"]
                    row["error"] = "scorer 'dino' failed: RuntimeError: out of memory"
                row["scores"] = scores
                rows.append(row)
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"set": "/abs/sets/birds.yaml", "items": items, "seeds": list(seeds),
               "bootstrap": {"resamples": 2000, "seed": 0, "level": 0.95}, "systems": []}
    for name, _ in systems:
        mine = [r for r in rows if r["system"] == name]
        done = [r for r in mine if r["status"] == "done"]
        entry = {"name": name, "hash": f"{name}-hash-0123456789", "profile": "fake",
                 "overrides": [f"loop.mode={name}"], "rows": len(mine), "done": len(done),
                 "failed": len(mine) - len(done),
                 "critic": {k: sum(bool(r["critic"][c]) for r in done) for k, c in
                            (("matched", "matched"), ("gave_up", "gave_up"), ("fell_back", "fell_back"))},
                 "metrics": {}}
        entry["critic"]["judged"] = len(done)
        for m in metrics:
            pairs = [(r["scores"][m]["initial"], r["scores"][m]["final"]) for r in done if m in r["scores"]]
            ini, fin = [p[0] for p in pairs], [p[1] for p in pairs]
            entry["metrics"][m] = paired(ini, fin, resamples=2000, seed=0)
        summary["systems"].append(entry)
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "eval.json").write_text(json.dumps({
        "set": summary["set"], "seeds": list(seeds), "created": "2026-12-01T22:00:00+00:00",
        "systems": [{"name": n, "hash": f"{n}-hash", "profile": "fake", "overrides": []} for n, _ in systems],
        "scorers": [{"name": m, "hash": m, "spec": {"use": m}} for m in metrics]}))
    return root


# -- reading pages back ----------------------------------------------------------------------------
class Page(HTMLParser):
    """Tags, attributes, tables (cells as (text, bold)) and the text of an HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.tables: list[list[list[tuple[str, bool]]]] = []
        self.bold = 0
        self.cell: list[str] | None = None
        self.cell_bold = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell, self.cell_bold = [], False
        elif tag == "b":
            self.bold += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append(("".join(self.cell).strip(), self.cell_bold))
            self.cell = None
        elif tag == "b":
            self.bold -= 1

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
            self.cell_bold = self.cell_bold or (self.bold > 0 and bool(data.strip()))


def md_table(md: str, title: str) -> list[list[str]]:
    """The body rows of the Markdown table under ``## title``."""
    block = md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def shown(text: str, value: float) -> None:
    """``text`` is ``value`` to the decimals it shows (at least three)."""
    places = len(text.split(".")[1])
    assert places >= 3 and float(text) == pytest.approx(value, abs=0.5 * 10 ** -places + 1e-12), (text, value)


# -- results.md ------------------------------------------------------------------------------------
def test_markdown_numbers_are_summary_json(tmp_path):
    out = make_out(tmp_path / "out", failed={("fake", 1, 0)})
    write_results(out)
    md = (out / "results.md").read_text()
    summary = {s["name"]: s for s in json.loads((out / "summary.json").read_text())["systems"]}
    scores = md_table(md, "Scores (mean ± s.e.)")
    assert [(r[0], r[1]) for r in scores] == [("fake", "without (initial)"), ("fake", "with (final)"),
                                              ("concepts", "without (initial)"), ("concepts", "with (final)")]
    for row in scores:
        kind = "initial" if row[1].startswith("without") else "final"
        for metric, cell in zip(["clip", "dino"], row[2:], strict=True):
            mean, se = cell.strip("*").split(" ± ")
            stat = summary[row[0]]["metrics"][metric][kind]
            shown(mean, stat["mean"])
            shown(se, stat["se"])
    diffs = md_table(md, "Paired difference, with − without")
    assert len(diffs) == 4
    for name, metric, n, mean, ci, win in diffs:
        stat = summary[name]["metrics"][metric]
        assert int(n) == stat["diff"]["n"]
        shown(mean, stat["diff"]["mean"])
        low, high = ci.strip("[]").split(", ")
        shown(low, stat["diff"]["ci_low"])
        shown(high, stat["diff"]["ci_high"])
        assert win == f"{100 * stat['win_rate']:.0f} %"
    critic = {r[0]: r[1:] for r in md_table(md, "Critic")}
    assert critic["fake"][:4] == ["8", "7", "1", "7"]  # rows, done, failed, judged
    c = summary["fake"]["critic"]
    assert critic["fake"][4:] == [f"{c[k]} ({100 * c[k] / 7:.0f} %)" for k in ("matched", "gave_up", "fell_back")]


def test_exact_decimals_follow_the_standard_error(tmp_path):
    out = make_out(tmp_path / "out", systems=(("fake", 0.0),), metrics=("clip",))
    summary = json.loads((out / "summary.json").read_text())
    summary["systems"][0]["metrics"]["clip"].update(
        initial={"mean": 0.21134, "se": 0.0040, "n": 8}, final={"mean": 0.25, "se": 0.0123, "n": 8},
        diff={"mean": 0.03866, "ci_low": -0.00051, "ci_high": 0.0779, "n": 8}, win_rate=0.6875)
    (out / "summary.json").write_text(json.dumps(summary))
    write_results(out)
    md = (out / "results.md").read_text()
    assert "| fake | without (initial) | 0.2113 ± 0.0040 |" in md
    assert "| fake | with (final) | **0.2500 ± 0.0123** |" in md
    assert "| fake | clip | 8 | +0.0387 | [-0.0005, +0.0779] | 69 % |" in md


# -- results.html ----------------------------------------------------------------------------------
def test_html_is_self_contained_and_its_images_are_real(tmp_path):
    out = make_out(tmp_path / "out")
    write_results(out)
    html = (out / "results.html").read_text()
    page = Page(html)
    srcs = [v for k, v in page.attrs if k == "src"]
    assert srcs and all(v.startswith(("data:image/jpeg;base64,", "data:image/png;base64,")) for v in srcs)
    assert "link" not in page.tags and "script" not in page.tags and "url(" not in html
    hrefs = [v for k, v in page.attrs if k == "href"]
    assert hrefs and all(h.startswith("runs/") and (out / h).exists() for h in hrefs)  # the run reports
    jpegs = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in srcs if "jpeg" in s]
    assert {im.format for im in jpegs} == {"JPEG"} and max(max(im.size) for im in jpegs) == 160
    # 4 items × 2 seeds × 2 systems, each: initial, final, one reference
    assert len(jpegs) == 4 * 2 * 2 * 3


def test_table2_shape_best_of_each_metric_in_bold(tmp_path):
    # 'concepts' gains more on clip; 'fake' is shifted up on dino only
    out = make_out(tmp_path / "out", shift={("fake", "dino"): 0.3})
    write_results(out)
    table = Page((out / "results.html").read_text()).tables[0]
    assert [c[0] for c in table[0]] == ["system", "images", "clip", "dino"]
    body = table[1:]
    assert [(r[0][0], r[1][0]) for r in body] == [("fake", "without (initial)"), ("fake", "with (final)"),
                                                  ("concepts", "without (initial)"), ("concepts", "with (final)")]
    summary = {s["name"]: s for s in json.loads((out / "summary.json").read_text())["systems"]}
    for col, metric in ((2, "clip"), (3, "dino")):
        means = [summary[r[0][0]]["metrics"][metric]["initial" if "without" in r[1][0] else "final"]["mean"]
                 for r in body]
        bold = [r[col][1] for r in body]
        assert bold == [m == max(means) for m in means], (metric, means, bold)
    assert [r[2][1] for r in body] == [False, False, False, True]
    assert [r[3][1] for r in body] == [False, True, False, False]


def test_chart_is_an_inlined_png(tmp_path):
    out = make_out(tmp_path / "out")
    written = write_results(out)
    html = (out / "results.html").read_text()
    charts = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="bar chart', html)
    assert len(charts) == 1 and not written.notes
    chart = Image.open(io.BytesIO(base64.b64decode(charts[0])))
    assert chart.format == "PNG" and chart.width > 300
    assert "pip install" not in html


def test_without_matplotlib_the_page_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # import matplotlib… raises ImportError
    out = make_out(tmp_path / "out")
    written = write_results(out)
    html = (out / "results.html").read_text()
    assert "data:image/png" not in html
    assert "pip install &#39;imagerag-sdk[eval]&#39;" in html
    assert any("imagerag-sdk[eval]" in n for n in written.notes)
    page = Page(html)
    assert len(page.tables[0]) == 5 and html.count("data:image/jpeg") == 4 * 2 * 2 * 3
    assert "| fake | with (final) |" in (out / "results.md").read_text()


def test_hostile_prompt_and_error_are_text(tmp_path):
    out = make_out(tmp_path / "out", prompt=HOSTILE, failed={("fake", 2, 1)}, systems=(("fake", 0.0),))
    write_results(out)
    html = (out / "results.html").read_text()
    page = Page(html)
    assert "script" not in page.tags and all(k != "onerror" for k, _ in page.attrs)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; | {{ 7 * 7 }} &amp; *bold*" in html
    assert "&lt;img src=x onerror=alert(1)&gt; broke" in html
    md = (out / "results.md").read_text()
    assert not re.search(r"(?<!\\)<", md) and "\\<img src=x onerror=alert(1)\\> broke" in md


def test_failed_rows_are_listed_with_their_errors(tmp_path):
    out = make_out(tmp_path / "out", failed={("concepts", 3, 1)}, scorer_failed={("fake", 0, 0)})
    write_results(out)
    md = (out / "results.md").read_text()
    failed = md.split("## Failed rows (2)\n", 1)[1]
    assert "- **fake** · item item-000 · seed 0: scorer 'dino' failed: RuntimeError: out of memory" in failed
    assert "- **concepts** · item item-003 · seed 1: stage 'generate' (fake): \\<img" in failed
    table = next(t for t in Page((out / "results.html").read_text()).tables if t[0][0][0] == "system"
                 and t[0][-1][0] == "error")
    assert [(r[0][0], r[1][0], r[2][0]) for r in table[1:]] == [("fake", "item-000", "0"),
                                                                ("concepts", "item-003", "1")]
    assert table[2][4][0] == BAD_ERROR
    html = (out / "results.html").read_text()
    card = html.split("item item-003 · seed 1")[1].split('<div class="card">')[0]
    failed_row = card.split("<div class=\"sysname\">concepts</div>")[1]
    assert "failed" in failed_row and "stage &#39;generate&#39;" in failed_row
    assert "<img" not in failed_row and "image unavailable" not in html  # it wrote no image: none is shown


def test_grid_per_item_is_capped_with_a_note(tmp_path):
    out = make_out(tmp_path / "out", items=5, systems=(("fake", 0.0),))
    written = write_results(out, max_items=3)
    html = (out / "results.html").read_text()
    assert html.count('<div class="card">') == 3
    assert "Showing the first 3 of 10 items × seeds" in html and any("3 of 10" in n for n in written.notes)
    write_results(out, max_items=None)
    html = (out / "results.html").read_text()
    assert html.count('<div class="card">') == 10 and "Showing the first" not in html
    card = html.split('<div class="card">')[1]
    assert [m for m in re.findall(r'<div class="label">([^<]+)</div>', card)] == ["initial", "final", "reference 1"]
    assert "critic: matches (final = initial)" in card


def test_a_missing_image_and_a_missing_error_are_shown_as_such(tmp_path):
    out = make_out(tmp_path / "out", items=1, seeds=(0,), systems=(("fake", 0.0),))
    (out / "runs/fake/item-000-s0/final.png").unlink()
    write_results(out)
    html = (out / "results.html").read_text()
    assert re.search(r"image unavailable: cannot read /\S+/final.png: No such file or directory", html)
    assert re.search(r"<b>0\.\d{3} \(n=1\)</b>", html)  # one pair: no standard error


def test_a_folder_that_is_not_an_eval_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not an eval output folder: summary.json is missing"):
        write_results(tmp_path)
    out = make_out(tmp_path / "out")
    with (out / "rows.jsonl").open("a") as fh:
        fh.write('{"system": "fake", "item"\n')
    with pytest.raises(ConfigError, match=r"rows.jsonl line 17 is not JSON"):
        write_results(out)
    assert not (out / "results.md").exists()


# -- compare ---------------------------------------------------------------------------------------
def test_compare_pairs_final_scores_of_the_systems_in_both(tmp_path):
    a = make_out(tmp_path / "runA", systems=(("fake", 0.0), ("only-a", 0.0)), metrics=("clip", "dino"))
    b = make_out(tmp_path / "runB", systems=(("fake", 0.0),), items=3, metrics=("clip",),
                 shift={("fake", "clip"): 0.2}, failed={("fake", 0, 1)})
    result = CliRunner().invoke(compare_cmd, [str(a), str(b), "--out", str(tmp_path / "cmp")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "dino (only in runA)" in result.output
    md = (tmp_path / "cmp" / "compare.md").read_text()
    scores = md_table(md, "Scores (mean ± s.e.), both folders")
    assert [r[0] for r in scores] == ["runA: fake"] * 2 + ["runA: only-a"] * 2 + ["runB: fake"] * 2
    assert "dino" not in md.split("## Scores", 1)[1].split("\n")[2]  # the common metrics only
    rows_a = [json.loads(line) for line in (a / "rows.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (b / "rows.jsonl").read_text().splitlines()]
    final_a = {(r["item"], r["seed"]): r["scores"]["clip"]["final"] for r in rows_a if r["system"] == "fake"}
    final_b = {(r["item"], r["seed"]): r["scores"]["clip"]["final"] for r in rows_b if r["status"] == "done"}
    diffs = [final_b[k] - final_a[k] for k in final_b]
    (between,) = md_table(md, "Final scores, runB − runA")
    assert between[:3] == ["fake", "clip", "5"]  # 3 items × 2 seeds in B, one failed
    shown(between[3], float(np.mean(diffs)))
    low, high = (float(x) for x in between[4].strip("[]").split(", "))
    assert 0 < low < np.mean(diffs) < high
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert html.count('<div class="card">') == 4 * 2 and "runA: only-a" not in html.split("Images per item")[1]
    assert all(v.startswith("data:") for k, v in Page(html).attrs if k == "src")
    assert 'href="../runA/runs/fake/' in html


def test_compare_pair_option_and_its_errors(tmp_path):
    a = make_out(tmp_path / "x" / "out", systems=(("fused", 0.0),))
    b = make_out(tmp_path / "y" / "out", systems=(("paper", 0.0),), shift={("paper", "clip"): -0.2})
    written = write_compare(a, b, tmp_path / "cmp", pairs=[("fused", "paper")])
    md = written.markdown.read_text()
    (clip, _) = md_table(md, "Final scores, y/out − x/out")
    # paper scores lower everywhere but on item 0, where both kept the initial image (a tie: half a win)
    assert clip[:3] == ["fused → paper", "clip", "8"] and clip[5] == f"{100 * 1 / 8:.0f} %"
    with pytest.raises(ConfigError, match="--pair names system 'nope', which .* does not hold — its systems: fused"):
        write_compare(a, b, tmp_path / "cmp2", pairs=[("nope", "paper")])
    alone = write_compare(a, b, tmp_path / "cmp3")
    assert any("No system is in both folders" in n for n in alone.notes)
    result = CliRunner().invoke(compare_cmd, [str(a), str(b), "--pair", "fused"])
    assert isinstance(result.exception, ConfigError) and "is not SYSTEM_A=SYSTEM_B" in str(result.exception)




def test_the_install_hint_names_a_real_extra():
    tomllib = pytest.importorskip("tomllib")
    from imagerag_sdk.eval.charts import INSTALL

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extra = re.search(r"imagerag-sdk\[(\w+)\]", INSTALL).group(1)
    assert any(r.startswith("matplotlib") for r in project["optional-dependencies"][extra])


def test_compare_writes_next_to_the_caller_by_default_and_max_items_0_shows_all(tmp_path, monkeypatch):
    a = make_out(tmp_path / "a", items=3)
    b = make_out(tmp_path / "b", items=3)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(compare_cmd, [str(a), str(b), "--max-items", "2"], catch_exceptions=False)
    assert result.exit_code == 0 and "first 2 of 6" in result.output
    html = (tmp_path / "compare-a-vs-b" / "compare.html").read_text()
    assert html.count('<div class="card">') == 2
    CliRunner().invoke(compare_cmd, [str(a), str(b), "--max-items", "0"], catch_exceptions=False)
    assert (tmp_path / "compare-a-vs-b" / "compare.html").read_text().count('<div class="card">') == 6


def test_an_eval_without_scores_still_gets_its_pages(tmp_path):
    out = make_out(tmp_path / "out", metrics=(), items=2, failed={("fake", 0, 0)})
    summary = json.loads((out / "summary.json").read_text())
    summary["systems"][1]["metrics"] = None
    (out / "summary.json").write_text(json.dumps(summary))
    written = write_results(out)
    html = (out / "results.html").read_text()
    assert "No chart: no scores were recorded" in html and any("No chart" in n for n in written.notes)
    assert [c[0] for c in Page(html).tables[0][0]] == ["system", "images"]
    assert "## Failed rows (1)" in (out / "results.md").read_text()
