"""``imagerag index`` and ``imagerag search`` through the real entry point, in a subprocess."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys

from PIL import Image

from imagerag_sdk.testing.fakes import fake_corpus

ENTRY = "from imagerag_sdk.cli import main; main()"


def _run(args, home, check=True):
    env = {**os.environ, "IMAGERAG_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", ENTRY, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_index_then_search(tmp_path):
    home = tmp_path / "home"
    root = fake_corpus(tmp_path / "imgs")
    (root / "broken.png").write_bytes(b"")
    out = _run(["index", root, "--corpus", "demo", "--embedder", "fake", "--embedder-option", "dim=128",
                "--batch-size", "4", "--workers", "2", "--json"], home)
    report = json.loads(out.stdout)
    assert report["added"] == 12 and report["embedded"] == 12 and report["embedder"] == "fake-bow/dim=128"
    assert "bad: broken.png" in out.stderr and "12 images indexed" in out.stderr

    again = json.loads(_run(["index", root, "--corpus", "demo", "--json"], home).stdout)
    assert again["embedded"] == 0 and again["unchanged"] == 12

    strict = _run(["index", root, "--corpus", "demo", "--strict", "-q"], home, check=False)
    assert strict.returncode != 0 and "--strict" in strict.stderr

    sheet = tmp_path / "sheet.png"
    found = _run(["search", "a red sports car", "--corpus", "demo", "-k", "3", "--json", "--sheet", sheet], home)
    hits = json.loads(found.stdout)
    assert len(hits) == 3 and "red-sports-car" in hits[0]["path"] and hits[0]["corpus"] == "demo"
    assert hits[0]["metadata"]["caption"] == "a red sports car parked on a street"
    assert Image.open(sheet).size[0] > 0

    table = _run(["search", "a cat sleeping on a sofa", "--corpus", "demo", "-k", "2"], home)
    assert "cat-sleeping-sofa" in table.stdout and "rank" in table.stdout

    cat = next(root.glob("*cat*.png"))
    by_image = json.loads(_run(["search", "--image", cat, "--corpus", "demo", "-k", "1", "--json"], home).stdout)
    assert by_image[0]["path"] == str(cat)

    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\ngenerator: {use: fake}\nretriever: {use: index, corpus: demo}\n")
    via_profile = json.loads(_run(["search", "a red sports car", "--profile", profile, "-k", "1", "--json"],
                                  home).stdout)
    assert via_profile[0]["path"] == hits[0]["path"]
    wide = json.loads(_run(["search", "a red sports car", "--profile", profile, "-k", "1", "--ef", "300",
                            "--json"], home).stdout)
    assert wide[0]["path"] == hits[0]["path"]
    bad_ef = _run(["search", "a red sports car", "--corpus", "demo", "--ef", "0"], home, check=False)
    assert bad_ef.returncode == 2 and "--ef" in bad_ef.stderr


def test_graph_parameters_on_the_command_line(tmp_path):
    home = tmp_path / "home"
    root = fake_corpus(tmp_path / "imgs")
    report = json.loads(_run(["index", root, "--corpus", "g", "--embedder", "fake", "--hnsw-m", "24",
                              "--ef-construction", "200", "--json"], home).stdout)
    assert (report["hnsw_m"], report["hnsw_ef_construction"]) == (24, 200)
    kept = json.loads(_run(["index", root, "--corpus", "g", "--json"], home).stdout)
    assert (kept["hnsw_m"], kept["hnsw_ef_construction"]) == (24, 200)
    bad = _run(["index", root, "--corpus", "g", "--hnsw-m", "1"], home, check=False)
    assert bad.returncode == 1 and "between 4 and 96" in bad.stderr and "Traceback" not in bad.stderr


def test_errors_are_one_line(tmp_path):
    home = tmp_path / "home"
    missing = _run(["search", "x", "--corpus", "nothing-here"], home, check=False)
    assert missing.returncode == 1 and "imagerag index" in missing.stderr and "Traceback" not in missing.stderr
    nothing = _run(["search", "--corpus", "nothing-here"], home, check=False)
    assert nothing.returncode != 0 and "TEXT" in nothing.stderr


SEARCH_IMPORTS = """
import json, sys
from imagerag_sdk.cli import main
try:
    main(sys.argv[1:])
