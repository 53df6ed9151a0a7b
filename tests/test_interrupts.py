"""A stopped run (Ctrl-C or SIGTERM) still says 'interrupted' and writes its report."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from imagerag_sdk.interrupts import Terminated, sigterm_as_interrupt
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.testing import FakeGenerator, FakeRetriever, ScriptedCritic

PROMPT = "an oil painting of a sheep and a car"
MISSING = {"matches": False, "missing": [{"concept": "a sheep", "caption": "a sheep standing in a green field"}]}


def wait_for(folder, pattern, proc, limit=120.0):
    """Poll until a file matching ``pattern`` exists; a guard against a hang, not a timing assertion."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = list(folder.glob(pattern))
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {pattern} appeared: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{folder / pattern} never appeared")


def test_sigterm_stops_generate_like_ctrl_c(tmp_path):
    profile = tmp_path / "slow.yaml"
    profile.write_text("name: slow\ngenerator: {use: fake, delay: 120}\ncritic: {use: fake}\nretriever: {use: fake}\n")
    env = {**os.environ, "IMAGERAG_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "imagerag_sdk.cli", "generate", PROMPT, "--profile", str(profile),
                             "--out", str(tmp_path / "runs")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    trace_path = wait_for(tmp_path / "runs", "*/trace.json", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    trace = json.loads(trace_path.read_text())
    assert trace["status"] == "interrupted" and trace["error"] == "terminated by SIGTERM"
    report = (trace_path.parent / "report.html").read_text()
    assert "interrupted" in report and PROMPT in report


class StopCritic(ScriptedCritic):
    name = "stop-critic"

    def ask(self, request):
        raise KeyboardInterrupt


class StopRetriever(FakeRetriever):
    name = "stop-retriever"

    def search(self, queries, k):
        raise Terminated()


class StopGenerator(FakeGenerator):
    """Stops on the call numbered ``at`` (0: the initial image)."""

    name = "stop-generator"

    def __init__(self, at, **kw):
        super().__init__(**kw)
        self.at = at

    def generate(self, prompt, references=(), *, seed=None):
        if len(self.calls) == self.at:
            raise KeyboardInterrupt
        return super().generate(prompt, references, seed=seed)


@pytest.mark.parametrize("where", ["generate", "critique", "retrieve", "regenerate"])
def test_a_run_stopped_in_any_stage_writes_its_report(tmp_path, where):
    generator = StopGenerator({"generate": 0, "regenerate": 1}.get(where, 99))
    critic = (StopCritic if where == "critique" else ScriptedCritic)(answers=[MISSING], structured=True)
    retriever = (StopRetriever if where == "retrieve" else FakeRetriever)(corpus_dir=str(tmp_path / "corpus"))
    with pytest.raises(KeyboardInterrupt):
        ImageRAG(generator, critic, retriever).run(PROMPT, out=tmp_path / "runs")
    [run] = (tmp_path / "runs").iterdir()
    trace = json.loads((run / "trace.json").read_text())
    assert trace["status"] == "interrupted"
    last = trace["stages"][-1]
    assert (last["stage"], last["status"]) == ("generate" if where == "regenerate" else where, "interrupted")
    assert "interrupted" in (run / "report.html").read_text()


def test_sigterm_handler_is_installed_for_the_block_and_restored():
    seen = []

    def previous(signum, frame):
        seen.append(signum)

    old = signal.signal(signal.SIGTERM, previous)
    try:
        with pytest.raises(Terminated, match="SIGTERM"):
            with sigterm_as_interrupt():
                signal.raise_signal(signal.SIGTERM)
        assert seen == [], "inside the block SIGTERM raised Terminated"
        assert signal.getsignal(signal.SIGTERM) is previous
        signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, old)


def test_outside_the_main_thread_it_leaves_signals_alone():
    before = signal.getsignal(signal.SIGTERM)
    errors, inside = [], []

    def work():
        try:
            with sigterm_as_interrupt():
                inside.append(signal.getsignal(signal.SIGTERM))
        except Exception as exc:  # recorded for the assertion below
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == [] and inside == [before]
