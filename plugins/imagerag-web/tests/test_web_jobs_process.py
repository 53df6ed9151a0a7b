"""Jobs in a worker process (``create_app(jobs="process")``, ``imagerag serve --jobs process``): the
worker runs the generator (the server loads only what search needs), a worker killed mid-job fails
its job with a one-line reason and a trace that says so, a fresh worker runs the next job,
shutdown stops the worker (SIGTERM, then SIGKILL, for one that does not stop at a stage boundary),
and secrets stay masked in both modes. Waited for with files and event streams, never timed."""

from __future__ import annotations

import functools
import os
import signal

import pytest
import webjob_rig
from fastapi.testclient import TestClient

from imagerag_sdk.errors import ConfigError, ImageRAGError
from imagerag_sdk.runtrace import Capabilities, RunTrace
from imagerag_web import create_app
from imagerag_web.worker import mark_trace_failed

SECRET = "sk-test-Secret-0123456789"


def _submit(client, **body):
    out = client.post("/api/jobs", json=body)
    assert out.status_code == 202, out.text
    return out.json()["job"]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("jobs_mode", ["process"])
def test_a_killed_worker_fails_its_job_the_trace_says_so_and_a_fresh_worker_runs_the_next(
        gated_app, tmp_path, wait_job):
    client, gate = gated_app()
    web = client.app.state.web
    assert web.pipeline.retriever.loaded and not web.pipeline.generator.loaded, \
        "the server loads what search needs; the generator loads in the worker only"
    job = _submit(client, kind="run", prompt="a red apple")
    assert gate.wait_entered()
    [pid] = web.jobs.worker_pids()
    assert gate.calls() == [(pid, "a red apple")] and pid != os.getpid(), "the generator ran in the worker"
    os.kill(pid, signal.SIGKILL)
    done = wait_job(client, job["id"])
    assert done["status"] == "failed" and "\n" not in done["error"]
    assert "job worker process died during stage 'generate'" in done["error"] and "SIGKILL" in done["error"]
    assert [e["stage"] for e in done["events"]] == ["start", "generate", "end"]
    trace = RunTrace.load(tmp_path / "runs" / done["run"])
    assert trace.status == "failed" and "SIGKILL" in (trace.error or "") and trace.finished_at
    assert (tmp_path / "runs" / done["run"] / "report.html").is_file()
    assert client.get("/api/runs").json()["runs"][0]["status"] == "failed"
    assert _gone(pid)

    gate.open()
    after = wait_job(client, _submit(client, kind="generate", prompt="again", references=[])["id"])
    assert after["status"] == "done", after
    [fresh] = web.jobs.worker_pids()
    assert fresh != pid and gate.calls()[-1] == (fresh, "again")


@pytest.mark.parametrize("jobs_mode", ["process"])
def test_a_fresh_worker_that_cannot_load_fails_the_next_job_which_never_started(gated_app, wait_job):
    client, gate = gated_app()
    jobs = client.app.state.web.jobs
    job = _submit(client, kind="generate", prompt="first", references=[])
    assert gate.wait_entered()
    (gate.folder / "load-fails").write_text("the GPU is gone")  # every worker started from now on
    [pid] = jobs.worker_pids()
    os.kill(pid, signal.SIGKILL)
    assert wait_job(client, job["id"])["status"] == "failed"
    gate.open()
    second = wait_job(client, _submit(client, kind="generate", prompt="second", references=[])["id"])
    assert second["status"] == "failed" and second["run"] is None and second["started"] is None
    assert second["error"].startswith("the job worker process could not load the pipeline: stage 'load'")
    assert "the GPU is gone" in second["error"] and [e["stage"] for e in second["events"]] == ["end"]
    (gate.folder / "load-fails").unlink()
    third = wait_job(client, _submit(client, kind="generate", prompt="third", references=[])["id"])
    assert third["status"] == "done", third
    assert [prompt for _, prompt in gate.calls()] == ["first", "third"]


