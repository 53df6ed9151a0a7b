import numpy as np
import pytest
from PIL import Image

from imagerag_example_generator import TintGenerator
from imagerag_sdk.testing.contracts import GeneratorContract, assert_imports_light


class TestTint(GeneratorContract):
    @pytest.fixture
    def component(self):
        return TintGenerator(size=48)


def test_references_pull_the_colour(tmp_path):
    from imagerag_sdk import Reference

    red = tmp_path / "red.png"
    Image.new("RGB", (20, 20), (255, 0, 0)).save(red)
    gen = TintGenerator(size=48, strength=0.5)
    plain = np.asarray(gen.generate("a bicycle", seed=1), np.float32).reshape(-1, 3).mean(0)
    tinted = np.asarray(gen.generate("a bicycle", [Reference(path=str(red))], seed=1),
                        np.float32).reshape(-1, 3).mean(0)
    np.testing.assert_allclose(tinted, 0.5 * plain + 0.5 * np.array([255, 0, 0]), atol=1.5)


def test_runs_the_loop_from_a_profile(register_plugin, tmp_path):
    import imagerag_example_generator
    from imagerag_sdk.profiles import build_pipeline, parse_profile

    register_plugin(imagerag_example_generator)
    profile = parse_profile({"name": "tint", "generator": {"use": "example-tint", "max_references": 2},
                             "critic": {"use": "fake"}, "retriever": {"use": "fake", "corpus_dir": str(tmp_path)}})
    result = build_pipeline(profile).run("a sheep and a car", seed=0, out=None)
    assert [r.concept for r in result.references] == ["sheep", "car"]
    assert result.trace.generations[1].prompt.endswith("[img2], generate a sheep and a car")


def test_import_is_light():
    assert_imports_light("imagerag_example_generator")
