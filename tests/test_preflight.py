"""Everything that can be known without loading a model is checked before anything loads: the
whole profile (nested components included), missing API keys, and the user's images."""

import os
import struct
import subprocess
import sys
import textwrap
import types
import zlib

import pytest
from PIL import Image

from imagerag_sdk import hookimpl, profiles
from imagerag_sdk.errors import ProfileError
from imagerag_sdk.images import BadImageError
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.plugins import build_registry, get_plugin_manager, get_registry, set_registry
from imagerag_sdk.profiles import check, load_profile, parse_profile
from imagerag_sdk.testing import FakeCritic, FakeGenerator

NESTED_TYPO = "retriever: {use: index, corpus: c, embedder: {use: fake, modle: ViT-B-32}}\n"

SPY_PLUGIN = """
import os
from imagerag_sdk import hookimpl
from imagerag_sdk.testing import FakeGenerator

class SpyGenerator(FakeGenerator):
    name = "spy"

    def _load(self):
        with open(os.environ["SPY_MARKER"], "a") as f:
            f.write("loaded\\n")

@hookimpl
def register_generators(register):
    register(SpyGenerator)
"""


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def bad_images(tmp_path):
    """A missing file, a text file, a truncated PNG and a PNG header claiming 100000x100000 pixels."""
    text = tmp_path / "notes.png"
    text.write_text("these are my notes, not a picture\n")
    whole = tmp_path / "whole.png"
    Image.effect_noise((64, 64), 64).convert("RGB").save(whole)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))
    return {"missing": tmp_path / "missing.png", "text": text, "truncated": truncated, "bomb": bomb}


class SpyGenerator(FakeGenerator):
    name = "spy"
    built = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        type(self).built += 1


@pytest.fixture
def spy_registry():
    plugin = types.ModuleType("spy_plugin")
    plugin.register_generators = hookimpl(lambda register: register(SpyGenerator))
    SpyGenerator.built = 0
    set_registry(build_registry(*get_plugin_manager(extra_plugins=[("spy", plugin)])))
    yield
    set_registry(None)


def has(component_role, name):
    return name in get_registry().components[component_role]


# -- the Python path ---------------------------------------------------------------------------------
def test_from_profile_raises_one_error_with_every_problem_before_building(tmp_path, spy_registry):
    path = write(tmp_path, "name: x\ngenerator: {use: spy, sise: 3}\ncritic: {use: fake}\n" + NESTED_TYPO)
    with pytest.raises(ProfileError) as err:
        ImageRAG.from_profile(path)
    problems = err.value.problems
    assert problems == check(load_profile(path)), "the same lines profiles validate prints"
    assert any(p.endswith("p.yaml: generator.sise: unknown key (got 3)") for p in problems)
    assert any(p.endswith("p.yaml: retriever.embedder.modle: unknown key (got 'ViT-B-32')") for p in problems)
    assert len(problems) == 2 and "(and 1 more)" in str(err.value)
    assert SpyGenerator.built == 0, "nothing is constructed when the profile has a problem"


def test_a_nested_typo_alone_is_refused_before_building(tmp_path, spy_registry):
    path = write(tmp_path, "name: x\ngenerator: {use: spy}\ncritic: {use: fake}\n" + NESTED_TYPO)
    with pytest.raises(ProfileError) as err:
        ImageRAG.from_profile(path)
    assert len(err.value.problems) == 1
    assert str(err.value) == err.value.problems[0] == check(load_profile(path))[0]
    assert "\n" not in str(err.value)
    assert SpyGenerator.built == 0


API_KEYS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY")


@pytest.mark.parametrize("role, where, spec, env", [
    ("critic", "critic", {"use": "openai"}, "OPENAI_API_KEY"),
    ("critic", "critic", {"use": "gemini"}, "GEMINI_API_KEY"),
    ("critic", "critic", {"use": "anthropic"}, "ANTHROPIC_API_KEY"),
    ("generator", "generator", {"use": "gpt-image"}, "OPENAI_API_KEY"),
    ("generator", "generator", {"use": "gemini-image"}, "GEMINI_API_KEY"),
    ("reranker", "reranker.critic", {"use": "vlm", "critic": {"use": "anthropic"}}, "ANTHROPIC_API_KEY"),
])
def test_a_missing_api_key_is_found_before_loading(monkeypatch, role, where, spec, env):
    provider_role, provider = ("critic", spec["critic"]) if "critic" in spec else (role, spec)
    if not has(provider_role, provider["use"]):
        pytest.skip(f"the plugin providing '{provider['use']}' is not installed")
    for var in API_KEYS:
        monkeypatch.delenv(var, raising=False)
    data = {"name": "x", "generator": {"use": "fake"}, "critic": {"use": "fake"}, role: spec}
    profile = parse_profile(data, source="keys.yaml")
    with pytest.raises(ProfileError) as err:
        ImageRAG.from_profile(profile)
    line, = err.value.problems
    assert line.startswith(f"keys.yaml: {where}: ") and "no API key given" in line and f"set {env}" in line
    findings = profiles.inspect_profile(profile)
    assert findings.invalid == [], "a missing key does not make the profile invalid"
    assert findings.here == [line]
    monkeypatch.setenv(env, "k-123")
    assert profiles.inspect_profile(profile).here == []
    monkeypatch.delenv(env)
    with_key = {**provider, "api_key": "k"}
    given = {**data, role: {**spec, "critic": with_key} if "critic" in spec else with_key}
    assert profiles.inspect_profile(parse_profile(given)).here == [], "a key in the options is enough"


