#!/usr/bin/env bash
# Fresh clone → the web app on the offline demo: set up .venv, build the tiny RANDOM-weight models,
# the small corpus and its index and the 'tiny' profile (examples/offline_demo.py, as scripts/demo.sh
# does), then `imagerag serve --profile tiny` on http://127.0.0.1:8000/ (docs/web.md). The images are
# noise (random weights); every stage is real. PROFILE=fake: no models at all. PORT=… picks the port;
# extra arguments go to `imagerag serve` (e.g. --runs DIR). Ctrl-C stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error
PROFILE="${PROFILE:-tiny}"
PORT="${PORT:-8000}"
if [ "$PROFILE" = "tiny" ]; then
  .venv/bin/python examples/offline_demo.py
fi
echo "serve-demo: loading profile '$PROFILE'; then open http://127.0.0.1:$PORT/ in a browser" >&2
exec .venv/bin/imagerag serve --profile "$PROFILE" --host 127.0.0.1 --port "$PORT" "$@"
