"""Every branch of the ImageRAG loop, with fakes and a scripted critic."""

import json

import pytest
from PIL import Image

from imagerag_sdk.errors import ConfigError, PipelineError
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.testing import FakeCritic, FakeGenerator, FakeReranker, FakeRetriever, ScriptedCritic

PROMPT = "an oil painting of a sheep and a car"


class CountingRetriever(FakeRetriever):
    name = "counting"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls = []

    def search(self, queries, k):
        self.calls.append((list(queries), k))
        return super().search(queries, k)


def fused(*pairs, matches=False):
    return {"matches": matches, "missing": [{"concept": c, "caption": cap} for c, cap in pairs]}


@pytest.fixture
def retriever(tmp_path):
    return CountingRetriever(corpus_dir=str(tmp_path / "corpus"))


def make(retriever, answers, *, generator=None, reranker=None, **loop):
    critic = ScriptedCritic(answers=answers, structured=True)
    gen = generator or FakeGenerator()
    return ImageRAG(gen, critic, retriever, reranker, loop), gen, critic


def test_match_first_time_retrieves_nothing(retriever, tmp_path):
    pipe, gen, _ = make(retriever, [fused(matches=True)])
    result = pipe.run(PROMPT, out=tmp_path / "runs")
    assert result.matched is True and result.references == []
    assert retriever.calls == [] and len(gen.calls) == 1
    assert result.image is result.initial_image


def test_concepts_are_retrieved_in_one_batch_and_fill_the_template(retriever, tmp_path):
    answer = fused(("a sheep", "a sheep standing in a green field"), ("a car", "a red sports car on a street"),
                   ("oil painting", "an oil painting style landscape"), ("a fourth", "never retrieved"))
    pipe, gen, _ = make(retriever, [answer])
    result = pipe.run(PROMPT, seed=7, out=tmp_path / "runs")
    assert len(retriever.calls) == 1, "all captions go in one search"
    assert retriever.calls[0][0] == ["a sheep standing in a green field", "a red sports car on a street",
                                     "an oil painting style landscape"]
    assert len(gen.calls) == 2
    second = gen.calls[1]
    assert second["seed"] == 7 and len(second["references"]) == 3
    assert second["prompt"] == (
        "According to these examples of a sheep standing in a green field: <image 1>, "
        "a red sports car on a street: <image 2>, an oil painting style landscape: <image 3>, "
        f"generate {PROMPT}")
    assert "sheep" in second["references"][0].path and "car" in second["references"][1].path
    trace = json.loads((result.run_dir / "trace.json").read_text())
    assert any("over the budget: a fourth" in n for n in trace["rounds"][0]["critique"]["notes"])


def test_adapter_generator_takes_one_concept_and_the_plain_prompt(retriever, tmp_path):
    gen = FakeGenerator(max_references=1, conditioning="adapter")
    pipe, gen, critic = make(retriever, [fused(("a sheep", "a sheep in a field"), ("a car", "a red car"))],
                             generator=gen)
    pipe.run(PROMPT, out=None)
    assert critic.requests and "at most 1" in critic.requests[0].text
    assert retriever.calls[0][0] == ["a sheep in a field"]
    assert gen.calls[1]["prompt"] == PROMPT and len(gen.calls[1]["references"]) == 1


def test_no_concepts_after_retries_falls_back_to_the_prompt(retriever, tmp_path):
    critic = ScriptedCritic(answers=["No.", "I cannot tell.", "nothing", "", "Sorry."], protocol="three_step")
    gen = FakeGenerator()
    result = ImageRAG(gen, critic, retriever).run(PROMPT, out=tmp_path / "runs")
    temps = critic.temperatures[1:]
    assert len(temps) == 4 and temps == sorted(temps) and len(set(temps)) == 4
    assert retriever.calls[0][0] == [PROMPT]
    assert len(gen.calls) == 2 and len(result.references) == 1
    trace = json.loads((result.run_dir / "trace.json").read_text())
    assert trace["rounds"][0]["fallback"] is True
    assert trace["rounds"][0]["critique"]["gave_up"] is True


def test_fallback_off_keeps_the_initial_image(retriever):
    critic = ScriptedCritic(answers=["garbage"], protocol="fused", retries=1)
    gen = FakeGenerator()
    result = ImageRAG(gen, critic, retriever, loop={"fallback": "none"}).run(PROMPT, out=None)
    assert retriever.calls == [] and len(gen.calls) == 1 and result.image is result.initial_image


def test_min_similarity_drops_are_recorded(retriever, tmp_path):
    answer = fused(("a sheep", "a sheep standing in a green field"), ("a unicorn", "a unicorn with wings"))
    pipe, gen, _ = make(retriever, [answer], min_similarity=0.3)
    result = pipe.run(PROMPT, out=tmp_path / "runs")
    assert [r.concept for r in result.references] == ["a sheep"]
    trace = json.loads((result.run_dir / "trace.json").read_text())
    reasons = [d["reason"] for d in trace["rounds"][0]["dropped"]]
    assert any("below min_similarity 0.3" in r for r in reasons)
    assert any("no reference for 'a unicorn'" in n for n in trace["rounds"][0]["notes"])


