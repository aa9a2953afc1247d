#!/usr/bin/env bash
# eleos-kvs throughput with memcaslap (libmemcached-tools), side by side in one invocation:
# real memcached, then eleos-kvs in native, sgx, eleos, RPC-only (sgx --rpc on) and SUVM-only
# (sgx --suvm on) modes; same worker threads, same client threads and concurrency.
#
# usage: bench/bench_kvs.sh BUILD_DIR [--quick|--full] [--csv FILE] [--secs N] [--reps N]
#
# Grid (value size x data set x mix x cost model):
#   --quick   1 KiB, 0.5x and 5x the EPC, GET-heavy, model on, 1 rep of 3 s  (~2 min)
#   default   1 KiB, 0.5x and 5x the EPC, GET-heavy and SET-heavy, model on (every
#             server) and off (sgx and eleos), 2 reps of 3 s                 (~7 min)
#   --full    adds 4 KiB values, 2x the EPC, RPC-only and SUVM-only with the model off,
#             and 3 reps of 5 s                                             (~50 min)
# Mixes: get = 90% GET / 10% SET, set = 10% GET / 90% SET. EPC = 93 MiB.
#
# Per (value size, data set, model, rep) every server is started fresh (loopback, a port of
# its own), loaded with the whole data set by a SET-only memcaslap pass (-x = the key window,
# so every key of the window is stored once), then measured with each mix for SECS seconds.
# -m is sized so the data set fits without eviction. Reps are interleaved across servers (rep
# 1 of every server, then rep 2 ...) so machine load drifts hit every server alike; the CSV
# holds the median TPS over reps.
#
# Caveat (memcaslap's design): a run only GETs keys it has SET itself, so GETs always hit and
# their working set is what the measuring run has stored so far, not the preloaded data; the
# preload fills the memory (the heap, EPC and SUVM) to the data-set size, and the measuring
# run's SETs reuse chunks across it. The CSV's per-op EPC and SUVM fault counts (taken from
# "stats" before and after each measuring run) show how much paging a configuration did.
#
# Model on/off: the SGX cost model only changes enclave modes, so memcached and native run
# once per grid point (model column "none"); the ratio vs sgx of those rows uses sgx with the
# model on. Every server is killed on exit, also on error or Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.."

build=${1:?usage: bench/bench_kvs.sh BUILD_DIR [--quick|--full] [--csv FILE]}; shift
grid=default; csv=""; secs=""; reps=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) grid=quick ;;
    --full) grid=full ;;
    --csv) csv=${2:?--csv FILE}; shift ;;
    --secs) secs=${2:?}; shift ;;
    --reps) reps=${2:?}; shift ;;
    *) echo "bench_kvs.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case $grid in
  quick)   vsizes="1024";      mults="0.5 5";   mixes="get";     costs="on";     : "${secs:=3}" "${reps:=1}" ;;
  default) vsizes="1024";      mults="0.5 5";   mixes="get set"; costs="on off"; : "${secs:=3}" "${reps:=2}" ;;
  full)    vsizes="1024 4096"; mults="0.5 2 5"; mixes="get set"; costs="on off"; : "${secs:=5}" "${reps:=3}" ;;
esac

kvs=$build/apps/kvs/eleos-kvs
command -v memcaslap >/dev/null || { echo "memcaslap missing (libmemcached-tools)"; exit 77; }
command -v memcstat >/dev/null || { echo "memcstat missing (libmemcached-tools)"; exit 77; }
[ -x "$kvs" ] || { echo "build $kvs first"; exit 1; }
have_memcached=0; command -v memcached >/dev/null && have_memcached=1

