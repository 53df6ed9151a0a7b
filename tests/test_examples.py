"""The examples and the docs' code blocks run as written (offline, fake components)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(doc: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```", doc.read_text(encoding="utf-8"), re.M | re.S)


def run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], cwd=cwd, env=dict(os.environ),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_python_api_example_with_a_user_image(tmp_path):
    me = tmp_path / "me.png"
    Image.new("RGB", (32, 32), (20, 200, 40)).save(me)
    out = run_python([str(ROOT / "examples" / "python_api.py"), str(me)], cwd=tmp_path).stdout
    assert f"used {me} (user)" in out and "(no score)" in out, out
    run_dir = Path(re.search(r"^run folder: (\S+)", out, re.M).group(1))
    trace = json.loads((tmp_path / run_dir / "trace.json").read_text())
    assert trace["status"] == "done" and [u["path"] for u in trace["user_images"]] == [str(me)]
    assert "picked-reference run:" in out
