#!/bin/sh
# Voice set-up: Debian packages for SIP tests and prompts (sipp, espeak-ng, sox), then the IVR prompts,
# spoken by espeak-ng in English and Chinese and converted by sox to 8 kHz G.711 (μ-law .ul, A-law .al),
# cached outside the work tree in ${XDG_CACHE_HOME:-$HOME/.cache}/cc/prompts (PROMPTS_DIR overrides).
# Safe to run again: installs only what is missing and keeps prompts already made.
set -eu
say() { echo "setup-voice: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

missing=""
have sipp || missing="$missing sip-tester"
have espeak-ng || missing="$missing espeak-ng"
have sox || missing="$missing sox"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && have apt-get; then
    say "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || { apt-get update -qq >/dev/null; apt-get install -y -qq --no-install-recommends $missing >/dev/null; }
  else
    say "missing system packages:$missing; install them with: sudo apt-get install$missing"
    exit 1
  fi
fi

DIR="${PROMPTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cc/prompts}"
mkdir -p "$DIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# id, espeak voice, text
speak() {
  [ -s "$DIR/$1.ul" ] && [ -s "$DIR/$1.al" ] && return 0
  espeak-ng -v "$2" -s 150 -w "$TMP/$1.wav" "$3"
  sox "$TMP/$1.wav" -r 8000 -c 1 -t ul "$DIR/$1.ul"
  sox "$TMP/$1.wav" -r 8000 -c 1 -t al "$DIR/$1.al"
}

speak welcome.en en "Welcome. For sales, press 1. For support, press 2. 中文服务请按9。"
speak welcome.zh cmn "欢迎致电。销售请按1，售后服务请按2。"
speak invalid.en en "Sorry, that is not a valid choice."
speak invalid.zh cmn "对不起，您的选择无效。"
speak noinput.en en "We did not hear your choice."
speak noinput.zh cmn "我们没有收到您的选择。"
speak queue.wait.en en "All our agents are busy. Please stay on the line, you will be answered shortly."
speak queue.wait.zh cmn "所有坐席都在忙，请稍候，我们会尽快为您服务。"
# Music on hold: a soft chord, 8 seconds, looped by the player.
if [ ! -s "$DIR/music.hold.ul" ] || [ ! -s "$DIR/music.hold.al" ]; then
  sox -n -r 8000 -c 1 "$TMP/music.wav" synth 8 sine 261.6 sine 329.6 sine 392 remix - fade 0.5 8 0.5 vol 0.3
  sox "$TMP/music.wav" -t ul "$DIR/music.hold.ul"
  sox "$TMP/music.wav" -t al "$DIR/music.hold.al"
fi
say "prompts in $DIR"
