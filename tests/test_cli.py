"""The ``imagerag`` command, run as a subprocess the way users run it."""

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import imagerag_sdk

HEAVY = ["torch", "diffusers", "transformers", "open_clip", "openai", "anthropic", "google.genai", "bm25s"]


def run(*args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "imagerag_sdk.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


def test_import_and_help_load_no_heavy_library():
    code = textwrap.dedent(f"""
        import sys, json
        import imagerag_sdk
        from imagerag_sdk.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage: imagerag" in out.stdout
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_generate_with_the_fake_profile(tmp_path):
    out = run("generate", "an oil painting of a sheep and a car", "--profile", "fake", "--out", str(tmp_path),
              "--seed", "5", env={"IMAGERAG_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    run_dir = out.stdout.strip().splitlines()[-1]
    assert os.path.isfile(os.path.join(run_dir, "trace.json"))
    assert os.path.isfile(os.path.join(run_dir, "report.html"))
    for stage in ("generate", "critique", "retrieve"):
        assert stage in out.stderr, "progress is shown per stage"
    trace = json.load(open(os.path.join(run_dir, "trace.json")))
    assert trace["seed"] == 5 and trace["status"] == "done"


def test_errors_are_one_actionable_line(tmp_path):
    out = run("generate", "x", "--profile", "no-such-profile", "--out", str(tmp_path))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no profile named 'no-such-profile'")
    assert "available:" in lines[0]
    traced = run("generate", "x", "--profile", "no-such-profile", "--out", str(tmp_path),
                 env={"IMAGERAG_RAISE_ERRORS": "1"})
    assert traced.returncode != 0 and "Traceback" in traced.stderr


def test_empty_prompt_is_refused(tmp_path):
    out = run("generate", "  ", "--profile", "fake", "--out", str(tmp_path))
    assert out.returncode == 1 and "prompt is empty" in out.stderr


def test_generate_needs_a_profile_and_lists_them(tmp_path):
    out = run("generate", "x", "--out", str(tmp_path))
    assert out.returncode == 2 and not list(tmp_path.iterdir()), "nothing runs without --profile"
    error = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "Missing option '--profile'" in error[0], out.stderr
    assert "fake" in error[0] and "sdxl-gpt" in error[0] and "imagerag profiles list" in error[0]
    assert "[required]" in run("generate", "--help").stdout


def test_plugins_lists_a_broken_plugin_without_failing(plugin_site):
    plugin_site("imagerag-broken", "broken", "imagerag_broken_cli", "raise ImportError('needs libfoo 2.0')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(plugin_site.path), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "200"}  # wide enough that rich does not wrap the error
    out = run("plugins", env=env)
    assert out.returncode == 0, out.stderr
    assert "BROKEN" in out.stdout and "needs libfoo 2.0" in out.stdout
    assert "generators" in out.stdout and "size" in out.stdout, "options are listed"
    data = json.loads(run("plugins", "--json", env=env).stdout)
    broken = next(p for p in data["plugins"] if p["name"] == "broken")
    assert broken["distribution"] == "imagerag-broken" and "libfoo" in broken["error"]
    assert data["components"]["generator"]["fake"]["options"][0]["name"] == "size"


def test_profiles_commands(tmp_path):
    listed = run("profiles", "list")
    assert listed.returncode == 0 and "sdxl-gpt" in listed.stdout and "fake" in listed.stdout
    assert "plugin 'diffusers'" in listed.stdout and "plugin 'testing'" in listed.stdout, "who ships each"
    shown = run("profiles", "show", "sdxl-gpt")
    assert "$env: OPENAI_API_KEY" in shown.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ngenerator: {use: fake}\ncritic: {use: fake}\nloop: {max_rounds: 0}\n")
    out = run("profiles", "validate", "fake", str(bad))
    assert out.returncode == 1
    assert "ok: " in out.stdout and "bad.yaml: loop.max_rounds" in out.stdout


def test_plugin_subcommand_hook(plugin_site):
    plugin_site("imagerag-hello", "hello", "imagerag_hello_cli", textwrap.dedent("""
        import click
        from imagerag_sdk import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello from a plugin")
    """))
    env = {"PYTHONPATH": os.pathsep.join([str(plugin_site.path), os.environ.get("PYTHONPATH", "")])}
    out = run("hello", env=env)
    assert out.returncode == 0 and "hello from a plugin" in out.stdout


def test_plugins_names_options_as_a_profile_writes_them():
    data = json.loads(run("plugins", "--json").stdout)
    clip = {o["name"]: o for o in data["components"]["embedder"]["clip"]["options"]}
    assert "model_config" in clip and "config_file" not in clip, "the alias, not the Python field name"
    steps = {o["name"]: o for o in data["components"]["generator"]["flux"]["options"]}["steps"]
    assert steps["also"] == ["num_inference_steps"]


def test_version_is_the_packages():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.split()[-1] == imagerag_sdk.__version__
    built = importlib.metadata.version("imagerag-sdk")  # pyproject reads it from __init__ (one place)
    assert built == imagerag_sdk.__version__
