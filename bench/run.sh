#!/usr/bin/env bash
# The whole evaluation: runs every benchmark of a release build, model off and on (each
# benchmark runs both side by side), keeps CSV and text output under bench/out/, then writes
# docs/results.md and the PNG plots in docs/plots/ (bench/report.py).
#
# usage: bench/run.sh BUILD_DIR [--quick]
#   --quick: small sizes and few repetitions, a few minutes; the full run takes about 20.
set -uo pipefail
build=${1:?usage: bench/run.sh BUILD_DIR [--quick]}; shift
quick=""; [ "${1:-}" = "--quick" ] && quick=--quick
out=bench/out
rm -rf "$out"; mkdir -p "$out"
start=$(date +%s)
ghz=$(awk '/cpu MHz/ {print $4/1000; exit}' /proc/cpuinfo)
{
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "mode: ${quick:-full}"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/env.txt"
cat "$out/env.txt"

status=0
run() { # name, command...
  local name=$1; shift
  echo; echo "=== $name ($(( $(date +%s) - start )) s)"
  if "$@" > >(tee "$out/$name.txt") 2> "$out/$name.err"; then
    echo "ok" > "$out/$name.status"
  else
    echo "failed (exit $?): see $out/$name.err" | tee "$out/$name.status"; status=1
  fi
}
find_bin() { find "$build" -type f -name "$1" -perm -u+x | head -n1; }

for b in bench_sim_exits bench_sim_epc bench_rpc_null bench_rpc_io bench_suvm_paging \
         bench_suvm_spointer; do
  bin=$(find_bin "$b")
  if [ -z "$bin" ]; then echo "missing: $b" | tee "$out/$b.status"; status=1; continue; fi
  run "$b" "$bin" $quick --csv "$out/$b.csv"
done
run bench_pserver /usr/bin/python3 bench/bench_pserver.py "$build" $quick --csv "$out/bench_pserver.csv"
run bench_face /usr/bin/python3 bench/bench_face.py "$build" $quick --csv "$out/bench_face.csv"
# Several enclaves (processes) on one platform EPC: sgx paging, uncoordinated and coordinated
# SUVM (bench/bench_multi.py; about 3 min, --quick about 1).
run bench_multi /usr/bin/python3 bench/bench_multi.py "$build" $quick --csv "$out/bench_multi.csv"
if [ -x bench/bench_kvs.sh ]; then
  run bench_kvs bash bench/bench_kvs.sh "$build" $quick --csv "$out/bench_kvs.csv"
  for section in protocols tls; do
    run "bench_kvs_$section" bash bench/bench_kvs.sh "$build" $quick --section $section \
      --csv "$out/bench_kvs_$section.csv"
  done
fi

echo; echo "=== report ($(( $(date +%s) - start )) s)"
/usr/bin/python3 bench/report.py "$out" docs || status=1
echo "total: $(( $(date +%s) - start )) s; results in docs/results.md, plots in docs/plots/"
exit $status