def test_the_server_marks_a_trace_the_dead_worker_left_running_or_writes_one(tmp_path):
    caps = Capabilities(max_references=1, conditioning="adapter", uses_captions=False, image_placeholder="")
    left = tmp_path / "left"
    left.mkdir()
    (left / "trace.json").write_text(RunTrace(prompt="p", seed=1, mode="picked", capabilities=caps)
                                     .model_dump_json(by_alias=True))
    never = tmp_path / "never"

    def fallback() -> RunTrace:
        return RunTrace(prompt="q", seed=2, mode="captions", capabilities=caps)

    for folder in (left, never):
        mark_trace_failed(folder, f"the worker died; key {SECRET}", fallback=fallback, secrets={SECRET})
        trace = RunTrace.load(folder)
        assert trace.status == "failed" and trace.error == "the worker died; key ***" and trace.seconds is not None
        assert (folder / "report.html").is_file() and SECRET not in (folder / "trace.json").read_text()
    assert RunTrace.load(left).prompt == "p" and RunTrace.load(never).prompt == "q"
    done = RunTrace(prompt="p", seed=1, mode="picked", capabilities=caps, status="done")
    (left / "trace.json").write_text(done.model_dump_json(by_alias=True))
    mark_trace_failed(left, "late", fallback=fallback, secrets=set())
    assert RunTrace.load(left).status == "done", "a final trace is left alone"


def test_shutdown_stops_an_idle_worker_cleanly(corpus, tmp_path):
    gate = webjob_rig.Gate(tmp_path / "gate")
    recreate = functools.partial(webjob_rig.build, str(corpus[1]), str(gate.folder))
    app = create_app(recreate(), runs_dir=tmp_path / "runs", jobs="process", recreate=recreate)
    with TestClient(app) as client:
        assert client.get("/api/info").status_code == 200
        [worker] = app.state.web.jobs.workers
        assert worker.alive()
    assert worker.exitcode == 0 and _gone(worker.pid), "stopped by its 'stop' message, not killed"


@pytest.mark.parametrize("jobs_mode", ["process"])
def test_shutdown_terminates_a_worker_that_does_not_reach_a_stage_boundary(gated_app, tmp_path, wait_job):
    client, gate = gated_app()
    jobs = client.app.state.web.jobs
    job = _submit(client, kind="run", prompt="a slow one")
    assert gate.wait_entered()
    [worker] = jobs.workers
    jobs.close(timeout=0.2)  # the generator stays at its gate: SIGTERM after 0.2 s
    assert not worker.alive() and worker.exitcode == 0, "SIGTERM became an interrupt; the worker then exited"
    done = jobs.snapshot(job["id"])
    assert done["status"] == "cancelled" and "SIGTERM" in done["error"]
    trace = RunTrace.load(tmp_path / "runs" / done["run"])
    assert trace.status == "interrupted" and "SIGTERM" in (trace.error or "")


def test_secrets_are_masked_in_events_and_errors(gated_app, tmp_path, wait_job, jobs_mode):
    client, gate = gated_app(fail_with=f"the provider refused key {SECRET}", secrets=(SECRET,))
    gate.open()
    done = wait_job(client, _submit(client, kind="run", prompt="a red apple")["id"])
    assert done["status"] == "failed" and "refused key ***" in done["error"], done
    with client.stream("GET", f"/api/jobs/{done['id']}/events") as stream:
        text = "".join(stream.iter_lines())
    assert "refused key ***" in text and SECRET not in text and SECRET not in str(done)
    assert SECRET not in (tmp_path / "runs" / done["run"] / "trace.json").read_text()


def test_a_worker_that_cannot_load_fails_at_start_in_one_line(corpus, tmp_path):
    gate = webjob_rig.Gate(tmp_path / "gate")
    recreate = functools.partial(webjob_rig.build, str(corpus[1]), str(gate.folder), secrets=(SECRET,),
                                 load_fails=f"no CUDA device for key {SECRET}")
    with pytest.raises(ImageRAGError) as err:
        create_app(webjob_rig.build(str(corpus[1]), str(gate.folder)), runs_dir=tmp_path / "runs", jobs="process",
                   recreate=recreate)
    message = str(err.value)
    assert "job worker process could not load the pipeline" in message and "no CUDA device for key ***" in message
    assert "stage 'load' (generator 'gated'" in message and "\n" not in message


def test_process_mode_needs_a_picklable_recreate(corpus, tmp_path):
    gate = webjob_rig.Gate(tmp_path / "gate")
    pipeline = webjob_rig.build(str(corpus[1]), str(gate.folder))
    with pytest.raises(ConfigError, match="jobs='process' needs recreate"):
        create_app(pipeline, runs_dir=tmp_path / "runs", jobs="process")
    with pytest.raises(ConfigError, match="could not be started.*picklable recreate"):
        create_app(pipeline, runs_dir=tmp_path / "runs", jobs="process", recreate=lambda: pipeline)
