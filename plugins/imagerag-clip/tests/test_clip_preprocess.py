"""The PIL/numpy preprocessing reproduces open_clip's torchvision inference transform."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imagerag_clip.preprocess import PreprocessSpec, preprocess_image


@pytest.mark.parametrize("mode", ["shortest", "squash", "longest"])
@pytest.mark.parametrize("size", [(224, 224), (224, 160)])
@pytest.mark.parametrize("wh", [(640, 480), (480, 640), (37, 300)])
def test_clip_preprocess_matches_open_clip(mode, size, wh):
    from open_clip.transform import image_transform

    rng = np.random.default_rng(sum(wh))
    img = Image.fromarray(rng.integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8))
    spec = PreprocessSpec(size=size, resize_mode=mode, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25))
    ref = image_transform(size if size[0] != size[1] else size[0], is_train=False, resize_mode=mode,
                          mean=spec.mean, std=spec.std)(img).numpy()
    ours = preprocess_image(img, spec)
    assert ours.shape == ref.shape == (3, *size)
    assert ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-4


def test_clip_preprocess_bilinear_and_modes():
    from open_clip.transform import image_transform

    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 90, 4), dtype=np.uint8), "RGBA")
    spec = PreprocessSpec(size=(32, 32), interpolation="bilinear")
    ref = image_transform(32, is_train=False, interpolation="bilinear")(img.convert("RGB")).numpy()
    assert np.abs(preprocess_image(img, spec) - ref).max() < 1e-4


def test_clip_preprocess_spec_signature_and_validation():
    a = PreprocessSpec.from_config({"size": 224, "mean": (0.5, 0.5, 0.5), "std": 0.5,
                                    "interpolation": "bicubic", "resize_mode": "squash"})
    assert a.size == (224, 224) and a.std == (0.5, 0.5, 0.5)
    assert a.signature == "224x224,squash,bicubic,mean=(0.5000,0.5000,0.5000),std=(0.5000,0.5000,0.5000)"
    assert a.signature != PreprocessSpec().signature
    with pytest.raises(ValueError, match="resize_mode"):
        PreprocessSpec(resize_mode="crop")
    with pytest.raises(ValueError, match="interpolation"):
        PreprocessSpec(interpolation="nearest")
