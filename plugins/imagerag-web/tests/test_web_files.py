"""/files and /thumbs serve the corpora and the runs folder only: traversal (plain and encoded),
absolute paths, NUL bytes, links out and non-image corpus files are refused."""

from __future__ import annotations

import os
import re

import pytest
from PIL import Image

SECRET = b"outside-the-corpus-do-not-serve"


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(SECRET)
    return path


@pytest.mark.parametrize("tail", [
    "../secret.png", "..%2Fsecret.png", "%2e%2e/secret.png", "%2E%2E%2Fsecret.png", "sub/../../secret.png",
    "sub%2F..%2F..%2Fsecret.png", "%2Ftmp%2Fsecret.png", "/etc/passwd", "..\\secret.png", "x%00.png",
    "..%252Fsecret.png", "sub//01-blue.png", "sub%2F%2F01-blue.png",
])
def test_traversal_attempts_are_refused(client, outside, tail):
    for prefix in ("/files/corpus/index/", "/thumbs/corpus/index/", "/files/runs/x/", "/thumbs/runs/x/"):
        out = client.get(prefix + tail)
        assert out.status_code in (400, 404), (prefix + tail, out.status_code)
        assert SECRET not in out.content and list(out.json()) == ["error"]


@pytest.mark.parametrize("relpath", ["../secret.png", "sub/../../secret.png", "/etc/passwd", "a\x00b.png",
                                     "..\\secret.png", "", "sub/", "./00-red.png", "C:/x.png"])
def test_confined_refuses_bad_relative_paths_before_touching_the_disk(corpus, relpath):
    """The URL client normalizes '..' away, so the check is also called with raw paths here."""
    from imagerag_web.security import WebError, confined

    with pytest.raises(WebError) as err:
        confined(corpus[0], relpath)
    assert err.value.status_code == 400
    assert confined(corpus[0], "sub/01-blue.png") == (corpus[0] / "sub" / "01-blue.png").resolve()


def test_a_link_out_of_the_corpus_is_not_followed(client, corpus, outside):
    root = corpus[0]
    os.symlink(outside, root / "link-out.png")
    os.symlink(outside.parent, root / "dir-out")
    os.symlink(root / "00-red.png", root / "link-in.png")
    for url in ("/files/corpus/index/link-out.png", "/files/corpus/index/dir-out/secret.png",
                "/thumbs/corpus/index/link-out.png"):
        out = client.get(url)
        assert out.status_code == 404 and SECRET not in out.content, url
    assert client.get("/files/corpus/index/link-in.png").content == (root / "00-red.png").read_bytes()


def test_only_image_files_of_a_known_corpus_are_served(client, corpus):
    assert (corpus[0] / "00-red.txt").is_file()
    assert client.get("/files/corpus/index/00-red.txt").status_code == 404
    assert client.get("/files/corpus/index/nothing.png").status_code == 404
    assert "no corpus 'other'" in client.get("/files/corpus/other/00-red.png").json()["error"]
    assert client.get("/thumbs/corpus/index/00-red.png?size=5").status_code == 422
    assert client.get("/thumbs/corpus/index/00-red.png?size=big").status_code == 422


def test_run_files_and_the_report_with_its_relative_links(client, search_paths, wait_job):
    refs = search_paths(client, "a red apple", 2)
    job = client.post("/api/jobs", json={"kind": "generate", "prompt": "an apple", "references": refs}).json()["job"]
    run = wait_job(client, job["id"])["run"]
    report = client.get(f"/files/runs/{run}/report.html")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    links = set(re.findall(r'(?:src|href)="([^"#:]+)"', report.text))
    assert any(link.startswith("references/") for link in links) and "final.png" in links
    for link in links:
        assert client.get(f"/files/runs/{run}/{link}").status_code == 200, link
    thumb = client.get(f"/thumbs/runs/{run}/final.png?size=16")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert client.get(f"/thumbs/runs/{run}/trace.json").status_code == 415
    assert client.get("/files/runs/no-such-run/trace.json").status_code == 404


def test_a_run_folder_linking_out_is_not_followed(client, tmp_path, outside):
    (tmp_path / "runs").mkdir(exist_ok=True)
    os.symlink(outside.parent, tmp_path / "runs" / "evil")
    out = client.get("/files/runs/evil/secret.png")
    assert out.status_code == 404 and SECRET not in out.content
    Image.new("RGB", (4, 4)).save(tmp_path / "runs" / "plain.png")  # a file, not a run folder
    assert client.get("/api/runs").json() == {"runs": []}