def test_unset_env_variables_are_listed_with_the_other_problems(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_A", raising=False)
    monkeypatch.delenv("NOT_SET_B", raising=False)
    path = write(tmp_path, """\
        name: x
        generator: {use: fake, sise: 1}
        critic: {use: scripted, answers: [{$env: NOT_SET_A}]}
        reranker: {use: vlm, critic: {use: scripted, answers: [{$env: NOT_SET_B}]}}
    """)
    with pytest.raises(ProfileError) as err:
        ImageRAG.from_profile(path)
    problems = err.value.problems
    assert len(problems) == 3
    assert any("generator.sise: unknown key" in p for p in problems)
    assert any("critic.answers[0] reads the environment variable NOT_SET_A, which is not set — export "
               "NOT_SET_A=" in p for p in problems)
    assert any("reranker.critic.answers[0] reads the environment variable NOT_SET_B" in p for p in problems)


def test_run_checks_every_user_image_before_generating(tmp_path):
    bad = bad_images(tmp_path)
    gen = FakeGenerator()
    pipe = ImageRAG(gen, FakeCritic(), None)
    good = tmp_path / "me.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(good)
    with pytest.raises(BadImageError) as err:
        pipe.run("a sheep", user_images=[good, *bad.values()], out=tmp_path / "runs")
    problems = err.value.problems
    assert len(problems) == 4, problems
    for kind, path in bad.items():
        line = next(p for p in problems if str(path) in p)
        assert line.startswith("user image: ") and " — pass the path of a complete image file" in line
        assert {"missing": "No such file", "text": "not a readable image", "truncated": "truncated",
                "bomb": "decompression bomb"}[kind] in line
    assert gen.calls == [], "nothing was generated"
    assert not (tmp_path / "runs").exists(), "no run folder, so nothing copied into references/"


# -- the command line ------------------------------------------------------------------------------------
@pytest.fixture
def spy_env(plugin_site, tmp_path):
    plugin_site("imagerag-spy", "spy", "imagerag_spy_plugin", SPY_PLUGIN)
    marker = tmp_path / "loaded.txt"
    env = {"PYTHONPATH": os.pathsep.join([str(plugin_site.path), os.environ.get("PYTHONPATH", "")]),
           "SPY_MARKER": str(marker)}
    return env, marker


def validate_lines(path, env):
    out = cli("profiles", "validate", str(path), env=env)
    return out, [line.split(": ", 1)[1] for line in out.stdout.strip().splitlines()
                 if line.startswith(("invalid: ", "note: "))]


def test_generate_refuses_a_nested_typo_before_loading(tmp_path, spy_env):
    env, marker = spy_env
    path = write(tmp_path, "name: x\ngenerator: {use: spy}\ncritic: {use: fake}\n" + NESTED_TYPO)
    validated, lines = validate_lines(path, env)
    assert validated.returncode == 1 and len(lines) == 1 and "retriever.embedder.modle: unknown key" in lines[0]
    out = cli("generate", "a sheep", "--profile", str(path), "--out", str(tmp_path / "runs"), env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"error: {lines[0]}"], "the validate line, nothing else"
    assert not marker.exists(), "the generator never loaded"
    assert not (tmp_path / "runs").exists()


def test_generate_lists_every_problem_of_the_profile(tmp_path, spy_env):
    env, marker = spy_env
    path = write(tmp_path, "name: x\ngenerator: {use: spy}\ncritic: {use: fake, modee: fused}\n" + NESTED_TYPO)
    _, lines = validate_lines(path, env)
    assert len(lines) == 2
    out = cli("generate", "a sheep", "--profile", str(path), "--out", str(tmp_path / "runs"), env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"error: {line}" for line in lines]
    assert not marker.exists()


def test_generate_refuses_a_missing_api_key_before_loading(tmp_path, spy_env, monkeypatch):
    if not has("critic", "openai"):
        pytest.skip("imagerag-openai is not installed")
    env, marker = spy_env
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = write(tmp_path, "name: x\ngenerator: {use: spy}\ncritic: {use: openai, model: gpt-4o}\n")
    validated, lines = validate_lines(path, env)
    assert validated.returncode == 0, "validate runs on machines without keys: a note, not a failure"
    assert "ok: " in validated.stdout and f"note: {lines[0]}" in validated.stdout
    assert "critic: openai: no API key given — set OPENAI_API_KEY" in lines[0]
    out = cli("generate", "a sheep", "--profile", str(path), "--out", str(tmp_path / "runs"), env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"error: {lines[0]}"]
    assert not marker.exists()


def test_generate_refuses_bad_images_before_loading(tmp_path, spy_env):
    env, marker = spy_env
    bad = bad_images(tmp_path)
    path = write(tmp_path, "name: x\ngenerator: {use: spy}\ncritic: {use: fake}\n"
                           f"retriever: {{use: fake, corpus_dir: '{tmp_path / 'corpus'}'}}\n")
    args = [arg for p in bad.values() for arg in ("--image", str(p))]
    out = cli("generate", "a sheep", "--profile", str(path), "--out", str(tmp_path / "runs"), *args, env=env)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: --image: ") for line in lines)
    for p in bad.values():
        assert any(str(p) in line for line in lines)
    assert not marker.exists(), "rejected before any model loaded"
    assert not (tmp_path / "runs").exists(), "no run folder: nothing copied into references/"
    good = tmp_path / "me.png"
    Image.new("RGB", (32, 32), (9, 9, 9)).save(good)
    ok = cli("generate", "a sheep", "--profile", str(path), "--out", str(tmp_path / "runs"),
             "--image", str(good), env=env)
    assert ok.returncode == 0, ok.stderr
    run_dir = ok.stdout.strip().splitlines()[-1]
    assert any(name.startswith("user01-me") for name in os.listdir(os.path.join(run_dir, "references")))