def test_nothing_survives_threshold_keeps_image(retriever):
    pipe, gen, _ = make(retriever, [fused(("x", "zzz qqq"))], min_similarity=0.99)
    result = pipe.run(PROMPT, out=None)
    assert len(gen.calls) == 1 and result.references == []


def test_reranker_order_decides_the_reference(retriever):
    # visually the hits for this caption come in corpus order; the reranker puts the cat first
    answer = fused(("a cat", "a cat photo sleeping"))
    pipe, gen, _ = make(retriever, [answer], reranker=FakeReranker(), candidates=12)
    result = pipe.run(PROMPT, out=None)
    assert "cat-sleeping" in result.references[0].path


def test_user_images_count_against_the_budget(retriever, tmp_path):
    user = tmp_path / "me.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(user)
    answer = fused(("a", "a sheep"), ("b", "a car"), ("c", "a cat"))
    pipe, gen, critic = make(retriever, [answer])
    pipe.run(PROMPT, user_images=[user], out=None)
    assert len(retriever.calls[0][0]) == 2
    refs = gen.calls[1]["references"]
    assert refs[0].origin == "user" and refs[0].path == str(user) and len(refs) == 3
    assert gen.calls[0]["references"][0].origin == "user", "the first pass already sees the user image"
    assert "the given subject: <image 1>" in gen.calls[0]["prompt"], "and is told where it is in the prompt"
    assert "the given subject: <image 1>" in gen.calls[1]["prompt"]
    with pytest.raises(ConfigError, match="at most 3"):
        pipe.run(PROMPT, user_images=[user] * 4, out=None)


def test_rephrase_regeneration_keeps_the_user_images_in_the_template(retriever, tmp_path):
    user = tmp_path / "me.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(user)
    pipe, gen, _ = make(retriever, [fused(("a", "a sheep")), "a sheep and a car, oil painting"], mode="rephrase")
    pipe.run(PROMPT, user_images=[user], out=None)
    assert [c["references"][0].origin for c in gen.calls] == ["user", "user"]
    assert gen.calls[1]["prompt"].endswith("generate a sheep and a car, oil painting")
    assert "the given subject: <image 1>" in gen.calls[1]["prompt"]


def test_iterate_stops_when_aligned(retriever):
    gen = FakeGenerator()
    result = ImageRAG(gen, FakeCritic(), retriever, loop={"max_rounds": 3}).run(PROMPT, out=None)
    assert result.matched is True
    assert len(result.critiques) == 2 and len(gen.calls) == 2


def test_iterate_stops_at_max_rounds(retriever):
    pipe, gen, critic = make(retriever, [fused(("a sheep", "a sheep in a field"))], max_rounds=3)
    result = pipe.run(PROMPT, out=None)
    assert len(result.critiques) == 3 and len(gen.calls) == 4 and result.matched is False


def test_malformed_answers_never_crash(retriever):
    critic = ScriptedCritic(answers=["\x00\x01", "{", "[]", "```", "- "], protocol="three_step")
    result = ImageRAG(FakeGenerator(), critic, retriever).run(PROMPT, out=None)
    assert result.critiques[0].gave_up


@pytest.mark.parametrize("mode,query", [("concepts", "a sheep"), ("captions", "a fluffy sheep"),
                                        ("prompt", PROMPT)])
def test_ablation_modes_choose_the_query(retriever, mode, query):
    pipe, _, _ = make(retriever, [fused(("a sheep", "a fluffy sheep"))], mode=mode)
    pipe.run(PROMPT, out=None)
    assert retriever.calls[0][0] == [query]


def test_rephrase_mode_retrieves_nothing(retriever):
    critic = ScriptedCritic(answers=["No", "a detailed oil painting of a sheep beside a car"], protocol="three_step")
    gen = FakeGenerator()
    result = ImageRAG(gen, critic, retriever, loop={"mode": "rephrase"}).run(PROMPT, out=None)
    assert retriever.calls == []
    assert gen.calls[1]["prompt"] == "a detailed oil painting of a sheep beside a car"
    assert result.references == []


def test_rage_flow_retrieve_pick_generate(retriever, tmp_path):
    pipe = ImageRAG(FakeGenerator(), None, retriever)
    hits = pipe.retrieve("a red car", k=4)
    assert len(hits) == 4 and "car" in hits[0].path
    result = pipe.generate_with("my product ad", [hits[0]], out=tmp_path / "runs")
    trace = json.loads((result.run_dir / "trace.json").read_text())
    assert trace["status"] == "done" and trace["picked"][0]["path"] == hits[0].path
    assert pipe.generator.calls[0]["prompt"].startswith("According to these examples of a red")
    with pytest.raises(ConfigError, match="at most 3"):
        pipe.generate_with("x", hits, out=None)


