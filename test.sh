#!/usr/bin/env bash
# Run every test. Installs (as root, with apt) what the tests start for real: Debian's Chromium
# for the browser tests, redis-server and mosquitto for the shared store and MQTT, shellcheck,
# systemd-analyze and desktop-file-validate for the deploy/ files, promtool (Debian's prometheus)
# to lint /metrics, libfaketime (faketime) to move a real server's wall clock, iproute2 (ss) to read a
# listening socket's backlog, fonts-noto-cjk for the Chinese screenshot; makes the venv and installs
# the test tools; then runs pytest. Extra arguments go to pytest. TORNADO=6.1 runs the same tests on that Tornado (in .venv-tornado-6.1).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v desktop-file-validate >/dev/null || missing+=(desktop-file-utils)
command -v promtool >/dev/null || missing+=(prometheus)
command -v faketime >/dev/null || missing+=(faketime)
# Chinese glyphs for the screenshot of the zh countdown page (the page itself needs no font file).
ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
command -v ss >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "The tests need Debian's ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
venv=.venv
if [ -n "${TORNADO:-}" ]; then
  venv=.venv-tornado-$TORNADO
fi
if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements-dev.txt
if [ -n "${TORNADO:-}" ]; then
  "$venv/bin/python" -m pip install -q "tornado==$TORNADO"
fi
"$venv/bin/python" -c 'import tornado; print("Tornado", tornado.version)'
exec "$venv/bin/python" -m pytest "$@"
