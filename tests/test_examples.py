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


def test_plugin_authors_doc_runs(tmp_path):
    """Excerpts headed by a file name match that file; the other blocks form a test module that
    pytest runs: the worked components, their registration and their contract tests."""
    blocks = python_blocks(ROOT / "docs" / "plugin-authors.md")
    excerpts = [b for b in blocks if b.startswith("# examples/")]
    assert excerpts, "the worked generator quotes the template"
    for block in excerpts:
        source, _, body = block.partition("\n")
        assert body in (ROOT / source[2:].strip()).read_text(encoding="utf-8"), f"{source} changed"
    module = tmp_path / "test_plugin_authors_doc.py"
    module.write_text("\n\n".join(b for b in blocks if b not in excerpts), encoding="utf-8")
    # MyCritic wraps a provider SDK that does not exist (myvlm_sdk): its class, options and hook
    # still run; its contract tests need the SDK.
    out = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-k", "not TestMyCritic",
                          str(module)], cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for test in ("TestTint::test_same_seed_same_image", "TestCaptionFiles::test_one_list_per_query",
                 "TestUniqueCaption::test_returns_subset_of_hits", "test_best_caption_first", "test_duplicates_go",
                 "test_whole_loop_with_my_generator"):
        assert f"{test} PASSED" in out.stdout, out.stdout


def test_python_api_doc_runs(tmp_path):
    script = tmp_path / "python_api_doc.py"
    script.write_text("\n\n".join(python_blocks(ROOT / "docs" / "python-api.md")), encoding="utf-8")
    out = run_python([str(script)], cwd=tmp_path).stdout
    assert "user image: cannot read /no/such/me.png" in out, out
    assert (tmp_path / "final.png").is_file() and "picked runs/" in out
