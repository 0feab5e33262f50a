#!/usr/bin/env bash
# Install The Button on a Raspberry Pi as a service that starts at boot:
#   sudo deploy/install.sh [--port=80] [--prefix=/opt/the-button] [--new-token] [--dry-run]
# For Raspberry Pi OS Bookworm or later (and Bullseye). Run it again at any time (after a
# `git pull`, say): it changes only what differs and says so; a second run changes nothing.
# --dry-run prints what it would do and changes nothing (it needs no root and no Pi).
set -euo pipefail
umask 022

PORT=80
PREFIX=/opt/the-button
DRY_RUN=0
NEW_TOKEN=0
SERVICE=the-button
SERVICE_USER=button
STATE_DIR=/var/lib/the-button
ENV_FILE=/etc/the-button.env
UNIT_FILE=/etc/systemd/system/$SERVICE.service
# Only the tests change these two: what the OS and the board are.
OS_RELEASE=${THE_BUTTON_OS_RELEASE:-/etc/os-release}
MODEL_FILE=${THE_BUTTON_MODEL_FILE:-/proc/device-tree/model}

usage() {
  cat <<EOF
Usage: sudo $0 [options]

Installs The Button as the systemd service "$SERVICE": apt packages, the project in PREFIX with
its venv, the user "$SERVICE_USER" (group gpio), $STATE_DIR for the count, an admin token in
$ENV_FILE (shown once), the unit; then enables and starts it.

  --port=N        HTTP port of the page and API (default 80)
  --prefix=PATH   where the project lives (default /opt/the-button); run from a clone elsewhere,
                  its files are copied there; run from a clone in PATH, it is used in place
  --new-token     replace the admin token with a new one (shown once)
  --dry-run       print what would be done; change nothing (no root needed)
  -h, --help      this text
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }

for arg in "$@"; do
  case $arg in
    --port=*) PORT=${arg#--port=} ;;
    --prefix=*) PREFIX=${arg#--prefix=} ;;
    --new-token) NEW_TOKEN=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $arg" ;;
  esac
done

if ! [[ $PORT =~ ^[0-9]{1,5}$ ]] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
  die "--port must be a number from 1 to 65535, not '$PORT'"
