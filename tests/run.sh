#!/usr/bin/env bash
# Runs ctest in a build directory and ends with the line "N passed, N failed".
set -uo pipefail
build=$1; shift
out=$(mktemp)
ctest --test-dir "$build" --output-on-failure -j 2 "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$out")
failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$out")
skipped=$(grep -c '\*\*\*Skipped\|Not Run' "$out" || true)
rm -f "$out"
if [ -z "$total" ]; then echo "0 passed, 1 failed"; exit 1; fi
if [ "$total" -eq 0 ]; then echo "no tests ran"; echo "0 passed, 1 failed"; exit 1; fi
echo "$((total - failed - skipped)) passed, $failed failed, $skipped skipped"
exit $rc
