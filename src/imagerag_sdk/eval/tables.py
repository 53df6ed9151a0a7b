"""``rows.csv``: the rows of ``rows.jsonl`` flat, one column per metric and image."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_text

COLUMNS = ("system", "item", "seed", "prompt", "concept", "status", "error", "run_dir", "matched", "gave_up",
           "fell_back")


def flat_row(row: Mapping[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    critic = row.get("critic") or {}
    out: dict[str, Any] = {k: row.get(k) for k in COLUMNS if k not in ("matched", "gave_up", "fell_back")}
    for key in ("matched", "gave_up", "fell_back"):
        out[key] = critic.get(key)
    for metric in metrics:
        score = (row.get("scores") or {}).get(metric) or {}
        out[f"{metric}_initial"] = score.get("initial")
        out[f"{metric}_final"] = score.get("final")
    return {k: "" if v is None else v for k, v in out.items()}


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> None:
    buffer = io.StringIO()
    fields = list(COLUMNS) + [f"{m}_{which}" for m in metrics for which in ("initial", "final")]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(flat_row(row, metrics))
    write_text(path, buffer.getvalue())
