#!/usr/bin/python3
"""The multi-enclave experiment: 1, 2 and 4 enclaves, each a process of its own, share one
platform EPC of 93 MiB (a named platform of this run, so nothing else on the machine
competes), each with a working set of 1-1.5x the EPC, in three configurations:

  sgx     the data on the enclave heap, paged by the emulated driver
  fixed   SUVM, each cache sized as if its enclave were alone (uncoordinated)
  coord   SUVM coordinated with the platform: each cache follows its enclave's share

(a) suvm: bench_suvm_multi, random 4 KiB item reads for SECS seconds (all enclaves start
    together), 116 MiB (1.25x the EPC) per enclave; plus one enclave holding the total data
    of the 2- and 4-enclave runs (232 and 464 MiB), the baseline of "no collapse".
(b) kvs: eleos-kvs instances (-t 1) under eleos-kvs-load's uniform load (90 % GET, 1 KiB
    values, one client thread and 4 connections each), 93 MiB of values (1x the EPC) each;
    fixed = --suvm-cache 56 (what the cache would be alone), coord = the default auto size.

Per run: aggregate and per-enclave throughput, EPC faults (swap-ins of the emulated driver)
and SUVM major faults during the measurement, the SUVM cache size at the end.

usage: bench/bench_multi.py BUILD_DIR [--quick] [--csv FILE] [--secs S] [--part suvm|kvs|all]
  --quick: 1 and 4 enclaves (and the 4x single baseline), 2 s runs, a couple of minutes;
  default: 1, 2 and 4 enclaves, 4 s runs, about 8 minutes.
Exit 1 if a run failed or read wrong data.
"""
import argparse
import csv
import os
import socket
import subprocess
import sys
import threading
import time

EPC_MIB = 93
SUVM_MIB = 116          # 1.25x the EPC per enclave
KVS_KEYS = 95232        # 93 MiB of 1 KiB values per instance (1x the EPC)
KVS_VSIZE = 1024
KVS_KEY_SIZE = 64
KVS_FIXED_CACHE = 56    # eleos-kvs's cache alone in a 93 MiB EPC (docs/kvs.md)
MODES = ("sgx", "fixed", "coord")
FIELDS = ["part", "mode", "enclaves", "mib_each", "total_mib", "secs", "agg_ops_per_s",
          "per_enclave_ops_per_s", "min_ops_per_s", "max_ops_per_s", "epc_faults",
          "suvm_major", "cache_mib", "bad"]

seq = 0
RUN_LIMIT_S = 600       # a run that takes longer is killed (a hung enclave must not hang make bench)


def platform(tag):
    global seq
    seq += 1
    return "bench-multi-%d-%d-%s" % (os.getpid(), seq, tag)


def env_for(plat):
    e = dict(os.environ)
    e["ELEOS_EPC_PLATFORM"] = plat
    e["ELEOS_EPC_CAPACITY"] = "%dM" % EPC_MIB
    return e


def watchdog(procs):
    """Kills procs (a list that may still grow) after RUN_LIMIT_S; cancel() when done."""
    t = threading.Timer(RUN_LIMIT_S, lambda: [p.kill() for p in list(procs) if p.poll() is None])
    t.daemon = True
    t.start()
    return t


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def row(part, mode, n, mib_each, secs, per, epcf, major, cache, bad):
    agg = sum(per)
    return {"part": part, "mode": mode, "enclaves": n, "mib_each": mib_each,
            "total_mib": n * mib_each, "secs": secs, "agg_ops_per_s": round(agg),
            "per_enclave_ops_per_s": ";".join(str(round(x)) for x in per),
            "min_ops_per_s": round(min(per)), "max_ops_per_s": round(max(per)),
            "epc_faults": epcf, "suvm_major": major,
            "cache_mib": "%.1f" % cache if cache is not None else "", "bad": bad}


# --- (a) the SUVM microbenchmark --------------------------------------------------------------

