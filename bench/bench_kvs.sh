#!/usr/bin/env bash
# eleos-kvs throughput, side by side in one invocation: real memcached, then eleos-kvs in
# native, sgx, eleos (--rpc auto: batched I/O, its executor and completion moderation
# chosen at run time, connections gathered on fewer workers while no core is idle),
# eleos-nomod (the same with --moderation off), eleos-spread (--consolidate off: every
# worker keeps its connections), eleos-rpc (the worker
# executor forced: --rpc on), eleos-sync (one call at a time), RPC-only (sgx --rpc on) and
# SUVM-only (sgx --suvm on) modes; same server worker threads (-t 2), same client threads
# (2) and connections (16). Two loads:
#
#   uniform    eleos-kvs-load (tools/kvs_load.c): every request's key is uniform over the
#              whole preloaded data set (the Eleos paper's memcached experiment), so at 5x
#              the EPC nearly every request pages (EPC or SUVM). GET-heavy and SET-heavy.
#   memcaslap  libmemcached-tools' memcaslap, kept for comparison with earlier results. Its
#              runs only GET keys they have SET themselves (hit rate 1.0, and their working
#              set is what the run stored, not the preloaded data): little paging.
#
# usage: bench/bench_kvs.sh BUILD_DIR [--quick|--full] [--csv FILE] [--secs N] [--reps N]
#                          [--section grid|protocols|tls]
#
# --section picks the experiment (default grid: the one described here). protocols and tls
# (bench/bench_kvs_sections.sh, which has their description) compare memcached's text,
# binary and meta protocols, and TLS, on memcached and eleos-kvs native and eleos modes;
# bench/run.sh runs each section as a benchmark of its own (bench_kvs, bench_kvs_protocols,
# bench_kvs_tls).
#
# Grid (value size x data set x mix x cost model), EPC = 93 MiB, data set = keys x value size:
#   --quick   1 KiB; uniform at 5x (GET- and SET-heavy), memcaslap at 0.5x and 5x
#             (GET-heavy); memcached, native, sgx, eleos; model on; 1 rep of 3 s   (~2 min)
#   default   1 KiB; uniform at 0.5x and 5x (GET- and SET-heavy), memcaslap at 0.5x and 5x
#             (GET-heavy); adds RPC-only and SUVM-only; model on (every server) and off
#             (sgx and eleos); 2 reps of 3 s                                        (~7.5 min)
#   --full    1 and 4 KiB; 0.5x, 2x and 5x; both mixes for both loads; model off for every
#             enclave mode; 3 reps of 5 s                                           (~75 min)
# Mixes: get = 90% GET / 10% SET, set = 10% GET / 90% SET.
#
# Per (value size, data set, model, rep) every server is started fresh (loopback, a port of
# its own), preloaded with every key of the data set once (eleos-kvs-load --preload: SETs
# pipelined 32 deep per connection; the time it took is the CSV's preload_s), then measured
# for SECS seconds per uniform mix, then per memcaslap mix (memcaslap's own keys, -w = the
# data set's key window; the preload fills the heap, EPC and SUVM to the data-set size for
# it). A uniform SET rewrites a key's value with the same bytes, so the data set stays the
# same across mixes. -m is sized so the data set fits without eviction. Reps are interleaved
# across servers (rep 1 of every server, then rep 2 ...) so machine load drifts hit every
# server alike; the CSV holds the median over reps.
#
# Per-op exits (every exit: trapped syscalls plus OCALLs, eleos_enclave_exits_total), EPC
# faults, SUVM major faults and RPC fallbacks come from "stats" (memcstat) before and after
# each measuring run; the executor the batched I/O path ran on is printed after each run. Model on/off: the SGX cost model only changes enclave
# modes, so memcached and native run once per grid point (model column "none"); their ratio
# vs sgx uses sgx with the model on. Every server is killed on exit, also on error or Ctrl-C.
# Exit status 1 if a uniform run reported errors, verify failures or lost connections (the
# rows are still written).
set -uo pipefail
cd "$(dirname "$0")/.."

