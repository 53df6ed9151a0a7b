"""A corpus full of awkward files: bad ones are reported with a reason, good ones indexed upright."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imagerag_sdk.index import CorpusStore, StrictIngestError, ingest
from imagerag_sdk.testing.fakes import FakeEmbedder


def _png_with_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` 8-bit grey pixels (too few data: never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _upright() -> Image.Image:
    img = Image.new("RGB", (40, 20), (220, 30, 30))
    img.paste((30, 30, 220), (20, 0, 40, 20))
    img.paste((30, 200, 30), (0, 0, 40, 5))
    return img


def _make_corpus(root):
    root.mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(buf, "JPEG")
    jpeg = buf.getvalue()
    (root / "zero.png").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (root / "not-an-image.jpg").write_text("hello, I am a text file\n")
    (root / "bomb.png").write_bytes(_png_with_header(30_000, 30_000))
    Image.new("L", (1500, 1000), 0).save(root / "too-many-pixels.png")
    (root / "good.jpg").write_bytes(jpeg)
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(root / "cmyk.jpg")
    Image.new("P", (16, 16), 3).save(root / "palette.png")
    Image.new("LA", (16, 16), (120, 128)).save(root / "la.png")
    Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16)).save(root / "sixteen.png")
    raw = _upright().transpose(Image.Transpose.ROTATE_90)  # stored sideways …
    exif = Image.Exif()
    exif[0x0112] = 6  # … with "rotate 90° clockwise to display"
    raw.save(root / "rotated.png", exif=exif.tobytes())


EXPECTED_BAD = {
    "zero.png": "empty",
    "truncated.jpg": "truncated",
    "corrupt.png": "",
    "not-an-image.jpg": "not a readable image",
    "bomb.png": "pixels",
    "too-many-pixels.png": "over the limit",
}
GOOD = {"good.jpg", "cmyk.jpg", "palette.png", "la.png", "sixteen.png", "rotated.png"}


def test_bad_files_reported_good_ones_indexed(tmp_path, index_embedder_factory):
    root = tmp_path / "corpus"
    _make_corpus(root)
    report = ingest(root, corpus="bad", embedder=index_embedder_factory(), max_pixels=1_000_000,
                    batch_size=4)
    bad = {p.path: p.reason for p in report.bad}
    assert set(bad) == set(EXPECTED_BAD)
    for path, word in EXPECTED_BAD.items():
        assert word in bad[path], (path, bad[path])
    assert report.total == len(GOOD) and report.embedded == len(GOOD)
    saved = json.loads((tmp_path / "imagerag-home" / "corpora" / "bad" / "last-ingest.json").read_text())
    assert {b["path"] for b in saved["bad"]} == set(EXPECTED_BAD)
    assert "6 bad" in report.summary()

    store = CorpusStore.open("bad")
    try:
        items = store.items()
        assert set(items) == GOOD
        vec = store.get_vectors([items["rotated.png"].label])[0]
    finally:
        store.close()
    fake = FakeEmbedder()
    upright = fake.embed_images([_upright()])[0]
    sideways = fake.embed_images([_upright().transpose(Image.Transpose.ROTATE_90)])[0]
    np.testing.assert_allclose(vec, upright, atol=1e-6)
    assert not np.allclose(vec, sideways, atol=1e-3)


def test_default_pixel_limit_refuses_bombs(tmp_path, index_embedder_factory):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "bomb.png").write_bytes(_png_with_header(30_000, 30_000))
    Image.new("RGB", (8, 8)).save(root / "ok.png")
    report = ingest(root, corpus="bomb", embedder=index_embedder_factory())
    assert [p.path for p in report.bad] == ["bomb.png"] and report.total == 1


def test_strict_raises_after_indexing_the_good_files(tmp_path, index_embedder_factory):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "zero.png").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(root / "ok.png")
    with pytest.raises(StrictIngestError, match="zero.png"):
        ingest(root, corpus="strict", embedder=index_embedder_factory(), strict=True)
    store = CorpusStore.open("strict")
    try:
        assert set(store.items()) == {"ok.png"}
    finally:
        store.close()


def test_file_that_turns_bad_is_removed(tmp_path, index_embedder_factory):
    root = tmp_path / "corpus"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "a.png")
    Image.new("RGB", (8, 8), "red").save(root / "b.png")
    ingest(root, corpus="turn", embedder=index_embedder_factory())
    (root / "a.png").write_bytes(b"garbage!")
    report = ingest(root, corpus="turn", embedder=index_embedder_factory())
    assert [p.path for p in report.bad] == ["a.png"] and report.total == 1


def test_jpeg_draft_decoding(tmp_path):
    from imagerag_sdk.images import BadImageError
    from imagerag_sdk.index.scan import decode_image

    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (640, 480), (200, 40, 40)).save(buf, "JPEG", exif=exif.tobytes())
    data = buf.getvalue()
    assert decode_image(data, "x.jpg").size == (480, 640)  # upright, full size
    small = decode_image(data, "x.jpg", min_side=224)
    assert small.size == (240, 320) and small.mode == "RGB"  # 1/2 scale still covers 224, upright
    with pytest.raises(BadImageError, match="truncated"):
        decode_image(data[: len(data) // 2], "t.jpg", min_side=224)
    with pytest.raises(BadImageError, match="over the limit"):
        decode_image(data, "big.jpg", max_pixels=1000, min_side=224)
