"""Options, registration, error messages and lazy imports; no model is built here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image
from pydantic import ValidationError

from imagerag_diffusers import FluxGenerator, OmniGenGenerator, SDXLGenerator
from imagerag_diffusers.flux import fit_area
from imagerag_diffusers.loading import resolve_source, translate_errors
from imagerag_diffusers.omnigen import PLACEHOLDER, with_placeholders
from imagerag_sdk import build_component, get_registry
from imagerag_sdk.errors import ConfigError, ImageRAGError, MissingDependencyError
from imagerag_sdk.types import Reference


def test_import_pulls_no_heavy_library():
    code = ("import sys, json, imagerag_diffusers, imagerag_diffusers.tiny\n"
            "print(json.dumps([m for m in ('torch', 'diffusers', 'transformers', 'safetensors') "
            "if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_registered_through_the_entry_point():
    registry = get_registry(refresh=True)
    for name, cls in (("omnigen", OmniGenGenerator), ("sdxl", SDXLGenerator), ("flux", FluxGenerator)):
        assert registry.get("generator", name).cls is cls
    gen = build_component("generator", "sdxl", {"steps": 3})
    assert isinstance(gen, SDXLGenerator) and not gen.loaded  # construction loads nothing


def test_capabilities_match_the_paper():
    omni, sdxl = OmniGenGenerator().capabilities, SDXLGenerator().capabilities
    assert (omni.max_references, omni.conditioning, omni.uses_captions) == (3, "in_context", True)
    assert omni.image_placeholder.format(i=2) == "<img><|image_2|></img>"
    assert (sdxl.max_references, sdxl.conditioning, sdxl.uses_captions) == (1, "adapter", False)
    for conditioning in ("redux", "kontext"):
        caps = FluxGenerator(conditioning=conditioning).capabilities
        assert caps.max_references == 1 and not caps.uses_captions


def test_paper_defaults():
    omni = OmniGenGenerator().options
    assert (omni.guidance, omni.img_guidance, omni.width, omni.height) == (2.5, 1.6, 1024, 1024)
    sdxl = SDXLGenerator().options
    assert sdxl.ip_adapter == "h94/IP-Adapter" and sdxl.ip_adapter_scale == 0.5
    assert sdxl.ip_adapter_weight_name == "ip-adapter-plus_sdxl_vit-h.safetensors"
    assert FluxGenerator().model == "black-forest-labs/FLUX.1-schnell"
    assert FluxGenerator(conditioning="kontext").model == "black-forest-labs/FLUX.1-Kontext-dev"


@pytest.mark.parametrize("cls,bad", [
    (SDXLGenerator, {"ip_adapter_scale": -1}),
    (SDXLGenerator, {"unknown_option": 1}),
    (OmniGenGenerator, {"width": 100}),  # not a multiple of 16
    (FluxGenerator, {"conditioning": "ominicontrol"}),
    (FluxGenerator, {"reference_prompt": "{prompt} {reference}"}),
    (FluxGenerator, {"device": "gpu"}),
])
def test_bad_options_are_refused(cls, bad):
    with pytest.raises(ValidationError):
        cls(bad)


def test_every_option_is_documented():
    for cls in (OmniGenGenerator, SDXLGenerator, FluxGenerator):
        for name, field in cls.Options.model_fields.items():
            assert field.description, f"{cls.name}.{name}"


def test_resolve_source(tmp_path):
    assert resolve_source("owner/model-name", "m") == "owner/model-name"
    assert resolve_source(str(tmp_path), "m") == str(tmp_path.resolve())
    for missing in (str(tmp_path / "nope"), "./nope/x", "~/no/such/folder/here"):
        with pytest.raises(ConfigError, match="does not exist"):
            resolve_source(missing, "m")
    with pytest.raises(ConfigError, match="neither"):
        resolve_source("just-a-name", "m")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file"):
        resolve_source(str(tmp_path / "file.bin"), "m")
    for empty in ("", "  ", None):  # None: FLUX's model left unset reaches here as a clear error
        with pytest.raises(ConfigError, match="empty model name"):
            resolve_source(empty, "m")


@pytest.mark.parametrize("field", ["model", "steps", "guidance"])
def test_only_flux_leaves_model_steps_and_guidance_unset(field):
    # the shared base types these three as optional for FLUX; the others still refuse None
    assert getattr(FluxGenerator.Options(**{field: None}), field) is None
    for cls in (OmniGenGenerator, SDXLGenerator):
        with pytest.raises(ValidationError):
            cls.Options(**{field: None})


@pytest.mark.parametrize("cls", [OmniGenGenerator, SDXLGenerator, FluxGenerator])
def test_bad_local_path_is_a_config_error(cls, tmp_path):
    gen = cls(model=str(tmp_path / "no-such-weights"), device="cpu")
    with pytest.raises(ConfigError, match="no-such-weights"):
        gen.load()
    assert not gen.loaded


@pytest.mark.slow  # imports torch/diffusers
def test_folder_without_a_pipeline_is_a_config_error(tmp_path):
    gen = SDXLGenerator(model=str(tmp_path), device="cpu")
    with pytest.raises(ConfigError, match="cannot load"):
        gen.load()


@pytest.mark.slow  # imports torch/diffusers
def test_unknown_hub_model_offline_is_a_config_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = OmniGenGenerator(model="imagerag-tests/no-such-model", device="cpu")
    with pytest.raises(ConfigError, match="no-such-model"):
        gen.load()


@pytest.mark.parametrize("env,offline", [({"HF_HUB_OFFLINE": "1"}, True), ({"HF_HUB_OFFLINE": "0"}, False),
                                         ({"TRANSFORMERS_OFFLINE": "on"}, True), ({}, False)])
def test_load_error_says_offline_only_when_the_hub_is(monkeypatch, env, offline):
    """A hub id that fails to load: "offline" in the message exactly when huggingface_hub is."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        with translate_errors("the SDXL pipeline", "owner/not-here", extra="sdxl", generator="sdxl"):
            raise OSError("owner/not-here does not appear to have a file named model_index.json")
    assert ("the hub is offline" in str(err.value)) is offline
    assert isinstance(err.value.__cause__, OSError)


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("cls,extra", [(SDXLGenerator, "sdxl"), (FluxGenerator, "flux"),
                                       (OmniGenGenerator, "omnigen")])
