#!/usr/bin/env bash
# Run The Button: makes .venv on first use, then starts the server (options pass through).
# Without a GPIO button it uses the keyboard: press Enter in this terminal to press.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q -r requirements.txt
exec .venv/bin/python websocketserver.py "$@"
