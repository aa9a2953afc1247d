#!/usr/bin/env bash
# Runs the benchmark programs of a build and keeps their output under bench/out/.
# Usage: bench/run.sh BUILD_DIR [--quick]
set -euo pipefail
build=${1:?usage: bench/run.sh BUILD_DIR [--quick]}; shift
quick=""; [ "${1:-}" = "--quick" ] && quick=--quick
out=bench/out; mkdir -p "$out"
{
  echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)"
} > "$out/env.txt"
cat "$out/env.txt"
for b in "$build"/bench/bench_* "$build"/src/*/bench_*; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  echo; echo "=== $name"
  "$b" $quick --csv "$out/$name.csv" | tee "$out/$name.txt"
done
