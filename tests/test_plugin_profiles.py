"""Plugins ship their profiles (``register_profiles``); the fakes are the ``testing`` plugin; install
hints come from the core's extras metadata; the core names no first-party plugin."""

import ast
import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagerag_sdk import builtins
from imagerag_sdk.errors import MissingDependencyError, ProfileError, install_hint
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.plugins import get_registry
from imagerag_sdk.profiles import check, list_profiles, load_profile

ROOT = Path(__file__).resolve().parents[1]

SHIPS = """
from pathlib import Path
from imagerag_sdk import hookimpl

@hookimpl
def register_profiles(register):
    register(Path(__file__).parent / "{file}")
"""

SHIPS_DATA = """
from imagerag_sdk import hookimpl
from imagerag_sdk.profiles import parse_profile

PROFILE = parse_profile({"name": "painted", "description": "as data",
                         "generator": {"use": "fake", "size": 48}, "critic": {"use": "fake"}})

@hookimpl
def register_profiles(register):
    register(PROFILE)
"""

QUICK = "description: {what}\ngenerator: {{use: fake, size: 64}}\ncritic: {{use: fake}}\nretriever: {{use: fake}}\n"


def _plugin_with_profile(plugin_site, dist, ep, module, what, file):
    site = plugin_site(dist, ep, module, SHIPS.format(file=file))
    (site / file).write_text(QUICK.format(what=what))
    return site / file


def test_a_third_party_plugins_profile_is_listed_and_runs(plugin_site, tmp_path):
    path = _plugin_with_profile(plugin_site, "imagerag-quick", "quick", "imagerag_quick_test", "ships one",
                                file="quick-fake.yaml")
    entry = {e.name: e for e in list_profiles(registry=get_registry(refresh=True))}["quick-fake"]
    assert (entry.plugin, entry.distribution, entry.path) == ("quick", "imagerag-quick", path.resolve())
    result = ImageRAG.from_profile(entry.name).run("a sheep and a car", out=tmp_path / "runs")
    assert json.loads((result.run_dir / "trace.json").read_text())["status"] == "done"


def test_a_profile_registered_as_data_is_listed_and_loads(plugin_site):
    plugin_site("imagerag-painted", "painted", "imagerag_painted_test", SHIPS_DATA)
    entry = {e.name: e for e in list_profiles(registry=get_registry(refresh=True))}["painted"]
    assert entry.path is None and entry.plugin == "painted"
    profile = load_profile("painted")
    assert profile.description == "as data" and profile.source == "painted (plugin 'painted' (imagerag-painted))"
    assert check(profile) == []
    assert ImageRAG.from_profile("painted").generator.options.size == 48


def test_two_plugins_shipping_one_name_are_ambiguous_not_fatal(plugin_site, tmp_path):
    one = plugin_site("imagerag-one", "one", "imagerag_one_test", SHIPS.format(file="one/same.yaml"))
    (one / "one").mkdir()
    (one / "one" / "same.yaml").write_text(QUICK.format(what="first"))
    plugin_site("imagerag-two", "two", "imagerag_two_test", SHIPS.format(file="two/same.yaml"))
    (one / "two").mkdir()
    (one / "two" / "same.yaml").write_text(QUICK.format(what="second"))
    registry = get_registry(refresh=True)
    infos = {p.name: p for p in registry.plugins}
    assert infos["one"].ok and infos["two"].ok
    assert infos["one"].clashes == ["profile 'same' is also shipped by imagerag-two (plugin 'two')"]
    assert infos["two"].clashes == ["profile 'same' is also shipped by imagerag-one (plugin 'one')"]
    with pytest.raises(ProfileError, match="profile 'same' is ambiguous: 2 plugins ship it") as err:
        load_profile("same")
    assert len(str(err.value).splitlines()) == 1 and "IMAGERAG_LOAD_PLUGINS" in str(err.value)
    assert load_profile("fake").name == "fake", "the other profiles are unaffected"

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(one), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", "profiles", "list"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    same = next(line for line in out.stdout.splitlines() if line.lstrip("│┃ ").startswith("same "))
    assert "ambiguous" in same and "imagerag-one" in same and "imagerag-two" in same
    assert "plugin 'testing' (imagerag-sdk)" in out.stdout

    user = tmp_path / "imagerag-home" / "profiles"
    user.mkdir(parents=True, exist_ok=True)
    (user / "same.yaml").write_text(QUICK.format(what="mine"))
    assert load_profile("same").description == "mine", "a user profile shadows the plugins' ones"


