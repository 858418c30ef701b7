#!/bin/sh
# Gives the media role a working mediasoup-worker without internet access, cached per mediasoup version
# outside the work tree: ${XDG_CACHE_HOME:-$HOME/.cache}/cc/mediasoup-<version>/mediasoup-worker.
# mediasoup's own install script is off (package.json allowScripts) because its prebuilt download and its
# meson wraps need GitHub; here the prebuilt is tried only when it answers within seconds, otherwise the
# worker is built from node_modules/mediasoup/worker against Debian's libraries (scripts/mediasoup/README.md).
# Safe to run again: a cached binary that runs is kept. `--force` rebuilds.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
say() { echo "setup-media: $*" >&2; }

FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

PKG="$ROOT/node_modules/mediasoup"
if [ ! -f "$PKG/package.json" ] || [ ! -d "$PKG/worker/src" ]; then
  say "node_modules/mediasoup (with its worker sources) is missing; run npm ci first"
  exit 1
fi
VERSION=$(node -p "require('$PKG/package.json').version")
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/cc/mediasoup-$VERSION"
BIN="$CACHE/mediasoup-worker"

# A worker started without MEDIASOUP_VERSION exits with its own code 41: proof that the binary loads
# (libraries resolve, right architecture) and reaches main(). mediasoup's installer checks the same.
runs() {
  [ -f "$1" ] && [ -x "$1" ] || return 1
  rc=0
  env -i "$1" </dev/null >/dev/null 2>&1 || rc=$?
  [ "$rc" = 41 ]
}

if [ -n "${MEDIASOUP_WORKER_BIN:-}" ]; then
  if runs "$MEDIASOUP_WORKER_BIN"; then say "using MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN"; exit 0; fi
  say "MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN does not run (missing, not executable, or wrong libraries); unset it to build one"
  exit 1
fi

# The build recipe's revision, recorded in build-info.txt: a cached worker built by an older recipe (one
# without a fix below) is rebuilt. 2: the DTLS BIO callback fix.
RECIPE=2
INFO="$CACHE/build-info.txt"
current() { runs "$BIN" && [ -f "$INFO" ] && { grep -q '^source=prebuilt' "$INFO" || grep -q " recipe=$RECIPE\b" "$INFO"; }; }

if [ "$FORCE" = 0 ] && current; then
  say "mediasoup-worker $VERSION cached at $BIN"
  exit 0
fi

mkdir -p "$CACHE"
# One set-up at a time per version (two test runs starting together must not both build).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    say "another set-up is preparing mediasoup-worker $VERSION; waiting for it"
    flock 9
    if [ "$FORCE" = 0 ] && current; then say "mediasoup-worker $VERSION cached at $BIN"; exit 0; fi
  fi
fi

TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
START=$(date +%s)

install_bin() { # $1: a binary that runs; moved into place atomically (same file system)
  cp "$1" "$CACHE/.mediasoup-worker.new"
  chmod 755 "$CACHE/.mediasoup-worker.new"
  mv -f "$CACHE/.mediasoup-worker.new" "$BIN"
}

