"""flux on a tiny random-weight FLUX pipeline: Redux and Kontext reference passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagerag_diffusers import FluxGenerator
from imagerag_sdk import model_cache
from imagerag_sdk.errors import ImageRAGError
from imagerag_sdk.testing.contracts import GeneratorContract

pytestmark = pytest.mark.slow

SHARED = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")


def pixels(img):
    return np.asarray(img.convert("RGB"), dtype=np.int16)


@pytest.fixture(params=["redux", "kontext"])
def flux(request, diffusers_tiny_flux):
    return FluxGenerator({**diffusers_tiny_flux, "conditioning": request.param})


def test_reference_pass_shares_the_components(flux):
    pipe = flux.pipeline
    ref_pipe = flux.entry.parts["reference"]
    assert type(pipe).__name__ == "FluxPipeline"
    shared = SHARED + (("transformer", "vae", "scheduler") if flux.options.conditioning == "kontext" else ())
    assert type(ref_pipe).__name__ == ("FluxKontextPipeline" if flux.options.conditioning == "kontext"
                                       else "FluxPriorReduxPipeline")
    for name in shared:
        assert getattr(ref_pipe, name) is getattr(pipe, name), name


def test_first_and_reference_pass(flux, diffusers_refs):
    model_cache.clear()
    before = model_cache.load_count("flux")
    seen: dict[str, tuple[int, int]] = {}  # pass -> (image tokens, text tokens) the transformer gets
    phase = ["first"]

    def record(module, args, kwargs):
        seen[phase[0]] = (kwargs["hidden_states"].shape[1], kwargs["encoder_hidden_states"].shape[1])

    plain = flux.generate("a photo of a cat", seed=4)
    hook = flux.pipeline.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        flux.generate("a photo of a cat", seed=4)
        phase[0] = "reference"
        with_ref = flux.generate("a photo of a cat", diffusers_refs[:1], seed=4)
    finally:
        hook.remove()
    first, ref = seen["first"], seen["reference"]
    if flux.options.conditioning == "kontext":  # the reference's latents join the image tokens
        assert ref[0] > first[0] and ref[1] == first[1]
    else:  # Redux appends the reference's tokens to the text tokens
        assert ref[0] == first[0] and ref[1] > first[1]
    again = FluxGenerator(flux.options.model_dump()).generate("a photo of a cat", seed=4)
    assert plain.size == with_ref.size == (32, 32)
    assert not np.array_equal(pixels(with_ref), pixels(plain))
    assert np.array_equal(pixels(plain), pixels(again))
    assert not np.array_equal(pixels(plain), pixels(flux.generate("a photo of a cat", seed=5)))
    assert model_cache.load_count("flux") - before == 1


def test_kontext_keeps_the_requested_size(diffusers_tiny_flux, diffusers_refs, monkeypatch):
    gen = FluxGenerator({**diffusers_tiny_flux, "conditioning": "kontext",
                         "reference_prompt": "{caption}, in the scene: {prompt}"})
    kontext = gen.entry.parts["reference"]
    calls = []
    original = type(kontext).__call__

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(kontext), "__call__", spy)
    img = gen.generate("a cat", diffusers_refs[:1], seed=0)
    call = calls[-1]
    assert call["max_area"] == 32 * 32 and call["_auto_resize"] is False
    assert call["prompt"] == "a photo of shape 1, in the scene: a cat"
    assert call["image"].width * call["image"].height <= 2 * 32 * 32
    assert img.size == (32, 32)


def test_redux_strength_changes_the_output(diffusers_tiny_flux, diffusers_refs):
    full = FluxGenerator(diffusers_tiny_flux)
    weak = FluxGenerator({**diffusers_tiny_flux, "redux_strength": 0.2})
    assert full.pipeline is weak.pipeline
    a = full.generate("a cat", diffusers_refs[:1], seed=1)
    b = weak.generate("a cat", diffusers_refs[:1], seed=1)
    assert not np.array_equal(pixels(a), pixels(b))


def test_model_dependent_defaults(diffusers_tiny_flux):
    gen = FluxGenerator(diffusers_tiny_flux)
    settings = gen.settings(gen.entry)  # the tiny transformer has no guidance embedding (schnell-like)
    assert settings["guidance_scale"] == 0.0 and settings["max_sequence_length"] == 256
    assert settings["num_inference_steps"] == 2  # set by the tiny options
    unset = FluxGenerator({**diffusers_tiny_flux, "steps": None})
    assert unset.settings(gen.entry)["num_inference_steps"] == 4


def test_half_precision_survives_from_pipe(diffusers_tiny_flux):
    gen = FluxGenerator({**diffusers_tiny_flux, "conditioning": "kontext", "dtype": "bfloat16"})
    assert gen.entry.dtype == "bfloat16"
    assert gen.pipeline.transformer.dtype == torch.bfloat16  # from_pipe did not cast back to fp32
    assert gen.entry.parts["reference"].vae.dtype == torch.bfloat16


def test_one_reference_only(diffusers_tiny_flux, diffusers_refs):
    with pytest.raises(ImageRAGError, match="at most 1"):
        FluxGenerator(diffusers_tiny_flux).generate("a cat", diffusers_refs[:2], seed=0)


class TestFluxReduxContract(GeneratorContract):
    @pytest.fixture
    def component(self, diffusers_tiny_flux):
        return FluxGenerator(diffusers_tiny_flux)


class TestFluxKontextContract(GeneratorContract):
    @pytest.fixture
    def component(self, diffusers_tiny_flux):
        return FluxGenerator({**diffusers_tiny_flux, "conditioning": "kontext"})


def test_tiny_command_prints_the_options(diffusers_tiny_root, diffusers_tiny_flux, capsys):
    import json

    from imagerag_diffusers.tiny import main

    assert main([str(diffusers_tiny_root), "--which", "flux"]) == 0  # already built: reused
    assert json.loads(capsys.readouterr().out) == {"flux": diffusers_tiny_flux}
    with pytest.raises(SystemExit):
        main([str(diffusers_tiny_root), "--which", "flux,nope"])


def test_offload_wiring_gives_the_same_images(flux, diffusers_refs):
    """enable_model_cpu_offload also runs with the CPU as 'GPU': the derived pipelines (Kontext
    from_pipe, the Redux prior) must work through the base pipeline's offload hooks."""

    class Offloaded(FluxGenerator):
        def offloading(self, device):
            return True

    offloaded = Offloaded(flux.options)
    assert offloaded.pipeline is not flux.pipeline and offloaded.pipeline._all_hooks
    for refs in (diffusers_refs[:0], diffusers_refs[:1]):  # without, then with a reference
        a = flux.generate("a photo of a cat", refs, seed=6)
        b = offloaded.generate("a photo of a cat", refs, seed=6)
        assert np.abs(pixels(a) - pixels(b)).max() <= 1
