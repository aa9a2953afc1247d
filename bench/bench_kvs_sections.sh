# shellcheck shell=bash disable=SC2154,SC2034  # sourced: the variables are bench_kvs.sh's
# bench/bench_kvs.sh's "protocols" and "tls" sections (sourced by it: they use its settings
# and helpers — start_server, stop_server, load_run, $threads, $conc, $key_size, $epc_mib,
# $secs, $reps, $csv, $tmp). Same client and server settings as the grid: -t 2 server
# threads, eleos-kvs-load -T 2 -c 16, 64-byte keys, 1 KiB values, 90% GETs (uniform keys
# over the preloaded data set), one request outstanding per connection, --secs per run,
# --reps repetitions interleaved across servers; every server started fresh per point.
#
#   protocols  memcached, eleos-kvs native and eleos (model on): preloaded with the text
#              protocol, then one measuring run per protocol (text, binary, meta) on the same
#              server. Data set 0.5x the EPC (--full: 0.5x and 5x).
#   tls        the same servers with -Z (a throw-away CA and server certificate made with the
#              openssl CLI for 127.0.0.1), preloaded and measured over TLS (text protocol,
#              the certificate verified against the CA), at 0.5x and 5x the EPC.
#
# Before each measuring run a probe (1 connection, 0.3 s, --verify, 5 s stall timeout)
# checks that the server answers the protocol correctly; when it does not (a server that
# does not speak it yet) the row carries no throughput and the probe's error message in the
# "error" column. CSV: one row per (server, protocol, TLS, data set): median ops/s over reps,
# the runs, the ratio to memcached and (protocols) to the same server's text protocol, both
# from the same invocation; median p50/p99 latency; error count and message. Exit status 1 if
# any run failed.

# One probe + measuring run on the running server; appends a result line.
# Result lines (tab-separated): server proto tls mult model rep tps p50 p99 bad note
sect_measure() { # server proto tls(0|1) mult model rep keys load_args...
  local server=$1 proto=$2 tls=$3 mult=$4 model=$5 rep=$6 keys=$7; shift 7
  local note="" tps=0 p50=0 p99=0 bad=0
  read -r _ _ _ _ bad _ _ _ <<< "$(load_run "$@" --protocol "$proto" --keys "$keys" -T 1 -c 1 \
                                   --secs 0.3 --verify --timeout 5)"
  if [ "$bad" != 0 ]; then
    note="probe failed: $(sect_error)"
  else
    read -r tps _ _ _ bad p50 p99 _ <<< "$(load_run "$@" --protocol "$proto" --keys "$keys" \
                                             --value-size 1024 --secs "$secs" --get-ratio 0.9)"
    [ "$bad" != 0 ] && note="measuring run: $bad error(s): $(sect_error)"
  fi
  local label="$server $proto"; [ "$tls" = 1 ] && label="$label over TLS"
  if [ -n "$note" ]; then
    failed=1; tps=""; echo "   $label: $note" >&2
  else
    echo "   $label: $tps ops/s (p50 $p50 us, p99 $p99 us)" >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$proto" "$tls" "$mult" "$model" \
    "$rep" "$tps" "$p50" "$p99" "$bad" "$note" >> "$results"
}