@pytest.mark.parametrize("call", ["run", "generate_with"])
def test_a_run_folder_of_the_callers_name(retriever, tmp_path, call):
    """A caller that must know the folder before the run ends (the web app's jobs) names it."""
    pipe, _, _ = make(retriever, [fused(matches=True)])
    runs = tmp_path / "runs"

    def go(name):
        if call == "run":
            return pipe.run(PROMPT, out=runs, run_name=name)
        return pipe.generate_with(PROMPT, [], out=runs, run_name=name)

    assert go("job-1").run_dir == runs / "job-1"
    assert json.loads((runs / "job-1" / "trace.json").read_text())["status"] == "done"
    with pytest.raises(ConfigError, match="already exists"):
        go("job-1")
    for bad in ("", "..", "a/b", "../out"):
        with pytest.raises(ConfigError, match="not a folder name"):
            go(bad)
    assert sorted(p.name for p in runs.iterdir()) == ["job-1"]


class ExplodingGenerator(FakeGenerator):
    name = "exploding"

    def generate(self, prompt, references=(), *, seed=None):
        if references:
            raise RuntimeError("CUDA out of memory")
        return super().generate(prompt, references, seed=seed)


def test_failure_names_stage_and_component_and_keeps_trace(retriever, tmp_path):
    pipe, _, _ = make(retriever, [fused(("a sheep", "a sheep"))], generator=ExplodingGenerator())
    with pytest.raises(PipelineError) as err:
        pipe.run(PROMPT, out=tmp_path / "runs")
    assert "stage 'generate'" in str(err.value) and "generator 'exploding'" in str(err.value)
    run_dir = next((tmp_path / "runs").iterdir())
    trace = json.loads((run_dir / "trace.json").read_text())
    assert trace["status"] == "failed" and "out of memory" in trace["error"]
    assert (run_dir / "initial.png").exists() and (run_dir / "report.html").exists()


class InterruptingRetriever(CountingRetriever):
    def search(self, queries, k):
        raise KeyboardInterrupt


def test_interrupted_run_is_recorded(tmp_path):
    pipe, _, _ = make(InterruptingRetriever(corpus_dir=str(tmp_path / "c")), [fused(("a", "b"))])
    with pytest.raises(KeyboardInterrupt):
        pipe.run(PROMPT, out=tmp_path / "runs")
    run_dir = next((tmp_path / "runs").iterdir())
    trace = json.loads((run_dir / "trace.json").read_text())
    assert trace["status"] == "interrupted"
    assert [s["stage"] for s in trace["stages"]] == ["generate", "critique", "retrieve"]
    assert trace["stages"][-1]["status"] == "interrupted"


class TinyScoreReranker(FakeReranker):
    """Rescores like RRF does (scores around 0.016): the threshold must not see these."""

    name = "tiny-score"

    def rerank(self, query, hits):
        from imagerag_sdk.types import Hit
        return [Hit(path=h.path, score=0.016, corpus=h.corpus, metadata=h.metadata, query=h.query, rank=i)
                for i, h in enumerate(reversed(list(hits)))]


def test_threshold_applies_to_similarity_before_reranking(retriever, tmp_path):
    answer = fused(("a sheep", "a sheep standing in a green field"))
    pipe, gen, _ = make(retriever, [answer], reranker=TinyScoreReranker(), min_similarity=0.3, candidates=5)
    result = pipe.run(PROMPT, out=tmp_path / "runs")
    assert len(result.references) == 1, "the reranker's own scores are not similarities"
    trace = json.loads((result.run_dir / "trace.json").read_text())
    assert len(trace["rounds"][0]["reranked"]["a sheep standing in a green field"]) < 5


class OldCritic(ScriptedCritic):
    """A third-party critic written before ``user_images`` existed."""

    name = "old"

    def critique(self, prompt, image, max_concepts=3):
        return super().critique(prompt, image, max_concepts=max_concepts)


def test_a_critic_without_user_images_still_runs_without_them(retriever):
    critic = OldCritic(answers=[fused(("a", "a sheep"))], structured=True)
    gen = FakeGenerator()
    result = ImageRAG(gen, critic, retriever, None, {}).run(PROMPT, out=None)
    assert len(gen.calls) == 2 and result.references


def test_user_images_with_a_critic_that_cannot_see_them_is_a_clear_error(retriever, tmp_path):
    user = tmp_path / "me.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(user)
    critic = OldCritic(answers=[fused(("a", "a sheep"))], structured=True)
    gen = FakeGenerator()
    with pytest.raises(ConfigError, match=r"critic 'old' .* cannot see user images: its critique\(\) takes no"):
        ImageRAG(gen, critic, retriever, None, {}).run(PROMPT, user_images=[user], out=tmp_path / "runs")
    assert gen.calls == [] and not (tmp_path / "runs").exists(), "refused before anything is generated or written"
