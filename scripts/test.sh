#!/bin/sh
# The test suite: system packages, type check, then every test file on Node's test runner.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
sh scripts/setup-media.sh
sh scripts/setup-browser.sh
sh scripts/setup-voice.sh
npx tsc -p .
rm -rf .test-data
files=$(find actors edges engine machines media platform scripts storage tests web -name '*.test.ts' 2>/dev/null | sort)
# --test-force-exit: the embedded SurrealDB engine keeps a process alive after close once an index
# has been defined (surrealdb.js issue 673); a test file must not wait on it forever.
# shellcheck disable=SC2086
exec node --import tsx --test --test-concurrency=1 --test-force-exit $files "$@"
