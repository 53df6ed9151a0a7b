#!/usr/bin/env bash
# Fresh machine → the main job, offline: set up .venv, build tiny RANDOM-weight models and a small
# corpus index (examples/offline_demo.py), then run the ImageRAG loop end to end with them.
# The images are noise (random weights); the real profiles (sdxl-gpt, …) download real models.
# PROFILE=fake skips the models entirely.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error
PROMPT="${1:-an oil painting of a sheep and a car}"
PROFILE="${PROFILE:-tiny}"
if [ "$PROFILE" = "tiny" ]; then
  .venv/bin/python examples/offline_demo.py
fi
.venv/bin/imagerag generate "$PROMPT" --profile "$PROFILE" --out runs --seed 0
