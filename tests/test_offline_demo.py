"""The README's main job: tiny models, a corpus index and the whole loop, offline, via the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_offline_demo_runs_the_whole_loop(tmp_path):
    pytest.importorskip("imagerag_diffusers")
    pytest.importorskip("imagerag_clip")
    env = {**os.environ, "IMAGERAG_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, str(ROOT / "examples" / "offline_demo.py")], env=env, check=True,
                   capture_output=True, timeout=600)
    out = subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", "generate", "an oil painting of a sheep",
                          "--profile", "tiny", "--out", str(tmp_path / "runs")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    trace = json.loads((run_dir / "trace.json").read_text())
    assert trace["status"] == "done"
    assert trace["components"]["generator"]["name"] == "sdxl"
    assert trace["components"]["retriever"]["name"] == "index"
    used = trace["rounds"][0]["used"]
    assert len(used) == 1 and Path(used[0]["path"]).is_file(), "one reference, from the indexed corpus"
    assert len(trace["generations"]) == 2 and (run_dir / "report.html").is_file()
