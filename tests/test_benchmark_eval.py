"""The evaluation-harness benchmark keeps working: its quick mode (tiny CLIP scorer, fake components)
prints both ratios. No timing is asserted, only that the figures are there and make sense."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def eval_harness(request):
    pytest.importorskip("imagerag_clip")
    sys.path.insert(0, str(BENCH))
    request.addfinalizer(lambda: sys.path.remove(str(BENCH)))
    import eval_harness

    return eval_harness


def test_quick_mode_prints_the_throughput_ratio_and_the_harness_share(eval_harness, capsys):
    eval_harness.main(["--quick"])
    out = capsys.readouterr().out
    throughput = re.search(r"tiny CLIP .*harness +([\d.]+) img/s, ratio ([\d.]+)", out)
    assert throughput, out
    assert float(throughput.group(1)) > 0 and float(throughput.group(2)) > 0
    share = re.search(r"harness share ([\d.]+); all but the components' calls ([\d.]+)", out)
    assert share, out
    assert 0 < float(share.group(1)) <= float(share.group(2)) <= 1
    assert "4 units (4 done)" in out  # every unit of the profiled eval ran
    assert re.search(r"generator\.generate: +[\d.]+ s", out) and re.search(r"scorer\.score_detailed: +[\d.]+ s", out)