finally:
    print(json.dumps(sorted(m for m in NEEDLESS if m in sys.modules)), file=sys.stderr)
"""


def test_search_imports_only_what_it_uses(tmp_path):
    """`imagerag search` on a corpus: no YAML parser and no profile code (it names no profile; the
    plugins' shipped profiles are paths until one is loaded), no `eval` command code, no writer's
    lock (`filelock`), and no plugin but the module of the corpus's embedder: the index run recorded
    which class the registry gave for its name, and the plugin set is the same (so no other
    plugin module, nor the built-ins' other components, nor the testing plugin's other modules:
    the fake embedder's module comes without the other fakes and the critic's protocol), and none
    of the writer's modules (the ingest run, the folder walk, the graph sync, PIL).
    Each of these was imported by every search before."""
    home = tmp_path / "home"
    root = fake_corpus(tmp_path / "imgs")
    _run(["index", root, "--corpus", "demo", "--embedder", "fake", "-q"], home)
    plugin_modules = sorted({ep.value.split(":")[0].split(".")[0] for ep in md.entry_points(group="imagerag")}
                            - {"imagerag_sdk"})
    needless = ["yaml", "imagerag_sdk.profiles", "imagerag_sdk.settings", "imagerag_sdk.cli_eval", "filelock",
                "imagerag_sdk.testing.plugin", "imagerag_sdk.testing.colour", "imagerag_sdk.retrieve_pooled",
                "imagerag_sdk.rerank_vlm", "imagerag_sdk.scorer_vlm", "pluggy", "imagerag_sdk.testing.fakes",
                "imagerag_sdk.critique", "asyncio", "imagerag_sdk.index.ingestion", "imagerag_sdk.index.scan",
                "imagerag_sdk.index.graph_sync", "imagerag_sdk.index.threads", "PIL", *plugin_modules]
    env = {**os.environ, "IMAGERAG_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", f"NEEDLESS = {needless!r}" + SEARCH_IMPORTS, "search",
                           "a red sports car", "--corpus", "demo", "-k", "2", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "red-sports-car" in json.loads(proc.stdout)[0]["path"], "the search itself still works"
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def test_search_prints_the_same_without_and_with_the_registry(tmp_path):
    """The recorded classes (same plugin set) and the full registry (another plugin set: only the
    testing plugin allowed) print byte-identical output."""
    home = tmp_path / "home"
    _run(["index", fake_corpus(tmp_path / "imgs"), "--corpus", "demo", "--embedder", "fake", "-q"], home)
    outs = []
    for allowed in (None, "testing"):
        env = {**os.environ, "IMAGERAG_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
        if allowed is not None:
            env["IMAGERAG_LOAD_PLUGINS"] = allowed
        code = "NEEDLESS = ['imagerag_sdk.testing.plugin']" + SEARCH_IMPORTS
        proc = subprocess.run([sys.executable, "-c", code, "search", "a red sports car", "--corpus", "demo",
                               "-k", "3", "--json"], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        registry_built = json.loads(proc.stderr.strip().splitlines()[-1]) == ["imagerag_sdk.testing.plugin"]
        assert registry_built == (allowed is not None)
        outs.append(proc.stdout)
    assert outs[0] == outs[1] and "red-sports-car" in json.loads(outs[0])[0]["path"]


def test_eval_command_is_still_there(tmp_path):
    out = _run(["--help"], tmp_path / "home")
    assert "eval" in out.stdout and "search" in out.stdout
    helped = _run(["eval", "--help"], tmp_path / "home")
    assert "build-set" in helped.stdout
