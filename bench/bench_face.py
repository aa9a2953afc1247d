#!/usr/bin/python3
"""The face-verification experiment (docs/face.md): requests/s of eleos-face against the
database size (0.5x, 1x, 2x and 5x the EPC), modes native / sgx / eleos, the cost model on
and off, with the SUVM access mode, faults and exits per request and the accuracy.

The synthetic data set is generated once and kept under BUILD/face-data-* (bench/run.sh
clears bench/out on every run), so later runs reuse it. Full: the 93 MiB EPC and the
original's 994 identities (about 470 MB enrolled) at 5x; --quick: an 8 MiB EPC (5 MiB SUVM
cache) and proportionally fewer identities, the same ratios in a couple of minutes.

Eleos mode runs on its default I/O path (the batched queue, executor picked at run time) and,
as "eleos-sync", on the one-call-at-a-time exitless RPC it used before, side by side. Each
configuration runs --runs times (default 3 with --quick, else 1), interleaved, and the summary
gives medians.

usage: bench_face.py BUILD_DIR [--quick] [--runs N] [--csv FILE]"""
import csv
import statistics
import os
import re
import socket
import subprocess
import sys
import time

build = sys.argv[1]
quick = "--quick" in sys.argv
csv_path = sys.argv[sys.argv.index("--csv") + 1] if "--csv" in sys.argv else None
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else (3 if quick else 1)
# (label, mode, model, extra server flags)
CONFIGS = [("native", "native", "-", []), ("sgx", "sgx", "on", []),
           ("eleos", "eleos", "on", []), ("eleos-sync", "eleos", "on", ["--rpc", "sync"]),
           ("sgx", "sgx", "off", []), ("eleos", "eleos", "off", []),
           ("eleos-sync", "eleos", "off", ["--rpc", "sync"])]
HIST = 237568
if quick:
    EPC, CACHE, THREADS, REQUESTS = 8, 5, 8, 400
else:
    EPC, CACHE, THREADS, REQUESTS = 93, 60, 100, 3000
FACTORS = [0.5, 1, 2, 5]
# Identities for factor x: x * EPC of histograms, two per identity; 5x is the original's 994.
ids_for = {f: max(2, round(f * EPC * 2**20 / (2 * HIST))) for f in FACTORS}
if not quick:
    ids_for[5] = 994
NMAX = max(ids_for.values())


def binary(name):
    for root, _, files in os.walk(build):
        if name in files:
            return os.path.join(root, name)
    sys.exit(f"bench_face: {name} not built in {build}")


SERVER, LOAD, GEN = binary("eleos-face"), binary("eleos-face-load"), binary("eleos-face-gen")


def dataset():
    d = os.path.join(build, f"face-data-s1-n{NMAX}")
    stamp = os.path.join(d, "complete")
    if not os.path.exists(stamp):
        t = time.time()
        subprocess.run([GEN, "--out", d, "--identities", str(NMAX), "--seed", "1"], check=True)
        open(stamp, "w").write("eleos-face-gen --seed 1\n")
        print(f"# generated {NMAX} identities in {time.time() - t:.0f} s", flush=True)
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def num(pattern, text, default=""):
    m = re.search(pattern, text)
    return m.group(1) if m else default


def run(data, label, mode, model, extra, ids):
    port = free_port()
    cmd = [SERVER, "--mode", mode, "--db", data, "--keys", f"{data}/keys", "--identities",
           str(ids), "-p", str(port)]
    if mode != "native":
        cmd += ["--epc", str(EPC), "--cost", model]
    if mode == "eleos":
        cmd += ["--suvm-cache", str(CACHE)]
    cmd += extra
    t = time.time()
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    head = ""
    while "listening" not in head:
        line = srv.stdout.readline()
        if not line:
            raise RuntimeError(f"server failed: {head}")
        head += line
    enrol_s = time.time() - t
    r = subprocess.run([LOAD, "--data", data, "-p", str(port), "--identities", str(ids),
                        "--threads", str(THREADS), "--requests", str(REQUESTS)],
                       capture_output=True, text=True, timeout=1800)
    srv.send_signal(2)
    tail, _ = srv.communicate(timeout=120)
    out = r.stdout + r.stderr
    access = num(r"suvm, (bulk|direct)", head, "-") if mode == "eleos" else "-"
    return {
        "set": "quick" if quick else "full", "epc_mib": EPC, "identities": ids,
        "db_mib": f"{2 * ids * HIST / 2**20:.1f}",
        "db_over_epc": f"{2 * ids * HIST / 2**20 / EPC:.2f}", "mode": label,
        "model": model if mode != "native" else "-", "access": access,
        "io": num(r"io path (\w+ \([^)]*\))", head, "-").replace(" ", "_"),
        "req_per_s": num(r"([\d.]+) requests/s", out), "p50_us": num(r"p50 (\d+) us", out),
        "p99_us": num(r"p99 (\d+) us", out), "tpr": num(r"TPR ([\d.]+)", out),
        "fpr": num(r"FPR ([\d.]+)", out), "errors": num(r"errors (\d+)", out),
        "epc_faults_per_req": num(r"epc faults ([\d.]+)", tail, "0"),
        "suvm_faults_per_req": num(r"suvm major faults ([\d.]+)", tail, "0"),
        "subpages_per_req": num(r"sub-pages opened ([\d.]+)", tail, "0"),
        "exits_per_req": num(r"exits ([\d.]+)", tail, "0"),
        "ioq_exec": num(r"workers ending on ([a-z0-9 ]+)", tail, "-").strip().replace(" ", ":"),
        "enrol_s": f"{enrol_s:.1f}",
    }


def summary(rows):
    """Medians per configuration and size, then the ratios the targets are stated in."""
    med = {}
    for f in FACTORS:
        for label, _, model, _ in CONFIGS:
            got = [r for r in rows if r["identities"] == ids_for[f] and r["mode"] == label
                   and r["model"] == (model if label != "native" else "-")]
            if got:
                v = statistics.median(float(r["req_per_s"] or 0) for r in got)
                ex = statistics.median(float(r["exits_per_req"] or 0) for r in got)
                med[(f, label, model)] = v
                print(f"# median {f}x EPC {label:10s} model {model:3s}: {v:8.1f} req/s, "
                      f"{ex:.2f} exits/req, access {got[0]['access']}, io {got[0]['io']} "
                      f"{got[0]['ioq_exec']} ({len(got)} runs)")
    for f in FACTORS:
        nat = med.get((f, "native", "-"), 0)
        for model in ("on", "off"):
            sgx = med.get((f, "sgx", model), 0)
            for label in ("eleos", "eleos-sync"):
                e = med.get((f, label, model), 0)
                print(f"# {f}x EPC, model {model}: {label}/sgx {e / sgx if sgx else 0:.2f}, "
                      f"{label}/native {e / nat if nat else 0:.2f}")


def main():
    data = dataset()
    rows = []
    for f in FACTORS:
        ids = ids_for[f]
        for _ in range(RUNS):
            for label, mode, model, extra in CONFIGS:
                row = run(data, label, mode, model, extra, ids)
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    summary(rows)
    if csv_path:
        with open(csv_path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
