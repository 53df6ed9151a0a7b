#!/usr/bin/env bash
# Fresh machine → test run: creates .venv (core + every plugin + test tools, torch/torchvision pinned),
# then lints (ruff), type-checks (mypy) and runs the whole test suite offline (the docs checks are
# tests/test_docs.py). Each step fails the run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export IMAGERAG_REQUIRE_BROWSER=1  # the web app's browser test fails, never skips, when Chromium is missing
.venv/bin/ruff check        # rules and paths: [tool.ruff] in pyproject.toml
.venv/bin/mypy              # files and settings: [tool.mypy]; incremental cache in .mypy_cache/
exec .venv/bin/python -m pytest "$@"
