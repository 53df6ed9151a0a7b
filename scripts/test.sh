#!/usr/bin/env bash
# Fresh machine → test run: creates .venv (core + every plugin + test tools, torch/torchvision pinned)
# and runs the whole test suite offline. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
