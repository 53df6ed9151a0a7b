"""Run folders: what trace.json holds, the report, and that secrets never reach disk."""

import json
import re
from urllib.parse import unquote

from pydantic import Field, SecretStr

from imagerag_sdk import hookimpl
from imagerag_sdk.critique import VLMAnswer, VLMCriticOptions
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.testing import FakeCritic

PROMPT = "an oil painting of a sheep and a car"
KEY = "sk-test-7f3a9c1e5b2d4f6a8c0e"


def test_trace_records_the_whole_run(tmp_path):
    result = ImageRAG.from_profile("fake").run(PROMPT, seed=3, out=tmp_path)
    run = result.run_dir
    files = {p.name for p in run.iterdir()}
    assert {"initial.png", "final.png", "round-1.png", "trace.json", "report.html", "references"} <= files
    trace = json.loads((run / "trace.json").read_text())
    assert trace["status"] == "done" and trace["prompt"] == PROMPT and trace["seed"] == 3
    assert trace["components"]["generator"]["name"] == "fake"
    assert trace["components"]["critic"]["version"]
    rnd = trace["rounds"][0]
    exchange = rnd["critique"]["exchanges"][0]
    assert {"prompt", "answer", "temperature", "attempt"} <= set(exchange)
    assert rnd["queries"][0]["caption"]
    first_hits = next(iter(rnd["hits"].values()))
    assert first_hits[0]["score"] >= first_hits[-1]["score"]
    assert rnd["used"] and all((run / u["copied_to"]).exists() for u in rnd["used"])
    assert all(u["path"].startswith("/") for u in rnd["used"]), "source paths are kept"
    assert {s["stage"] for s in trace["stages"]} == {"generate", "critique", "retrieve"}
    assert all(s["seconds"] >= 0 for s in trace["stages"])
    assert trace["generations"][1]["seed"] == 3
    assert trace["budget"]["concepts"] == 3


def test_report_is_self_contained(tmp_path):
    """Images are the run folder's files by relative path (candidates as thumbnails), CSS inline."""
    result = ImageRAG.from_profile("fake").run(PROMPT, out=tmp_path)
    html = (result.run_dir / "report.html").read_text()
    assert PROMPT in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) >= 4 and html.count("<img") == len(sources)  # initial, final, references, candidates
    for src in sources:
        assert not src.startswith(("/", "http", "data:")) and (result.run_dir / unquote(src)).is_file(), src
    assert "<link" not in html and "<script" not in html and "http://" not in html and "https://" not in html


class LeakyCriticOptions(VLMCriticOptions):
    api_key: SecretStr = Field(..., description="the key")


class LeakyCritic(FakeCritic):
    """A provider whose 'model' echoes the key, as a badly behaved server might."""

    name = "leaky"
    Options = LeakyCriticOptions

    def ask(self, request):
        answer = super().ask(request)
        return VLMAnswer(text=answer.text + f" (key {self.options.api_key.get_secret_value()})",
                         data=answer.data)


class LeakyPlugin:
    @hookimpl
    def register_critics(self, register):
        register(LeakyCritic)


def test_api_keys_never_reach_the_run_folder(tmp_path, monkeypatch, register_plugin):
    register_plugin(LeakyPlugin(), name="leaky")
    monkeypatch.setenv("MY_PROVIDER_KEY", KEY)
    profile = tmp_path / "leaky.yaml"
    profile.write_text("name: leaky\ngenerator: {use: fake}\ncritic: {use: leaky, api_key: {$env: MY_PROVIDER_KEY}}\n"
                       "retriever: {use: fake}\n")
    pipe = ImageRAG.from_profile(str(profile))
    assert pipe.critic.options.api_key.get_secret_value() == KEY
    result = pipe.run(PROMPT, out=tmp_path / "runs")
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"key leaked into {path.name}"
    trace = (result.run_dir / "trace.json").read_text()
    assert "***" in trace


def test_report_marks_a_hit_used_only_under_its_own_query(tmp_path):
    result = ImageRAG.from_profile("fake").run(PROMPT, out=tmp_path)
    trace = json.loads((result.run_dir / "trace.json").read_text())
    used = trace["rounds"][0]["used"]
    assert all(u["query"] in trace["rounds"][0]["hits"] for u in used)
    html = (result.run_dir / "report.html").read_text()
    assert html.count('class="cand used"') == len(used)


def test_a_run_of_ordinary_sizes_is_written_whole(tmp_path):
    """Limits and side files leave an ordinary run alone: trace.json holds the run's data as it is."""
    result = ImageRAG.from_profile("fake").run(PROMPT, out=tmp_path)
    on_disk = json.loads((result.run_dir / "trace.json").read_text())
    assert on_disk == result.trace.to_dict()
    assert on_disk["settings"]["limits"] == {"answer": 8000, "concept": 200, "caption": 1000}
    assert not (result.run_dir / "texts").exists()
    assert all(not r["truncated"] for r in on_disk["rounds"])