threads=2          # server worker threads (and memcaslap threads): the VM has 2 cores
conc=16            # memcaslap concurrency (connections)
epc_mib=93
key_size=64
tmp=$(mktemp -d /tmp/bench_kvs.XXXXXX)
srv_pid=""
cleanup() {
  if [ -n "$srv_pid" ]; then kill -TERM "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# memcaslap -F file: key and value size ranges, then the command mix (0 = SET, 1 = GET).
mkcfg() { # file vsize set_prop get_prop
  printf 'key\n%d %d 1\nvalue\n%d %d 1\ncmd\n0 %s\n1 %s\n' \
    $key_size $key_size "$2" "$2" "$3" "$4" > "$1"
}

# Starts a server in the background; sets srv_pid and port. Waits for its listening line
# (eleos-kvs) or for the port to accept (memcached), at most 60 s.
start_server() { # name cost
  local name=$1 cost=$2 log=$tmp/server.log
  local args=(-t $threads -m "$mem" -c 4096)
  : > "$log"
  case $name in
    memcached)
      port=$((20000 + RANDOM % 20000))
      memcached -u root -l 127.0.0.1 -p $port -U 0 "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    native)    "$kvs" --mode native -p 0 "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    sgx)       "$kvs" --mode sgx -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    eleos)     "$kvs" --mode eleos -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    rpc-only)  "$kvs" --mode sgx --rpc on -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    suvm-only) "$kvs" --mode sgx --suvm on -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
  esac
  local i
  for i in $(seq 600); do
    kill -0 "$srv_pid" 2>/dev/null || { echo "$name exited at start:" >&2; cat "$log" >&2; srv_pid=""; return 1; }
    if [ "$name" = memcached ]; then
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    else
      local l; l=$(grep -m1 '^listening on ' "$log") && { port=${l##*:}; return 0; }
    fi
    sleep 0.1
  done
  echo "$name did not start listening" >&2; return 1
}
stop_server() {
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null
  local i; for i in $(seq 100); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""
}

# Selected "stats" counters as "name value" lines (0 for those a server does not have).
snapshot() {
  timeout 20 memcstat --servers=127.0.0.1:$port 2>/dev/null | awk '
    BEGIN { split("cmd_get get_misses eleos_enclave_exits eleos_epc_faults eleos_suvm_major_faults eleos_rpc_fallbacks eleos_rpc_calls", k, " "); for (i in k) v[k[i]] = 0 }
    { gsub(/:/, "", $1); if ($1 in v) v[$1] = $2 }
    END { for (n in v) print n, v[n] }'
}

# Runs one memcaslap; prints "tps ops cmd_get get_misses".
memcaslap_run() { # cfg window_k limit_args...
  local cfg=$1 win=$2; shift 2
  local out
  out=$(timeout 600 memcaslap -s 127.0.0.1:$port -F "$cfg" -w "${win}k" -T $threads -c $conc "$@" 2>&1)
  echo "$out" >> "$tmp/memcaslap.log"
  echo "$out" | awk '
    /Run time/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") tps = $(i+1); if ($i == "Ops:") ops = $(i+1) } }
    /^cmd_get:/ { g = $2 } /^get_misses:/ { m = $2 }
    END { printf "%s %s %s %s\n", tps + 0, ops + 0, g + 0, m + 0 }'
}

results=$tmp/results   # server mix vsize mult cost rep tps ops gets misses exits epcf suvmf fallbacks data_mib
: > "$results"
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# eleos-kvs bench ($grid): $threads server threads, memcaslap -T $threads -c $conc, ${secs}s per run, $reps rep(s)"
echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load at start: $load"
echo "# model on = defaults (ELEOS_COST_* from the environment apply), off = --cost off"

for vsize in $vsizes; do
  mkcfg "$tmp/load.cfg" "$vsize" 1.0 0.0
  mkcfg "$tmp/get.cfg" "$vsize" 0.1 0.9
  mkcfg "$tmp/set.cfg" "$vsize" 0.9 0.1
  for mult in $mults; do
    # the key window: conc windows of win_k Ki keys, about mult x EPC of keys+values
    win_k=$(awk -v e=$epc_mib -v m="$mult" -v v="$vsize" -v k=$key_size -v c=$conc \
      'BEGIN { w = int(e * m * 1048576 / (v + k) / c / 1024 + 0.5); print (w < 1 ? 1 : w) }')
    keys=$((conc * win_k * 1024))
    data_mib=$(( keys * (vsize + key_size) / 1048576 ))
    # -m: every item's chunk (memcached's item size, rounded up by at most the 1.25 slab
    # factor) plus room for the measuring runs' new items, so nothing is evicted at preload
    mem=$(awk -v n=$keys -v v="$vsize" -v k=$key_size 'BEGIN { print int(n * (v + k + 59) * 1.25 / 1048576 * 1.3) + 16 }')
    for rep in $(seq "$reps"); do
      for cost in $costs; do
        servers="sgx eleos rpc-only suvm-only"
        [ "$cost" = on ] && servers="memcached native $servers"
        [ "$cost" = off ] && [ "$grid" != full ] && servers="sgx eleos"
        for server in $servers; do
          [ "$server" = memcached ] && [ $have_memcached = 0 ] && continue
          mcost=$cost; case $server in memcached|native) mcost=none ;; esac
          echo "## $server: value $vsize B, data $data_mib MiB (${mult}x EPC, $keys keys), -m $mem, model $mcost, rep $rep" >&2
          start_server "$server" "$cost" || { stop_server; continue; }
          read -r ltps _ <<< "$(memcaslap_run "$tmp/load.cfg" "$win_k" -x $keys)"
          echo "   preload: $ltps TPS" >&2
          for mix in $mixes; do
            before=$(snapshot)
            read -r tps ops gets misses <<< "$(memcaslap_run "$tmp/$mix.cfg" "$win_k" -t "${secs}s")"
            after=$(snapshot)
            read -r exits epcf suvmf fb <<< "$(printf '%s\n%s\n' "$before" "$after" | awk '
              { if ($1 in a) d[$1] = $2 - a[$1]; else a[$1] = $2 }
              END { printf "%d %d %d %d\n", d["eleos_enclave_exits"], d["eleos_epc_faults"], d["eleos_suvm_major_faults"], d["eleos_rpc_fallbacks"] }')"
            echo "   $mix: $tps TPS ($ops ops, $gets gets, $misses misses; exits $exits, EPC faults $epcf, SUVM major faults $suvmf, RPC fallbacks $fb)" >&2
            echo "$server $mix $vsize $mult $mcost $rep $tps $ops $gets $misses $exits $epcf $suvmf $fb $data_mib" >> "$results"
          done
          stop_server
        done
      done
    done
  done
