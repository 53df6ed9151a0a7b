"""The whole ImageRAG loop (fake critic and corpus) on each tiny generator, built from a profile."""

from __future__ import annotations

import pytest

from imagerag_sdk import model_cache
from imagerag_sdk.profiles import build_pipeline, parse_profile

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["omnigen", "sdxl", "flux"])
def test_loop_runs_on_the_tiny_generator(kind, request, tmp_path, monkeypatch):
    options = request.getfixturevalue(f"diffusers_tiny_{kind}")
    monkeypatch.setenv("IMAGERAG_HOME", str(tmp_path / "home"))  # the fake corpus is written there
    profile = parse_profile({
        "name": f"tiny-{kind}", "generator": {"use": kind, **options},
        "critic": {"use": "fake"}, "retriever": {"use": "fake"},
        "loop": {"max_concepts": "auto", "images_per_concept": 1, "max_rounds": 1}})
    rag = build_pipeline(profile)
    model_cache.clear()
    before = model_cache.load_count(kind)
    result = rag.run("an oil painting of a sheep and a car", seed=1, out=tmp_path / "runs")
    generations = result.trace.to_dict()["generations"]
    assert len(generations) == 2  # the first pass, then the reference pass
    refs = generations[1]["references"]
    limit = rag.generator.capabilities.max_references
    assert 1 <= len(refs) <= limit
    if kind == "omnigen":  # captions and placeholders reach an in-context generator
        assert generations[1]["prompt"].startswith("According to these examples of")
        assert "<img><|image_1|></img>" in generations[1]["prompt"]
    else:  # adapters get the plain prompt
        assert generations[1]["prompt"] == "an oil painting of a sheep and a car"
    assert result.image.size == result.initial_image.size == (32, 32)
    assert model_cache.load_count(kind) - before == 1  # one load, shared by both passes
    assert (result.run_dir / "initial.png").is_file()
