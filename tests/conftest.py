import os
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own IMAGERAG_HOME (corpora, user profiles, caches)."""
    monkeypatch.setenv("IMAGERAG_HOME", str(tmp_path / "imagerag-home"))
    monkeypatch.delenv("IMAGERAG_PROFILES_DIR", raising=False)
    monkeypatch.delenv("IMAGERAG_LOAD_PLUGINS", raising=False)


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A folder on sys.path where tests create real distributions with ``imagerag`` entry points."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(dist: str, ep_name: str, module: str, source: str) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[imagerag]\n{ep_name} = {module}\n")
        (info / "top_level.txt").write_text(module + "\n")
        sys.modules.pop(module, None)
        return site

    make.path = site
    return make
