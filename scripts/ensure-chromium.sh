#!/usr/bin/env bash
# Makes sure a Chromium is on this machine for the browser test of the API
# reference (docs/browser_test.go drives it headless with chromedp). Installs
# Debian's chromium with apt-get when running as root; otherwise says what to
# install.
set -euo pipefail

have() {
  [ -n "${CHROMIUM:-}" ] && [ -x "$CHROMIUM" ] && return 0
  [ -x /usr/bin/chromium ] && return 0
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
    command -v google-chrome >/dev/null 2>&1
}

if have; then exit 0; fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium not found: installing Debian's chromium with apt-get (once; a few minutes)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  have && exit 0
fi

cat >&2 <<'MSG'
Chromium was not found; the browser test of the API reference (docs/browser_test.go) needs it.
Install it, then run the command again:
  Debian:         sudo apt-get install -y chromium
  Ubuntu:         sudo snap install chromium   (or install Google Chrome)
  Fedora:         sudo dnf install -y chromium
  macOS:          brew install --cask chromium
or point CHROMIUM at a Chromium or Chrome executable.
MSG
exit 1