build=${1:?usage: bench/bench_kvs.sh BUILD_DIR [--quick|--full] [--csv FILE]}; shift
grid=default; csv=""; secs=""; reps=""; section=grid
while [ $# -gt 0 ]; do
  case $1 in
    --quick) grid=quick ;;
    --full) grid=full ;;
    --csv) csv=${2:?--csv FILE}; shift ;;
    --secs) secs=${2:?}; shift ;;
    --reps) reps=${2:?}; shift ;;
    --section) section=${2:?--section grid|protocols|tls}; shift
               case $section in grid|protocols|tls) ;; *) echo "bench_kvs.sh: unknown section $section" >&2; exit 2 ;; esac ;;
    *) echo "bench_kvs.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
# u_* = uniform (eleos-kvs-load), m_* = memcaslap; servers_* = eleos-kvs modes besides
# memcached/native (model on) and the enclave modes also run with the model off.
case $grid in
  quick)   vsizes="1024"; u_mults="5"; m_mults="0.5 5"; u_mixes="get set"; m_mixes="get"
           costs="on"; servers_on="sgx eleos"; servers_off=""
           : "${secs:=3}" "${reps:=1}" ;;
  default) vsizes="1024"; u_mults="0.5 5"; m_mults="0.5 5"; u_mixes="get set"; m_mixes="get"
           costs="on off"; servers_on="sgx eleos eleos-nomod eleos-spread eleos-rpc eleos-sync rpc-only suvm-only"; servers_off="sgx eleos"
           : "${secs:=3}" "${reps:=2}" ;;
  full)    vsizes="1024 4096"; u_mults="0.5 2 5"; m_mults="0.5 2 5"; u_mixes="get set"
           m_mixes="get set"; costs="on off"; servers_on="sgx eleos eleos-rpc rpc-only suvm-only"
           servers_off="sgx eleos eleos-rpc rpc-only suvm-only"
           : "${secs:=5}" "${reps:=3}" ;;
esac
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; } # list word

kvs=$build/apps/kvs/eleos-kvs
kvsload=$build/tools/eleos-kvs-load
command -v memcaslap >/dev/null || { echo "# memcaslap missing (libmemcached-tools): uniform load only"; m_mults=""; m_mixes=""; }
command -v memcstat >/dev/null || { echo "memcstat missing (libmemcached-tools)"; exit 77; }
[ -x "$kvs" ] || { echo "build $kvs first"; exit 1; }
[ -x "$kvsload" ] || { echo "build $kvsload first"; exit 1; }
have_memcached=0; command -v memcached >/dev/null && have_memcached=1
mults=$(printf '%s\n' $u_mults $m_mults | sort -g -u | tr '\n' ' ')

