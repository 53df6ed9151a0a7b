"""/api/jobs: generate with picked references and the full loop, the bounded queue (429), cancel
(queued and running), failures, server-sent events (replayed, then live), and a search answered
while a generation runs; each with jobs on the server's thread and in a worker process (the
``jobs_mode`` fixture), which must answer the same. Jobs are waited for with files and event
streams, never timed."""

from __future__ import annotations

import json

from imagerag_sdk.runtrace import RunTrace


def _events(lines) -> list[tuple[str | None, dict]]:
    out: list[tuple[str | None, dict]] = []
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            out.append((kind, json.loads(line[6:])))
    return out


def _submit(client, **body):
    out = client.post("/api/jobs", json=body)
    assert out.status_code == 202, out.text
    return out.json()["job"]


def test_generate_with_picked_references(gated_app, tmp_path, search_paths, wait_job):
    client, gate = gated_app()
    gate.open()
    refs = search_paths(client, "a red apple", 2)
    job = _submit(client, kind="generate", prompt="an apple on a boat", references=refs, seed=7)
    assert job["status"] in ("queued", "running", "done") and job["kind"] == "generate" and job["seed"] == 7
    assert set(job) >= {"id", "kind", "status", "prompt", "seed", "created", "started", "finished", "events",
                        "run", "error"}
    done = wait_job(client, job["id"])
    assert done["status"] == "done" and done["error"] is None and done["started"] and done["finished"]
    assert [e["stage"] for e in done["events"]] == ["start", "generate", "end"]
    trace = RunTrace.load(tmp_path / "runs" / done["run"])
    assert trace.status == "done" and trace.mode == "picked" and trace.seed == 7
    assert [p.path for p in trace.picked] == refs
    hits = {h["path"]: h["caption"] for h in client.post("/api/search", json={"text": "a red apple", "k": 2}
                                                          ).json()["hits"]}
    assert [p.caption for p in trace.picked] == [hits[r] for r in refs] and all(hits.values()), \
        "generated with the captions of the hits picked"
    assert client.get("/api/jobs").json()["jobs"][0]["id"] == job["id"]

    runs = client.get("/api/runs").json()["runs"]
    assert runs[0]["id"] == done["run"] and runs[0]["status"] == "done" and runs[0]["mode"] == "picked"
    assert runs[0]["prompt"] == "an apple on a boat" and client.get(runs[0]["thumb"]).status_code == 200
    detail = client.get(f"/api/runs/{done['run']}").json()
    assert detail["id"] == done["run"] and detail["trace"]["status"] == "done"
    files = detail["files"]
    assert files["initial"] is None and files["final"].endswith("/final.png") and len(files["references"]) == 2
    for url in [files["final"], files["report"], *files["references"]]:
        assert client.get(url).status_code == 200, url


def test_the_full_loop_as_a_job_and_runs_newest_first(gated_app, tmp_path, wait_job):
    client, gate = gated_app()
    gate.open()
    first = wait_job(client, _submit(client, kind="run", prompt="a blue boat on a lake")["id"])
    second = wait_job(client, _submit(client, kind="run", prompt="a green forest", seed=3)["id"])
    assert first["status"] == second["status"] == "done"
    stages = [e["stage"] for e in second["events"]]
    assert stages[:3] == ["start", "generate", "critique"] and stages[-1] == "end"
    trace = RunTrace.load(tmp_path / "runs" / second["run"])
    assert trace.mode == "captions" and trace.status == "done" and trace.rounds
    assert [r["id"] for r in client.get("/api/runs").json()["runs"]][:2] in (
        [second["run"], first["run"]], sorted([second["run"], first["run"]], reverse=True))


def test_bad_jobs_get_one_line_4xx(client, tmp_path, search_paths):
    refs = search_paths(client, "a", 3)
    out = client.post("/api/jobs", json={"kind": "generate", "prompt": "x", "references": refs})
    assert out.status_code == 400 and "takes at most 2: pick fewer" in out.json()["error"]
    out = client.post("/api/jobs", json={"kind": "generate", "prompt": "x", "references": [str(tmp_path / "x.png")]})
    assert out.status_code == 400 and "not an image of this app's corpora" in out.json()["error"]
    assert client.post("/api/jobs", json={"kind": "paint", "prompt": "x"}).status_code == 422
    assert client.post("/api/jobs", json={"kind": "run", "prompt": ""}).status_code == 422
    assert client.post("/api/jobs", json={"kind": "run", "prompt": "x", "seed": -1}).status_code == 422
    for method, url in (("GET", "/api/jobs/nope"), ("POST", "/api/jobs/nope/cancel"),
                        ("GET", "/api/jobs/nope/events")):
        out = client.request(method, url)
        assert out.status_code == 404 and "no job 'nope'" in out.json()["error"], url
    assert client.get("/api/runs/nope").status_code == 404
    assert client.get("/api/jobs").json() == {"jobs": []}, "no bad request was queued"


