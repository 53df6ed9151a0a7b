#!/usr/bin/env bash
# Create (or update) .venv with the core, every plugin under plugins/, and the test tools.
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