threads=2          # server worker threads (and client threads): the VM has 2 cores
conc=16            # client connections (memcaslap concurrency, eleos-kvs-load -c)
epc_mib=93
key_size=64
tmp=$(mktemp -d /tmp/bench_kvs.XXXXXX)
srv_pid=""
srv_extra=()       # more server options (the tls section's -Z -o ssl_chain_cert=...)
failed=0
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
start_server() { # name cost [attempt]
  local name=$1 cost=$2 log=$tmp/server.log
  # -u root: memcached's (and eleos-kvs's) rule when started as root; ignored otherwise
  local args=(-t $threads -m "$mem" -c 4096 -u root "${srv_extra[@]}")
  : > "$log"
  case $name in
    memcached)
      port=$((20000 + RANDOM % 20000))
      memcached -l 127.0.0.1 -p $port -U 0 "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    native)    "$kvs" --mode native -p 0 "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    sgx)       "$kvs" --mode sgx -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    eleos)     "$kvs" --mode eleos -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    eleos-uring) "$kvs" --mode eleos --rpc uring -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    eleos-sync) "$kvs" --mode eleos --rpc sync -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    eleos-nomod) "$kvs" --mode eleos --moderation off -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    eleos-spread) "$kvs" --mode eleos --consolidate off -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    eleos-rpc) "$kvs" --mode eleos --rpc on -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    rpc-only)  "$kvs" --mode sgx --rpc on -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
    suvm-only) "$kvs" --mode sgx --suvm on -p 0 --cost "$cost" "${args[@]}" > "$log" 2>&1 & srv_pid=$! ;;
  esac
  local i
  for i in $(seq 600); do
    if ! kill -0 "$srv_pid" 2>/dev/null; then
      # memcached's port is picked at random: if something else holds it, pick another.
      if [ "$name" = memcached ] && grep -q 'Address already in use' "$log" \
          && [ "${3:-0}" -lt 5 ]; then
        start_server "$name" "$cost" $(( ${3:-0} + 1 )); return
      fi
      echo "$name exited at start:" >&2; cat "$log" >&2; srv_pid=""; return 1
    fi
    if [ "$name" = memcached ]; then
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    else
      local l; l=$(grep -m1 '^listening on ' "$log") && {
        port=${l##*:}
        # The calibrated effective costs, quoted once (the same in every enclave server).
        if [ -z "${cost_line_shown:-}" ] && l=$(grep -m1 'cost model effective/target' "$log"); then
          echo "# ${l#"${l%%[! ]*}"}"; cost_line_shown=1
        fi
        return 0; }
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
    BEGIN { split("cmd_get get_misses eleos_enclave_exits_total eleos_epc_faults eleos_suvm_major_faults eleos_rpc_fallbacks eleos_rpc_calls", k, " "); for (i in k) v[k[i]] = 0 }
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

# Runs one eleos-kvs-load; prints "ops_per_s ops gets misses bad p50_us p99_us duration_s"
# (bad = errors + verify failures + lost connections; -1 if it produced no result row).
load_run() { # args...
  local out rc
  out=$(timeout 900 "$kvsload" -s 127.0.0.1 -p "$port" -T $threads -c $conc --key-size $key_size \
        --timeout 120 --csv "$@" 2>"$tmp/load.err"); rc=$?
  { echo "\$ eleos-kvs-load $* (exit $rc)"; echo "$out"; cat "$tmp/load.err"; } >> "$tmp/load.log"
  [ $rc -ne 0 ] && sed 's/^/   /' "$tmp/load.err" | head -n 12 >&2
  echo "$out" | awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    { r = $0; split(r, f, ",") }
    END {
      if (!r) { print "0 0 0 0 -1 0 0 0"; exit }
      printf "%s %s %s %s %d %s %s %s\n", f[c["ops_per_s"]], f[c["ops"]], f[c["gets"]], f[c["misses"]],
        f[c["errors"]] + f[c["verify_failures"]] + f[c["conn_failures"]], f[c["p50_us"]], f[c["p99_us"]],
        f[c["duration_s"]]
    }'
}

# Counter deltas between two snapshots: "exits epc_faults suvm_major_faults rpc_fallbacks".
deltas() { # before after
  printf '%s\n%s\n' "$1" "$2" | awk '
    { if ($1 in a) d[$1] = $2 - a[$1]; else a[$1] = $2 }
    END { printf "%d %d %d %d\n", d["eleos_enclave_exits_total"], d["eleos_epc_faults"], d["eleos_suvm_major_faults"], d["eleos_rpc_fallbacks"] }'
}

# The cost model's parameters as the enclave modes will use them: the defaults from
# include/eleos/enclave.h, overridden by ELEOS_COST_* in the environment.
cost_params() {
  local n v ev line=""
  for n in ECALL OCALL SYSCALL EPC_FAULT EPC_EVICT; do
    v=$(awk -v n="ELEOS_COST_DEFAULT_$n" '$1 == "#define" && $2 == n { sub(/u$/, "", $3); print $3 }' include/eleos/enclave.h)
    ev=ELEOS_COST_$n; [ -n "${!ev:-}" ] && v="${!ev}(env)"
    line="$line ${n,,}=${v:-?}"
  done
  echo "# cost model (on):$line target cycles (epc_evict: extra)${ELEOS_COST_POLLUTE_KIB:+, pollute_kib=$ELEOS_COST_POLLUTE_KIB(env)}; off = all 0"
}

if [ "$section" != grid ]; then
  . bench/bench_kvs_sections.sh
  "${section}_section"
  exit $?
fi

# load server mix vsize mult cost rep tps ops gets misses exits epcf suvmf fallbacks data_mib
# keys p50 p99 preload_s bad
results=$tmp/results
: > "$results"
t_begin=$(date +%s)
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# eleos-kvs bench ($grid): $threads server threads; clients: $threads threads, $conc connections (eleos-kvs-load -T $threads -c $conc, memcaslap -T $threads -c $conc); ${secs}s per run, $reps rep(s)"
echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load at start: $load"
echo "# model on = defaults (ELEOS_COST_* from the environment apply), off = --cost off"
cost_params

for vsize in $vsizes; do
  mkcfg "$tmp/get.cfg" "$vsize" 0.1 0.9
  mkcfg "$tmp/set.cfg" "$vsize" 0.9 0.1
  for mult in $mults; do
    # the data set: keys x value size = mult x EPC
    keys=$(awk -v e=$epc_mib -v m="$mult" -v v="$vsize" 'BEGIN { print int(e * m * 1048576 / v + 0.5) }')
    data_mib=$(( keys * vsize / 1048576 ))
    # memcaslap's key window: conc windows of win_k Ki keys cover the data set's key count
    win_k=$(awk -v n=$keys -v c=$conc 'BEGIN { w = int(n / c / 1024 + 0.5); print (w < 1 ? 1 : w) }')
    # -m: every item's chunk (memcached's item size, rounded up by at most the 1.25 slab
    # factor) plus room for memcaslap's new items, so nothing is evicted
    mem=$(awk -v n=$keys -v v="$vsize" -v k=$key_size 'BEGIN { print int(n * (v + k + 59) * 1.25 / 1048576 * 1.3) + 16 }')
    umixes=""; has "$u_mults" "$mult" && umixes=$u_mixes
    mmixes=""; has "$m_mults" "$mult" && mmixes=$m_mixes
    for rep in $(seq "$reps"); do
      for cost in $costs; do
        if [ "$cost" = on ]; then servers="memcached native $servers_on"; else servers=$servers_off; fi
        for server in $servers; do
          [ "$server" = memcached ] && [ $have_memcached = 0 ] && continue
          mcost=$cost; case $server in memcached|native) mcost=none ;; esac
          echo "## $server: value $vsize B, data $data_mib MiB (${mult}x EPC, $keys keys), -m $mem, model $mcost, rep $rep" >&2
          start_server "$server" "$cost" || { stop_server; failed=1; continue; }
          t0=$(date +%s.%N)
          read -r ptps pops _ _ pbad _ _ pdur <<< "$(load_run --keys $keys --value-size "$vsize" --preload)"
          preload_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
          echo "   preload: $pops SETs in $preload_s s ($ptps SET/s, generator's phase ${pdur}s), errors $pbad" >&2
          if [ "$pbad" != 0 ]; then
            echo "   preload failed: $server skipped" >&2; failed=1; stop_server; continue
          fi
          for mix in $umixes; do
            ratio=0.9; [ "$mix" = set ] && ratio=0.1
            before=$(snapshot)
            read -r tps ops gets misses bad p50 p99 _ <<< "$(load_run --keys $keys --value-size "$vsize" --secs "$secs" --get-ratio $ratio)"
            after=$(snapshot)
            read -r exits epcf suvmf fb <<< "$(deltas "$before" "$after")"
            [ "$bad" != 0 ] && failed=1
            execs=$(timeout 20 memcstat --servers=127.0.0.1:$port 2>/dev/null |
                    awk '/eleos_io_executor/ { print $2 }')
            [ -n "$execs" ] && echo "   executors: $execs" >&2
            echo "   uniform $mix: $tps ops/s ($ops ops, $gets gets, $misses misses, $bad errors; p50 $p50 us, p99 $p99 us; exits $exits, EPC faults $epcf, SUVM major faults $suvmf, RPC fallbacks $fb)" >&2
            echo "uniform $server $mix $vsize $mult $mcost $rep $tps $ops $gets $misses $exits $epcf $suvmf $fb $data_mib $keys $p50 $p99 $preload_s $bad" >> "$results"
          done
          for mix in $mmixes; do
            before=$(snapshot)
            read -r tps ops gets misses <<< "$(memcaslap_run "$tmp/$mix.cfg" "$win_k" -t "${secs}s")"
            after=$(snapshot)
            read -r exits epcf suvmf fb <<< "$(deltas "$before" "$after")"
            echo "   memcaslap $mix: $tps TPS ($ops ops, $gets gets, $misses misses; exits $exits, EPC faults $epcf, SUVM major faults $suvmf, RPC fallbacks $fb)" >&2
            echo "memcaslap $server $mix $vsize $mult $mcost $rep $tps $ops $gets $misses $exits $epcf $suvmf $fb $data_mib $keys - - $preload_s 0" >> "$results"
          done
          stop_server
        done
      done
    done
  done
