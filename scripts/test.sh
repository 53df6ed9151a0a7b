#!/usr/bin/env bash
# Fresh machine → test run: creates .venv (core + every plugin + test tools, torch/torchvision pinned)
# and runs the whole test suite offline. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/ruff check --select F,E9 src plugins tests examples benchmarks  # undefined names, unused code
exec .venv/bin/python -m pytest "$@"
