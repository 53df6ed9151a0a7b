"""sdxl on a tiny random-weight SDXL + IP-Adapter plus, loaded through the real loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagerag_diffusers import SDXLGenerator
from imagerag_sdk import model_cache
from imagerag_sdk.errors import ImageRAGError
from imagerag_sdk.testing.contracts import GeneratorContract

pytestmark = pytest.mark.slow


def pixels(img):
    return np.asarray(img.convert("RGB"), dtype=np.int16)


@pytest.fixture
def sdxl(diffusers_tiny_sdxl):
    return SDXLGenerator(diffusers_tiny_sdxl)


def test_one_pipeline_for_both_passes_and_two_instances(diffusers_tiny_sdxl, diffusers_refs):
    model_cache.clear()
    before = model_cache.load_count("sdxl")
    first = SDXLGenerator(diffusers_tiny_sdxl)
    second = SDXLGenerator({**diffusers_tiny_sdxl, "ip_adapter_scale": 0.8, "steps": 1})
    first.generate("a photo of a cat", seed=0)
    first.generate("a photo of a cat", diffusers_refs[:1], seed=0)
    second.generate("a photo of a cat", diffusers_refs[:1], seed=0)
    assert model_cache.load_count("sdxl") - before == 1
    assert first.pipeline is second.pipeline
    assert first.load_count == second.load_count == 1


def test_adapter_changes_the_output_and_first_pass_is_plain_sdxl(sdxl, diffusers_tiny_sdxl, diffusers_refs):
    from diffusers import StableDiffusionXLPipeline

    plain_pass = sdxl.generate("a photo of a cat", seed=5)
    with_ref = sdxl.generate("a photo of a cat", diffusers_refs[:1], seed=5)
    assert with_ref.size == plain_pass.size == (32, 32)
    assert np.abs(pixels(with_ref) - pixels(plain_pass)).max() > 8  # the adapter really acts
    # the first pass (adapter loaded, scale 0) is exactly SDXL without any adapter
    reference = StableDiffusionXLPipeline.from_pretrained(diffusers_tiny_sdxl["model"])
    reference.set_progress_bar_config(disable=True)
    expected = reference("a photo of a cat", num_inference_steps=2, width=32, height=32,
                         guidance_scale=sdxl.options.guidance,
                         generator=torch.Generator("cpu").manual_seed(5)).images[0]
    assert np.abs(pixels(expected) - pixels(plain_pass)).max() <= 1


def test_scale_is_set_per_call(sdxl, diffusers_refs):
    sdxl.generate("a photo of a cat", diffusers_refs[:1], seed=1)
    processors = [p for p in sdxl.pipeline.unet.attn_processors.values() if hasattr(p, "scale")]
    assert processors and all(p.scale == [0.5] for p in processors)
    sdxl.generate("a photo of a cat", seed=1)
    assert all(p.scale == [0.0] for p in processors)


def test_seeds(sdxl):
    a = sdxl.generate("a red car", seed=11)
    b = sdxl.generate("a red car", seed=11)
    c = sdxl.generate("a red car", seed=12)
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))
    assert a.info["imagerag:seed"] == "11"


def test_too_many_references(sdxl, diffusers_refs):
    with pytest.raises(ImageRAGError, match="at most 1"):
        sdxl.generate("a cat", diffusers_refs[:2], seed=0)


def test_out_of_memory_is_explained(sdxl, monkeypatch):
    sdxl.load()

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(sdxl.pipeline), "__call__", boom)
    with pytest.raises(ImageRAGError, match="out of GPU memory") as info:
        sdxl.generate("a cat", seed=0)
    assert "cpu_offload" in str(info.value) and isinstance(info.value.__cause__, torch.OutOfMemoryError)


def test_separate_image_encoder_folder(diffusers_tiny_sdxl, diffusers_refs):
    encoder = f"{diffusers_tiny_sdxl['ip_adapter']}/models/image_encoder"
    gen = SDXLGenerator({**diffusers_tiny_sdxl, "image_encoder": encoder})
    default = SDXLGenerator(diffusers_tiny_sdxl)
    a = gen.generate("a cat", diffusers_refs[:1], seed=2)
    b = default.generate("a cat", diffusers_refs[:1], seed=2)
    assert gen.pipeline is not default.pipeline  # other weights, other cache entry
    assert np.abs(pixels(a) - pixels(b)).max() <= 1  # same encoder weights, same image


class TestSDXLContract(GeneratorContract):
    @pytest.fixture
    def component(self, diffusers_tiny_sdxl):
        return SDXLGenerator(diffusers_tiny_sdxl)


def test_cpu_offload_on_cpu_is_ignored_with_a_warning(diffusers_tiny_sdxl):
    plain = SDXLGenerator(diffusers_tiny_sdxl)
    offload = SDXLGenerator({**diffusers_tiny_sdxl, "cpu_offload": True})
    with pytest.warns(UserWarning, match="cpu_offload has no effect"):
        offload.load()
    assert offload.pipeline is plain.pipeline


def test_missing_adapter_file_is_a_config_error(diffusers_tiny_sdxl):
    from imagerag_sdk.errors import ConfigError

    before = model_cache.load_count("sdxl")
    gen = SDXLGenerator({**diffusers_tiny_sdxl, "ip_adapter_weight_name": "no-such-adapter.safetensors"})
    with pytest.raises(ConfigError, match="IP-Adapter") as info:
        gen.load()
    assert "no-such-adapter" in str(info.value)
    assert model_cache.load_count("sdxl") == before and not gen.loaded  # nothing half-loaded is cached
    assert not [key for _, key in model_cache.held("sdxl") if "no-such-adapter.safetensors" in key]


def test_offload_wiring_gives_the_same_images(sdxl, diffusers_refs):
    """enable_model_cpu_offload with the CPU standing in for the GPU: same images."""

    class Offloaded(SDXLGenerator):
        def offloading(self, device):
            return True

    offloaded = Offloaded(sdxl.options)
    assert offloaded.pipeline is not sdxl.pipeline and offloaded.pipeline._all_hooks
    for refs in (diffusers_refs[:0], diffusers_refs[:1]):  # without, then with a reference
        a = sdxl.generate("a photo of a cat", refs, seed=6)
        b = offloaded.generate("a photo of a cat", refs, seed=6)
        assert np.abs(pixels(a) - pixels(b)).max() <= 1