# 1. The prebuilt binary, from the same place mediasoup's installer uses, only if it answers quickly.
if [ -z "${MEDIASOUP_SKIP_WORKER_PREBUILT_DOWNLOAD:-}" ] && command -v curl >/dev/null 2>&1; then
  URL=$(node -e "
    const os = require('node:os'); const pkg = require('$PKG/package.json');
    const base = process.env.MEDIASOUP_WORKER_PREBUILT_DOWNLOAD_BASE_URL
      || pkg.repository.url.replace(/^git\+/, '').replace(/\.git\$/, '') + '/releases/download';
    let name = 'mediasoup-worker-' + pkg.version + '-' + os.platform() + '-' + os.arch();
    if (os.platform() === 'linux') name += '-kernel' + Number(os.release().split('.')[0]);
    console.log(base + '/' + pkg.version + '/' + name + '.tgz');")
  if curl -fsSL --connect-timeout 5 --max-time 120 -o "$TMP/prebuilt.tgz" "$URL" 2>/dev/null \
    && mkdir "$TMP/prebuilt" && tar -xzf "$TMP/prebuilt.tgz" -C "$TMP/prebuilt" 2>/dev/null \
    && runs "$TMP/prebuilt/mediasoup-worker"; then
    install_bin "$TMP/prebuilt/mediasoup-worker"
    echo "source=prebuilt url=$URL" >"$INFO"
    say "mediasoup-worker $VERSION downloaded (prebuilt) to $BIN in $(($(date +%s) - START)) s"
    exit 0
  fi
  say "prebuilt mediasoup-worker not reachable or not runnable here; building it from source"
fi

# 2. Build from the worker source inside the npm package, against Debian's libraries.
PACKAGES="meson ninja-build g++ pkg-config python3 libuv1-dev libssl-dev libsrtp2-dev libflatbuffers-dev flatbuffers-compiler libabsl-dev"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    say "missing build packages:$missing; install them with: sudo apt-get install -y$missing"
    exit 1
  fi
fi

# The build folder is stable (not temporary) so an interrupted build resumes where it stopped; it is
# prepared once (source copy, shims, meson setup) and removed after a successful build.
WORK="$CACHE/build"
SRC="$WORK/worker"
OUT="$WORK/out/mediasoup-worker"
LOG="$CACHE/build.log"
fail() { say "$1 failed; last lines of $LOG:"; tail -n 30 "$LOG" >&2; exit 1; }
MESON_HAVE=$(meson --version)
if [ "$FORCE" = 1 ] || [ ! -f "$WORK/.prepared" ]; then
  rm -rf "$WORK"
  mkdir -p "$WORK"
  cp -R "$PKG/worker" "$SRC"
  chmod -R u+w "$SRC"
  rm -rf "$SRC/out" "$SRC/prebuild"
  # Local subprojects replace the downloading wraps (catch2 is for the worker's own tests: not built).
  for w in libuv openssl libsrtp3 flatbuffers abseil-cpp unordered-dense catch2; do rm -f "$SRC/subprojects/$w.wrap"; done
  cp -R "$ROOT/scripts/mediasoup/shims/subprojects/." "$SRC/subprojects/"

  # DTLS fix. The worker's BIO callback on its outgoing memory BIO answers 1 to every BIO_CB_RETURN call
  # other than a plain return, so BIO_ctrl(BIO_CTRL_GET_KTLS_SEND) reads 1 ("kernel TLS on") and
  # OpenSSL leaves the record write buffer unallocated: the server's first flight (answer to a browser's
  # ClientHello) then writes through a NULL pointer and the worker dies with SIGSEGV. mediasoup's bundled
  # OpenSSL is built without kTLS, which hides it; Debian's libssl3 has kTLS. The callback must return
  # `ret` for any operation flagged BIO_CB_RETURN.
  DTLS_CPP="$SRC/src/RTC/DtlsTransport.cpp"
  if grep -q '(operationType == BIO_CB_RETURN) ? static_cast<long>(ret) : 1' "$DTLS_CPP"; then
    sed -i 's/(operationType == BIO_CB_RETURN) ? static_cast<long>(ret) : 1/(operationType \& BIO_CB_RETURN) ? static_cast<long>(ret) : 1/' "$DTLS_CPP"
    grep -q '(operationType & BIO_CB_RETURN) ? static_cast<long>(ret) : 1' "$DTLS_CPP" || { say "patching DtlsTransport.cpp failed"; exit 1; }
  elif ! grep -q 'operationType & BIO_CB_RETURN' "$DTLS_CPP"; then
    say "mediasoup $VERSION: DtlsTransport.cpp's BIO callback changed; check the DTLS fix in this script still applies"
    exit 1
  fi

  MESON_WANT=$(sed -n "s/.*meson_version: *'>= *\([0-9.]*\)'.*/\1/p" "$SRC/meson.build" | head -n 1)
  older() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]; }
  if [ -n "$MESON_WANT" ] && older "$MESON_HAVE" "$MESON_WANT"; then
    # Checked for mediasoup 3.27.1: its meson files use nothing newer than meson 1.0 (1.0.1 configures
    # them without feature warnings and the worker passes media/workers.test.ts). A later mediasoup asking
    # for more than 1.1 is not assumed to be as lenient.
    if [ "$MESON_WANT" = "1.1.0" ] && ! older "$MESON_HAVE" "1.0.0"; then
      sed -i "s/meson_version: *'>= *1\.1\.0'/meson_version: '>= 1.0.0'/" "$SRC/meson.build"
      say "meson $MESON_HAVE < $MESON_WANT: requirement relaxed in the build copy (mediasoup uses no 1.1 feature)"
    else
      say "mediasoup $VERSION needs meson >= $MESON_WANT; this machine has $MESON_HAVE"
      exit 1
    fi
  fi
  ( cd "$SRC" && meson setup --wrap-mode=nodownload --buildtype=release -Db_ndebug=true "$WORK/out" ) >"$LOG" 2>&1 \
    || fail "meson setup"
  touch "$WORK/.prepared"
else
  say "resuming the interrupted build in $WORK"
fi

say "building mediasoup-worker $VERSION from source (ninja -j2; 10-40 minutes on 2 cores; log: $LOG)"
ninja -C "$WORK/out" -j2 mediasoup-worker >>"$LOG" 2>&1 || fail "ninja"
command -v strip >/dev/null 2>&1 && strip "$OUT"
runs "$OUT" || fail "checking the built worker (it must exit with code 41 without MEDIASOUP_VERSION)"
install_bin "$OUT"
rm -rf "$WORK"
SECS=$(($(date +%s) - START))
echo "source=built meson=$MESON_HAVE seconds=$SECS recipe=$RECIPE" >"$INFO"
say "mediasoup-worker $VERSION built in ${SECS} s ($((SECS / 60)) min $((SECS % 60)) s): $BIN"
