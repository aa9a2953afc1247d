"""eleos-kvs --consolidate: connections gathered on fewer workers keep working.

With --consolidate on and a light load, the four workers' connections are gathered on
one: each connection's receive is cancelled and the connection handed to another worker,
with whatever it had half-received. Checks every reply across the moves, a command split
around them, the counters in `stats`, and that a bad value is refused. Then a load that
ends (its last connection closes) while spread: the next load starts on one worker at
once, without moves (the decision steps down one worker per hold otherwise).

usage: test_kvs_gather.py ELEOS_KVS eleos [server args...]
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import Checker, Server, connect, recv_until, stats  # noqa: E402

binary, mode = sys.argv[1], sys.argv[2]
extra = sys.argv[3:]
c = Checker("test_kvs_gather[%s]" % mode)

r = subprocess.run([binary, "--mode", mode, "--consolidate", "sideways", "-p", "0"],
                   capture_output=True, timeout=30)
c.eq(r.returncode, 2, "--consolidate sideways is refused with status 2")
c.true(b"--consolidate" in r.stderr, "and the message names the option")

srv = Server(binary, mode, ["-t", "4", "--consolidate", "on"] + extra)
NCONN = 12
socks = [connect(srv) for _ in range(NCONN)]
# two connections hold half a command while the others move
halves = socks[:2]
for i, s in enumerate(halves):
    s.sendall(b"set half%d 0 0 10\r\nabcde" % i)
busy = socks[2:]


def round_trip(i, s, n):
    v = b"v%d-%d" % (i, n)
    s.sendall(b"set k%d 0 0 %d\r\n%s\r\nget k%d\r\n" % (i, len(v), v, i))
    want = b"STORED\r\nVALUE k%d 0 %d\r\n%s\r\nEND\r\n" % (i, len(v), v)
    return recv_until(s, b"END\r\n", timeout=10) == want


good = bad = 0
deadline = time.time() + 20
gathered = False
n = 0
while time.time() < deadline:
    for i, s in enumerate(busy):
        if round_trip(i, s, n):
            good += 1
        else:
            bad += 1
    n += 1
    if n % 20 == 0:
        st = stats(srv)
        if st.get("eleos_io_active_workers") == "1" and int(st.get("eleos_io_conn_moves", 0)) >= NCONN // 2:
            gathered = True
            break
    time.sleep(0.005)
st = stats(srv)
c.true(gathered, "the connections were gathered on one worker (stats: active %s, moves %s)"
       % (st.get("eleos_io_active_workers"), st.get("eleos_io_conn_moves")))
c.eq(bad, 0, "every reply right while connections moved (%d right)" % good)
for i, s in enumerate(halves):
    s.sendall(b"fghij\r\nget half%d\r\n" % i)
    c.eq(recv_until(s, b"END\r\n", timeout=10),
         b"STORED\r\nVALUE half%d 0 10\r\nabcdefghij\r\nEND\r\n" % i,
         "a command split around the move completes (connection %d)" % i)
# after the moves: still answering, new connections too
for i, s in enumerate(busy):
    c.true(round_trip(i, s, n + 1), "connection %d answers after the moves" % i)
late = connect(srv)
late.sendall(b"get k0\r\n")
c.true(recv_until(late, b"END\r\n", timeout=10).startswith(b"VALUE k0 "), "a new connection answers")
late.close()
c.eq(int(stats(srv)["curr_connections"]), NCONN + 1, "curr_connections counts every connection")
c.eq(stats(srv).get("eleos_io_host_faults"), "0", "no completion named a connection its worker does not own")
for s in socks:
    s.close()
c.finish_server(srv)


def rt(srv, i, s):
    s.sendall(b"set e%d 0 0 2\r\nok\r\nget e%d\r\n" % (i, i))
    return recv_until(s, b"END\r\n", timeout=10) == b"STORED\r\nVALUE e%d 0 2\r\nok\r\nEND\r\n" % i


def after_emptying():
    """One server: 8 connections spread over 4 workers, closed, then 8 new ones. None when
    the first load was not spread when it ended (the decision stepped down first)."""
    srv = Server(binary, mode, ["-t", "4", "--consolidate", "on"] + extra)
    try:
        first = [connect(srv) for _ in range(8)]
        ok = all(rt(srv, i, s) for i, s in enumerate(first))
        st = stats(srv)
        if st.get("eleos_io_active_workers") != "4":
            return None
        for s in first:
            s.close()
        seen = []
        deadline = time.time() + 5
        while time.time() < deadline and (not seen or seen[-1] == "4"):
            seen.append(stats(srv).get("eleos_io_active_workers"))
            time.sleep(0.01)
        moves = int(stats(srv)["eleos_io_conn_moves"])
        nxt = [connect(srv) for _ in range(8)]
        ok = all(rt(srv, i, s) for i, s in enumerate(nxt)) and ok
        st = stats(srv)
        for s in nxt:
            s.close()
        return ok, seen, moves, st
    finally:
        c.finish_server(srv)


for attempt in range(3):
    got = after_emptying()
    if got is not None:
        break
c.true(got is not None, "a first load was still spread when it ended (3 attempts)")
if got is not None:
    ok, seen, moves, st = got
    c.true(ok, "every reply right before and after the emptying")
    c.eq(seen[-1], "1", "the next load starts on one worker, not one step down (seen %s)" % seen)
    c.eq(st.get("eleos_io_worker_conns", "").split(",")[1:], ["0", "0", "0"],
         "the new connections are placed on worker 0 (%s)" % st.get("eleos_io_worker_conns"))
    c.eq(int(st["eleos_io_conn_moves"]), moves, "placed there, not moved there")
c.finish()