def suvm_run(binary, mode, n, mib, secs):
    plat = platform("suvm")
    cmd = [binary, "--platform", plat, "--mode", mode, "--mib", str(mib), "--seconds",
           str(secs), "--capacity", str(EPC_MIB)]
    procs = []
    dog = watchdog(procs)
    try:
        for i in range(n):
            procs.append(subprocess.Popen(cmd + ["--seed", str(i + 1)], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True))
        for p in procs:  # every enclave loaded before anyone measures
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError("%s: no ready line (%r)" % (mode, line))
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        res = []
        for p in procs:
            out = p.stdout.readline()
            p.wait(timeout=600)
            kv = dict(f.split("=", 1) for f in out.split())
            if p.returncode != 0 or "ops_per_s" not in kv:
                raise RuntimeError("%s: exit %s, %r" % (mode, p.returncode, out))
            res.append(kv)
    finally:
        dog.cancel()
        kill_all(procs)
    per = [float(r["ops_per_s"]) for r in res]
    cache = (sum(float(r["cache_mib"]) for r in res) / n) if mode != "sgx" else None
    return row("suvm", mode, n, mib, secs, per, sum(int(r["epc_faults"]) for r in res),
               sum(int(r["suvm_major"]) for r in res), cache, sum(int(r["bad"]) for r in res))


# --- (b) eleos-kvs ------------------------------------------------------------------------------

