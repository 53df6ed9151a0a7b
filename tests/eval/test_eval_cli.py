"""``imagerag eval`` as a user runs it: resume after kill -9 and SIGTERM, one-line errors, build-set."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from imagerag_sdk.cli import main


def imagerag(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "imagerag_sdk.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}, **kw)


def wait_for_files(folder, n, proc, deadline_s=240):
    """Poll until ``folder`` holds ``n`` finished unit files (a generous deadline: a hung run fails)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        files = sorted(folder.glob("*/*.json")) if folder.is_dir() else []
        if len(files) >= n:
            return files
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail(f"{folder} did not reach {n} files")


def run_folders(out):
    return {p.name for p in (out / "runs").glob("*/*") if p.is_dir()}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_a_stopped_eval_continues_without_redoing_finished_units(bench, tmp_path, colour_profile, how):
    profile = colour_profile(tmp_path, "colour", delay=0.3)
    out = tmp_path / "out"
    args = ["eval", bench, "--profile", profile, "--scorer", "colour", "--out", out, "--no-progress"]
    proc = imagerag(*args)
    wait_for_files(out / "cache" / "gen", 3, proc)
    if how == "kill -9":
        proc.kill()
        proc.wait()
    else:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 143
        assert "run the same command again to continue" in err
    done = {p.name: json.loads(p.read_text()) for p in (out / "cache" / "gen").glob("*/*.json")}
    before = run_folders(out)
    assert 3 <= len(done) < 12 and len(before) in (len(done), len(done) + 1)  # + the one it was stopped in

    second = imagerag(*args)
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["status"] == "done" and r["error"] is None for r in rows)
    new = run_folders(out) - before
    assert len(new) == 12 - len(done)  # each unfinished unit generated once; none finished regenerated
    for name, record in done.items():
        assert json.loads(next((out / "cache" / "gen").glob(f"*/{name}")).read_text()) == record
    finished = {r["run_dir"].split("/")[-1] for r in rows}
    assert {record["run_dir"].split("/")[-1] for record in done.values()} <= finished
    assert str(out) in stdout


def test_eval_without_run_is_eval_run_and_prints_the_table(bench, tmp_path, colour_profile, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the table's width, whatever terminal (or pytest worker) runs this
    profile = colour_profile(tmp_path, "colour")
    main(["eval", "run", str(bench), "--profile", str(profile), "--scorer", "colour", "--out",
          str(tmp_path / "a"), "--limit", "2", "--seeds", "0"])
    captured = capsys.readouterr()
    assert captured.out.strip().endswith(str(tmp_path / "a"))
    assert "generate" in captured.err and "score colour" in captured.err and "2/2" in captured.err
    assert "ETA" in captured.err  # the progress bar, on stderr
    main(["eval", str(bench), "--profile", str(profile), "--scorer", "colour", "--out", str(tmp_path / "b"),
          "--limit", "2", "--seeds", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert "final − initial" in out and out.strip().endswith(str(tmp_path / "b"))
    a, b = ([json.loads(line) for line in (tmp_path / d / "rows.jsonl").read_text().splitlines()] for d in "ab")
    assert [(r["item"], r["scores"]) for r in a] == [(r["item"], r["scores"]) for r in b] and len(a) == 2



@pytest.mark.parametrize(("args", "message"), [
    (["--scorer", "colur"], "error: no scorer named 'colur' — did you mean 'colour'?"),
    (["--scorer", "colour", "--seeds", "0,x"], "error: --seeds '0,x' is not a comma-separated list of integers"),
    (["--scorer", "{use: colour"], "error: --scorer '{use: colour' is not a name or a YAML mapping"),
    (["--scorer", "colour", "--set", "loop.mode"], "error: override 'loop.mode' is not key=value"),
    (["--scorer", "colour", "--set", "loop.mode=sideways"], "error: "),
    ([], "error: no scorer given"),
])
def test_bad_eval_arguments_are_one_line_errors(bench, tmp_path, colour_profile, capsys, args, message):
    profile = colour_profile(tmp_path, "colour")
    with pytest.raises(SystemExit) as info:
        main(["eval", str(bench), "--profile", str(profile), "--out", str(tmp_path / "out"), *args])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_bad_set_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("items:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y, concept: z, extra: 1}\n")
    with pytest.raises(SystemExit):
        main(["eval", str(bad), "--profile", "fake", "--scorer", "colour", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert err.strip() == f"error: {bad}: line 3: unknown key 'extra' — an item has the keys id, prompt, concept, real_images"


def test_build_set_writes_a_set_that_eval_reads(tmp_path, capsys):
    for cls, colour in (("red_finch", "red"), ("blue_heron", "blue"), ("green_parrot", "green")):
        (tmp_path / "birds" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), colour).save(tmp_path / "birds" / cls / "1.png")
    main(["eval", "build-set", str(tmp_path / "birds"), "--out", str(tmp_path / "sets" / "birds.yaml"),
          "--limit", "2", "--template", "A photo of a {concept}"])
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / "sets" / "birds.yaml")
    assert "2 item(s), 2 real image(s)" in captured.err
    from imagerag_sdk.eval.sets import load_set

    items = load_set(tmp_path / "sets" / "birds.yaml").items
    assert len(items) == 2 and all(i.prompt == f"A photo of a {i.concept}" and i.real_images for i in items)


def test_the_documented_offline_demo_runs_from_the_repository_root(tmp_path):
    """docs/evaluation.md's first command, as written except --out, from the clone's root."""
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "evaluation.md").read_text(encoding="utf-8")
    command = re.search(r"^imagerag eval examples/\S+ .*$", doc, re.M).group(0)
    words = shlex.split(command)
    words[words.index("--out") + 1] = str(tmp_path / "demo")
    done = subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", *words[1:], "--no-progress"], cwd=root,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    by_name = {s["name"]: s["metrics"]["colour"]["diff"] for s in summary["systems"]}
    assert by_name["colour-demo"]["ci_low"] > 0 and by_name["colour-demo"]["n"] == 16
    assert by_name["ignores-refs"]["ci_low"] < 0 < by_name["ignores-refs"]["ci_high"]
    assert not any(p.suffix == ".png" and p.name.startswith("0") for p in (root / "examples/eval/corpus").iterdir())
