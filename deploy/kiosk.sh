#!/usr/bin/env bash
# Show The Button full screen on a TV whose computer may boot before the Pi:
#   deploy/kiosk.sh [--screen=NAME] http://raspberrypi.local/ [more Chromium flags...]
# --screen=NAME names this TV on the admin page (it becomes ?screen=NAME on the page's URL).
# Waits (for ever, trying again after 1, 2, 4 ... up to 10 s, saying what it waits for) until
# <origin>/healthz answers 200, then replaces itself with Chromium in kiosk mode. So Chromium never
# opens on its own error page; once the page runs, the page itself rides out server restarts.
# Environment: KIOSK_BROWSER (the browser binary; default chromium-browser, else chromium),
# KIOSK_PROFILE (the browser's profile directory), KIOSK_MAX_DELAY (longest wait between tries, s).
set -euo pipefail

# NAME with every byte but letters, digits and -._~ written as %XX (RFC 3986), for a URL.
urlencode() {
  local LC_ALL=C text=$1 out="" ch i
  for ((i = 0; i < ${#text}; i++)); do
    ch=${text:i:1}
    case $ch in
      [A-Za-z0-9._~-]) out+=$ch ;;
      *) out+=$(printf '%%%02X' "'$ch") ;;
    esac
  done
  printf '%s' "$out"
}

screen=""
if [[ ${1:-} == --screen=* ]]; then
  screen=${1#--screen=}
  shift
fi
if [ $# -lt 1 ] || [[ ! $1 =~ ^https?://[^/]+ ]]; then
  echo "usage: $0 [--screen=NAME] http://HOST[:PORT]/ [more Chromium flags...]" >&2
  exit 2
fi
url=$1
shift
origin=${BASH_REMATCH[0]}
if [[ ${1:-} == --screen=* ]]; then  # also taken right after the URL
  screen=${1#--screen=}
  shift
fi
if [ -n "$screen" ]; then
  fragment=""
  if [[ $url == *"#"* ]]; then fragment="#${url#*#}"; url=${url%%#*}; fi
  if [[ $url =~ ^https?://[^/?]+$ ]]; then url+="/"; fi
  if [[ $url == *"?"* ]]; then url+="&"; else url+="?"; fi
  url+="screen=$(urlencode "$screen")$fragment"
fi
health=$origin/healthz
max_delay=${KIOSK_MAX_DELAY:-10}

if [ -n "${KIOSK_BROWSER:-}" ]; then
  browser=$KIOSK_BROWSER
elif command -v chromium-browser >/dev/null; then
  browser=chromium-browser  # Raspberry Pi OS
elif command -v chromium >/dev/null; then
  browser=chromium  # Debian, and Raspberry Pi OS since the package was renamed
else
  echo "kiosk: no chromium-browser or chromium here (sudo apt-get install chromium-browser), or set KIOSK_BROWSER" >&2
  exit 1
fi
command -v curl >/dev/null || { echo "kiosk: needs curl (sudo apt-get install curl)" >&2; exit 1; }

delay=1
while :; do
  # --max-time: a host that is half up (accepts, never answers) must not hold us for ever.
  code=$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 5 "$health" || true)
  if [ "$code" = 200 ]; then
    break
  fi
  if [ "$code" = 000 ] || [ -z "$code" ]; then reason="no answer yet"; else reason="it answered $code"; fi
  echo "kiosk: waiting for $health ($reason); next try in ${delay}s"
  sleep "$delay"  # nothing to wait on but the network: a TV has no way to hear that the Pi is up
  delay=$((delay * 2))
  if [ "$delay" -gt "$max_delay" ]; then delay=$max_delay; fi
done
echo "kiosk: $health answered 200: starting $browser on $url"

# A profile of its own: the TV's browser state stays apart from anyone's browsing, and after a
# power cut we can mark it as cleanly closed, so that no "Restore pages?" bubble covers the count.
profile=${KIOSK_PROFILE:-${XDG_CONFIG_HOME:-$HOME/.config}/the-button-kiosk}
mkdir -p "$profile"
prefs=$profile/Default/Preferences
if [ -f "$prefs" ]; then
  sed -i -e 's/"exited_cleanly": *false/"exited_cleanly":true/g' \
         -e 's/"exit_type": *"[^"]*"/"exit_type":"Normal"/g' "$prefs"
fi

flags=(
  # Full screen, no address bar or tabs, no way out by mouse.
  --kiosk
  --user-data-dir="$profile"
  # No welcome page or first-run questions on the first start.
  --no-first-run
  # No error dialog boxes over the page.
  --noerrdialogs
  # No "Restore pages? Chromium didn't shut down correctly" after a power cut: the older
  # switch name, and the one newer Chromium reads.
  --disable-session-crashed-bubble
  --hide-crash-restore-bubble
  # No info bars across the top (older Chromium; newer ones ignore it).
  --disable-infobars
  # No "Chromium is out of date" nag a year on: updates come with apt, not the browser.
  --check-for-update-interval=31536000
  # The air horn plays without anyone clicking the TV first.
  --autoplay-policy=no-user-gesture-required
  # No "Translate this page?" bubble (Translate in newer Chromium, TranslateUI in older).
  "--disable-features=Translate,TranslateUI"
  # No keyring password prompt after an automatic login.
  --password-store=basic
  # A touch screen cannot zoom the page or swipe it back to nothing.
  --disable-pinch
  --overscroll-history-navigation=0
)
exec "$browser" "${flags[@]}" "$@" "$url"
