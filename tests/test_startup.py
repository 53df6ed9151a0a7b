"""Start-up: what ``import imagerag_sdk``, ``imagerag --help`` and ``--version`` import (nothing
heavy, no plugin), and that plugin commands still work when named. No timings here: the figures
are ``benchmarks/startup.py``'s (docs/benchmarks.md)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import imagerag_sdk

HEAVY = ["numpy", "PIL", "pydantic", "pluggy", "rich", "yaml"]

MARKED_PLUGIN = """
import os
open(os.environ["IMPORT_MARKER"], "w").write("imported")

import click
from imagerag_sdk import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command("marked-serve")
    @click.option("--port", default=8000)
    def serve(port):
        "Serve things (a plugin's command)."
        click.echo(f"serving on {port}")
"""

TAKES_A_CORE_NAME = """
import click
from imagerag_sdk import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command("generate")
    def generate():
        click.echo("the plugin's generate")

    @cli.command("own-cmd")
    def own_cmd():
        click.echo("own command ran")
"""

RAISES_HALF_WAY = """
import click
from imagerag_sdk import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command("first-cmd")
    def first_cmd():
        click.echo("first")

    raise RuntimeError("second command needs a config file")
"""


def python(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _site_plugins(site) -> str:
    """The entry-point names of the plugins the test made in ``site``, plus the core's ``testing``:
    the only ones loaded, so an installed plugin that adds commands (imagerag-web's ``serve``)
    does not change what these tests see."""
    names = ["testing"]
    for eps in sorted(site.glob("*.dist-info/entry_points.txt")):
        names += [line.split("=")[0].strip() for line in eps.read_text().splitlines()[1:] if "=" in line]
    return ",".join(names)


def imagerag(*args, site, env=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "200", "IMAGERAG_LOAD_PLUGINS": _site_plugins(site), **(env or {}),
                "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_import_imagerag_sdk_imports_nothing_heavy():
    out = python(f"""
        import sys, json
        import imagerag_sdk
        print(json.dumps([m for m in {HEAVY + ["click"]!r} if m in sys.modules]))
    """)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_every_public_name_imports_from_the_package():
    names = ", ".join(imagerag_sdk.__all__)
    out = python(f"""
        from imagerag_sdk import {names}
        import imagerag_sdk, imagerag_sdk.errors, imagerag_sdk.hookspecs, imagerag_sdk.plugins
        import imagerag_sdk.roles, imagerag_sdk.types
        modules = [imagerag_sdk.errors, imagerag_sdk.hookspecs, imagerag_sdk.plugins, imagerag_sdk.roles,
                   imagerag_sdk.types]
        for name in imagerag_sdk.__all__:
            value = getattr(imagerag_sdk, name)
            assert any(getattr(m, name, None) is value for m in modules), name
            assert name in dir(imagerag_sdk), name
        print("ok")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert imagerag_sdk.Generator is imagerag_sdk.roles.Generator  # in this process too
    with pytest.raises(AttributeError, match="has no attribute 'Generatr'"):
        imagerag_sdk.Generatr  # noqa: B018


@pytest.mark.parametrize("package, submodules", [
    ("imagerag_sdk.index", ["backends", "corpus", "ingestion", "retriever", "store"]),
    ("imagerag_sdk.testing", ["fakes"]),
])
def test_a_subpackage_imports_its_names_on_first_use(package, submodules):
    """``import imagerag_sdk.index`` imports none of its modules (a search then imports only the
    reader's); each public name is still there, in ``dir()``, and is the object its module defines."""
    out = python(f"""
        import importlib, sys
        pkg = importlib.import_module({package!r})
        early = [m for m in {submodules!r} if f"{package}.{{m}}" in sys.modules]
        for name in pkg.__all__:
            value = getattr(pkg, name)
            assert name in dir(pkg), name
            assert any(getattr(sys.modules.get(f"{package}.{{m}}"), name, None) is value for m in {submodules!r}), name
        try:
            pkg.not_a_name
        except AttributeError as exc:
            assert "has no attribute 'not_a_name'" in str(exc)
        else:
            raise AssertionError("no AttributeError")
        print(early)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", "no submodule imported with the package"


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_plugin_and_nothing_heavy(plugin_site, tmp_path, flag):
    plugin_site("imagerag-marked", "marked", "imagerag_marked_cli", MARKED_PLUGIN)
    marker = tmp_path / "imported"
    out = imagerag(flag, site=plugin_site.path, env={"IMPORT_MARKER": str(marker)})
    assert out.returncode == 0, out.stderr
    assert not marker.exists(), f"{flag} imported a plugin"
    if flag == "--help":
        for core in ("generate", "index", "plugins", "profiles", "search"):
            assert f"  {core} " in out.stdout, core
        assert "'imagerag plugins' lists them" in out.stdout and "marked-serve" not in out.stdout
    else:
        assert "version" in out.stdout
    code = f"""
        import sys, json
        from imagerag_sdk.cli import main
        try:
            main([{flag!r}])
        except SystemExit:
            pass
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """
    modules = python(code, env={"IMPORT_MARKER": str(marker),
                                "PYTHONPATH": os.pathsep.join([str(plugin_site.path),
                                                               os.environ.get("PYTHONPATH", "")])})
    assert modules.returncode == 0, modules.stderr
    assert json.loads(modules.stdout.strip().splitlines()[-1]) == []
    assert not marker.exists()


def test_a_plugin_command_runs_when_named_and_plugins_lists_it(plugin_site, tmp_path):
    plugin_site("imagerag-marked", "marked", "imagerag_marked_cli", MARKED_PLUGIN)
    env = {"IMPORT_MARKER": str(tmp_path / "imported")}
    out = imagerag("marked-serve", "--port", "9", site=plugin_site.path, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "serving on 9", out.stderr
    assert "--port" in imagerag("marked-serve", "--help", site=plugin_site.path, env=env).stdout
    listed = imagerag("plugins", site=plugin_site.path, env=env)
    assert "Commands from plugins" in listed.stdout and "Serve things (a plugin's command)." in listed.stdout
    data = json.loads(imagerag("plugins", "--json", site=plugin_site.path, env=env).stdout)
    assert _commands_of(data, "marked") == {"marked-serve"}
    unknown = imagerag("serv", site=plugin_site.path, env=env)
    assert unknown.returncode == 2 and "No such command 'serv'" in unknown.stderr


def test_shell_completion_offers_plugin_commands(plugin_site, tmp_path):
    plugin_site("imagerag-marked", "marked", "imagerag_marked_cli", MARKED_PLUGIN)
    env = {"IMPORT_MARKER": str(tmp_path / "imported"), "_IMAGERAG_COMPLETE": "bash_complete",
           "COMP_WORDS": "imagerag ", "COMP_CWORD": "1"}
    out = imagerag(site=plugin_site.path, env=env)
    assert out.returncode == 0, out.stderr
    assert {"plain,marked-serve", "plain,search"} <= set(out.stdout.splitlines())


def test_a_plugin_cannot_replace_a_core_command(plugin_site):
    plugin_site("imagerag-grabby", "grabby", "imagerag_grabby_cli", TAKES_A_CORE_NAME)
    assert imagerag("own-cmd", site=plugin_site.path).stdout.strip() == "own command ran"
    out = imagerag("generate", "--help", site=plugin_site.path)
    assert "Run the ImageRAG loop" in out.stdout
    data = json.loads(imagerag("plugins", "--json", site=plugin_site.path).stdout)
    grabby = next(p for p in data["plugins"] if p["name"] == "grabby")
    assert grabby["clashes"] == ["command 'generate' is a core command; not replaced"]
    assert _commands_of(data, "grabby") == {"own-cmd"} and "generate" not in data["commands"]


def test_register_commands_that_raises_adds_nothing_and_breaks_only_its_plugin(plugin_site):
    plugin_site("imagerag-halfcmd", "halfcmd", "imagerag_halfcmd_cli", RAISES_HALF_WAY)
    out = imagerag("first-cmd", site=plugin_site.path)
    assert out.returncode == 2 and "No such command 'first-cmd'" in out.stderr
    data = json.loads(imagerag("plugins", "--json", site=plugin_site.path).stdout)
    half = next(p for p in data["plugins"] if p["name"] == "halfcmd")
    assert half["error"] == "register_commands failed: RuntimeError: second command needs a config file"
    assert _commands_of(data, "halfcmd") == set() and "first-cmd" not in data["commands"]
    assert imagerag("profiles", "list", site=plugin_site.path).returncode == 0


def _commands_of(data: dict, plugin: str) -> set[str]:
    """The commands ``imagerag plugins --json`` credits to ``plugin`` (first-party plugins installed
    beside the test's, such as imagerag-web's ``serve``, add their own)."""
    return {name for name, owner in data["commands"].items() if owner == plugin}
