"""The search answer's fast paths keep the app's guarantees: secrets masked after one serialization,
hit URLs without a file-system call per hit (``/files`` still confines), and the search on the
event loop only while searches are fast (never held up by a generation)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from imagerag_sdk.redact import MASK
from imagerag_web.offload import BLOCK_MAX_MS, INLINE_CPU_MS, INLINE_WALL_MS, WINDOW, Offload
from imagerag_web.security import Secrets, _clean, _dumps, inside_lexically

WAIT = 60  # seconds a test waits for a thread (never a timing assertion)

ENV_SECRET = "sk-web-5e1f0c3a9b7d2468"  # in an environment variable whose name looks like a credential
TOKEN = 'tok"with\\escapes-81c2'  # the app's token: JSON escapes its quote and backslash


def test_a_secret_in_a_hits_caption_or_metadata_is_masked_in_search_answers(make_client, captioned_pipeline,
                                                                             monkeypatch):
    monkeypatch.setenv("WEB_FAST_TEST_API_KEY", ENV_SECRET)
    pipeline = captioned_pipeline("leaky", {"a.png": f"a red apple, key {ENV_SECRET} on the label",
                                            "b.png": f"a red apple, token {TOKEN} on the box",
                                            "c.png": "a blue boat on a lake"})
    client = make_client(pipeline, token=TOKEN)
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    out = client.post("/api/search", json={"text": "a red apple", "k": 3})
    assert out.status_code == 200, out.text
    assert ENV_SECRET not in out.text and json.dumps(TOKEN)[1:-1] not in out.text and TOKEN not in out.text
    hits = {h["path"].rsplit("/", 1)[1]: h for h in out.json()["hits"]}
    assert hits["a.png"]["caption"] == f"a red apple, key {MASK} on the label"
    assert hits["b.png"]["caption"] == f"a red apple, token {MASK} on the box"
    assert hits["b.png"]["metadata"]["caption"] == hits["b.png"]["caption"]
    assert hits["c.png"]["caption"] == "a blue boat on a lake", "text without a secret is left alone"


@pytest.mark.parametrize("secrets, value", [
    ({'q"uo\\te-secret'}, {"a": 'x q"uo\\te-secret y', "b": ['q"uo\\te-secret'], 'q"uo\\te-secret': 1}),
    ({"line\nbreak\tsecret"}, ["before line\nbreak\tsecret after", {"k": "line\nbreak\tsecret"}]),
    ({"ünïcødé-sëcret"}, {"caption": "ünïcødé-sëcret", "n": 3}),
    ({"nabcdefgh"}, {"s": "\nabcdefgh"}),  # its text holds the secret only inside an escape: nothing to mask
    ({"31415926"}, {"score": 0.31415926, "s": "pi 31415926"}),  # numbers are not masked, and stay numbers
    ({"long-secret-value", "secret"}, {"s": "a long-secret-value and a secret"}),  # longest first
    ({"absent-secret"}, {"s": "nothing here", "n": None, "f": 1.5, "t": True}),
    (set(), {"s": "no secrets at all"}),
])
def test_dumps_is_the_masked_value_serialized(monkeypatch, secrets, value):
    for name in [k for k in os.environ if k.upper().endswith(("API_KEY", "TOKEN", "SECRET", "PASSWORD"))]:
        monkeypatch.delenv(name)
    got = Secrets(secrets).dumps(value)
    want = _dumps(_clean(value, secrets) if secrets else value).encode("utf-8")
    assert got == want
    json.loads(got)  # still valid JSON


def test_a_search_answer_is_masked_against_secrets_set_after_start(client, monkeypatch):
    """Credential-like environment variables are read at every answer, as before."""
    caption = client.post("/api/search", json={"text": "a blue boat", "k": 1}).json()["hits"][0]["caption"]
    monkeypatch.setenv("LATE_TEST_TOKEN", caption.split()[1] + " " + caption.split()[2])  # "blue boat"
    out = client.post("/api/search", json={"text": "a blue boat", "k": 1})
    assert "blue boat" not in out.text and out.json()["hits"][0]["caption"] == f"a {MASK} on a lake"


def test_secrets_follow_every_change_of_the_environment(monkeypatch):
    secrets = Secrets(["fixed-secret-1"])
    assert secrets.all() >= {"fixed-secret-1"} and "env-secret-aaaa" not in secrets.all()
    monkeypatch.setenv("FAST_PATH_TEST_PASSWORD", "env-secret-aaaa")
    assert "env-secret-aaaa" in secrets.all()
    assert secrets.dumps({"s": "x env-secret-aaaa"}) == b'{"s":"x ***"}'
    monkeypatch.setenv("FAST_PATH_TEST_PASSWORD", "env-secret-bbbb")
    assert "env-secret-bbbb" in secrets.all() and "env-secret-aaaa" not in secrets.all()
    monkeypatch.delenv("FAST_PATH_TEST_PASSWORD")
    assert "env-secret-bbbb" not in secrets.all()
    assert secrets.dumps({"s": "x env-secret-bbbb"}) == b'{"s":"x env-secret-bbbb"}'


def test_a_hit_whose_file_is_now_a_link_out_of_the_root_is_not_served(client, corpus, tmp_path):
    """The index confines its items when it indexes them and when the root changes, not per search
    (docs/corpus-index.md); the answer names the hit's URL without a file-system call, and /files
    resolves it and refuses it, as does picking it for a job."""
    root = corpus[0]
    outside = tmp_path / "outside.png"
    outside.write_bytes((root / "sub" / "01-blue.png").read_bytes())
    target = root / "sub" / "01-blue.png"
    target.unlink()
    os.symlink(outside, target)
    hits = client.post("/api/search", json={"text": "a blue boat", "k": 6}).json()["hits"]
    hit = next(h for h in hits if h["path"] == str(target))
    assert hit["file"] == "/files/corpus/index/sub/01-blue.png"
    assert client.get(hit["file"]).status_code == 404
    assert client.get(hit["thumb"]).status_code == 404
    out = client.post("/api/jobs", json={"kind": "generate", "prompt": "x", "references": [hit["path"]]})
    assert out.status_code == 400 and "not an image of this app's corpora" in out.json()["error"]
    others = [h for h in hits if h["path"] != str(target)]
    assert others and all(client.get(h["file"]).status_code == 200 for h in others)


@pytest.mark.parametrize("path, rel", [
    ("/c/root/a.png", "a.png"), ("/c/root/sub/a.png", "sub/a.png"), ("/c/root/..a.png", "..a.png"),
    ("/c/rootx/a.png", None), ("/c/root/", None), ("/c/root/../a.png", None), ("/c/root/sub/./a.png", None),
    ("/c/root/sub//a.png", None), ("/c/root/sub/..", None), ("/c/root/a\\b.png", None), ("/c/root/a\x00.png", None),
    ("/elsewhere/a.png", None), ("c/root/a.png", None), ("/c/root//a.png", None), ("/c/root/./a.png", None),
    ("/c/root/sub/", None), ("/c/root/sub/.", None), ("/c/root/a.b/c..d/.e", "a.b/c..d/.e"), ("/c/root/..", None),
])
@pytest.mark.parametrize("root", ["/c/root", "/c/root/", Path("/c/root")])  # as given, and as Corpus.prefix has it
def test_inside_lexically_takes_only_plain_paths_under_the_root(path, rel, root):
    assert inside_lexically(root, path) == rel


# -- where the search runs ---------------------------------------------------------------------------
def _where() -> str:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "pool"
    return "loop"


def test_offload_runs_on_the_pool_until_calls_are_known_to_be_cheap():
    off = Offload()
    seen: list[str] = []
    cheap = (INLINE_CPU_MS / 4, INLINE_CPU_MS / 2)  # (CPU ms, wall ms) as fast runs leave them

    async def main() -> None:
        for _ in range(WINDOW):
            seen.append(await off.run(_where))
        assert len(off.recent) == WINDOW, "each run's cost is kept"
        off.recent.extend([cheap] * WINDOW)  # no timing in this test: the costs are set
        seen.append(await off.run(_where))
        off.recent.append((0.1, BLOCK_MAX_MS * 2))  # one run that held the loop too long
        seen.append(await off.run(_where))
        off.recent.extend([cheap] * WINDOW + [(INLINE_CPU_MS * 2, INLINE_CPU_MS * 2)] * (WINDOW // 2 + 1))
        seen.append(await off.run(_where))  # typically costly: the median CPU is over
        off.recent.extend([cheap] * WINDOW + [(0.1, INLINE_WALL_MS * 2)] * (WINDOW // 2 + 1))
        seen.append(await off.run(_where))  # typically waiting (a remote service, a GPU): the median wall is over
        off.recent.extend([cheap] * WINDOW)
        seen.append(await off.run(_where))

    asyncio.run(main())
    assert seen == ["pool"] * WINDOW + ["loop", "pool", "pool", "pool", "loop"]


def test_offload_sends_calls_that_come_together_to_the_pool():
    """Many clients at once: the calls' GIL-free parts overlap on the pool and the loop stays free."""
    off = Offload()
    off.recent.extend([(0.1, 0.2)] * WINDOW)  # cheap, as fast runs leave it (no timing in this test)

    async def main() -> tuple[list[str], str]:
        together = await asyncio.gather(*(off.run(_where) for _ in range(3)))
        return list(together), await off.run(_where)

    together, alone = asyncio.run(main())
    assert together == ["pool"] * 3 and alone == "loop" and off.in_flight == 0