done

# Medians over reps, ratios vs sgx (same model; sgx with the model on for "none") and vs
# memcached (same value size, data set and mix).
summary=$(awk '
  function median(s,   n, a, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    k = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP $5
    if (!(k in runs)) order[++n] = k
    runs[k] = runs[k] " " $7; ops[k] += $8; gets[k] += $9; miss[k] += $10
    ex[k] += $11; ef[k] += $12; sf[k] += $13; fb[k] += $14; dm[k] = $15
  }
  END {
    print "server,mix,value_bytes,data_mib,epc_mult,model,tps_median,tps_runs,vs_sgx,vs_memcached,get_hit_rate,exits_per_op,epc_faults_per_op,suvm_major_faults_per_op,rpc_fallbacks_per_op"
    for (i = 1; i <= n; i++) { k = order[i]; med[k] = median(runs[k]) }
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, f, SUBSEP)
      sk = "sgx" SUBSEP f[2] SUBSEP f[3] SUBSEP f[4] SUBSEP (f[5] == "none" ? "on" : f[5])
      mk = "memcached" SUBSEP f[2] SUBSEP f[3] SUBSEP f[4] SUBSEP "none"
      vs = (sk in med && med[sk] > 0) ? sprintf("%.2f", med[k] / med[sk]) : ""
      vm = (mk in med && med[mk] > 0) ? sprintf("%.2f", med[k] / med[mk]) : ""
      hr = gets[k] > 0 ? sprintf("%.4f", 1 - miss[k] / gets[k]) : ""
      o = ops[k] > 0 ? ops[k] : 1
      r = runs[k]; sub(/^ /, "", r); gsub(/ /, ";", r)
      printf "%s,%s,%s,%s,%s,%s,%d,%s,%s,%s,%s,%.3f,%.4f,%.4f,%.4f\n", f[1], f[2], f[3], dm[k], f[4], f[5], med[k], r, vs, vm, hr, ex[k] / o, ef[k] / o, sf[k] / o, fb[k] / o
    }
  }' "$results")
echo
echo "$summary" | column -t -s,
[ -n "$csv" ] && echo "$summary" > "$csv"
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
