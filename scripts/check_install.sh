#!/usr/bin/env bash
# Checks what a user of the installed library gets (CI stage "install"):
#   1. configures a fresh build of the library alone (no tests, apps or benchmarks) and
#      installs it into a temporary prefix;
#   2. checks the installed files, and that libeleos.so exports only the public API in the
#      version node ELEOS_0.1 (plus the allocation wrappers of src/sim/sim_hostalloc.c),
#      hides the internals and neither exports nor depends on mimalloc;
#   3. builds every example against the prefix with pkg-config (examples/Makefile), with
#      find_package (examples/CMakeLists.txt, shared) and statically (Eleos::eleos_static),
#      and runs each build's examples.
# Usage: check_install.sh [WORK_DIR]   (default: a temporary directory, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
work=${1:-$(mktemp -d /tmp/eleos-install-check.XXXXXX)}
[ $# -ge 1 ] || trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "check_install: $*" >&2; exit 1; }

echo "== configure + build the library alone, install into $prefix"
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DELEOS_BUILD_TESTS=OFF -DELEOS_BUILD_APPS=OFF -DELEOS_BUILD_TOOLS=OFF \
  -DELEOS_BUILD_BENCH=OFF >/dev/null
cmake --build "$work/build" >/dev/null
cmake --install "$work/build" --prefix "$prefix" >/dev/null
[ -e "$work/build/apps" ] && fail "a library-only build configured the apps"

echo "== installed files"
libdir=$(dirname "$(find "$prefix" -name 'libeleos.so.0' | head -n1)")
[ -n "$libdir" ] && [ "$libdir" != . ] || fail "no libeleos.so.0 installed"
for f in include/eleos/enclave.h include/eleos/ioq.h include/eleos/rpc.h include/eleos/suvm.h \
         include/eleos/sys.h include/eleos/attrs.h; do
  [ -f "$prefix/$f" ] || fail "missing $f"
done
for f in libeleos.so libeleos.a pkgconfig/eleos.pc cmake/Eleos/EleosConfig.cmake \
         cmake/Eleos/EleosConfigVersion.cmake cmake/Eleos/EleosTargets.cmake; do
  [ -e "$libdir/$f" ] || fail "missing $libdir/$f"
done
real=$(readlink -f "$libdir/libeleos.so")
case "$real" in */libeleos.so.[0-9]*.[0-9]*.[0-9]*) ;; *) fail "libeleos.so -> $real: no full version" ;; esac
soname=$(readelf -d "$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libeleos.so.0 ] || fail "SONAME is '$soname', expected libeleos.so.0"
[ -f "$prefix/share/doc/eleos/LICENSE" ] || fail "LICENSE not installed"

echo "== exported symbols"
# The public API: every eleos_* function named in the installed headers.
api=$(cat "$prefix"/include/eleos/*.h | grep -o 'eleos_[a-z0-9_]*[[:space:]]*(' | tr -d ' (' |
      sort -u)
wrappers="aligned_alloc calloc malloc memalign posix_memalign pvalloc realloc valloc"
exports=$(nm -D --defined-only "$real" | awk '{print $3}')
n=0
while IFS= read -r sym; do
  name=${sym%%@*}
  ver=${sym#*@}
  [ "$name" = ELEOS_0.1 ] && continue          # the version node's own definition
  [ "$ver" = "@ELEOS_0.1" ] || fail "$sym is not in version node ELEOS_0.1"
  if ! grep -qx "$name" <<<"$api" && ! grep -qw "$name" <<<"$wrappers"; then
    fail "$name is exported but is not public API"
  fi
  n=$((n + 1))
done <<<"$exports"
# The other way round: what the headers declare and the library defines is exported.
for f in eleos_enclave_create eleos_suvm_create eleos_rpc_pool_create eleos_sys_read \
         eleos_ioq_create eleos_suvm_link_; do
  grep -q "^$f@@ELEOS_0.1$" <<<"$exports" || fail "$f is not exported"
done
grep -Eq '^(mi_|sim_|suvm_|gcm_|ioq_|rpc_|enclave_registry)' <<<"$exports" &&
  fail "internal or mimalloc symbols exported: $(grep -E '^(mi_|sim_|suvm_|gcm_)' <<<"$exports" | head -3)"
readelf -d "$real" | grep -q 'NEEDED.*mimalloc' && fail "libeleos.so depends on libmimalloc"
echo "   $n symbols, all @@ELEOS_0.1; no internals; no mimalloc"

export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion eleos)" = "$(sed -n 's/^project(eleos VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)" ] ||
  fail "eleos.pc has the wrong version"

run_examples() { # DIR NAMES...
  local d=$1; shift
  for e in "$@"; do
    echo "-- $e"
    (cd "$d" && timeout 120 "./$e") || fail "example $e failed ($d)"
  done
}
examples="hello host_function suvm_array ioq_batch echo_server"

echo "== examples with pkg-config (Makefile, shared library)"
cp -r "$src/examples" "$work/ex-make"
make -s -C "$work/ex-make" CFLAGS="-O2 -g -Wall -Wextra -Werror" >/dev/null
used=$(ldd "$work/ex-make/hello" | sed -n 's/.*libeleos.so.0 => \(.*\) (.*/\1/p')
[ "$(readlink -f "$used")" = "$real" ] || fail "hello uses '$used', not $real"
run_examples "$work/ex-make" $examples

echo "== examples with find_package (CMake, shared library)"
cmake -S "$src/examples" -B "$work/ex-cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build "$work/ex-cmake" >/dev/null
run_examples "$work/ex-cmake" $examples

echo "== examples with find_package (CMake, static library)"
cmake -S "$src/examples" -B "$work/ex-static" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DEXAMPLES_STATIC=ON >/dev/null
cmake --build "$work/ex-static" >/dev/null
ldd "$work/ex-static/hello" | grep -q libeleos && fail "the static build links libeleos.so"
run_examples "$work/ex-static" hello suvm_array echo_server

echo "check_install: ok"
