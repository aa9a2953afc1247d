"""eleos-kvs: 1,000 concurrent connections, clients that disconnect mid-command, the -c
connection limit, and pipelined requests.

usage: test_kvs_conns.py ELEOS_KVS [native|sgx|eleos] [server args...]
"""
import os
import resource
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import (SKIP, Checker, Server, connect, exchange, parse_args,  # noqa: E402
                             recv_until, stats, wait_for)

NCONN = 1000

binary, mode, extra = parse_args()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = NCONN + 200
if hard != resource.RLIM_INFINITY and hard < want:
    print("SKIP: RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    sys.exit(SKIP)
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

c = Checker("test_kvs_conns[%s]" % mode)
srv = Server(binary, mode, ["-c", str(NCONN + 100), "-t", "4"] + extra)
try:
    # --- 1,000 connections open at once, each storing and reading its own key ----------
    socks = [connect(srv, timeout=20) for _ in range(NCONN)]
    for i, s in enumerate(socks):
        v = b"value-%d" % i
        s.sendall(b"set conn%d 0 0 %d\r\n%s\r\n" % (i, len(v), v))
    ok = sum(recv_until(s, b"\r\n", timeout=20) == b"STORED\r\n" for s in socks)
    c.eq(ok, NCONN, "STORED on every one of %d concurrent connections" % NCONN)
    st = stats(srv)
    c.true(int(st["curr_connections"]) >= NCONN, "curr_connections >= %d (got %s)" % (NCONN, st["curr_connections"]))
    for i, s in enumerate(socks):
        s.sendall(b"get conn%d\r\n" % ((i + 1) % NCONN))
    good = 0
    for i, s in enumerate(socks):
        j = (i + 1) % NCONN
        v = b"value-%d" % j
        if recv_until(s, b"END\r\n", timeout=20) == b"VALUE conn%d 0 %d\r\n%s\r\nEND\r\n" % (j, len(v), v):
            good += 1
    c.eq(good, NCONN, "every connection reads another connection's key")
    for s in socks:
        s.close()

    # --- clients that disconnect mid-command ---------------------------------------------
    partials = [b"set half 0 0 10\r\nabc", b"set hdr 0 0", b"get key-without-newline",
                b"set big 0 0 1000000\r\n" + b"x" * 500000, b"set sw 0 0 2000000\r\n" + b"y" * 1000,
                b"get " + b"k " * 2000, b"incr", b"\r\n\r\nset"]
    for data in partials * 5:
        s = connect(srv)
        s.sendall(data)
        s.close()
    # also: reset connections (RST) in the middle of a value
    for _ in range(5):
        s = connect(srv)
        s.sendall(b"set rst 0 0 100000\r\n" + b"z" * 50000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    got = exchange(srv, b"get half big rst sw\r\n", end=b"END\r\n")
    c.eq(got, b"END\r\n", "half-received values are never stored")
    c.true(wait_for(lambda: int(stats(srv)["curr_connections"]) <= 1),
           "disconnected clients are closed (curr_connections back to 1)")

    # --- pipelining: many commands in one write, replies in order -------------------------
    s = connect(srv)
    n = 2000
    s.sendall(b"".join(b"set p%d 0 0 1 noreply\r\n%d\r\n" % (i, i % 10) for i in range(n)) +
              b"".join(b"get p%d\r\n" % i for i in range(n)))
    want = b"".join(b"VALUE p%d 0 1\r\n%d\r\nEND\r\n" % (i, i % 10) for i in range(n))
    c.eq(recv_until(s, want[-20:], timeout=30), want, "%d pipelined gets answered in order" % n)
    s.close()
except Exception as e:
    import traceback
    traceback.print_exc()
    c.eq(repr(e), None, "no exception")

# --- the -c limit: a second, small server ---------------------------------------------
try:
    rc, out = srv.stop()
    c.eq(rc, 0, "server exits cleanly on SIGTERM")
    c.true(b"eleos-kvs statistics" in out, "server prints its statistics on exit")
    small = Server(binary, mode, ["-c", "10", "-t", "1"] + extra)
    held = [connect(small) for _ in range(10)]
    for s in held:
        s.sendall(b"version\r\n")
        recv_until(s, b"\r\n")
    extra_conn = connect(small)
    c.eq(recv_until(extra_conn, b"\r\n"), b"ERROR Too many open connections\r\n", "connection over -c is refused")
    extra_conn.close()
    for s in held:
        s.close()
    c.true(wait_for(lambda: int(stats(small)["rejected_connections"]) >= 1),
           "rejected_connections counted, server usable again after clients left")
    srv = small
except Exception as e:
    import traceback
    traceback.print_exc()
    c.eq(repr(e), None, "no exception (-c)")
    if "small" in globals() and srv is not small:
        small.kill()  # never leave a server behind
c.finish(srv)
