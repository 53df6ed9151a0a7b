"""The harness on a constructed benchmark with a known effect, resume, and failures."""

import json

import pytest

from imagerag_sdk import Scorer
from imagerag_sdk.errors import ComponentNotFoundError, ConfigError, ProfileError
from imagerag_sdk.eval import runner
from imagerag_sdk.hookspecs import hookimpl
from imagerag_sdk.roles import Options
from imagerag_sdk.testing.colour import ColourScorer
from imagerag_sdk.testing.fakes import FakeGenerator


def evaluate(bench, profile, out, *, seeds=(0, 1), scorers=("colour",), systems=None, overrides=()):
    args = systems or runner.system_args([str(profile)], [], list(overrides))
    return runner.run(runner.plan(bench, args, list(scorers), out, seeds=list(seeds)), show_progress=False)


def metric(summary, system=0, name="colour"):
    return summary["systems"][system]["metrics"][name]


def test_references_that_carry_the_colour_give_a_positive_interval_excluding_zero(bench, tmp_path, colour_profile):
    summary = evaluate(bench, colour_profile(tmp_path, "colour"), tmp_path / "out")
    m = metric(summary)
    assert m["diff"]["n"] == 24
    assert m["diff"]["ci_low"] > 0, m["diff"]
    assert m["diff"]["ci_low"] <= m["diff"]["mean"] <= m["diff"]["ci_high"]
    assert m["final"]["mean"] > m["initial"]["mean"] and m["win_rate"] > 0.5
    block = summary["systems"][0]
    assert block["critic"] == {"judged": 24, "matched": 0, "gave_up": 0, "fell_back": 0}
    out = tmp_path / "out"
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {r["status"] for r in rows} == {"done"}
    row = rows[0]
    assert (out / row["initial_image"]).is_file() and (out / row["final_image"]).is_file()
    assert row["references"] and all((out / r).is_file() for r in row["references"])
    assert row["run_dir"].startswith("runs/colour-colour/")
    assert row["critic"] == {"matched": False, "gave_up": False, "fell_back": False, "critic_error": None}
    header = (out / "rows.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["colour_initial", "colour_final"] and "matched" in header
    asked = json.loads((out / "eval.json").read_text())
    assert asked["systems"][0]["name"] == "colour-colour" and asked["scorers"][0]["name"] == "colour"
    assert json.loads((out / "summary.json").read_text()) == summary


def test_a_generator_that_ignores_references_gives_an_interval_containing_zero(bench, tmp_path, colour_profile):
    m = metric(evaluate(bench, colour_profile(tmp_path, "ignore"), tmp_path / "out"))
    assert m["diff"]["n"] == 24
    assert m["diff"]["ci_low"] < 0 < m["diff"]["ci_high"], m["diff"]
    assert m["initial"]["se"] > 0 and m["final"]["se"] > 0  # the images did vary: not a degenerate zero


def test_rerunning_neither_regenerates_nor_rescores_and_a_changed_system_makes_new_keys(bench, tmp_path, monkeypatch,
                                                                                         colour_profile):
    calls = {"generate": 0, "score": 0}
    real_generate, real_score = FakeGenerator.generate, ColourScorer.score

    def generate(self, *a, **k):
        calls["generate"] += 1
        return real_generate(self, *a, **k)

    def score(self, batch):
        calls["score"] += len(batch)
        return real_score(self, batch)

    monkeypatch.setattr(FakeGenerator, "generate", generate)
    monkeypatch.setattr(ColourScorer, "score", score)
    profile, out = colour_profile(tmp_path, "colour"), tmp_path / "out"
    first = evaluate(bench, profile, out, seeds=(0,))
    assert calls == {"generate": 24, "score": 24}  # 12 units: initial + final each
    again = evaluate(bench, profile, out, seeds=(0,))
    assert calls == {"generate": 24, "score": 24}
    assert again["systems"] == first["systems"]
    evaluate(bench, profile, out, seeds=(0,), overrides=["loop.mode=concepts"])
    assert calls == {"generate": 48, "score": 48}
    assert len(list((out / "cache" / "gen").iterdir())) == 2
    evaluate(bench, profile, out, seeds=(0,), scorers=["{use: colour, colours: {red finch: blue}}"])
    assert calls["generate"] == 48 and calls["score"] == 72  # a new scorer spec rescored, nothing regenerated


class Boom(FakeGenerator):
    name = "boom"

    def generate(self, prompt, references=(), *, seed=None):
        if "green" in prompt:
            raise RuntimeError("out of paint\nsecond line")
        return super().generate(prompt, references, seed=seed)


class NeedsReal(Scorer[Options]):
    name = "needs-real"
    needs_real_images = True

    def score(self, batch):
        return [float(len(i.real_images)) for i in batch]


class Plugin:
    @hookimpl
    def register_generators(self, register):
        register(Boom)

    @hookimpl
    def register_scorers(self, register):
        register(NeedsReal)


def test_one_failing_generation_and_one_failing_score_are_recorded_and_the_rest_go_on(bench, tmp_path,
                                                                                      register_plugin):
    register_plugin(Plugin(), name="boom")
    profile = tmp_path / "boom.yaml"
    profile.write_text(f"name: boom\ngenerator: {{use: boom}}\ncritic: {{use: fake}}\n"
                       f"retriever: {{use: fake, corpus_dir: {tmp_path / 'corpus'}}}\n")
    # 'red finch' is given a colour the scorer cannot parse: its scores fail, the rest are scored
    scorer = "{use: colour, colours: {red finch: not-a-colour}}"
    summary = evaluate(bench, profile, tmp_path / "out", seeds=(0,), scorers=[scorer])
    rows = {r["item"]: r for r in map(json.loads, (tmp_path / "out" / "rows.jsonl").read_text().splitlines())}
    green = rows["green-parrot"]
    assert green["status"] == "failed" and "out of paint second line" in green["error"]
    assert "\n" not in green["error"] and green["scores"] == {}
    red = rows["red-finch"]
    assert red["status"] == "done" and red["error"].startswith("scorer 'colour' failed: ValueError")
    assert "colour" not in red["scores"]
    assert all("colour" in r["scores"] for k, r in rows.items() if k not in ("green-parrot", "red-finch"))
    block = summary["systems"][0]
    assert (block["rows"], block["done"], block["failed"]) == (12, 11, 1)
    assert block["metrics"]["colour"]["diff"]["n"] == 10


def test_a_set_without_real_images_is_refused_before_anything_runs(bench, tmp_path, register_plugin, colour_profile):
    register_plugin(Plugin(), name="boom")
    with pytest.raises(ConfigError, match=r"scorer 'needs-real' compares against real images .* 12 item\(s\)"):
        runner.plan(bench, runner.system_args([str(colour_profile(tmp_path, "colour"))], [], []), ["needs-real"],
                    tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_scorer_bad_options_bad_override_and_duplicate_systems_are_refused(bench, tmp_path, colour_profile):
    profile = str(colour_profile(tmp_path, "colour"))
    args = runner.system_args([profile], [], [])
    with pytest.raises(ComponentNotFoundError, match="no scorer named 'colur'.*did you mean 'colour'"):
        runner.plan(bench, args, ["colur"], tmp_path / "out")
    with pytest.raises(ConfigError, match=r"--scorer: colour\.colors: unknown key"):
        runner.plan(bench, args, ["{use: colour, colors: {}}"], tmp_path / "out")
    with pytest.raises(ProfileError, match=r"loop\.mode"):
        runner.plan(bench, runner.system_args([profile], [], ["loop.mode=nonsense"]), ["colour"], tmp_path / "out")
    with pytest.raises(ConfigError, match="no section 'reranker'"):
        runner.plan(bench, runner.system_args([profile], [], ["reranker.k=3"]), ["colour"], tmp_path / "out")
    with pytest.raises(ConfigError, match="two systems are named 'colour-colour'"):
        runner.system_args([profile, profile], [], [])
    two = runner.system_args([], [f"a={profile}", f"b={profile} loop.mode=concepts"], [])
    plan = runner.plan(bench, two, ["colour"], tmp_path / "out")
    a, b = (s for s, _ in plan.systems)
    assert a.profile == b.profile and a.hash != b.hash and b.overrides == ("loop.mode=concepts",)
    assert not (tmp_path / "out").exists()


class Counter(Scorer[Options]):
    """Not deterministic: each image it is shown scores one more than the last."""

    name = "counter"
    shown = 0

    def score(self, batch):
        out = []
        for _ in batch:
            Counter.shown += 1
            out.append(float(Counter.shown))
        return out


class CounterPlugin:
    @hookimpl
    def register_scorers(self, register):
        register(Counter)
        register(NeedsReal)


def test_an_image_the_critic_kept_is_scored_once_for_both_sides(bench, tmp_path, register_plugin):
    register_plugin(CounterPlugin(), name="counter")
    profile = tmp_path / "matches.yaml"
    profile.write_text(f"name: matches\ngenerator: {{use: fake, size: 16}}\ncritic: {{use: scripted, answers: ['Yes']}}\n"
                       f"retriever: {{use: fake, corpus_dir: {tmp_path / 'corpus'}, synthetic: false}}\n")
    Counter.shown = 0
    m = metric(evaluate(bench, profile, tmp_path / "out", seeds=(0,), scorers=["counter"]), name="counter")
    assert Counter.shown == 12  # one image per unit, not two
    assert m["diff"]["mean"] == 0 and m["diff"]["ci_low"] == m["diff"]["ci_high"] == 0 and m["win_rate"] == 0.5


def test_changed_real_images_are_scored_again(tmp_path, register_plugin, colour_profile):
    from PIL import Image

    register_plugin(CounterPlugin(), name="counter")
    (tmp_path / "real").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "real" / "1.png")
    bench = tmp_path / "s.yaml"
    bench.write_text("items:\n  - {id: a, prompt: A photo of a red finch, concept: red finch, real_images: real}\n")
    (tmp_path / "corpus").mkdir()
    profile = colour_profile(tmp_path, "colour")
    first = metric(evaluate(bench, profile, tmp_path / "out", seeds=(0,), scorers=["needs-real"]), name="needs-real")
    Image.new("RGB", (8, 8), "red").save(tmp_path / "real" / "2.png")
    second = metric(evaluate(bench, profile, tmp_path / "out", seeds=(0,), scorers=["needs-real"]), name="needs-real")
    assert (first["final"]["mean"], second["final"]["mean"]) == (1.0, 2.0)


class Unloadable(Scorer[Options]):
    name = "unloadable"

    def _load(self):
        raise RuntimeError("weights file is truncated")

    def score(self, batch):
        return [0.0 for _ in batch]


def test_a_scorer_that_cannot_load_stops_with_one_line_and_keeps_the_generations(bench, tmp_path, colour_profile,
                                                                                  register_plugin, monkeypatch):
    from imagerag_sdk.errors import PipelineError

    class P:
        @hookimpl
        def register_scorers(self, register):
            register(Unloadable)

    register_plugin(P(), name="unloadable")
    profile, out = colour_profile(tmp_path, "colour"), tmp_path / "out"
    with pytest.raises(PipelineError, match=r"^stage 'load' \(scorer 'unloadable' .*RuntimeError: weights file is truncated"):
        evaluate(bench, profile, out, seeds=(0,), scorers=["colour", "unloadable"])
    calls = []
    real = FakeGenerator.generate
    monkeypatch.setattr(FakeGenerator, "generate", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    summary = evaluate(bench, profile, out, seeds=(0,), scorers=["colour"])
    assert calls == [] and metric(summary)["diff"]["n"] == 12


def test_systems_run_one_per_command_then_together_only_combine(bench, tmp_path, colour_profile, monkeypatch):
    """The large-GPU-free way to run several generators: each alone, then all of them from the cache."""
    colour, ignore = colour_profile(tmp_path, "colour"), colour_profile(tmp_path, "ignore")
    out = tmp_path / "out"
    evaluate(bench, colour, out, seeds=(0,))
    evaluate(bench, ignore, out, seeds=(0,))
    calls = []
    real_generate, real_score = FakeGenerator.generate, ColourScorer.score
    monkeypatch.setattr(FakeGenerator, "generate", lambda self, *a, **k: calls.append("g") or real_generate(self, *a, **k))
    monkeypatch.setattr(ColourScorer, "score", lambda self, b: calls.append("s") or real_score(self, b))
    both = evaluate(bench, None, out, seeds=(0,), systems=runner.system_args([str(colour), str(ignore)], [], []))
    assert calls == [] and [s["name"] for s in both["systems"]] == ["colour-colour", "colour-ignore"]
    assert all(s["metrics"]["colour"]["diff"]["n"] == 12 for s in both["systems"])
    same = runner.system_args([], [f"a={colour}", f"b={colour}"], [])
    evaluate(bench, None, tmp_path / "twins", seeds=(0,), systems=same)
    assert calls.count("g") == 24  # 12 units × (initial + final), once for both names


def test_critic_protocol_override_and_the_former_mode_key(bench, tmp_path, colour_profile):
    """``--set critic.protocol=paper`` compares the protocols (docs/evaluation.md); the former
    ``critic.mode=paper`` is refused before anything runs, naming the option that replaced it."""
    profile = str(colour_profile(tmp_path, "colour"))
    plan = runner.plan(bench, runner.system_args([], [f"paper={profile} critic.protocol=paper",
                                                      f"fused={profile} critic.protocol=fused"], []),
                       ["colour"], tmp_path / "out")
    assert [pipe.critic.options.protocol for _, pipe in plan.systems] == ["paper", "fused"]
    with pytest.raises(ProfileError, match=r"critic\.mode: unknown option; the critic's protocol option is "
                                           r"now 'protocol' \(auto \| fused \| three_step \| paper\) \(got 'paper'\)"):
        runner.plan(bench, runner.system_args([profile], [], ["critic.mode=paper"]), ["colour"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
