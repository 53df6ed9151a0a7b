"""loop.limits: a critic's huge answer is cut, the cut is recorded, and the run folder stays small."""

import json

import pytest

from imagerag_sdk.errors import ProfileError
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.testing import FakeGenerator, FakeRetriever, ScriptedCritic

PROMPT = "a sheep in a field"
HUGE = ("a woolly white sheep standing in a green meadow under a blue sky " * 16_500)[:1_048_576]


class RecordingRetriever(FakeRetriever):
    name = "recording"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.queries = []

    def search(self, queries, k):
        self.queries.append(list(queries))
        return super().search(queries, k)


def huge_run(tmp_path, concept="a sheep", caption=HUGE, **loop):
    answer = {"matches": False, "missing": [{"concept": concept, "caption": caption}]}
    retriever = RecordingRetriever(corpus_dir=str(tmp_path / "corpus"))
    pipe = ImageRAG(FakeGenerator(), ScriptedCritic(answers=[answer], structured=True), retriever, None, loop)
    result = pipe.run(PROMPT, out=tmp_path / "runs")
    return result, retriever


def test_a_one_megabyte_caption_is_cut_recorded_and_keeps_the_run_folder_small(tmp_path):
    result, retriever = huge_run(tmp_path)
    run = result.run_dir
    trace_text = (run / "trace.json").read_text()
    assert len(trace_text.encode()) < 100_000, "trace.json stays small"
    assert (run / "report.html").stat().st_size < 100_000, "report.html stays small"
    assert retriever.queries == [[HUGE.strip()[:1000]]], "retrieval searches by the cut caption"
    assert result.critiques[0].missing[0].caption == HUGE.strip()[:1000]

    trace = json.loads(trace_text)
    cuts = {c["what"]: c for c in trace["rounds"][0]["truncated"]}
    caption = cuts["caption"]
    assert caption["where"] == "a sheep" and caption["kept_chars"] == 1000
    assert caption["original_chars"] == len(HUGE.strip())
    assert (run / caption["full_text"]).read_text() == HUGE.strip(), "the full caption is kept aside"
    answer = cuts["answer"]
    assert answer["where"] == "fused #1" and answer["kept_chars"] == 8000
    assert HUGE.strip() in (run / answer["full_text"]).read_text(), "the full raw answer is kept aside"
    assert len(trace["rounds"][0]["critique"]["exchanges"][0]["answer"]) == 8000

    assert "base64" not in trace_text and trace["generations"][0]["image"] == "initial.png"
    html = (run / "report.html").read_text()
    assert f'<a href="{caption["full_text"]}">' in html and "1000 characters" in html


def test_long_concepts_are_cut_too(tmp_path):
    result, retriever = huge_run(tmp_path, concept="sheep " * 1000, caption="a sheep in a field", mode="concepts")
    assert retriever.queries == [[("sheep " * 1000)[:200]]]
    trace = json.loads((result.run_dir / "trace.json").read_text())
    [cut] = trace["rounds"][0]["truncated"]
    assert (cut["what"], cut["original_chars"], cut["kept_chars"]) == ("concept", 5999, 200)


def test_any_long_text_is_written_once_beside_the_trace(tmp_path):
    """Texts no limit covers (here a long prompt) are previewed in trace.json, kept in texts/."""
    prompt = "a sheep " * 5000
    pipe = ImageRAG(FakeGenerator(), ScriptedCritic(answers=[{"matches": True, "missing": []}], structured=True),
                    FakeRetriever(corpus_dir=str(tmp_path / "corpus")))
    result = pipe.run(prompt, out=tmp_path / "runs")
    trace_text = (result.run_dir / "trace.json").read_text()
    assert len(trace_text) < 60_000 and prompt not in trace_text
    trace = json.loads(trace_text)
    side = trace["prompt"].rsplit("full text: ", 1)[1].rstrip("]")
    assert (result.run_dir / side).read_text() == prompt
    assert trace["generations"][0]["prompt"] == trace["prompt"], "the same text, the same side file"
    assert len(list((result.run_dir / "texts").iterdir())) == 2  # the prompt, and the critic's request


def test_limits_are_set_in_the_profile(tmp_path):
    profile = tmp_path / "small.yaml"
    answer = {"matches": False, "missing": [{"concept": "a sheep", "caption": "a sheep standing in a green field"}]}
    profile.write_text(
        "name: small\ngenerator: {use: fake}\n"
        f"critic: {{use: scripted, structured: true, answers: [{json.dumps(answer)}]}}\n"
        f"retriever: {{use: fake, corpus_dir: {tmp_path / 'corpus'}}}\n"
        "loop: {limits: {caption: 20}}\n")
    pipe = ImageRAG.from_profile(str(profile))
    assert pipe.loop.limits.caption == 20 and pipe.loop.limits.answer == 8000
    result = pipe.run(PROMPT, out=tmp_path / "runs")
    trace = json.loads((result.run_dir / "trace.json").read_text())
    assert trace["rounds"][0]["queries"][0]["query"] == "a sheep standing in "
    assert trace["settings"]["limits"] == {"answer": 8000, "concept": 200, "caption": 20}
    assert [c["what"] for c in trace["rounds"][0]["truncated"]] == ["caption"]


@pytest.mark.parametrize("limits, message", [("{caption: 5}", "loop.limits.caption"),
                                             ("{captoin: 50}", "loop.limits.captoin")])
def test_bad_limits_name_the_field(tmp_path, limits, message):
    profile = tmp_path / "bad.yaml"
    profile.write_text(f"name: bad\ngenerator: {{use: fake}}\ncritic: {{use: fake}}\nloop: {{limits: {limits}}}\n")
    with pytest.raises(ProfileError, match=message):
        ImageRAG.from_profile(str(profile))
