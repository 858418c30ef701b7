#!/bin/sh
# The test suite: system packages, type check, then every test file on Node's test runner.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
npx tsc -p .
rm -rf .test-data
files=$(find actors edges engine machines media platform scripts storage tests -name '*.test.ts' 2>/dev/null | sort)
# shellcheck disable=SC2086
exec node --import tsx --test --test-concurrency=1 $files "$@"
