"""scripts/build-dist.sh: the built distributions install with extras into a fresh virtualenv and run.

Needs the package registry for the dependencies (pydantic, openai, bm25s …), as scripts/test.sh does.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "scripts" / "build-dist.sh"


def _clean_env(tmp_path: Path, venv: Path | None = None) -> dict[str, str]:
    """The environment minus anything that would let the shared venv or the checkout leak in."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
           and (not k.startswith("IMAGERAG_") or k == "IMAGERAG_DIST_TOOLS")}
    env["IMAGERAG_HOME"] = str(tmp_path / "home")
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(cmd, env, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.mark.slow
def test_built_dists_install_with_extras_into_a_fresh_venv(tmp_path):
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    _run(["bash", BUILD, dist], _clean_env(tmp_path))
    names = sorted(p.name for p in dist.iterdir())
    for project in ["sdk", "anthropic", "bm25", "clip", "diffusers", "gemini", "openai", "qwen"]:
        assert f"imagerag_{project}-0.1.0.tar.gz" in names and f"imagerag_{project}-0.1.0-py3-none-any.whl" in names

    _run([sys.executable, "-m", "venv", venv], _clean_env(tmp_path))
    env = _clean_env(tmp_path, venv)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "--disable-pip-version-check", "--find-links", dist,
          "imagerag-sdk[bm25,openai]"], env)

    where = _run([py, "-c", "import imagerag_sdk; print(imagerag_sdk.__file__)"], env, cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv), "the installed wheel, not the checkout"
    installed = {p["name"].lower(): p["version"]
                 for p in json.loads(_run([py, "-m", "pip", "list", "--format", "json"], env).stdout)}
    for name in ("imagerag-sdk", "imagerag-bm25", "imagerag-openai", "bm25s", "openai"):
        assert name in installed, name
    assert "torch" not in installed and "torchvision" not in installed, "bm25 + openai must not pull torch"

    report = json.loads(_run([venv / "bin" / "imagerag", "plugins", "--json"], env, cwd=tmp_path).stdout)
    plugins = {p["name"]: p for p in report["plugins"]}
    for name in ("bm25", "openai"):
        assert name in plugins, sorted(plugins)
        assert plugins[name]["error"] is None, plugins[name]["error"]
        assert plugins[name]["distribution"] == f"imagerag-{name}"
    assert "bm25" in report["components"]["reranker"] and "openai" in report["components"]["critic"]

    out = _run([venv / "bin" / "imagerag", "generate", "a cat", "--profile", "fake", "--out", tmp_path / "runs"],
               env, cwd=tmp_path)
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "runs"
    assert json.loads((run_dir / "trace.json").read_text())["status"] == "done"
    assert (run_dir / "report.html").is_file()


def _failed_build(tmp_path, name: str, *, license_file: bool, data: bool = False, toml_tail: str = "") -> str:
    """build-dist's stderr for a one-package project ``name`` (it must fail)."""
    package = name.replace("-", "_")
    project = tmp_path / name
    (project / "src" / package).mkdir(parents=True)
    (project / "src" / package / "__init__.py").write_text("")
    if data:
        (project / "src" / package / "data.yaml").write_text("a: 1\n")
    (project / "README.md").write_text(f"# {name}\n")
    if license_file:
        (project / "LICENSE").write_text((ROOT / "LICENSE").read_text())
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["hatchling>=1.27"]
        build-backend = "hatchling.build"

        [project]
        name = "{name}"
        version = "0.1.0"
        description = "Test project."
        readme = "README.md"
        license = "Apache-2.0"
        """) + textwrap.dedent(toml_tail))
    out = subprocess.run(["bash", str(BUILD), str(tmp_path / "dist"), str(project)], env=_clean_env(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode != 0
    return out.stderr


@pytest.mark.slow
def test_build_dist_fails_when_a_wheel_lacks_package_data(tmp_path):
    err = _failed_build(tmp_path, "imagerag-broken", license_file=True, data=True, toml_tail="""
        [project.entry-points.imagerag]
        broken = "imagerag_broken"

        [tool.hatch.build.targets.wheel]
        packages = ["src/imagerag_broken"]
        exclude = ["*.yaml"]
        """)
    assert "build-dist: imagerag-broken: wheel lacks imagerag_broken/data.yaml\n" in err, err[-2000:]


@pytest.mark.slow
def test_build_dist_fails_when_a_project_lacks_its_license(tmp_path):
    err = _failed_build(tmp_path, "imagerag-nolicense", license_file=False)
    assert "imagerag-nolicense: sdist lacks LICENSE; wheel lacks the license text" in err, err[-2000:]