def test_a_profile_file_missing_from_the_package_breaks_only_its_plugin(plugin_site):
    plugin_site("imagerag-lost", "lost", "imagerag_lost_test", SHIPS.format(file="gone.yaml"))
    registry = get_registry(refresh=True)
    lost = next(p for p in registry.plugins if p.name == "lost")
    assert "register_profiles failed" in lost.error and "gone.yaml" in lost.error
    assert "fake" in registry.profiles


def test_the_fakes_are_the_testing_plugin_and_can_be_left_out(monkeypatch):
    assert not [name for name in vars(builtins) if "fake" in name.lower() or "scripted" in name.lower()]
    registry = get_registry(refresh=True)
    assert {reg.plugin for regs in registry.components.values() for name, reg in regs.items()
            if name in ("fake", "scripted")} == {"testing"}
    testing = next(p for p in registry.plugins if p.name == "testing")
    assert testing.distribution == "imagerag-sdk" and ("critic", "scripted") in testing.components
    monkeypatch.setenv("IMAGERAG_LOAD_PLUGINS", "bm25")
    registry = get_registry(refresh=True)
    assert [p.name for p in registry.plugins] == ["builtins", "bm25"]
    assert all("fake" not in registry.names(role) for role in registry.components)
    assert "fake" not in registry.profiles
    assert registry.names("retriever") == ["index", "pooled"]  # the core's own


def _fake_requires(lines):
    real = md.requires

    def requires(name):
        return lines if name == "imagerag-sdk" else real(name)

    return requires


def test_install_hint_comes_from_the_core_extras_metadata(monkeypatch, tmp_path):
    monkeypatch.setattr(md, "requires", _fake_requires([
        "pluggy>=1.5",
        'imagerag-acme; extra == "all"', 'imagerag-other; extra == "all"',
        'imagerag-acme>=2; extra == "painting"', "imagerag_acme ; extra == 'acme'",
    ]))
    hint = install_hint("imagerag-acme")
    assert hint.startswith("pip install 'imagerag-sdk[acme]'"), hint
    assert install_hint("imagerag-acme", extra="painting").startswith("pip install 'imagerag-sdk[painting]'")
    assert install_hint("imagerag-other") == "pip install imagerag-other", "'all' installs more than it"
    assert install_hint("imagerag-clip") == "pip install imagerag-clip", "no table besides the metadata"
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nrequires: [imagerag-acme]\ngenerator: {use: fake}\ncritic: {use: fake}\n")
    assert "requires imagerag-acme, which is not installed — pip install 'imagerag-sdk[acme]'" in \
        check(load_profile(path))[0]
    with pytest.raises(MissingDependencyError, match=r"pip install 'imagerag-sdk\[acme\]'"):
        ImageRAG.from_profile(path)


def test_the_installed_core_metadata_gives_the_first_party_hints():
    assert install_hint("imagerag-clip").startswith("pip install 'imagerag-sdk[clip]'")
    assert install_hint("imagerag-diffusers", extra="flux").startswith("pip install 'imagerag-sdk[flux]'")


def _strings_outside_docstrings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_core_names_no_first_party_plugin():
    """Only docs and comments may mention them: the core learns its plugins from entry points and
    its install hints from its own extras metadata."""
    first_party = [p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file()]
    first_party += [name.replace("-", "_") for name in first_party]
    assert "imagerag-clip" in first_party
    core = ROOT / "src" / "imagerag_sdk"
    found = [f"{path.relative_to(core)}: {text!r}" for path in sorted(core.rglob("*.py"))
             for text in _strings_outside_docstrings(path) if any(name in text for name in first_party)]
    found += [f"{path.relative_to(core)}" for path in sorted(core.rglob("*.y*ml"))
              if any(name in path.read_text() for name in first_party)]
    assert found == []


def test_heavy_imports_are_declared_by_each_plugin(register_plugin):
    from imagerag_sdk import hookimpl
    from imagerag_sdk.testing.contracts import HEAVY_MODULES, assert_imports_light, heavy_modules

    assert not {"openai", "anthropic", "google.genai", "bm25s", "open_clip"} & set(HEAVY_MODULES)
    assert {"torch", "open_clip", "openai", "anthropic", "google.genai", "bm25s", "diffusers"} <= set(heavy_modules())
    assert_imports_light("imagerag_sdk")  # the core stays light for every installed plugin's list
    assert_imports_light("imagerag_sdk.cli")

    class JsonIsHeavy:
        @hookimpl
        def heavy_imports(self):
            return ["json"]

    register_plugin(JsonIsHeavy(), name="json-heavy")
    assert "json" in heavy_modules()
    with pytest.raises(AssertionError, match=r"importing imagerag_sdk pulled in \['json'\]"):
        assert_imports_light("imagerag_sdk")
