"""Fixtures for the web API tests: pipelines from the core's fakes over a real corpus index built in
tmp, a generator that blocks until the test lets it go (in the server or in a job worker process),
and clients of the app."""

from __future__ import annotations

import functools
import itertools
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from imagerag_sdk.index import IndexRetriever, ingest
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.testing.fakes import FakeCritic, FakeGenerator
from imagerag_sdk.types import Reference
from imagerag_web import create_app

sys.path.insert(0, str(Path(__file__).parent))  # webjob_rig by its top-level name, here and in spawned workers
import webjob_rig

CAPTIONS = ["a red apple on a table", "a blue boat on a lake", "a white cloud over a hill",
            "a golden desert at noon", "a green forest in fog", "a wooden guitar on a chair"]
WAIT = 60  # seconds a test waits for a thread before failing (never a timing assertion)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGERAG_HOME", str(tmp_path / "imagerag-home"))
    monkeypatch.delenv("IMAGERAG_LOAD_PLUGINS", raising=False)


def write_captioned(path: Path, caption: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("caption", caption)
    seed = sum(map(ord, caption))
    Image.new("RGB", (24, 24), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(path, pnginfo=info)
    path.with_suffix(".txt").write_text(caption)  # the sidecar the index reads the caption from
    return path


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, Path]:
    """(root folder, index folder) of a small real corpus index (FakeEmbedder vectors)."""
    root, index_dir = tmp_path / "photos", tmp_path / "index"
    for i, caption in enumerate(CAPTIONS):
        write_captioned(root / ("sub" if i % 2 else "") / f"{i:02d}-{caption.split()[1]}.png", caption)
    ingest(root, index_dir=index_dir, embedder={"use": "fake", "dim": 64})
    return root, index_dir


class BlockingGenerator(FakeGenerator):
    """A FakeGenerator whose ``generate`` sets ``entered`` and then waits for ``gate``."""

    name = "blocking"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.fail_with: Exception | None = None

    def generate(self, prompt: str, references: Sequence[Reference] = (), *, seed: int | None = None):
        self.entered.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        if self.fail_with is not None:
            raise self.fail_with
        return super().generate(prompt, references, seed=seed)


def make_pipeline(index_dir: Path, generator: FakeGenerator | None = None, **kw) -> ImageRAG:
    return ImageRAG(generator or FakeGenerator(size=32, max_references=2), FakeCritic(),
                    IndexRetriever(index_dir=str(index_dir), dedupe=None), profile="web-test", **kw)


@pytest.fixture
def pipeline(corpus) -> ImageRAG:
    return make_pipeline(corpus[1])


@pytest.fixture
def captioned_pipeline(tmp_path):
    """``make(name, {file name: caption})`` → a pipeline over a new corpus index of those images."""

    def make(name: str, captions: dict[str, str]) -> ImageRAG:
        root, index_dir = tmp_path / name, tmp_path / f"{name}-index"
        for file, caption in captions.items():
            write_captioned(root / file, caption)
        ingest(root, index_dir=index_dir, embedder={"use": "fake", "dim": 64})
        return make_pipeline(index_dir)

    return make


@pytest.fixture
def blocking(corpus) -> tuple[ImageRAG, BlockingGenerator]:
    gen = BlockingGenerator(size=32, max_references=2)
    return make_pipeline(corpus[1], gen), gen


@pytest.fixture
def make_client(tmp_path):
    """``make(pipeline, **create_app_options)`` → a TestClient (closed, jobs stopped, at the end)."""
    clients: list[TestClient] = []

    def make(pipeline: ImageRAG, *, raise_server_exceptions: bool = True, **options) -> TestClient:
        options.setdefault("runs_dir", tmp_path / "runs")
        client = TestClient(create_app(pipeline, **options), raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        app: Any = client.app
        gate = getattr(app.state.web.pipeline.generator, "gate", None)
        if gate is not None:
            gate.set()
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client, pipeline) -> TestClient:
    return make_client(pipeline)


def _wait_job(client: TestClient, job_id: str) -> dict:
    """The job once final (read through its event stream, which ends when the job does)."""
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        for _ in stream.iter_lines():
            pass
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] in ("done", "failed", "cancelled"), job
    return job


def _search_paths(client: TestClient, text: str, k: int = 2) -> list[str]:
    out = client.post("/api/search", json={"text": text, "k": k})
    assert out.status_code == 200, out.text
    return [h["path"] for h in out.json()["hits"]]


@pytest.fixture
def wait_job():
    """``wait_job(client, id)`` → the JOB once final."""
    return _wait_job


@pytest.fixture
def search_paths():
    """``search_paths(client, text, k=2)`` → the hits' paths."""
    return _search_paths


@pytest.fixture
def captions():
    return list(CAPTIONS)


@pytest.fixture
def pipeline_of():
    """``pipeline_of(index_dir, generator=None, **ImageRAG_options)``."""
    return make_pipeline


@pytest.fixture(params=["thread", "process"])
def jobs_mode(request) -> str:
    """Each job test runs with jobs on the server's thread and in a worker process."""
    return request.param


@pytest.fixture
def gated_app(make_client, corpus, tmp_path, jobs_mode):
    """``make(fail_with=None, secrets=(), **create_app_options)`` → (client, Gate): an app in
    ``jobs_mode`` whose generator (:class:`webjob_rig.GatedGenerator`) waits for the gate."""
    gates: list[webjob_rig.Gate] = []
    count = itertools.count()

    def make(*, fail_with: str | None = None, secrets: tuple[str, ...] = (), **options):
        gate = webjob_rig.Gate(tmp_path / f"gate-{next(count)}")
        recreate = functools.partial(webjob_rig.build, str(corpus[1]), str(gate.folder), fail_with, tuple(secrets))
        client = make_client(recreate(), jobs=jobs_mode, recreate=recreate if jobs_mode == "process" else None,
                             **options)
        gates.append(gate)
        return client, gate

    yield make
    for gate in gates:  # before the clients close: no job waits for a gate at shutdown
        gate.open()
