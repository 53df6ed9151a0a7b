"""benchmarks/serve.py (the web server benchmark) runs end to end in its quickest mode and reports
its ratios and that no job or request was lost. No timing is asserted (the machine is shared)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("imagerag_web")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "serve.py"
WEB_SRC = Path(__file__).resolve().parents[1] / "plugins" / "imagerag-web" / "src"


def test_quickest_run_prints_the_ratios_and_loses_nothing(tmp_path):
    fig_path = tmp_path / "fig.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--items", "200", "--queries", "10", "--rounds", "1",
                           "--job-ms", "50", "--clients", "2", "--duration", "2", "--job-share", "0.3", "--json", str(fig_path),
                           "--baseline", str(WEB_SRC)],  # this very app as the baseline: the column is there
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for client in ("httpx", "http.client"):  # the added time and the anchor through each client
        assert re.search(rf"\[1\] {client}: added by the server at p50: -?[\d.]+ ms .*; of it the stack's floor "
                         r"\(the anchor's p50\): [\d.]+ ms; the client's CPU per request [\d.]+ ms", out), out
    for gil in ("release", "hold", "sleep"):  # every generator kind measured, each with its ratio
        assert re.search(rf"\[2\] gil={gil}: p99 during a generation / idle: [\d.]+x", out), out
    assert re.search(r"\[3\] jobs: \d+ done, \d+ failed, 0 lost; event streams disagreeing with /api/jobs: 0; "
                     r"requests not answered or errors: 0", out), out
    fig = json.loads(fig_path.read_text())
    assert fig["jobs_lost"] == 0 and fig["errors"] == 0
    assert fig["jobs_accepted"] == fig["jobs_done"] + fig["jobs_failed"]
    assert fig["jobs_accepted"] > 0 and fig["searches"] > 0 and fig["direct_p50_ms"] > 0 and fig["http_p50_ms"] > 0
    assert fig["lean_http_p50_ms"] > 0 and fig["lean_anchor_p50_ms"] > 0 and fig["lean_client_cpu_per_request_ms"] > 0
    assert fig["lean_added_p50_ms"] == fig["lean_http_p50_ms"] - fig["direct_p50_ms"]
    assert fig["lean_baseline_added_p50_ms"] > -fig["direct_p50_ms"] and fig["baseline_cpu_per_search_ms"] >= 0
    assert re.search(r"\[1\] http.client: baseline app \(.*\): p50 [\d.]+ ms", out), out
    for app in ("this app", "baseline app"):  # the search timed inside each server, set against the direct call
        assert re.search(rf"\[1\] {app}.*: pipeline.retrieve inside the server p50 [\d.]+ ms", out), out
    assert fig["http_inside_search_p50_ms"] > 0 and fig["baseline_inside_search_p50_ms"] > 0
