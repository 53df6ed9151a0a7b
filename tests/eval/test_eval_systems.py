"""Systems: overrides on a profile, the configuration hash, secrets kept out of it."""

import json

import pytest

from imagerag_sdk.errors import ConfigError
from imagerag_sdk.eval.systems import apply_overrides, parse_scorer, parse_system, resolve_system


def test_overrides_set_dotted_keys_with_yaml_values_and_leave_the_input_alone():
    data = {"generator": {"use": "fake"}, "loop": {"mode": "captions"}, "reranker": None}
    got = apply_overrides(data, ["loop.mode=concepts", "loop.min_similarity=0.25", "reranker={use: fake}",
                                 "generator.size=32"])
    assert got["loop"] == {"mode": "concepts", "min_similarity": 0.25}
    assert got["reranker"] == {"use": "fake"} and got["generator"] == {"use": "fake", "size": 32}
    assert data["loop"] == {"mode": "captions"} and data["reranker"] is None
    assert apply_overrides(got, ["reranker=null"])["reranker"] is None
    with pytest.raises(ConfigError, match="no section 'reranker' to set 'k'"):
        apply_overrides(data, ["reranker.k=3"])
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides(data, ["loop.mode"])


def test_the_hash_follows_the_configuration_and_never_holds_a_secret(tmp_path, monkeypatch):
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\ngenerator: {use: fake}\ncritic: {use: scripted, answers: [x]}\n"
                       "retriever: {use: fake, api_key: sk-literal-123}\n")
    plain, _ = resolve_system("p", str(profile), [])
    again, _ = resolve_system("other-name", str(profile), [])
    changed, _ = resolve_system("p", str(profile), ["loop.mode=concepts"])
    assert plain.hash == again.hash != changed.hash
    assert "sk-literal-123" not in json.dumps(plain.data) and plain.data["retriever"]["api_key"] == "**********"
    profile.write_text(profile.read_text().replace("sk-literal-123", "sk-other-456"))
    assert resolve_system("p", str(profile), [])[0].hash == plain.hash  # the key does not change the images
    env = tmp_path / "e.yaml"
    env.write_text("name: e\ngenerator: {use: fake}\ncritic: {use: fake}\nretriever: {use: fake, "
                   "api_key: {$env: MY_KEY}}\n")
    monkeypatch.setenv("MY_KEY", "sk-from-env")
    system, _ = resolve_system("e", str(env), [])
    assert system.data["retriever"]["api_key"] == {"$env": "MY_KEY"} and "sk-from-env" not in json.dumps(system.data)


def test_system_and_scorer_arguments():
    assert parse_system("concepts=fake loop.mode=concepts 'reranker={use: fake}'") == \
        ("concepts", "fake", ["loop.mode=concepts", "reranker={use: fake}"])
    with pytest.raises(ConfigError, match="is not 'NAME=PROFILE"):
        parse_system("fake loop.mode=concepts")
    with pytest.raises(ConfigError, match="system name 'a b' is not a plain name"):
        resolve_system("a b", "fake", [])
    assert parse_scorer("clip") == {"use": "clip"}
    assert parse_scorer("{use: clip, model: /abs/tiny}") == {"use": "clip", "model": "/abs/tiny"}
    with pytest.raises(ConfigError, match="has no 'use: NAME'"):
        parse_scorer("{model: x}")
