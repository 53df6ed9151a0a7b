"""Broken plugins and name clashes never take the ``imagerag`` command down.

Every plugin here is a real distribution (dist-info with ``entry_points.txt``) in a folder the
subprocess sees through PYTHONPATH, which is what a third-party plugin looks like when installed.
"""

import json
import os
import subprocess
import sys

import pytest

DUP_A = """
from imagerag_sdk import hookimpl
from imagerag_sdk.testing.fakes import FakeGenerator

class DupA(FakeGenerator):
    name = "dup"

class OnlyA(FakeGenerator):
    name = "only-a"

@hookimpl
def register_generators(register):
    register(DupA)
    register(OnlyA)
"""

DUP_B = """
from imagerag_sdk import hookimpl
from imagerag_sdk.testing.fakes import FakeGenerator

class DupB(FakeGenerator):
    name = "dup"

@hookimpl
def register_generators(register):
    register(DupB)
"""

MISSPELT = """
import click
from imagerag_sdk import hookimpl
from imagerag_sdk.testing.fakes import FakeGenerator

class Typo(FakeGenerator):
    name = "typo-painter"

@hookimpl
def register_generator(register):
    register(Typo)

@hookimpl
def register_commands(cli):
    @cli.command("typo-cmd")
    def typo_cmd():
        click.echo("typo command ran")
"""

HOOK_RAISES_WITH_COMMAND = """
import click
from imagerag_sdk import hookimpl

@hookimpl
def register_critics(register):
    raise RuntimeError("critic table is corrupt")

@hookimpl
def register_commands(cli):
    @cli.command("half-cmd")
    def half_cmd():
        click.echo("half command ran")
"""

LEAKS_KEY = """
import os
raise RuntimeError("login refused for key " + os.environ["FAKE_API_KEY"])
"""

MARKS_IMPORT = """
import os
open(os.environ["IMPORT_MARKER"], "w").write("imported")
"""

KEY = "sk-fake-0123456789abcdef"


