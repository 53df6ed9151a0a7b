#!/usr/bin/env bash
# Create (or update) .venv with the core, every plugin under plugins/, and the test tools; install
# Debian's chromium + chromium-driver when chromedriver is missing (the web app's browser test).
# torch/torchvision come from PyPI as a matched pair (requirements/constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade uv
args=(-e .)
for d in plugins/*/ examples/imagerag-example-plugin/ examples/imagerag-example-generator/; do
  [ -f "$d/pyproject.toml" ] && args+=(-e "$d")
done
.venv/bin/uv pip install --quiet --python .venv/bin/python -c requirements/constraints.txt \
  "${args[@]}" -r requirements/test.txt

# The browser test drives headless Chromium through Selenium (plugins/imagerag-web/tests/test_browser.py).
if ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else SUDO=(none); fi
  if [ "${SUDO[0]:-}" != none ] && command -v apt-get >/dev/null 2>&1 \
      && "${SUDO[@]}" apt-get update -qq \
      && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; then
    echo "setup-env: installed chromium and chromium-driver" >&2
  else
    echo "setup-env: chromedriver is missing and could not be installed (needs apt-get, as root or with sudo);" \
         "install Debian's chromium + chromium-driver, or the browser test fails (IMAGERAG_REQUIRE_BROWSER=1) or skips" >&2
  fi
fi