def kvs_stats(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    st = {}
    for line in buf.decode(errors="replace").splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == "STAT":
            st[f[1]] = f[2]
    return st


def kvs_start(kvs, mode, plat, procs):
    mem = int(KVS_KEYS * (KVS_VSIZE + KVS_KEY_SIZE + 59) * 1.25 / 1048576 * 1.3) + 16
    args = [kvs, "-p", "0", "-t", "1", "-m", str(mem), "-c", "256", "-u", "root",
            "--epc", str(EPC_MIB)]
    if mode == "sgx":
        args += ["--mode", "sgx"]
    elif mode == "fixed":
        args += ["--mode", "eleos", "--suvm-cache", str(KVS_FIXED_CACHE)]
    else:
        args += ["--mode", "eleos"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=env_for(plat))
    procs.append(p)  # under the watchdog while it starts
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith("listening on "):
            return p, int(line.strip().rsplit(":", 1)[1])
    p.kill()
    raise RuntimeError("eleos-kvs %s did not start" % mode)


def kvs_load(load, port, extra):
    return subprocess.Popen([load, "-s", "127.0.0.1", "-p", str(port), "-T", "1", "-c", "4",
                             "--keys", str(KVS_KEYS), "--value-size", str(KVS_VSIZE),
                             "--key-size", str(KVS_KEY_SIZE), "--timeout", "120", "--csv"]
                            + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load_rows(p):
    out, err = p.communicate(timeout=900)
    rows = list(csv.DictReader(out.splitlines()))
    if p.returncode != 0 or not rows:
        raise RuntimeError("eleos-kvs-load: exit %s: %s" % (p.returncode, err.strip()[-300:]))
    return rows[-1]


def kvs_run(kvs, load, mode, n, secs):
    plat = platform("kvs")
    servers, procs = [], []
    dog = watchdog(procs)
    try:
        for _ in range(n):
            servers.append(kvs_start(kvs, mode, plat, procs))
        loads = [kvs_load(load, port, ["--preload"]) for _, port in servers]
        procs.extend(loads)
        for p in loads:
            load_rows(p)
        before = [kvs_stats(port) for _, port in servers]
        loads = [kvs_load(load, port, ["--secs", str(secs), "--get-ratio", "0.9"])
                 for _, port in servers]
        procs.extend(loads)
        rows = [load_rows(p) for p in loads]
        after = [kvs_stats(port) for _, port in servers]
    finally:
        dog.cancel()
        for p, _ in servers:
            p.terminate()
        kill_all(procs)

    def delta(k):
        return sum(int(a.get(k, 0)) - int(b.get(k, 0)) for a, b in zip(after, before))
    per = [float(r["ops_per_s"]) for r in rows]
    bad = sum(int(r["errors"]) + int(r["verify_failures"]) + int(r["conn_failures"]) for r in rows)
    cache = None
    if mode != "sgx":
        cache = sum(int(a.get("eleos_suvm_cache_frames", 0)) for a in after) * 4096 / 1048576 / n
    return row("kvs", mode, n, KVS_KEYS * KVS_VSIZE >> 20, secs, per, delta("eleos_epc_faults"),
               delta("eleos_suvm_major_faults"), cache, bad)


# --- driver -----------------------------------------------------------------------------------

def show(r):
    print("%-4s %-5s %d x %4d MiB: %9.0f ops/s aggregate (per enclave %s), EPC faults %d, "
          "SUVM major %d, cache %s MiB%s" % (
              r["part"], r["mode"], r["enclaves"], r["mib_each"], r["agg_ops_per_s"],
              r["per_enclave_ops_per_s"], r["epc_faults"], r["suvm_major"],
              r["cache_mib"] or "-", ", BAD %d" % r["bad"] if r["bad"] else ""), flush=True)


def summary(rows):
    def agg(part, mode, n, mib):
        for r in rows:
            if (r["part"], r["mode"], r["enclaves"], r["mib_each"]) == (part, mode, n, mib):
                return r["agg_ops_per_s"]
        return None
    for part, mib in (("suvm", SUVM_MIB), ("kvs", KVS_KEYS * KVS_VSIZE >> 20)):
        c4, f4 = agg(part, "coord", 4, mib), agg(part, "fixed", 4, mib)
        if c4 and f4:
            print("# %s: coordinated / uncoordinated at 4 enclaves: %.2fx (target >= 3x)"
                  % (part, c4 / f4))
        one = agg(part, "coord", 1, 4 * mib)
        if c4 and one:
            print("# %s: coordinated, 4 enclaves / 1 enclave on the same total data: %.2fx "
                  "(target >= 0.8x)" % (part, c4 / one))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv")
    ap.add_argument("--secs", type=float)
    ap.add_argument("--part", choices=("suvm", "kvs", "all"), default="all")
    a = ap.parse_args()
    secs = a.secs or (2 if a.quick else 4)
    counts = (1, 4) if a.quick else (1, 2, 4)
    binary = os.path.join(a.build, "bench", "bench_suvm_multi")
    kvs = os.path.join(a.build, "apps", "kvs", "eleos-kvs")
    load = os.path.join(a.build, "tools", "eleos-kvs-load")
    print("# multi-enclave: platform EPC %d MiB shared by separate processes; %s s per run; "
          "load at start %s" % (EPC_MIB, secs, open("/proc/loadavg").read().split()[0]))
    rows, failed = [], False
    plan = []
    if a.part in ("suvm", "all"):
        for mode in MODES:
            for n in counts:
                plan.append(("suvm", mode, n, SUVM_MIB))
            for k in counts[1:]:  # one enclave holding the k-enclave total
                plan.append(("suvm", mode, 1, k * SUVM_MIB))
    if a.part in ("kvs", "all"):
        for mode in MODES:
            for n in counts:
                plan.append(("kvs", mode, n, None))
    for part, mode, n, mib in plan:
        try:
            r = suvm_run(binary, mode, n, mib, secs) if part == "suvm" else \
                kvs_run(kvs, load, mode, n, secs)
        except Exception as e:  # one failed run must not lose the others
            print("# %s %s x%d failed: %s" % (part, mode, n, e), flush=True)
            failed = True
            continue
        failed |= r["bad"] != 0
        show(r)
        rows.append(r)
    summary(rows)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            w.writerows(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
