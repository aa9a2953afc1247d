#!/usr/bin/env bash
# Installs what the build, the tests and the benchmarks need on Debian 12, if missing.
# Runs apt-get only for packages that are absent, and only as root; otherwise says what to run.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libssl-dev libmimalloc-dev
      clang-14 libclang-rt-14-dev binutils
      memcached libmemcached-tools python3 python3-pymemcache python3-pylibmc
      python3-binary-memcached liburing-dev
      gnuplot-nox hyperfine groff-base man-db)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "eleos: missing packages: ${missing[*]}" >&2
  echo "eleos: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "eleos: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