def run(*args, site, env=None):
    full_env = {**os.environ, "COLUMNS": "400", **(env or {}),
                "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


@pytest.fixture
def dup_site(plugin_site):
    plugin_site("imagerag-dup-a", "dupa", "imagerag_dupa_cli", DUP_A)
    plugin_site("imagerag-dup-b", "dupb", "imagerag_dupb_cli", DUP_B)
    return plugin_site.path


def test_a_name_clash_leaves_help_version_plugins_and_profiles_list_working(dup_site):
    for args in (["--help"], ["--version"], ["plugins"], ["profiles", "list"]):
        out = run(*args, site=dup_site)
        assert out.returncode == 0, (args, out.stderr)
    table = run("plugins", site=dup_site).stdout
    assert table.count("CLASH: generator 'dup' is also registered by") == 2, table
    assert "imagerag-dup-a (plugin 'dupa')" in table and "imagerag-dup-b (plugin 'dupb')" in table
    assert "AMBIGUOUS: registered by imagerag-dup-a, imagerag-dup-b" in table
    data = json.loads(run("plugins", "--json", site=dup_site).stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["dupa"]["clashes"] == ["generator 'dup' is also registered by imagerag-dup-b (plugin 'dupb')"]
    assert plugins["dupb"]["clashes"] == ["generator 'dup' is also registered by imagerag-dup-a (plugin 'dupa')"]
    assert plugins["dupa"]["error"] is None and plugins["dupb"]["error"] is None, "a clash is not a breakage"
    assert ["generator", "only-a"] in plugins["dupa"]["components"]
    assert "dup" not in data["components"]["generator"] and "only-a" in data["components"]["generator"]
    assert [r["distribution"] for r in data["ambiguous"]["generator"]["dup"]] == ["imagerag-dup-a",
                                                                                  "imagerag-dup-b"]


def test_only_a_profile_naming_the_ambiguous_name_fails(dup_site, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("name: other\ngenerator: {use: only-a, size: 64}\ncritic: {use: fake}\n"
                     "retriever: {use: fake}\n")
    ok = run("generate", "a sheep", "--profile", str(other), "--out", str(tmp_path / "runs"), site=dup_site)
    assert ok.returncode == 0, ok.stderr
    assert os.path.isfile(os.path.join(ok.stdout.strip().splitlines()[-1], "trace.json"))

    dup = tmp_path / "dup.yaml"
    dup.write_text("name: dup\ngenerator: {use: dup}\ncritic: {use: fake}\nretriever: {use: fake}\n")
    bad = run("generate", "a sheep", "--profile", str(dup), "--out", str(tmp_path / "runs"), site=dup_site)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert lines[0].startswith("error: ") and "generator.use: generator 'dup' is ambiguous" in lines[0]
    assert "imagerag-dup-a (plugin 'dupa')" in lines[0] and "imagerag-dup-b (plugin 'dupb')" in lines[0]
    assert "uninstall all but one of imagerag-dup-a, imagerag-dup-b" in lines[0]
    assert "IMAGERAG_LOAD_PLUGINS" in lines[0]


def test_a_misspelt_hook_breaks_only_its_plugin_and_its_command_is_not_added(plugin_site):
    plugin_site("imagerag-typo", "typo", "imagerag_typo_cli", MISSPELT)
    plugin_site("imagerag-dup-a", "dupa", "imagerag_dupa_cli", DUP_A)
    data = json.loads(run("plugins", "--json", site=plugin_site.path).stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["typo"]["error"] == ("hook 'register_generator' matches no imagerag hook spec — "
                                        "did you mean 'register_generators'?")
    assert plugins["typo"]["components"] == []
    assert plugins["dupa"]["error"] is None and "dup" in data["components"]["generator"]
    table = run("plugins", site=plugin_site.path).stdout
    assert "BROKEN: hook 'register_generator' matches no imagerag hook spec" in table
    out = run("typo-cmd", site=plugin_site.path)
    assert out.returncode == 2 and "No such command 'typo-cmd'" in out.stderr
    assert "typo-cmd" not in run("--help", site=plugin_site.path).stdout


def test_a_plugin_whose_hook_raises_gets_no_command(plugin_site):
    plugin_site("imagerag-half", "half", "imagerag_half_cli", HOOK_RAISES_WITH_COMMAND)
    out = run("half-cmd", site=plugin_site.path)
    assert out.returncode == 2 and "No such command 'half-cmd'" in out.stderr
    data = json.loads(run("plugins", "--json", site=plugin_site.path).stdout)
    half = next(p for p in data["plugins"] if p["name"] == "half")
    assert half["error"] == "register_critics failed: RuntimeError: critic table is corrupt"
    assert "Traceback" in half["traceback"] and "critic table is corrupt" in half["traceback"]


def test_tracebacks_are_shown_with_secrets_scrubbed(plugin_site):
    plugin_site("imagerag-leaky", "leaky", "imagerag_leaky_cli", LEAKS_KEY)
    env = {"FAKE_API_KEY": KEY}
    listed = run("plugins", "--json", site=plugin_site.path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert KEY not in listed.stdout
    leaky = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "leaky")
    assert leaky["error"] == "RuntimeError: login refused for key ***"
    assert leaky["traceback"].startswith("Traceback (most recent call last):")
    assert "imagerag_leaky_cli.py" in leaky["traceback"]
    assert leaky["traceback"].rstrip().endswith("RuntimeError: login refused for key ***")

    plain = run("plugins", site=plugin_site.path, env=env)
    assert plain.returncode == 0 and KEY not in plain.stdout + plain.stderr
    assert "Traceback" not in plain.stdout, "tracebacks only on request"
    traced = run("plugins", site=plugin_site.path, env={**env, "IMAGERAG_RAISE_ERRORS": "1"})
    assert traced.returncode == 0, traced.stderr
    assert KEY not in traced.stdout + traced.stderr
    assert "plugin 'leaky' (imagerag-leaky): RuntimeError: login refused for key ***" in traced.stdout
    assert "Traceback (most recent call last):" in traced.stdout and "imagerag_leaky_cli.py" in traced.stdout


def test_version_loads_no_plugin(plugin_site, tmp_path):
    plugin_site("imagerag-marks", "marks", "imagerag_marks_cli", MARKS_IMPORT)
    marker = tmp_path / "imported"
    env = {"IMPORT_MARKER": str(marker)}
    out = run("--version", site=plugin_site.path, env=env)
    assert out.returncode == 0 and "version" in out.stdout
    assert not marker.exists()
    assert run("--help", site=plugin_site.path, env=env).returncode == 0
    assert not marker.exists(), "--help lists the core's commands: plugin commands are added lazily"
    assert run("plugins", site=plugin_site.path, env=env).returncode == 0
    assert marker.exists(), "the plugin is real: 'imagerag plugins' imports it"
