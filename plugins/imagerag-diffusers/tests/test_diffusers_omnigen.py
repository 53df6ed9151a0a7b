"""omnigen on a tiny random-weight OmniGen pipeline: 0-3 references in context."""

from __future__ import annotations

import numpy as np
import pytest

from imagerag_diffusers import OmniGenGenerator
from imagerag_sdk import model_cache
from imagerag_sdk.errors import ImageRAGError
from imagerag_sdk.testing.contracts import GeneratorContract

pytestmark = pytest.mark.slow


def pixels(img):
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def template(refs, prompt, placeholder):
    """The core's reference template, as the pipeline writes it for in-context generators."""
    parts = ", ".join(f"{r.caption}: {placeholder.format(i=i)}" for i, r in enumerate(refs, start=1))
    return f"According to these examples of {parts}, generate {prompt}"


@pytest.fixture
def omnigen(diffusers_tiny_omnigen):
    return OmniGenGenerator(diffusers_tiny_omnigen)


@pytest.fixture
def omnigen_calls(omnigen, monkeypatch):
    """Record what reaches OmniGenPipeline.__call__ (then run it for real)."""
    calls = []
    cls = type(omnigen.pipeline)
    original = cls.__call__

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", spy)
    return calls


def test_one_to_three_references_in_context(omnigen, omnigen_calls, diffusers_refs):
    placeholder = omnigen.capabilities.image_placeholder
    base = omnigen.generate("a photo of a cat", seed=3)
    assert omnigen_calls[-1]["input_images"] is None
    assert (omnigen_calls[-1]["guidance_scale"], omnigen_calls[-1]["img_guidance_scale"]) == (2.5, 1.6)
    outputs = []
    for n in (1, 2, 3):
        refs = diffusers_refs[:n]
        prompt = template(refs, "a photo of a cat", placeholder)
        img = omnigen.generate(prompt, refs, seed=3)
        call = omnigen_calls[-1]
        assert call["prompt"] == prompt
        named = [f"<img><|image_{i}|></img>" in call["prompt"] for i in (1, 2, 3)]
        assert named == [i <= n for i in (1, 2, 3)]
        sent = call["input_images"]
        assert len(sent) == n
        for image, ref in zip(sent, refs, strict=True):  # the references' own pixels, in order
            assert np.array_equal(pixels(image), pixels(ref.open()))
        assert img.size == (32, 32)
        outputs.append(pixels(img))
    # the references reach the model (with references, repeated runs may differ by 1 level)
    for out in outputs:
        assert np.abs(out - pixels(base)).max() > 3
    assert np.abs(outputs[0] - outputs[2]).max() > 2


def test_plain_prompt_with_references_gets_the_template(omnigen, omnigen_calls, diffusers_refs):
    omnigen.generate("a photo of a cat", diffusers_refs[:2], seed=0)
    sent = omnigen_calls[-1]["prompt"]
    assert sent == template(diffusers_refs[:2], "a photo of a cat", omnigen.capabilities.image_placeholder)


def test_bad_references(omnigen, diffusers_refs):
    with pytest.raises(ImageRAGError, match="at most 3"):
        omnigen.generate("a cat", diffusers_refs + diffusers_refs[:1], seed=0)
    with pytest.raises(ImageRAGError, match=r"names images \[1\] but 2"):
        omnigen.generate("a cat <img><|image_1|></img>", diffusers_refs[:2], seed=0)


def test_seeds_and_single_load(diffusers_tiny_omnigen, monkeypatch):
    from pathlib import Path

    model_cache.clear()
    before = model_cache.load_count("omnigen")
    a_gen = OmniGenGenerator(diffusers_tiny_omnigen)
    model = Path(diffusers_tiny_omnigen["model"])
    monkeypatch.chdir(model.parent)  # the same folder, named relatively: still the same pipeline
    b_gen = OmniGenGenerator({**diffusers_tiny_omnigen, "model": f"./{model.name}", "guidance": 3.0})
    a = a_gen.generate("a red car", seed=7)
    b = b_gen.generate("a red car", seed=7)
    c = a_gen.generate("a red car", seed=8)
    d = a_gen.generate("a red car", seed=7)
    assert np.abs(pixels(a) - pixels(d)).max() <= 1
    assert np.abs(pixels(a) - pixels(c)).max() > 8
    assert np.abs(pixels(a) - pixels(b)).max() > 1  # other guidance, same pipeline
    assert a_gen.pipeline is b_gen.pipeline and model_cache.load_count("omnigen") - before == 1


class TestOmniGenContract(GeneratorContract):
    @pytest.fixture
    def component(self, diffusers_tiny_omnigen):
        return OmniGenGenerator(diffusers_tiny_omnigen)
