#!/bin/sh
# Installs Debian's chromium for the workspace's browser tests (playwright-core drives it). Safe to run again:
# it does nothing when chromium is there; without root it prints the apt-get line and goes on (the browser test skips).
set -eu
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup-browser: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
else
  echo "setup-browser: chromium is missing; install it with: sudo apt-get install chromium fonts-noto-cjk" >&2
fi
