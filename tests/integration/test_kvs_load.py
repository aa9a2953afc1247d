"""eleos-kvs-load (the uniform-random load generator) against eleos-kvs.

usage: test_kvs_load.py ELEOS_KVS ELEOS_KVS_LOAD

Per mode (native; eleos with a small EPC and SUVM cache, so the data set pages through
SUVM): --preload every key, then a short measuring run with --verify. Asserts zero errors
and verify failures, hit ratio 1.0 after the preload, ops > 0, and that the server's
get_hits / cmd_set cover what the generator counted. Native also runs many connections
with pipelining and a SET-heavy mix. Finally: a port with nothing listening makes the
generator exit 2 with a clear message, and bad options exit 2. The third scenario checks
eleos mode's defaults: an auto-sized SUVM cache is coordinated with the platform (SUVM
shrinks it so the item metadata fits next to it in a small EPC; every value still verifies
after that), and --rpc auto picks an executor for the batched I/O path.
"""
import csv
import io
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import HOST, Checker, Server, stats  # noqa: E402

if len(sys.argv) != 3:
    print("usage: %s ELEOS_KVS ELEOS_KVS_LOAD" % sys.argv[0])
    sys.exit(2)
kvs, load = sys.argv[1], sys.argv[2]
c = Checker("test_kvs_load")