def test_missing_library_names_the_extra(cls, extra, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    with pytest.raises(MissingDependencyError, match=rf"imagerag-sdk\[{extra}\]"):
        cls(device="cpu").load()


@pytest.mark.slow  # imports torch/diffusers
def test_cuda_asked_without_cuda_is_explained():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ImageRAGError, match="CUDA is not available"):
        SDXLGenerator(device="cuda").load()


def test_placeholders_are_checked():
    refs = [Reference(path=f"/x/{i}.png", caption=f"cap {i}") for i in range(1, 3)]
    ok = f"According to these examples of cap 1: {PLACEHOLDER.format(i=1)}, cap 2: " \
         f"{PLACEHOLDER.format(i=2)}, generate a cat"
    assert with_placeholders(ok, refs) == ok
    assert with_placeholders("a cat", []) == "a cat"
    filled = with_placeholders("a cat", refs)
    assert filled == ok  # a direct call without the template gets the paper's template
    with pytest.raises(ImageRAGError, match=r"names images \[1\] but 2"):
        with_placeholders(f"x {PLACEHOLDER.format(i=1)}", refs)
    with pytest.raises(ImageRAGError):
        with_placeholders(f"x {PLACEHOLDER.format(i=1)}", [])


def test_fit_area_keeps_aspect_and_multiple():
    img = Image.new("RGB", (640, 480))
    out = fit_area(img, 64 * 64, multiple=16)
    assert out.width % 16 == 0 and out.height % 16 == 0
    assert abs(out.width / out.height - 640 / 480) < 0.35
    assert abs(out.width * out.height - 64 * 64) <= 64 * 64 * 0.3
    same = Image.new("RGB", (64, 64))
    assert fit_area(same, 64 * 64, multiple=16) is same
