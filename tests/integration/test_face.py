#!/usr/bin/python3
"""Integration test of eleos-face on a few synthetic identities: every mode (native, sgx,
eleos with bulk and with direct SUVM access, and sgx/eleos with an EPC smaller than the
database so the emulator pages it) answers a genuine/impostor mix that the client verifies
bit for bit, with TPR 1 and FPR 0 at the default threshold; every kind of bad request
(tampered, wrong key, unknown client, unknown identity, replay, truncated, bad frame) gets
its error reply and the server keeps serving; the server counts them; eleos mode serves on its
default I/O queue, on each forced executor and with one-call-at-a-time RPC; bad set-up input
(a malformed key file, a malformed or missing image) fails with a clear message.

usage: test_face.py SERVER LOADGEN GENERATOR"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

SERVER, LOAD, GEN = sys.argv[1:4]
IDS = 6
failures = 0
passed = 0
ATTACKS = {"tamper": "auth", "wrong-key": "auth", "unknown-client": "client",
           "unknown-identity": "identity", "replay": "replay", "truncate": "truncated",
           "bad-frame": "frame"}


def check(cond, what):
    global failures, passed
    if cond:
        passed += 1
    else:
        failures += 1
        print("FAIL:", what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(data, *extra, keys=None):
    port = free_port()
    p = subprocess.Popen([SERVER, "--db", data, "--keys", keys or f"{data}/keys",
                          "-p", str(port), *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    while True:
        line = p.stdout.readline()
        seen.append(line)
        if not line or "listening" in line:
            break
    if "listening" not in line:
        p.wait(timeout=30)
        return None, port, "".join(seen)
    return p, port, "".join(seen)


def stop(p):
    p.send_signal(2)
    out, _ = p.communicate(timeout=60)
    return out


def load(data, port, *extra):
    r = subprocess.run([LOAD, "--data", data, "-p", str(port), *extra],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def serve_and_check(data, name, *extra):
    p, port, start_out = start(data, *extra)
    check(p is not None, f"{name}: server starts: {start_out}")
    if p is None:
        return
    rc, out = load(data, port, "--threads", "3", "--requests", "60", "--verify")
    check(rc == 0, f"{name}: load with --verify: {out}")
    check("verified 60 answers, 0 mismatches" in out, f"{name}: all verified: {out}")
    check("TPR 1.0000" in out and "FPR 0.0000" in out, f"{name}: accuracy: {out}")
    for attack in ATTACKS:
        rc, out = load(data, port, "--attack", attack)
        check(rc == 0, f"{name}: attack {attack} refused, server alive: {out}")
    final = stop(p)
    m = re.search(r"requests (\d+), accepted (\d+), rejected (\d+); refused: frame (\d+), "
                  r"client (\d+), auth (\d+), replay (\d+), identity (\d+), truncated (\d+)",
                  final)
    check(m is not None, f"{name}: final statistics: {final[-2000:]}")
    if m:
        v = [int(x) for x in m.groups()]
        # 60 load requests + 7 good requests after the attacks + the replay's first copy.
        check(v[1] + v[2] == 60 + 7 + 1, f"{name}: decided requests {v}")
        check(v[3:] == [1, 1, 2, 1, 1, 1], f"{name}: refusals by kind {v}")
    return start_out + final


def main():
    tmp = tempfile.mkdtemp(prefix="eleos-face-test-")
    try:
        data = os.path.join(tmp, "data")
        subprocess.run([GEN, "--out", data, "--identities", str(IDS), "--clients", "4",
                        "--seed", "7"], check=True, capture_output=True, timeout=120)
        serve_and_check(data, "native", "--mode", "native")
        serve_and_check(data, "sgx", "--mode", "sgx")
        # 6 identities = 2.7 MiB: a 1 MiB EPC pages the database on every request.
        out = serve_and_check(data, "sgx-paged", "--mode", "sgx", "--epc", "1")
        check(out and re.search(r"epc faults [1-9]", out), f"sgx-paged: EPC faults: {out}")
        out = serve_and_check(data, "eleos-bulk", "--mode", "eleos", "--access", "bulk")
        check(out and "bulk (page cache)" in out, "eleos-bulk: access mode named")
        check(out and "io path queue (i/o queue, auto executor)" in out,
              f"eleos: the queue is the default: {out}")
        out = serve_and_check(data, "eleos-direct", "--mode", "eleos", "--suvm-cache", "1",
                              "--epc", "8")
        check(out and "direct (1 KiB sub-pages)" in out, "eleos-direct: access mode named")
        check(out and re.search(r"sub-pages opened [1-9]", out), f"eleos-direct: {out}")
        serve_and_check(data, "eleos-exits", "--mode", "eleos", "--rpc", "off")
        out = serve_and_check(data, "eleos-sync", "--mode", "eleos", "--rpc", "sync")
        check(out and "io path sync" in out, f"eleos-sync: path named: {out}")
        # The queue (eleos mode's default) on each executor this kernel has; batch needs no
        # io_uring and comes back short, so it exercises the partial-receive paths.
        for ex in ("uring", "worker", "batch"):
            out = serve_and_check(data, f"eleos-queue-{ex}", "--mode", "eleos", "--rpc", ex)
            check(out and f"i/o queue, {ex} executor" in out, f"queue {ex}: named: {out}")
            check(out and re.search(r"i/o queue: .*host faults 0", out),
                  f"queue {ex}: statistics: {out}")
        bad_setup(tmp, data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_face: {passed} checks passed, {failures} failed")
    return 1 if failures else 0


def bad_setup(tmp, data):
    bad_keys = os.path.join(tmp, "badkeys")
    with open(bad_keys, "w") as f:
        f.write("1 00112233\n")
    for mode in ("native", "sgx", "eleos"):
        p, _, out = start(data, "--mode", mode, keys=bad_keys)
        check(p is None and "malformed line 1" in out, f"{mode}: bad key file: {out}")
    broken = os.path.join(tmp, "broken")
    shutil.copytree(data, broken)
    with open(os.path.join(broken, "00002_b.pgm"), "r+b") as f:
        f.truncate(1000)
    p, _, out = start(broken, "--mode", "sgx")
    check(p is None and "00002_b.pgm: not a 512 x 512" in out, f"short image: {out}")
    os.remove(os.path.join(broken, "00003_a.pgm"))
    p, _, out = start(broken, "--mode", "native", "--identities", "5")
    check(p is None and "00002_b.pgm" in out, f"missing image: {out}")
    p, _, out = start(data, "--mode", "native", "--threshold", "-1")
    check(p is None and "bad value" in out, f"bad threshold: {out}")


if __name__ == "__main__":
    sys.exit(main())
