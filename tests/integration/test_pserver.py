#!/usr/bin/python3
"""Integration test of eleos-pserver: every mode serves batches correctly (the final table
holds exactly the keys sent), malformed requests close only that connection, and the
enclave modes page a table larger than the EPC without losing an increment; bad option
values are refused. (The ECALLs' own checks are tests/unit/test_pserver_enclave.c.)

usage: test_pserver.py PSERVER LOADGEN"""
import socket
import struct
import subprocess
import sys
import time

SERVER, LOAD = sys.argv[1], sys.argv[2]
failures = 0
passed = 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(mode, *extra):
    port = free_port()
    p = subprocess.Popen([SERVER, "--mode", mode, "-p", str(port), *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for _ in range(20):  # the server's first lines, until it listens
        line = p.stdout.readline()
        seen.append(line)
        if not line or "listening" in line:
            break
    if "listening" not in line:
        p.kill()
        raise RuntimeError(f"server did not start: {seen!r} {p.stdout.read()}")
    p.start_line = "".join(seen)
    return p, port


def stop(p):
    p.send_signal(2)
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out


def check(name, cond, detail=""):
    global failures, passed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failures += 1
        print(f"FAIL {name} {detail}")


def closed_by_server(s):
    """True if the server closed the connection (FIN, or RST when our bytes were unread)."""
    try:
        return s.recv(8) == b""
    except ConnectionResetError:
        return True


def load(port, *args):
    r = subprocess.run([LOAD, "-p", str(port), *args], capture_output=True, text=True,
                       timeout=180)
    return r.returncode, r.stdout + r.stderr


def run_mode(mode, extra, load_args):
    p, port = start(mode, *extra)
    try:
        rc, out = load(port, *load_args, "--verify")
        check(f"{mode} {' '.join(load_args)} verify", rc == 0 and "verify: OK" in out, out)
        # A malformed request (count 0) closes that connection only.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(struct.pack("<II", 1, 0))
        closed = closed_by_server(s)
        s.close()
        check(f"{mode} malformed request closes the connection", closed)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(struct.pack("<II", 9, 1) + struct.pack("<Q", 1))  # unknown op
        check(f"{mode} unknown op closes the connection", closed_by_server(s))
        s.close()
        # The server still answers: a GET of key 0 returns a value.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(struct.pack("<IIQ", 2, 1, 0))
        data = b""
        while len(data) < 8:
            chunk = s.recv(8 - len(data))
            if not chunk:
                break
            data += chunk
        s.close()
        check(f"{mode} server survives bad clients", len(data) == 8)
    finally:
        out = p.start_line + stop(p)
    return out


# Native: 16 MiB table, several clients, small and large batches.
run_mode("native", ["--table", "16"], ["-c", "4", "-b", "64", "-n", "500", "-k", "200000"])
run_mode("native", ["--table", "16"], ["-c", "2", "-b", "65536", "-n", "20", "-k", "2000000"])
# sgx: the table (24 MiB) is three times the EPC (8 MiB): paging under every batch.
out = run_mode("sgx", ["--table", "24", "--epc", "8", "--cost", "off"],
               ["-c", "2", "-b", "4096", "-n", "200", "-k", "3000000"])
check("sgx mode reports syscall exits and EPC faults",
      "syscall exits" in out and "EPC faults" in out, out[-2000:])
faults = [int(l.split("|")[2]) for l in out.splitlines() if "EPC faults (swap-ins)" in l]
check("sgx mode paged the table", faults and faults[0] > 0, out[-2000:])

# eleos: exitless recv/send, table in SUVM: 24 MiB of table over a 4 MiB page cache, so
# most increments take the sub-page path (open and re-seal 256 B in the backing store).
out = run_mode("eleos", ["--table", "24", "--cache", "4", "--epc", "8", "--cost", "off"],
               ["-c", "2", "-b", "4096", "-n", "200", "-k", "3000000"])
check("eleos mode served through exitless RPC", "exitless" in out and "rpc: calls" in out,
      out[-2000:])
calls = [l for l in out.splitlines() if l.startswith("rpc: calls")]
suvm = [l for l in out.splitlines() if l.startswith("suvm:")]
check("eleos mode: table updates went through SUVM sub-pages",
      suvm and int(suvm[0].split("written ")[1].split(",")[0]) > 0
      and "integrity failures 0" in suvm[0], out[-2000:])
check("eleos mode: most calls exitless",
      calls and int(calls[0].split("exitless ")[1].split(",")[0]) > 0, out[-2000:])

# eleos with a table that fits SUVM's cache: page mode and spointers (atomic adds in frames),
# with several clients racing on the same keys.
out = run_mode("eleos", ["--table", "8", "--epc", "93", "--cost", "off"],
               ["-c", "3", "-b", "512", "-n", "300", "-k", "5000"])
check("eleos mode with a cached table uses spointers", "page cache + spointers" in out, out[:300])

# Bad option values are refused with a clear message and exit status 2 (atoi read "abc" as
# 0 and "-1" as a huge unsigned), before any enclave or socket is set up.
for opt, val in [("-p", "70000"), ("-p", "abc"), ("--table", "0"), ("--table", "12x"),
                 ("--workers", "-1"), ("--spin-us", ""), ("--cost", "maybe"),
                 ("--mode", "tdx")]:
    r = subprocess.run([SERVER, opt, val], capture_output=True, text=True, timeout=30)
    check(f"option {opt} {val!r} refused", r.returncode == 2 and opt in r.stderr
          and "bad value" in r.stderr, f"rc {r.returncode}: {r.stderr!r}")

print(f"{passed} passed, {failures} failed")
sys.exit(1 if failures else 0)
