"""``imagerag serve``: the plugin's command, the loopback-only default, a real start on uvicorn,
and nothing of the web stack imported by ``import imagerag_web`` or ``imagerag --help``."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading

import click
import httpx
import pytest

import imagerag_web
from imagerag_sdk.testing.contracts import assert_imports_light

WEB = ("fastapi", "uvicorn", "starlette")
WAIT = 120


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k != "IMAGERAG_SERVE_TOKEN"}
    return {**env, "IMAGERAG_HOME": str(tmp_path / "home"), "COLUMNS": "200", **extra}


def _imagerag(*args) -> list[str]:
    return [sys.executable, "-c", "from imagerag_sdk.cli import main; main()", *args]


def events_end(url: str, job_id: str, auth: dict[str, str]) -> str:
    """The ``data:`` line of a finished job's ``end`` event (the JOB, as /api/jobs/{id} has it)."""
    job = httpx.get(url + f"/api/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "done", job
    return "data: " + json.dumps(job, ensure_ascii=False)


def test_register_commands_adds_serve():
    group = click.Group()
    imagerag_web.register_commands(cli=group)
    assert list(group.commands) == ["serve"]
    assert imagerag_web.heavy_imports() == list(WEB)


def test_the_plugin_and_the_cli_help_import_no_web_framework(tmp_path):
    assert_imports_light("imagerag_web", WEB)
    assert_imports_light("imagerag_web.serve", WEB)
    code = ("import sys, json\nfrom imagerag_sdk.cli import main\n"
            "for args in (['--help'], ['serve', '--help'], ['plugins']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            f"print(json.dumps([m for m in {list(WEB)!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path),
                         timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "--token" in out.stdout and "IMAGERAG_SERVE_TOKEN" in out.stdout  # serve --help


def test_serve_without_a_profile_lists_them(tmp_path):
    out = subprocess.run(_imagerag("serve"), capture_output=True, text=True, env=_env(tmp_path), timeout=WAIT)
    assert out.returncode == 2 and "Choose one of:" in out.stderr and "fake" in out.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.org"])
def test_a_non_loopback_host_needs_a_token(tmp_path, host):
    out = subprocess.run(_imagerag("serve", "--profile", "fake", "--host", host),
                         capture_output=True, text=True, env=_env(tmp_path), timeout=WAIT)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and f"--host {host}" in out.stderr and "--token" in out.stderr


@pytest.mark.parametrize(("token", "jobs"), [("tok-serve-test-1", None), (None, "thread")])
def test_serve_loads_once_and_answers_on_uvicorn(tmp_path, token, jobs):
    """Jobs in a worker process (the default) and on a thread: each runs a job; the worker loads the
    pipeline (its progress on the console) and stops with the server."""
    extra = {"IMAGERAG_SERVE_TOKEN": token} if token else {}
    mode = ["--jobs", jobs] if jobs else []
    proc = subprocess.Popen(_imagerag("serve", "--profile", "fake", "--port", "0", "--runs", str(tmp_path / "runs"), *mode),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path, **extra))
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    seen = []
    try:
        while True:
            line = lines.get(timeout=WAIT)
            seen.append(line)
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                break
        url = f"http://127.0.0.1:{found.group(1)}"
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        if token:
            assert httpx.get(url + "/api/info").status_code == 401
        else:  # loopback without a token: only loopback Host names (DNS rebinding)
            assert httpx.get(url + "/api/info", headers={"Host": "rebound.example"}).status_code == 400
        info = httpx.get(url + "/api/info", headers=auth)
        assert info.status_code == 200 and info.json()["profile"] == "fake"
        job = httpx.post(url + "/api/jobs", json={"kind": "run", "prompt": "a cat"}, headers=auth).json()["job"]
        with httpx.stream("GET", url + f"/api/jobs/{job['id']}/events", headers=auth, timeout=WAIT) as events:
            assert [x for x in events.iter_lines() if x][-2:] == ["event: end", events_end(url, job["id"], auth)]
    finally:
        proc.terminate()
        proc.wait(WAIT)
    text = "".join(seen)
    assert [role for role in ("generator", "critic", "retriever") if f"load      {role} fake" in text] == \
        ["generator", "critic", "retriever"]
    worker = re.search(r"job worker \(pid (\d+)\): ready", text)
    assert bool(worker) == (jobs is None) and (f"jobs {'in a worker process' if worker else 'on a thread'}" in text)
    if worker:  # the server stopped it on shutdown
        with pytest.raises(ProcessLookupError):
            os.kill(int(worker.group(1)), 0)
    assert ("a token is required" in text) == bool(token) and "tok-serve-test-1" not in text


def test_ctrl_c_after_a_search_stops_the_server_with_nothing_on_the_console(tmp_path, corpus):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) on a server that answered a
    search of a corpus index: exit status 0, no traceback and no "Exception ignored" (the index's
    item records were once released during the interpreter's teardown, after ``os`` was gone)."""
    profile = tmp_path / "indexed.yaml"
    profile.write_text(f"""
name: indexed
generator: {{use: fake, size: 32}}
critic: {{use: fake}}
retriever: {{use: index, index_dir: "{corpus[1]}"}}
""")
    proc = subprocess.Popen(_imagerag("serve", "--profile", str(profile), "--port", "0", "--runs", str(tmp_path / "runs")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path),
                            start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        while not (found := re.search(r"running on http://127\.0\.0\.1:(\d+)", line := lines.get(timeout=WAIT))):
            seen.append(line)
        url = f"http://127.0.0.1:{found.group(1)}"
        hits = httpx.post(url + "/api/search", json={"text": "a blue boat", "k": 2}).json()["hits"]
        assert hits[0]["caption"] == "a blue boat on a lake"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert "Traceback" not in text and "Exception ignored" not in text, text
