#!/usr/bin/env bash
# Fresh machine → the main job, offline: set up .venv, then run the ImageRAG loop end to end.
# PROFILE=fake (default here) needs no model at all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
export HF_HUB_OFFLINE=1
PROMPT="${1:-an oil painting of a sheep and a car}"
.venv/bin/imagerag generate "$PROMPT" --profile "${PROFILE:-fake}" --out runs --seed 0