def test_offload_passes_errors_on_from_either_path():
    off = Offload()

    def fail() -> None:
        raise ValueError("from the call")

    async def main() -> None:
        with pytest.raises(ValueError, match="from the call"):
            await off.run(fail)
        off.recent.extend([(0.0, 0.0)] * WINDOW)
        with pytest.raises(ValueError, match="from the call"):
            await off.run(fail)

    asyncio.run(main())


def test_a_fast_search_runs_on_the_event_loop_and_a_generation_does_not_hold_it_up(make_client, blocking):
    pipeline, gen = blocking
    client = make_client(pipeline)
    where: list[str] = []
    retrieve = pipeline.retrieve

    def recording(*args: Any, **kwargs: Any) -> Any:
        where.append(_where())
        return retrieve(*args, **kwargs)

    pipeline.retrieve = recording  # the test watches where it runs
    web = client.app.state.web
    web.offload.recent.extend([(0.0, 0.0)] * WINDOW)  # as cheap searches leave it (no timing in this test)
    job = client.post("/api/jobs", json={"kind": "generate", "prompt": "x", "references": []}).json()["job"]
    assert gen.entered.wait(WAIT)
    hits = client.post("/api/search", json={"text": "a blue boat", "k": 2}).json()["hits"]
    assert len(hits) == 2 and where == ["loop"]
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "running", "answered while it generates"
    web.offload.recent.extend([(0.0, BLOCK_MAX_MS * 2)] * WINDOW)
    assert len(client.post("/api/search", json={"text": "a blue boat", "k": 2}).json()["hits"]) == 2
    assert where == ["loop", "pool"]
    gen.gate.set()