# The generator's first error message of its last run, one line, no commas or quotes (CSV).
sect_error() {
  local l
  l=$(grep -v -e '^eleos-kvs-load: TLS: ' -e 'further errors are only counted' "$tmp/load.err" \
      | head -n 1 | sed 's/^eleos-kvs-load: //')
  [ -n "$l" ] || l="no result row (see bench_kvs's load log)"
  l=${l//,/;}; l=${l//\"/\'}
  echo "${l:0:240}"
}

# Preloads the running server (every key once, text protocol); 0 if it worked, else the
# failure's message in $sect_note.
sect_preload() { # keys load_args...
  local keys=$1 pbad; shift
  read -r _ _ _ _ pbad _ _ _ <<< "$(load_run "$@" --keys "$keys" --value-size 1024 --preload)"
  [ "$pbad" = 0 ] && return 0
  sect_note="preload failed: $(sect_error)"
  return 1
}

# Runs the grid of one section: per data set, rep and server a fresh server and a preload,
# then one sect_measure per protocol. A server that does not start or preload gets rows
# that say so.
sect_grid() { # tls(0|1) mults protos
  local tls=$1 mults=$2 protos=$3 mult rep server keys proto model tlsargs=()
  [ "$tls" = 1 ] && tlsargs=(--tls --tls-ca "$tmp/ca.crt")
  for mult in $mults; do
    keys=$(awk -v e=$epc_mib -v m="$mult" 'BEGIN { print int(e * m * 1048576 / 1024 + 0.5) }')
    mem=$(awk -v n=$keys -v k=$key_size 'BEGIN { print int(n * (1024 + k + 59) * 1.25 / 1048576 * 1.3) + 16 }')
    for rep in $(seq "$reps"); do
      for server in memcached native eleos; do
        [ "$server" = memcached ] && [ $have_memcached = 0 ] && continue
        model=none; [ "$server" = eleos ] && model=on
        echo "## $section: $server, ${mult}x EPC ($keys keys), -m $mem, model $model, rep $rep" >&2
        sect_note=""
        if ! start_server "$server" on; then
          sect_note="server did not start: $(tail -n 3 "$tmp/server.log" | tr '\n' ' ')"
        elif ! sect_preload "$keys" "${tlsargs[@]}"; then :
        fi
        for proto in $protos; do
          if [ -n "$sect_note" ]; then
            failed=1; echo "   $server $proto: ${sect_note}" >&2
            printf '%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t1\t%s\n' "$server" "$proto" "$tls" "$mult" "$model" \
              "$rep" "${sect_note//,/;}" >> "$results"
          else
            sect_measure "$server" "$proto" "$tls" "$mult" "$model" "$rep" "$keys" "${tlsargs[@]}"
          fi
        done
        stop_server
      done
    done
  done
}

# Medians over reps, same-invocation ratios; the CSV on stdout.
sect_summary() {
  awk -F'\t' -v epc=$epc_mib '
    function median(s,   n, a, i, j, t) {
      n = split(s, a, " ")
      if (n == 0) return ""
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
      k = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4
      if (!(k in model)) order[++n] = k
      model[k] = $5
      if ($7 != "") { runs[k] = runs[k] " " $7; p50[k] = p50[k] " " $8; p99[k] = p99[k] " " $9 }
      bad[k] += $10
      if ($11 != "" && !(k in note)) note[k] = $11
    }
    END {
      print "server,protocol,tls,value_bytes,data_mib,epc_mult,keys,model,tps_median,tps_runs,vs_memcached,vs_text,p50_us,p99_us,errors,error"
      for (i = 1; i <= n; i++) { k = order[i]; med[k] = median(runs[k]) }
      for (i = 1; i <= n; i++) {
        k = order[i]; split(k, f, SUBSEP)
        mk = "memcached" SUBSEP f[2] SUBSEP f[3] SUBSEP f[4]
        tk = f[1] SUBSEP "text" SUBSEP f[3] SUBSEP f[4]
        vm = (med[k] != "" && med[mk] > 0) ? sprintf("%.2f", med[k] / med[mk]) : ""
        vt = (!f[3] && med[k] != "" && med[tk] > 0) ? sprintf("%.2f", med[k] / med[tk]) : ""
        r = runs[k]; sub(/^ /, "", r); gsub(/ /, ";", r)
        keys = int(epc * f[4] * 1048576 / 1024 + 0.5)
        printf "%s,%s,%s,1024,%d,%s,%d,%s,%s,%s,%s,%s,%s,%s,%d,%s\n", f[1], f[2], (f[3] ? "yes" : "no"),
          keys * 1024 / 1048576, f[4], keys, model[k], (med[k] == "" ? "" : sprintf("%d", med[k])), r, vm, vt,
          median(substr(p50[k], 2)), median(substr(p99[k], 2)), bad[k], note[k]
      }
    }' "$results"
}

sect_header() {
  echo "# eleos-kvs bench, section $section ($grid): $threads server threads; eleos-kvs-load -T $threads -c $conc, 1 KiB values, 90% GETs; ${secs}s per run, $reps rep(s)"
  echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  cost_params
}

sect_finish() {
  local summary
  summary=$(sect_summary)
  echo
  echo "$summary" | column -t -s,
  [ -n "$csv" ] && echo "$summary" > "$csv"
  echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg); took $(( $(date +%s) - t_begin )) s"
  [ $failed = 0 ] || { echo "# some runs failed or reported errors: see the error column" >&2; return 1; }
  return 0
}

protocols_section() {
  results=$tmp/results; : > "$results"; t_begin=$(date +%s)
  local mults="0.5"; [ "$grid" = full ] && mults="0.5 5"
  sect_header
  sect_grid 0 "$mults" "text binary meta"
  sect_finish
}

tls_section() {
  results=$tmp/results; : > "$results"; t_begin=$(date +%s)
  command -v openssl >/dev/null || { echo "openssl CLI missing: cannot make the test certificates"; return 77; }
  # A throw-away CA and a server certificate for 127.0.0.1 (P-256, valid 2 days).
  ( cd "$tmp" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj "/CN=eleos bench CA" -keyout ca.key -out ca.crt &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -subj "/CN=127.0.0.1" -keyout srv.key -out srv.csr &&
    printf 'subjectAltName=IP:127.0.0.1\n' > srv.ext &&
    openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile srv.ext -out srv.crt ) > "$tmp/openssl.log" 2>&1 \
    || { cat "$tmp/openssl.log"; echo "could not make the test certificates"; return 1; }
  srv_extra=(-Z -o "ssl_chain_cert=$tmp/srv.crt,ssl_key=$tmp/srv.key")
  sect_header
  echo "# TLS: -Z with a throw-away CA; the client verifies the certificate; $(openssl version)"
  sect_grid 1 "0.5 5" "text"
  srv_extra=()
  sect_finish
}