def run_load(port, *args, timeout=40):
    """Runs the generator with --csv; returns (exit code, rows by phase, stderr)."""
    cmd = [load, "-s", HOST, "-p", str(port), "--csv"] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rows = {row["phase"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    if r.returncode != 0 or r.stderr:
        print("$ %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.returncode, rows, r.stderr


def check_run(mode, port, keys, vsize, extra=(), label="measure", get_ratio=0.9):
    """A verified measuring run on a preloaded server; returns its row (or None)."""
    rc, rows, _ = run_load(port, "--keys", keys, "--value-size", vsize, "--secs", 1.5,
                           "--get-ratio", get_ratio, "--verify", *extra)
    c.eq(rc, 0, "[%s] %s: exit code" % (mode, label))
    m = rows.get("measure")
    c.true(m is not None, "[%s] %s: a measure row" % (mode, label))
    if m is None:
        return None
    c.eq(int(m["errors"]), 0, "[%s] %s: no errors" % (mode, label))
    c.eq(int(m["verify_failures"]), 0, "[%s] %s: no verify failures" % (mode, label))
    c.eq(int(m["conn_failures"]), 0, "[%s] %s: no lost connections" % (mode, label))
    c.true(int(m["ops"]) > 0 and float(m["ops_per_s"]) > 0, "[%s] %s: ops > 0" % (mode, label))
    c.true(int(m["gets"]) > 0 and int(m["sets"]) > 0, "[%s] %s: both GETs and SETs" % (mode, label))
    c.eq(int(m["misses"]), 0, "[%s] %s: no misses after the preload" % (mode, label))
    c.eq(m["hit_ratio"], "1.0000", "[%s] %s: hit ratio 1.0" % (mode, label))
    print("[%s] %s: %s ops/s, %s gets, %s sets, p50 %s us, p99 %s us" % (
        mode, label, m["ops_per_s"], m["gets"], m["sets"], m["p50_us"], m["p99_us"]))
    return m


def scenario(mode, server_args, keys, vsize, check_server=None):
    srv = Server(kvs, mode, server_args)
    try:
        before = stats(srv)
        rc, rows, _ = run_load(srv.port, "--keys", keys, "--value-size", vsize, "--preload")
        c.eq(rc, 0, "[%s] preload: exit code" % mode)
        p = rows.get("preload")
        c.true(p is not None, "[%s] preload: a preload row" % mode)
        c.true("measure" not in rows, "[%s] preload without --secs has no measuring phase" % mode)
        if p is not None:
            c.eq(int(p["sets"]), keys, "[%s] preload: one SET per key" % mode)
            c.eq(int(p["errors"]), 0, "[%s] preload: no errors" % mode)
        st = stats(srv)
        c.eq(int(st["curr_items"]), keys, "[%s] preload: curr_items = keys" % mode)
        c.eq(int(st["evictions"]), 0, "[%s] preload: nothing evicted" % mode)
        m = check_run(mode, srv.port, keys, vsize)
        after = stats(srv)
        if m is not None:
            hits = int(after["get_hits"]) - int(before["get_hits"])
            sets = int(after["cmd_set"]) - int(before["cmd_set"])
            c.true(hits >= int(m["hits"]), "[%s] server get_hits %d >= generator hits %s"
                   % (mode, hits, m["hits"]))
            c.true(sets >= keys + int(m["sets"]), "[%s] server cmd_set %d >= preload + generator "
                   "sets %d" % (mode, sets, keys + int(m["sets"])))
            c.eq(int(after["get_misses"]) - int(before["get_misses"]), 0,
                 "[%s] server counted no misses" % mode)
        print("[%s] server: get_hits %s, EPC faults %s, SUVM major faults %s" % (
            mode, after.get("get_hits"), after.get("eleos_epc_faults", "-"),
            after.get("eleos_suvm_major_faults", "-")))
        if check_server is not None:
            check_server(after, srv, keys, vsize)
        if mode == "native":
            # many connections, pipelined, SET-heavy: replies stay matched to requests
            check_run(mode, srv.port, keys, vsize, ("-c", 300, "-T", 2, "--pipeline", 4),
                      "300 conns, pipeline 4, 50% SET", get_ratio=0.5)
    finally:
        rc, out = srv.stop()
        c.eq(rc, 0, "[%s] server exits cleanly" % mode)
        if rc != 0:
            print(out.decode(errors="replace")[-3000:])


try:
    scenario("native", ["-t", "2", "-m", "64", "-c", "1024"], 20000, 1024)
    # 20,000 x 1 KiB values through a 16 MiB SUVM cache in a 32 MiB EPC: SUVM pages.
    scenario("eleos", ["-t", "2", "-m", "48", "--epc", "32", "--suvm-cache", "16"], 20000, 1024)

    # Coordinated SUVM and --rpc auto: an auto-sized SUVM cache in a 16 MiB EPC; SUVM sizes it
    # so the enclave's whole footprint (cache, its metadata, the item headers and hash table)
    # fits the enclave's share, shrinking as the metadata grows with the preload. RPC: on only
    # if the CPUs outnumber 2 server threads + 1 worker - 1.
    def check_coord(st, srv, keys, vsize):
        c.eq(st["eleos_suvm_coordinated"], "1", "[coord] the auto-sized cache is coordinated")
        c.true(int(st["eleos_suvm_resize_shrinks"]) >= 1,
               "[coord] the SUVM cache was shrunk (%s times)" % st["eleos_suvm_resize_shrinks"])
        c.eq(st["eleos_rpc"], "queue", "[auto] the batched I/O path")
        c.eq(st["eleos_io_requested"], "auto", "[auto] the executor left to the queue")
        c.true(all(e in ("uring", "worker") for e in st["eleos_io_executor"].split(",")),
               "[auto] each worker on URING or WORKER (%s)" % st["eleos_io_executor"])
        # Idle, the background evictor's passes apply the last size (each pass is a check):
        # the cache settles on its target, and the target leaves the rest of the footprint
        # and a chunk of headroom inside the share.
        deadline = time.time() + 15
        now = st
        while time.time() < deadline:
            now = stats(srv)
            if now["eleos_suvm_cache_frames"] == now["eleos_suvm_cache_target"]:
                break
            time.sleep(0.2)
        frames, target = int(now["eleos_suvm_cache_frames"]), int(now["eleos_suvm_cache_target"])
        share = int(now["eleos_suvm_epc_share"])
        print("[coord] cache %d frames, target %d, share %d pages, resizes -%s +%s, busy %s" % (
            frames, target, share, now["eleos_suvm_resize_shrinks"],
            now["eleos_suvm_resize_grows"], now["eleos_suvm_resize_busy"]))
        c.eq(frames, target, "[coord] idle: the cache is at its target")
        c.eq(share, (16 << 20) // 4096, "[coord] alone: the share is the enclave's max (--epc)")
        c.true(frames + 64 <= share and frames < (16 << 20) // 4096 - 512,
               "[coord] the cache leaves the metadata room (%d of %d pages)" % (frames, share))
        # Every value still reads back right through the resized cache.
        check_run("eleos", srv.port, keys, vsize, label="after the resizes")

    scenario("eleos", ["-t", "2", "-m", "48", "--epc", "16"], 20000, 1024, check_coord)

    # nothing listening: a port that was free a moment ago
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    rc, rows, err = run_load(port, "--keys", 10, "--secs", 0.5)
    c.eq(rc, 2, "nothing listening: exit code 2")
    c.true("cannot connect to %s:%d" % (HOST, port) in err and "refused" in err,
           "nothing listening: a clear message (%r)" % err.strip())
    c.eq(rows, {}, "nothing listening: no result rows")
    for bad in (["--keys", "0"], ["--get-ratio", "1.5"], ["--keys", "1000000", "--key-size", "8"],
                ["--bogus"]):
        r = subprocess.run([load] + bad, capture_output=True, text=True, timeout=10)
        c.eq(r.returncode, 2, "bad option %s: exit code 2" % " ".join(bad))
except Exception as e:
    import traceback
    traceback.print_exc()
    c.eq(repr(e), None, "no exception")
c.finish()