done

# Medians over reps, ratios vs sgx (same load and model; sgx with the model on for "none")
# and vs memcached (same load, value size, data set and mix).
summary=$(awk '
  function median(s,   n, a, i, j, t) {
    n = split(s, a, " ")
    if (n == 0 || a[1] == "-") return "-"
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    k = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP $5 SUBSEP $6
    if (!(k in runs)) order[++n] = k
    runs[k] = runs[k] " " $8; ops[k] += $9; gets[k] += $10; miss[k] += $11
    ex[k] += $12; ef[k] += $13; sf[k] += $14; fb[k] += $15; dm[k] = $16; nk[k] = $17
    p50[k] = p50[k] " " $18; p99[k] = p99[k] " " $19; pre[k] = pre[k] " " $20; bad[k] += $21
  }
  END {
    print "load,server,mix,value_bytes,data_mib,epc_mult,keys,model,tps_median,tps_runs,vs_sgx,vs_memcached,get_hit_rate,exits_per_op,epc_faults_per_op,suvm_major_faults_per_op,rpc_fallbacks_per_op,p50_us,p99_us,preload_s,errors"
    for (i = 1; i <= n; i++) { k = order[i]; med[k] = median(runs[k]) }
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, f, SUBSEP)
      sk = f[1] SUBSEP "sgx" SUBSEP f[3] SUBSEP f[4] SUBSEP f[5] SUBSEP (f[6] == "none" ? "on" : f[6])
      mk = f[1] SUBSEP "memcached" SUBSEP f[3] SUBSEP f[4] SUBSEP f[5] SUBSEP "none"
      vs = (sk in med && med[sk] > 0) ? sprintf("%.2f", med[k] / med[sk]) : ""
      vm = (mk in med && med[mk] > 0) ? sprintf("%.2f", med[k] / med[mk]) : ""
      hr = gets[k] > 0 ? sprintf("%.4f", 1 - miss[k] / gets[k]) : ""
      o = ops[k] > 0 ? ops[k] : 1
      r = runs[k]; sub(/^ /, "", r); gsub(/ /, ";", r)
      l50 = median(substr(p50[k], 2)); l99 = median(substr(p99[k], 2))
      printf "%s,%s,%s,%s,%s,%s,%s,%s,%d,%s,%s,%s,%s,%.3f,%.4f,%.4f,%.4f,%s,%s,%s,%d\n", f[1], f[2], f[3], f[4], dm[k], f[5], nk[k], f[6], med[k], r, vs, vm, hr, ex[k] / o, ef[k] / o, sf[k] / o, fb[k] / o, (l50 == "-" ? "" : l50), (l99 == "-" ? "" : l99), median(substr(pre[k], 2)), bad[k]
    }
  }' "$results")
echo
echo "$summary" | column -t -s,
[ -n "$csv" ] && echo "$summary" > "$csv"
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg); took $(( $(date +%s) - t_begin )) s"
[ $failed = 0 ] || { echo "# some runs failed or reported errors: see the log above" >&2; exit 1; }
exit 0
