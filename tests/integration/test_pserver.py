#!/usr/bin/python3
"""Integration test of eleos-pserver: every mode serves batches correctly (the final table
holds exactly the keys sent), malformed requests close only that connection, and the
enclave modes page a table larger than the EPC without losing an increment; bad option
values are refused. Every I/O path: exits (sgx), the one-call-at-a-time exitless RPC
(--rpc sync), and the I/O queue (eleos mode's default, auto, and the uring, worker and batch
executors forced), each with pipelined, dribbled and half-closed clients as well as the
load generator. (The ECALLs' own checks are tests/unit/test_pserver_enclave.c.)

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


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def framing(name, port):
    """Requests that arrive several to a segment, a byte at a time, or followed by the
    client's half-close are answered in order, each exactly once; a bad request after good
    ones in the same segment gets the good ones answered, then the connection closed."""
    key = 7777
    inc = struct.pack("<IIQ", 1, 1, key)
    get = struct.pack("<IIQ", 2, 1, key)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(get + inc * 3 + get)
    rep = struct.unpack("<5Q", recv_exact(s, 40))
    check(f"{name} pipelined requests answered in order",
          rep[1:4] == (1, 1, 1) and rep[4] == rep[0] + 3, rep)
    base = rep[4]
    for b in inc + get:  # one byte per segment
        s.send(bytes([b]))
        time.sleep(0.002)
    rep = struct.unpack("<2Q", recv_exact(s, 16))
    check(f"{name} dribbled requests", rep == (1, base + 1), rep)
    s.sendall(inc + get)
    s.shutdown(socket.SHUT_WR)
    data = recv_exact(s, 17)
    check(f"{name} half-closed client gets its replies, then EOF",
          data == struct.pack("<2Q", 1, base + 2), data)
    s.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(inc + get + struct.pack("<II", 1, 0))
    data = recv_exact(s, 24)
    check(f"{name} replies before a malformed request, then close",
          data == struct.pack("<2Q", 1, base + 3), data)
    s.close()


def run_mode(mode, extra, load_args):
    p, port = start(mode, *extra)
    name = " ".join([mode] + extra[extra.index("--rpc"):][:2] if "--rpc" in extra else [mode])
    try:
        rc, out = load(port, *load_args, "--verify")
        check(f"{name} {' '.join(load_args)} verify", rc == 0 and "verify: OK" in out, out)
        framing(name, port)
        # A malformed request (count 0) closes that connection only.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(struct.pack("<II", 1, 0))
        closed = closed_by_server(s)
        s.close()
        check(f"{name} malformed request closes the connection", closed)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(struct.pack("<II", 9, 1) + struct.pack("<Q", 1))  # unknown op
        check(f"{name} unknown op closes the connection", closed_by_server(s))
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
        check(f"{name} server survives bad clients", len(data) == 8)
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

def ioq_stats(out):
    """The queue's counters from the final statistics, as a dict (empty if absent)."""
    st = {}
    for line in out.splitlines():
        if line.startswith("ioq: executor "):
            st["asked"] = line.split()[2].rstrip(";")
            for key in ("connections", "ops", "completions", "exits", "spins", "polled",
                        "host faults", "bad results"):
                words = line.replace(",", " ").replace("(", " ").split()
                k = key.split()
                for i in range(len(words) - len(k)):
                    if words[i:i + len(k)] == k and key != "connections":
                        st[key] = int(words[i + len(k)])
                    if key == "connections" and words[i + 1:i + 2] == ["connections"]:
                        st[key] = int(words[i])
        if line.startswith("ioq: ops by executor: "):
            by, fin = line[len("ioq: ops by executor: "):].split("; executor in effect at close: ")
            st["by"] = {w.split()[0]: int(w.split()[1]) for w in by.split(", ")}
            st["final"] = {w.split()[0]: int(w.split()[1]) for w in fin.split(", ")}
    return st


# eleos, the I/O queue with each executor forced (and auto, the default): every request and
# reply on the connection's queue; the uring and batch executors exit about once per pass
# (a send and the next receive), the worker's waits are mostly met by polling the ring.
for ex, extra in [("auto", []), ("uring", ["--rpc", "uring"]), ("worker", ["--rpc", "worker"]),
                  ("batch", ["--rpc", "batch"])]:
    out = run_mode("eleos", ["--table", "8", "--epc", "93", "--cost", "off", *extra],
                   ["-c", "2", "-b", "64", "-n", "1000", "-k", "100000"])
    st = ioq_stats(out)
    name = f"eleos --rpc {ex}"
    check(f"{name}: start-up line names the queue and its executor",
          f"io path queue (ioq {ex})" in out, out[:400])
    # Eight connections; the counters are summed as connections close, and the last ones
    # may still be closing when the server stops.
    check(f"{name}: queue statistics reported", st.get("asked") == ex and
          st.get("connections", 0) >= 6 and st.get("ops", 0) > 4000
          and st.get("completions") == st.get("ops"), out[-1500:])
    check(f"{name}: no host faults", st.get("host faults") == 0 and st.get("bad results") == 0,
          out[-1500:])
    if ex != "auto":
        check(f"{name}: every operation on {ex}", st.get("by", {}).get(ex) == st.get("ops")
              and st.get("final", {}).get(ex) == st.get("connections"), out[-1500:])
    if ex in ("uring", "batch"):
        # 2000 requests of the load generator: a send and a receive per exit.
        check(f"{name}: one exit per request served", st.get("exits", 1e9) < 0.6 * st["ops"],
              out[-1500:])
    if ex == "worker":
        check(f"{name}: waits met by spinning or polling, without an exit",
              st.get("spins", 0) + st.get("polled", 0) > 0, out[-1500:])

# The I/O queue with a table larger than SUVM's cache and large batches: replies of 64 KiB
# (the verification's GETs) on the batch executor, whose sends may come back short.
out = run_mode("eleos", ["--table", "24", "--cache", "4", "--epc", "8", "--cost", "off",
                         "--rpc", "batch"], ["-c", "2", "-b", "4096", "-n", "100", "-k", "3000000"])
check("eleos --rpc batch: large batches, no host faults",
      ioq_stats(out).get("host faults") == 0, out[-1500:])

# eleos, --rpc sync: exitless recv/send one call at a time, table in SUVM: 24 MiB of table
# over a 4 MiB page cache, so most increments take the sub-page path (open and re-seal 256 B
# in the backing store).
out = run_mode("eleos", ["--table", "24", "--cache", "4", "--epc", "8", "--cost", "off",
                         "--rpc", "sync"], ["-c", "2", "-b", "4096", "-n", "200", "-k", "3000000"])
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
                 ("--rpc", "fast"), ("--mode", "tdx")]:
    r = subprocess.run([SERVER, opt, val], capture_output=True, text=True, timeout=30)
    check(f"option {opt} {val!r} refused", r.returncode == 2 and opt in r.stderr
          and "bad value" in r.stderr, f"rc {r.returncode}: {r.stderr!r}")

print(f"{passed} passed, {failures} failed")
sys.exit(1 if failures else 0)
