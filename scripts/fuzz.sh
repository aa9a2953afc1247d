#!/usr/bin/env bash
# Builds and runs the libFuzzer targets with clang-14 (ASan + UBSan + libFuzzer).
#   scripts/fuzz.sh [SECONDS] [TARGET]     default: 60 seconds, every target
# Targets: kvs_proto (fuzz/fuzz_kvs_proto.c, corpus fuzz/corpus/kvs_proto). New corpus
# entries go to build/fuzz/corpus/<target> (the committed seeds are never modified); crash
# inputs are written to build/fuzz/ and replay with build/fuzz/<target> CRASH_FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
only=${2:-}
cc=${CC_FUZZ:-clang-14}
command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found (apt-get install clang-14)"; exit 77; }
out=build/fuzz
mkdir -p "$out"
flags=(-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Iapps/kvs -Iinclude)
# Every apps/kvs/kvs_*.c is the pure core (kvs_core in apps/kvs/CMakeLists.txt): a new
# module is picked up without touching this list.
build_kvs_proto() {
  "$cc" "${flags[@]}" apps/kvs/kvs_*.c fuzz/fuzz_kvs_proto.c -o "$out/fuzz_kvs_proto" -lpthread
}
for t in kvs_proto; do
  [ -n "$only" ] && [ "$only" != "$t" ] && continue
  echo "== fuzz_$t: build"
  "build_$t"
  mkdir -p "$out/corpus/$t"
  echo "== fuzz_$t: run ${secs}s"
  (cd "$out" && ./"fuzz_$t" -max_total_time="$secs" -max_len=200000 -timeout=10 \
      -rss_limit_mb=2048 "corpus/$t" "../../fuzz/corpus/$t")
done