def test_a_search_is_answered_while_a_generation_runs(gated_app, search_paths):
    client, gate = gated_app()
    job = _submit(client, kind="generate", prompt="x", references=[])
    assert gate.wait_entered()
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "running"
    assert len(search_paths(client, "a blue boat", 2)) == 2  # the generator is still held at its gate
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "running"
    gate.open()


def test_the_queue_is_bounded_429_and_a_cancelled_queued_job_never_runs(gated_app, tmp_path, wait_job):
    client, gate = gated_app(queue_size=1)
    running = _submit(client, kind="generate", prompt="first", references=[])
    assert gate.wait_entered()
    queued = _submit(client, kind="generate", prompt="second", references=[])
    full = client.post("/api/jobs", json={"kind": "generate", "prompt": "third", "references": []})
    assert full.status_code == 429 and "queue is full" in full.json()["error"]
    cancelled = client.post(f"/api/jobs/{queued['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished"] and cancelled["started"] is None
    assert _submit(client, kind="generate", prompt="third", references=[])["status"] == "queued"  # room again
    gate.open()
    assert wait_job(client, running["id"])["status"] == "done"
    jobs = {j["prompt"]: j for j in client.get("/api/jobs").json()["jobs"]}
    assert wait_job(client, jobs["third"]["id"])["status"] == "done"
    assert jobs["second"]["status"] == "cancelled" and jobs["second"]["run"] is None
    assert [prompt for _, prompt in gate.calls()] == ["first", "third"], "the cancelled job never ran"
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_cancel_a_running_loop_stops_at_the_next_stage_and_the_trace_says_so(gated_app, tmp_path, wait_job):
    client, gate = gated_app()
    job = _submit(client, kind="run", prompt="a red apple")
    assert gate.wait_entered()
    assert client.get("/api/runs").json()["runs"][0]["status"] == "running"
    assert client.get(f"/api/jobs/{job['id']}").json()["run"] is not None, "the run folder is known while it runs"
    asked = client.post(f"/api/jobs/{job['id']}/cancel").json()
    assert asked["status"] == "running" and asked["events"][-1]["stage"] == "cancel"
    gate.open()
    done = wait_job(client, job["id"])
    assert done["status"] == "cancelled" and "cancelled" in done["error"]
    assert "critique" not in [e["stage"] for e in done["events"]], "stopped before the critique stage ran"
    trace = RunTrace.load(tmp_path / "runs" / done["run"])
    assert trace.status == "interrupted" and "cancelled from the web app" in (trace.error or "")
    assert client.get("/api/runs").json()["runs"][0]["status"] == "interrupted"
    assert len(gate.calls()) == 1 and all(r.critique is None for r in trace.rounds)
    assert "before stage 'critique'" in done["error"]
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelled"  # idempotent


def test_a_failed_job_keeps_its_run_folder_whose_trace_says_failed(gated_app, tmp_path, wait_job):
    client, gate = gated_app(fail_with="the GPU caught fire")
    gate.open()
    done = wait_job(client, _submit(client, kind="run", prompt="a red apple")["id"])
    assert done["status"] == "failed" and "the GPU caught fire" in done["error"] and "\n" not in done["error"]
    trace = RunTrace.load(tmp_path / "runs" / done["run"])
    assert trace.status == "failed" and "the GPU caught fire" in (trace.error or "")
    assert client.get("/api/runs").json()["runs"][0]["status"] == "failed"


def test_events_are_replayed_then_live_then_end(gated_app):
    client, gate = gated_app()
    job = _submit(client, kind="generate", prompt="x", references=[])
    assert gate.wait_entered()
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        seen = []
        for line in lines:  # the past events first: start, generate
            seen.append(line)
            if '"stage": "generate"' in line:
                break
        gate.open()  # now the job finishes while the stream is open
        seen += list(lines)
    events = _events(seen)
    assert [k for k, _ in events] == ["stage", "stage", "stage", "end"]
    assert [d["stage"] for _, d in events[:3]] == ["start", "generate", "end"]
    assert events[-1][1]["status"] == "done" and events[-1][1]["id"] == job["id"]
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as late:  # a late subscriber misses nothing
        assert _events(late.iter_lines()) == events