fi
# The path goes into the unit file and a sed expression: keep it to plain characters.
[[ $PREFIX =~ ^/[A-Za-z0-9._/-]+$ ]] || die "--prefix must be an absolute path of letters, digits, . _ - /"
PREFIX=${PREFIX%/}
case $PREFIX/ in
  /home/*|/root/*|/run/user/*) die "--prefix=$PREFIX: the unit's ProtectHome=yes hides home directories from the service; use a path such as /opt/the-button" ;;
esac
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  die "must run as root: sudo $0 $* (or add --dry-run to see what it would do)"
fi

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=$PREFIX/.venv
CHANGES=0
NEED_RESTART=0
SHOW_TOKEN=
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

step_no=0
step() { step_no=$((step_no + 1)); echo; echo "[$step_no/9] $*"; }
ok() { echo "  ok: $*"; }
note() { echo "  note: $*"; }
# A change: done now, or only said in a dry run.
change() {
  CHANGES=$((CHANGES + 1))
  if [ "$DRY_RUN" = 1 ]; then echo "  would: $1"; else echo "  doing: $1"; fi
}
run() {
  if [ "$DRY_RUN" = 1 ]; then echo "    (would run: $*)"; else echo "    + $*"; "$@"; fi
}

os_field() { sed -n "s/^$1=//p" "$OS_RELEASE" 2>/dev/null | tr -d '"' | head -n 1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
available() {
  local candidate
  candidate=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | head -n 1)
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

echo "The Button: install ($([ "$DRY_RUN" = 1 ] && echo "dry run: nothing will be changed" || echo "for real"))"
echo "  from $SRC into $PREFIX, port $PORT"

step "System"
os_name=$(os_field PRETTY_NAME)
os_version=$(os_field VERSION_ID)
model=
if [ -r "$MODEL_FILE" ]; then model=$(tr -d '\0' <"$MODEL_FILE"); fi
ok "${os_name:-unknown OS} on ${model:-a machine that is not a Raspberry Pi}"
command -v apt-get >/dev/null || die "apt-get not found: this script is for Raspberry Pi OS (Debian)"
if [ -d /run/systemd/system ]; then
  SYSTEMD=1
  ok "systemd is running"
else
  SYSTEMD=0
  [ "$DRY_RUN" = 1 ] || die "systemd is not running on this machine: nothing could start the service"
  note "systemd is not running here (a container?): a real run would stop at this point"
fi
[[ $os_version =~ ^[0-9]+$ ]] || os_version=0
if [ "$os_version" -ne 0 ] && [ "$os_version" -lt 11 ]; then
  note "this OS is older than Bullseye (11); The Button is tried on Bullseye and later"
fi

step "Packages"
# The GPIO library: rpi-lgpio (the drop-in for RPi.GPIO on the kernel's gpiochip interface) on
# Bookworm and later, where Raspberry Pi OS ships it, and on every Pi 5, which needs it;
# RPi.GPIO before Bookworm. The Button uses either unchanged.
case $model in
  *"Raspberry Pi 5"*) pi5=1 ;;
  *) pi5=0 ;;
esac
if [ "$pi5" = 1 ] || [ "$os_version" -ge 12 ]; then
  gpio_pkg=python3-rpi-lgpio
else
  gpio_pkg=python3-rpi.gpio
fi
if installed python3-rpi-lgpio; then
  gpio_pkg=python3-rpi-lgpio  # whatever the OS, the one that works on every kernel is there
fi
wanted=(python3-venv "$gpio_pkg")
missing=()
for pkg in "${wanted[@]}"; do
  if installed "$pkg"; then ok "$pkg is installed"; else missing+=("$pkg"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$DRY_RUN" = 0 ]; then
    run apt-get update -q
  fi
  if [ "$gpio_pkg" = python3-rpi-lgpio ] && ! installed python3-rpi-lgpio && ! available python3-rpi-lgpio \
     && [ "$pi5" = 0 ] && { installed python3-rpi.gpio || available python3-rpi.gpio; }; then
    note "python3-rpi-lgpio is not in this OS's apt sources: using python3-rpi.gpio (The Button polls the pin where its edge detection fails)"
    gpio_pkg=python3-rpi.gpio
    wanted=(python3-venv "$gpio_pkg")
    missing=()
    for pkg in "${wanted[@]}"; do installed "$pkg" || missing+=("$pkg"); done
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  for pkg in "${missing[@]}"; do
    if ! available "$pkg"; then
      if [ "$DRY_RUN" = 1 ]; then
        note "$pkg is not in this machine's apt sources (Raspberry Pi OS has it): a real run here would stop at this step"
      else
        die "$pkg is not in the apt sources: is this Raspberry Pi OS? (a Pi 5 needs Bookworm or later)"
      fi
    fi
  done
  remove=()
  if [ "$gpio_pkg" = python3-rpi-lgpio ] && installed python3-rpi.gpio; then
    # Both provide the module RPi.GPIO; rpi-lgpio replaces RPi.GPIO 0.7.1, whose edge detection
    # fails on kernel 6.6 and later. The trailing "-" removes it in the same apt transaction.
    note "python3-rpi.gpio is replaced by its drop-in python3-rpi-lgpio"
    remove=(python3-rpi.gpio-)
  fi
  change "install ${missing[*]}"
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" "${remove[@]}"
fi

step "Project files in $PREFIX"
prefix_real=$(realpath -m "$PREFIX")
if [ "$prefix_real" = "$SRC" ]; then
  ok "running from the clone in $PREFIX: using it in place"
else
  # The files git tracks (no database, no venv); the clone may belong to another user, whom git
  # would otherwise not trust under sudo.
  files=()
  if command -v git >/dev/null && git -c safe.directory="$SRC" -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    mapfile -d '' files < <(git -c safe.directory="$SRC" -C "$SRC" ls-files -z)
  else
    mapfile -d '' files < <(cd "$SRC" && find . -type f ! -path './.git/*' ! -path './.venv*' \
      ! -path '*/__pycache__/*' ! -name '*.db' ! -name '*.db-*' ! -path './artifacts/*' -printf '%P\0')
  fi
  to_copy=()
  for f in "${files[@]}"; do
    [ -f "$SRC/$f" ] || continue  # deleted in the clone but not yet in git
    cmp -s "$SRC/$f" "$PREFIX/$f" 2>/dev/null || to_copy+=("$f")
  done
  if [ ${#to_copy[@]} -eq 0 ]; then
    ok "all ${#files[@]} files are the same as in $SRC"
  else
    change "copy ${#to_copy[@]} of ${#files[@]} files from $SRC (e.g. ${to_copy[0]})"
    NEED_RESTART=1
    if [ "$DRY_RUN" = 0 ]; then
      for f in "${to_copy[@]}"; do
        mode=0644
        [ -x "$SRC/$f" ] && mode=0755
        install -D -m "$mode" "$SRC/$f" "$PREFIX/$f"
      done
    fi
  fi
fi

step "Python venv in $VENV"
if [ -x "$VENV/bin/python" ] && grep -qi '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg" 2>/dev/null; then
  ok "the venv exists and sees the OS's GPIO library (--system-site-packages)"
else
  if [ -e "$VENV" ]; then
    change "make the venv again: the one there cannot see the OS's GPIO library"
    run rm -rf "$VENV"
  else
    change "make the venv (--system-site-packages, so that it sees the OS's GPIO library)"
  fi
  run python3 -m venv --system-site-packages "$VENV"
  NEED_RESTART=1
fi
requirements=$PREFIX/requirements.txt
[ -f "$requirements" ] || requirements=$SRC/requirements.txt  # a dry run before the first copy
wanted_stamp=$(sha256sum "$requirements" | cut -d ' ' -f 1)
stamp_file=$VENV/.the-button-requirements
if [ "$(cat "$stamp_file" 2>/dev/null || true)" = "$wanted_stamp" ]; then
  ok "requirements.txt is installed in the venv"
else
  change "install requirements.txt into the venv"
  run "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$PREFIX/requirements.txt"
  [ "$DRY_RUN" = 1 ] || echo "$wanted_stamp" >"$stamp_file"
  NEED_RESTART=1
fi
if [ "$DRY_RUN" = 0 ]; then
  if gpio_from=$("$VENV/bin/python" -c 'import RPi.GPIO, os; print(os.path.dirname(RPi.GPIO.__file__))' 2>/dev/null); then
    ok "the venv imports RPi.GPIO from $gpio_from"
  else
    note "the venv cannot import RPi.GPIO: the service (--button=gpio) will not start until it can"
  fi
fi

step "User $SERVICE_USER"
if getent group gpio >/dev/null; then
  ok "group gpio exists"
else
  change "make the group gpio (Raspberry Pi OS has it, with the device rules that use it)"
  run groupadd --system gpio
fi
if id -u "$SERVICE_USER" >/dev/null 2>&1; then
  if id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx gpio; then
    ok "user $SERVICE_USER exists, in group gpio"
  else
    change "add user $SERVICE_USER to group gpio"
    run usermod -a -G gpio "$SERVICE_USER"
    NEED_RESTART=1
  fi
else
  change "make the system user $SERVICE_USER (no login, no home of its own, group gpio)"
  run useradd --system --user-group --groups gpio --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin "$SERVICE_USER"
fi

step "Database directory $STATE_DIR"
if [ -d "$STATE_DIR" ]; then
  if [ "$(stat -c '%U:%G %a' "$STATE_DIR")" = "$SERVICE_USER:$SERVICE_USER 750" ]; then
    ok "$STATE_DIR exists, owned by $SERVICE_USER, mode 750"
  else
    change "give $STATE_DIR to $SERVICE_USER, mode 750"
    run chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
    run chmod 750 "$STATE_DIR"
  fi
else
  change "make $STATE_DIR (owned by $SERVICE_USER, mode 750); the count is kept there"
  run install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 750 "$STATE_DIR"
fi

step "Admin token in $ENV_FILE"
have_token=0
if [ -e "$ENV_FILE" ]; then
  if [ ! -r "$ENV_FILE" ]; then
    have_token=1
    ok "$ENV_FILE exists (only root can read it)"
  elif grep -q '^BUTTON_ADMIN_TOKEN=..*' "$ENV_FILE"; then
    have_token=1
  fi
fi
if [ "$have_token" = 1 ] && [ "$NEW_TOKEN" = 0 ]; then
  if [ -r "$ENV_FILE" ]; then ok "an admin token is set (kept; --new-token replaces it)"; fi
else
  if [ "$have_token" = 1 ]; then
    change "replace the admin token in $ENV_FILE (shown once, at the end)"
  else
    change "generate an admin token into $ENV_FILE (mode 600; shown once, at the end)"
  fi
  NEED_RESTART=1
  if [ "$DRY_RUN" = 0 ]; then
    token=$(od -A n -N 16 -t x1 /dev/urandom | tr -d ' \n')
    tmp=$(mktemp "$ENV_FILE.XXXXXX")  # mode 600 from the start
    {
      if [ -f "$ENV_FILE" ]; then grep -v '^BUTTON_ADMIN_TOKEN=' "$ENV_FILE" || true; else
        echo "# The Button (root only, mode 600): the write API token, and more server options if wanted:"
        echo "# THE_BUTTON_ARGS=--goal=50 --round=daily"
      fi
      echo "BUTTON_ADMIN_TOKEN=$token"
    } >"$tmp"
    chown root:root "$tmp"
    mv -f "$tmp" "$ENV_FILE"
    SHOW_TOKEN=$token
  fi
fi
if [ -e "$ENV_FILE" ]; then
  if [ "$(stat -c '%U %a' "$ENV_FILE")" = "root 600" ]; then
    ok "$ENV_FILE is root's, mode 600"
  else
    change "make $ENV_FILE root's, mode 600 (it holds the token)"
    run chown root:root "$ENV_FILE"
    run chmod 600 "$ENV_FILE"
  fi
fi

step "systemd unit $UNIT_FILE"
{
  echo "# Installed by $SRC/deploy/install.sh (--prefix=$PREFIX --port=$PORT) from deploy/$SERVICE.service:"
  echo "# change that file or the options and run install.sh again, rather than editing this copy."
  sed -e "s#/opt/the-button#$PREFIX#g" -e "s#--port=[0-9]*#--port=$PORT#" "$SRC/deploy/$SERVICE.service"
} >"$WORK/unit"
if [ -f "$UNIT_FILE" ] && cmp -s "$WORK/unit" "$UNIT_FILE"; then
  ok "the unit is installed and up to date"
else
  if [ -f "$UNIT_FILE" ]; then
    change "update the unit:"
    diff -u "$UNIT_FILE" "$WORK/unit" | sed 's/^/      /' || true
  else
    change "install the unit, which starts:"
    sed -n 's/^ExecStart=/      /p' "$WORK/unit"
  fi
  run install -m 644 "$WORK/unit" "$UNIT_FILE"
  if [ "$SYSTEMD" = 1 ]; then run systemctl daemon-reload; fi
  NEED_RESTART=1
fi

step "Service $SERVICE"
if [ "$SYSTEMD" = 1 ] && [ "$(systemctl is-enabled "$SERVICE" 2>/dev/null || true)" = enabled ]; then
  ok "enabled: it starts at boot"
else
  change "enable $SERVICE, so that it starts at boot"
  run systemctl enable "$SERVICE"
fi
if [ "$SYSTEMD" = 1 ] && systemctl is-active --quiet "$SERVICE"; then
  if [ "$NEED_RESTART" = 1 ]; then
    change "restart $SERVICE with what changed above"
    run systemctl restart "$SERVICE"
  else
    ok "running"
  fi
else
  change "start $SERVICE"
  run systemctl start "$SERVICE"
fi
if [ "$DRY_RUN" = 0 ]; then
  echo "  checking http://127.0.0.1:$PORT/healthz ..."
  answered=0
  for _ in $(seq 1 30); do
    if "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
         "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
      answered=1
      break
    fi
    sleep 1  # the server is starting: nothing to wait on but its port
  done
  if [ "$answered" = 1 ]; then
    ok "the server answers"
  else
    journalctl -u "$SERVICE" -n 20 --no-pager >&2 || true
    die "the server does not answer on port $PORT after 30 s: see journalctl -u $SERVICE above"
  fi
fi

echo
if [ "$DRY_RUN" = 1 ]; then
  echo "Dry run: $CHANGES change(s) would be made; nothing was changed."
  exit 0
fi
if [ "$CHANGES" = 0 ]; then
  echo "Nothing changed: The Button was already installed and running as asked."
else
  echo "Done: $CHANGES change(s)."
fi
port_part=
[ "$PORT" = 80 ] || port_part=:$PORT
echo "The page: http://$(hostname).local$port_part/   (admin: http://$(hostname).local$port_part/admin)"
echo "The log: journalctl -u $SERVICE -f"
if [ -n "$SHOW_TOKEN" ]; then
  echo
  echo "Admin token (shown this once; it is kept in $ENV_FILE, readable by root only):"
  echo
  echo "    $SHOW_TOKEN"
  echo
fi
