"""The clip / siglip / dino scorers on tiny random models built here and loaded through the real
loading code (open_clip add_model_config + pretrained file; timm pretrained_cfg_overlay file)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from imagerag_sdk import model_cache
from imagerag_sdk.errors import ConfigError
from imagerag_sdk.images import BadImageError
from imagerag_sdk.testing.contracts import ScorerContract
from imagerag_sdk.types import ScoreItem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip_tiny_siglip(tmp_path_factory) -> dict[str, str]:
    from imagerag_clip.tiny import build_tiny_siglip

    return build_tiny_siglip(tmp_path_factory.mktemp("clip_tiny_siglip"))


@pytest.fixture(scope="module")
def clip_tiny_dino(tmp_path_factory) -> dict:
    from imagerag_clip.tiny import build_tiny_dino

    return build_tiny_dino(tmp_path_factory.mktemp("clip_tiny_dino"))


@pytest.fixture
def clip_real(tmp_path) -> list[str]:
    """Three real images of a concept: random pixels, different sizes."""
    rng = np.random.default_rng(3)
    paths = []
    for i in range(3):
        path = tmp_path / f"real-{i}.png"
        Image.fromarray(rng.integers(0, 256, (40 + 6 * i, 52, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _items(images, prompts=("a photo of a red car", "a sheep in a green field", "a blue boat"), real=()):
    return [ScoreItem(prompt=p, image=im, concept=p.split()[-1], real_images=tuple(real))
            for p, im in zip(prompts, images, strict=False)]


# -- the contract on each --------------------------------------------------------------------------
class TestClipScorerContract(ScorerContract):
    @pytest.fixture
    def component(self, clip_tiny):
        from imagerag_clip import ClipScorer

        return ClipScorer(clip_tiny, device="cpu")


class TestSiglipScorerContract(ScorerContract):
    @pytest.fixture
    def component(self, clip_tiny_siglip):
        from imagerag_clip import SiglipScorer

        return SiglipScorer(clip_tiny_siglip, device="cpu")


class TestDinoScorerContract(ScorerContract):
    @pytest.fixture
    def component(self, clip_tiny_dino):
        from imagerag_clip import DinoScorer

        return DinoScorer(clip_tiny_dino, device="cpu")


# -- registration and defaults ------------------------------------------------------------------
def test_clip_scorers_are_registered():
    from imagerag_clip import ClipScorer, DinoScorer, SiglipScorer
    from imagerag_sdk.plugins import get_registry

    reg = get_registry()
    for name, cls in (("clip", ClipScorer), ("siglip", SiglipScorer), ("dino", DinoScorer)):
        assert reg.get("scorer", name).cls is cls
        assert reg.get("scorer", name).distribution == "imagerag-clip"
    assert DinoScorer.needs_real_images and not ClipScorer.needs_real_images


def test_clip_scorer_defaults_are_the_papers():
    import open_clip

    from imagerag_clip import ClipScorer, DinoScorer, SiglipScorer

    clip = ClipScorer().options
    assert (clip.model, clip.weights, clip.text, clip.dtype) == ("ViT-B-32", "laion2b_s34b_b79k", "{prompt}", "fp32")
    assert clip.weights in open_clip.list_pretrained_tags_by_model(clip.model)
    siglip = SiglipScorer().options
    assert (siglip.model, siglip.weights) == ("ViT-B-16-SigLIP", "webli")
    assert DinoScorer().options.model == "vit_base_patch16_224.dino"
    with pytest.raises(ValueError, match="text may use {prompt} and {concept}, not name"):
        ClipScorer(text="a photo of {name}")


# -- clip / siglip: the score is the embedders' cosine ---------------------------------------------
@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_clip_scorer_is_the_embedder_cosine(which, clip_tiny, clip_tiny_siglip, clip_images):
    from imagerag_clip import ClipEmbedder, ClipScorer, SiglipEmbedder, SiglipScorer

    opts = {"clip": clip_tiny, "siglip": clip_tiny_siglip}[which]
    scorer_cls, embedder_cls = {"clip": (ClipScorer, ClipEmbedder), "siglip": (SiglipScorer, SiglipEmbedder)}[which]
    items = _items(clip_images[:3])
    emb = embedder_cls(opts, device="cpu", dtype="fp32")
    expected = np.sum(emb.embed_texts([i.prompt for i in items]) * emb.embed_images([i.image for i in items]), axis=1)
    np.testing.assert_allclose(scorer_cls(opts, device="cpu").score(items), expected, atol=1e-5)
    by_concept = scorer_cls(opts, device="cpu", text="a photo of a {concept}").score(items)
    expected = np.sum(emb.embed_texts([f"a photo of a {i.concept}" for i in items])
                      * emb.embed_images([i.image for i in items]), axis=1)
    np.testing.assert_allclose(by_concept, expected, atol=1e-5)


def test_clip_scorers_share_one_model_and_cut_batches(clip_tiny, clip_images, monkeypatch):
    from imagerag_clip import ClipScorer

    model_cache.clear("scorer:clip")
    before = model_cache.load_count("scorer:clip")
    a = ClipScorer(clip_tiny, device="cpu", batch_size=2)
    b = ClipScorer(clip_tiny, device="cpu", text="{concept}")
    assert a.embedder is b.embedder and model_cache.load_count("scorer:clip") - before == 1
    sizes: list[int] = []
    original = type(a.embedder).embed_images

    def embed_images(self, images):
        sizes.append(len(images))
        return original(self, images)

    monkeypatch.setattr(type(a.embedder), "embed_images", embed_images)
    items = _items(clip_images, prompts=["a cat"] * 5)
    assert len(a.score(items)) == 5 and sizes == [2, 2, 1]
    assert ClipScorer(clip_tiny, device="cpu").score(items) == pytest.approx(a.score(items), abs=1e-5)


# -- dino -----------------------------------------------------------------------------------------
def test_dino_identical_image_scores_one_and_averages_real_images(clip_tiny_dino, clip_real):
    from imagerag_clip import DinoScorer

    scorer = DinoScorer(clip_tiny_dino, device="cpu")
    same = ScoreItem("a photo of a thing", Image.open(clip_real[0]), "thing", (clip_real[0],))
    assert scorer.score([same]) == [pytest.approx(1.0, abs=1e-5)]
    image = Image.fromarray(np.random.default_rng(9).integers(0, 256, (50, 50, 3), dtype=np.uint8))
    each = [scorer.score([ScoreItem("p", image, "thing", (p,))])[0] for p in clip_real]
    assert len(set(np.round(each, 6))) == 3  # three different similarities, all below one
    assert max(each) < 0.9999
    mean = scorer.score([ScoreItem("p", image, "thing", tuple(clip_real))])[0]
    assert mean == pytest.approx(float(np.mean(each)), abs=1e-5)
    first_two = DinoScorer(clip_tiny_dino, device="cpu", max_real_images=2)
    assert first_two.score([ScoreItem("p", image, "thing", tuple(clip_real))])[0] == \
        pytest.approx(float(np.mean(each[:2])), abs=1e-5)


def test_dino_real_features_are_read_once_per_file(clip_tiny_dino, clip_real, monkeypatch):
    from imagerag_clip import DinoScorer, dino

    reads: list[str] = []
    original = dino.load_rgb

    def load_rgb(path, **kw):
        reads.append(path)
        return original(path, **kw)

    monkeypatch.setattr(dino, "load_rgb", load_rgb)
    model_cache.clear("scorer:dino")
    image = Image.new("RGB", (40, 40), (120, 30, 60))
    items = [ScoreItem("p", image, "c", tuple(clip_real)), ScoreItem("q", image, "c", tuple(clip_real[:1]))]
    first = DinoScorer(clip_tiny_dino, device="cpu").score(items)
    assert sorted(reads) == sorted(clip_real)
    assert DinoScorer(clip_tiny_dino, device="cpu", batch_size=1).score(items) == pytest.approx(first, abs=1e-5)
    assert sorted(reads) == sorted(clip_real)  # another scorer instance, same process: no re-read
    Image.new("RGB", (30, 30), (0, 0, 0)).save(clip_real[0])
    os.utime(clip_real[0], ns=(1, 1))  # a changed file is read again
    DinoScorer(clip_tiny_dino, device="cpu").score(items[1:])
    assert reads[-1] == clip_real[0] and len(reads) == 4


def test_dino_preprocessing_is_timms(clip_images):
    import timm
    import torch

    from imagerag_clip.preprocess import PreprocessSpec, preprocess_image

    pretrained = timm.models.get_pretrained_cfg("vit_base_patch16_224.dino")
    assert pretrained is not None
    cfg = timm.data.resolve_data_config(pretrained_cfg=pretrained.to_dict())
    transform = timm.data.create_transform(**cfg)
    spec = PreprocessSpec(size=(224, 224), mean=cfg["mean"], std=cfg["std"], interpolation=cfg["interpolation"],
                          crop_pct=cfg["crop_pct"])
    assert spec.crop_pct == 0.9 and spec.signature.endswith(",crop=0.9000")
    for img in [*clip_images, Image.new("RGB", (300, 200), (10, 200, 90))]:
        ours = preprocess_image(img, spec)
        theirs = transform(img).numpy()
        assert ours.shape == theirs.shape == (3, 224, 224)
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert torch.is_tensor(transform(clip_images[0]))


def test_dino_errors_are_clear(clip_tiny_dino, clip_real, tmp_path):
    from imagerag_clip import DinoScorer

    image = Image.new("RGB", (32, 32), (1, 2, 3))
    with pytest.raises(ConfigError, match="weights file not found") as err:
        DinoScorer(clip_tiny_dino, weights=str(tmp_path / "absent.safetensors")).load()
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown timm model 'vit_nope'"):
        DinoScorer(clip_tiny_dino, model="vit_nope").load()
    with pytest.raises(ConfigError, match="unknown preprocess key"):
        DinoScorer(clip_tiny_dino, preprocess={"crop": 0.8}).load()
    scorer = DinoScorer(clip_tiny_dino, device="cpu")
    with pytest.raises(ConfigError, match=r"item 2 \('boat'\) has no real_images"):
        scorer.score([ScoreItem("a", image, "car", (clip_real[0],)), ScoreItem("b", image, "boat")])
    with pytest.raises(ConfigError, match="relative real image 'real.png'"):
        scorer.score([ScoreItem("a", image, "car", ("real.png",))])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(BadImageError, match=f"real image .*{broken.name}"):
        scorer.score([ScoreItem("a", image, "car", (str(broken),))])
    with pytest.raises(BadImageError, match="cannot read real image"):
        scorer.score([ScoreItem("a", image, "car", (str(tmp_path / "gone.png"),))])


def test_dino_pretrained_offline_says_what_to_do(clip_tiny_dino, monkeypatch):
    from huggingface_hub import constants

    from imagerag_clip import DinoScorer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    opts = {**clip_tiny_dino, "weights": "pretrained", "cache_dir": "/nonexistent-cache"}
    with pytest.raises(ConfigError, match="cannot fetch the weights of vit_base_patch16_224.dino") as err:
        DinoScorer(opts, device="cpu").load()
    assert "HF_HUB_OFFLINE" in str(err.value) and "weights: /path/to/checkpoint.safetensors" in str(err.value)
