#!/bin/sh
# Voice set-up: Debian packages for SIP tests and prompts (sipp, espeak-ng, sox), call recording and
# transcripts (opus-tools: opusenc/opusdec; pocketsphinx with its US English model), then the IVR prompts,
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
have opusenc || missing="$missing opus-tools"
have pocketsphinx_continuous || missing="$missing pocketsphinx"
[ -d /usr/share/pocketsphinx/model/en-us ] || missing="$missing pocketsphinx-en-us"
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
# The recording notice (RECORD_CALLS=announce), played before the IVR.
speak recording.notice.en en "This call may be recorded for quality and training."
speak recording.notice.zh cmn "您的通话可能会被录音，用于服务质量和培训。"
# Channel failover (no voice agent on duty): the offer, and goodbye once the SMS with the chat link left.
speak failover.offer.en en "All our agents are busy right now. To continue by text message and web chat, press 1. To keep waiting, stay on the line."
speak failover.offer.zh cmn "目前没有坐席可以接听。如需通过短信和在线聊天继续，请按1。如需继续等待，请不要挂机。"
speak failover.sent.en en "We have sent you a text message with a link to continue in chat. Goodbye."
speak failover.sent.zh cmn "我们已经给您发送了短信，请点击链接继续在线交流。再见。"
# Queue position and wait (edges/sip/announce.ts composes them): sentence parts and number words, each
# trimmed of espeak's leading and trailing silence so the pieces join into one sentence.
piece() {
  [ -s "$DIR/$1.ul" ] && [ -s "$DIR/$1.al" ] && return 0
  espeak-ng -v "$2" -s 160 -w "$TMP/$1.raw.wav" "$3"
  sox "$TMP/$1.raw.wav" "$TMP/$1.wav" silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse pad 0 0.06
  sox "$TMP/$1.wav" -r 8000 -c 1 -t ul "$DIR/$1.ul"
  sox "$TMP/$1.wav" -r 8000 -c 1 -t al "$DIR/$1.al"
}
piece ann.position.en en "You are number"
piece ann.in-queue.en en "in the queue."
piece ann.wait.en en "Your estimated wait is"
piece ann.less.en en "less than"
piece ann.more.en en "more than"
piece ann.minute.en en "minute."
piece ann.minutes.en en "minutes."
n=0
for w in zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen; do
  piece "num.$n.en" en "$w"; n=$((n + 1))
done
n=20
for w in twenty thirty forty fifty sixty seventy eighty ninety; do
  piece "num.$n.en" en "$w"; n=$((n + 10))
done
piece ann.position.zh cmn "您现在排在第"
piece ann.place.zh cmn "位。"
piece ann.place-after.zh cmn "位以后。"
piece ann.wait.zh cmn "预计等待"
piece ann.less.zh cmn "不到"
piece ann.more.zh cmn "超过"
piece ann.minute.zh cmn "分钟。"
piece ann.minutes.zh cmn "分钟。"
n=0
for w in 零 一 二 三 四 五 六 七 八 九 十; do
  piece "num.$n.zh" cmn "$w"; n=$((n + 1))
done
piece num.liang.zh cmn "两"
# Music on hold: a soft chord, 8 seconds, looped by the player.
if [ ! -s "$DIR/music.hold.ul" ] || [ ! -s "$DIR/music.hold.al" ]; then
  sox -n -r 8000 -c 1 "$TMP/music.wav" synth 8 sine 261.6 sine 329.6 sine 392 remix - fade 0.5 8 0.5 vol 0.3
  sox "$TMP/music.wav" -t ul "$DIR/music.hold.ul"
  sox "$TMP/music.wav" -t al "$DIR/music.hold.al"
fi
say "prompts in $DIR"
