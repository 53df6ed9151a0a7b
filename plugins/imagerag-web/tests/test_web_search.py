"""/api/info, /api/corpus and the three searches, with their bad input."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from imagerag_sdk.profiles import build_pipeline


def test_info_names_the_profile_components_and_the_budget(client):
    info = client.get("/api/info").json()
    assert info == {"profile": "web-test", "generator": {"name": "fake", "max_references": 2,
                                                         "conditioning": "in_context"},
                    "critic": "fake", "retriever": "index", "reranker": None, "version": info["version"]}
    assert info["version"]


def test_corpus_says_what_is_indexed(client, corpus, captions):
    (entry,) = client.get("/api/corpus").json()["corpora"]
    assert entry["name"] == "index" and entry["root"] == str(corpus[0].resolve())
    assert entry["count"] == len(captions) and entry["embedder"].startswith("fake")
    assert entry["updated"] and entry["updated"][:2] == "20"


def test_text_search_gives_hits_with_file_and_thumbnail_urls(client, corpus):
    out = client.post("/api/search", json={"text": "a blue boat", "k": 3})
    assert out.status_code == 200
    hits = out.json()["hits"]
    assert len(hits) == 3 and hits[0]["caption"] == "a blue boat on a lake"
    assert [h["rank"] for h in hits] == [0, 1, 2] and hits[0]["score"] >= hits[1]["score"]
    top = hits[0]
    assert top["file"] == "/files/corpus/index/sub/01-blue.png" and top["thumb"].endswith("?size=256")
    assert top["metadata"]["caption"] == top["caption"] and top["corpus"] == "index"
    got = client.get(top["file"])
    assert got.status_code == 200 and got.content == (corpus[0] / "sub" / "01-blue.png").read_bytes()
    thumb = client.get(top["thumb"].replace("size=256", "size=16"))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 16


def _png(path) -> bytes:
    return path.read_bytes()


def test_image_search_finds_the_uploaded_image_first(client, corpus):
    data = _png(corpus[0] / "04-green.png")
    out = client.post("/api/search/image", files={"image": ("q.png", data, "image/png")}, data={"k": "2"})
    assert out.status_code == 200, out.text
    hits = out.json()["hits"]
    assert len(hits) == 2 and hits[0]["caption"] == "a green forest in fog"


def test_more_like_this_leaves_the_hit_itself_out(client, search_paths):
    path = search_paths(client, "a red apple", 1)[0]
    out = client.post("/api/search/similar", json={"path": path, "k": 3})
    assert out.status_code == 200, out.text
    hits = out.json()["hits"]
    assert len(hits) == 3 and path not in [h["path"] for h in hits]


def test_similar_refuses_a_path_outside_the_corpora(client, tmp_path):
    outside = tmp_path / "outside.png"
    Image.new("RGB", (8, 8)).save(outside)
    for path in (str(outside), "/etc/passwd", "relative.png", "a\x00b"):
        out = client.post("/api/search/similar", json={"path": path, "k": 3})
        assert out.status_code == 400, path
        assert "not an image of this app's corpora" in out.json()["error"] or "NUL" in out.json()["error"]


def _one_line_error(out, status):
    assert out.status_code == status, out.text
    body = out.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def test_bad_search_requests_get_one_line_4xx(client):
    assert "not valid JSON" in _one_line_error(
        client.post("/api/search", content=b"{not json", headers={"content-type": "application/json"}), 400)
    assert _one_line_error(client.post("/api/search", json={}), 422).startswith("text: Field required")
    assert _one_line_error(client.post("/api/search", json={"text": "x", "k": 0}), 422).startswith("k: ")
    assert "Extra inputs" in _one_line_error(client.post("/api/search", json={"text": "x", "kk": 1}), 422)
    assert _one_line_error(client.post("/api/search", json=["x"]), 422)
    assert "not found: /api/nothing" in _one_line_error(client.get("/api/nothing"), 404)
    assert _one_line_error(client.delete("/api/search"), 405)


def test_upload_over_the_limit_is_413(make_client, pipeline):
    client = make_client(pipeline, upload_max_bytes=1000)
    big = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(big, "PNG")
    assert len(big.getvalue()) > 1000
    error = _one_line_error(client.post("/api/search/image", files={"image": ("big.png", big.getvalue())}), 413)
    assert "smaller image" in error


def test_a_body_far_over_the_limit_is_413_before_it_is_read(make_client, pipeline):
    client = make_client(pipeline, upload_max_bytes=1000)
    body = b"x" * 200_000
    out = client.post("/api/search/image", files={"image": ("big.png", body)})
    assert out.status_code == 413 and "request body is over" in out.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(50):
            yield b"y" * 10_000

    out = client.post("/api/search/image", content=chunks(),
                      headers={"content-type": "multipart/form-data; boundary=zz"})
    assert out.status_code == 413 and "request body is over" in out.json()["error"]
    out = client.post("/api/search", content=chunks(), headers={"content-type": "application/json"})
    assert out.status_code == 413


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims ``width`` × ``height`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def test_bomb_and_text_uploads_are_refused_with_4xx(client):
    error = _one_line_error(client.post("/api/search/image", files={"image": ("bomb.png", bomb_png())}), 415)
    assert "decompression bomb" in error or "over the limit" in error
    error = _one_line_error(client.post("/api/search/image", files={"image": ("notes.png", b"just text\n")}), 415)
    assert "not a readable image" in error
    assert _one_line_error(client.post("/api/search/image", data={"k": "2"}), 422).startswith("image: ")


def test_image_search_needs_a_retriever_that_can(make_client, tmp_path):
    client = make_client(build_pipeline("fake"))
    img = io.BytesIO()
    Image.new("RGB", (8, 8)).save(img, "PNG")
    error = _one_line_error(client.post("/api/search/image", files={"image": ("a.png", img.getvalue())}), 400)
    assert "cannot search by image" in error
    hits = client.post("/api/search", json={"text": "a red sports car", "k": 1}).json()["hits"]
    assert hits[0]["file"].startswith("/files/corpus/fake/")  # the fake retriever's corpus is served too
    assert client.get(hits[0]["file"]).status_code == 200
