"""eleos-kvs: every text-protocol command, through pymemcache and byte-exact over raw
sockets (expected bytes recorded from memcached 1.6.18), binary-safe and large values,
expiry, flush_all with delay, malformed input (error reply, connection survives).

usage: test_kvs_commands.py ELEOS_KVS [native|sgx|eleos] [server args...]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import (Checker, Server, connect, exchange, need_pymemcache,  # noqa: E402
                             parse_args, recv_until, stats)

need_pymemcache()
from pymemcache.client.base import Client  # noqa: E402

binary, mode, extra = parse_args()
c = Checker("test_kvs_commands[%s]" % mode)
srv = Server(binary, mode, extra)

try:
    # --- byte-exact replies (memcached 1.6.18's) on fresh connections -------------------
    K250 = b"k" * 250
    K251 = b"k" * 251
    exact = [
        (b"set a 0 0 1\r\nx\r\nget a\r\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
        (b"set a 0 0 1 noreply\r\nx\r\nget a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
        (b"set a 0 0 1\r\nxy\r\nget a\r\n",
         b"CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
        (b"set a 0 0 1 noreply\r\nxy\r\nget a\r\n", b"ERROR\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
        (b"set a 0 0 -1\r\nget a\r\n",
         b"CLIENT_ERROR bad command line format\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
        (b"set a abc 0 1\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"set a 0 abc 1\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"set a 0 0 1 2 3\r\nx\r\n", b"ERROR\r\nERROR\r\n"),
        (b"set a 0 0\r\nx\r\n", b"ERROR\r\nERROR\r\n"),
        (b"set " + K250 + b" 0 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"set " + K251 + b" 0 0 1\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"get " + K251 + b"\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"get\r\nget \r\nfoo\r\n\r\nx\r\nGET a\r\n", b"ERROR\r\n" * 6),
        (b"set a 4294967295 0 1\r\nx\r\nget a\r\n",
         b"STORED\r\nVALUE a 4294967295 1\r\nx\r\nEND\r\n"),
        (b"set a 4294967296 0 1\r\nx\r\nget a\r\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
        (b"set a -1 0 1\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"set e 0 -1 1\r\nx\r\nget e\r\n", b"STORED\r\nEND\r\n"),
        (b"add a 0 0 1\r\ny\r\nadd zz 0 0 1\r\ny\r\n", b"NOT_STORED\r\nSTORED\r\n"),
        (b"replace nope 0 0 1\r\ny\r\nreplace a 0 0 1\r\nz\r\n", b"NOT_STORED\r\nSTORED\r\n"),
        (b"append nope 0 0 1\r\ny\r\nappend a 0 0 2\r\nzz\r\nprepend a 0 0 2\r\nqq\r\nget a\r\n",
         b"NOT_STORED\r\nSTORED\r\nSTORED\r\nVALUE a 0 5\r\nqqzzz\r\nEND\r\n"),
        (b"cas a 0 0 1 999999\r\nw\r\ncas nope 0 0 1 1\r\nw\r\n", b"EXISTS\r\nNOT_FOUND\r\n"),
        (b"cas a 0 0 1\r\nw\r\n", b"ERROR\r\nERROR\r\n"),
        (b"cas a 0 0 1 abc\r\nw\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"delete a\r\ndelete a\r\ndelete a 0\r\ndelete a 5\r\ndelete a noreply\r\n"
         b"delete a 0 noreply\r\ndelete\r\n",
         b"DELETED\r\nNOT_FOUND\r\nNOT_FOUND\r\nCLIENT_ERROR bad command line format.  "
         b"Usage: delete <key> [noreply]\r\nERROR\r\n"),
        (b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\nincr n 1\r\n",
         b"STORED\r\n15\r\n0\r\n18446744073709551615\r\n0\r\n"),
        (b"set n 0 0 20\r\n18446744073709551615\r\nincr n 1\r\nget n\r\n",
         b"STORED\r\n0\r\nVALUE n 0 20\r\n0                   \r\nEND\r\n"),
        (b"set n 0 0 3\r\nabc\r\nincr n 1\r\ndecr n 1\r\n",
         b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
         b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
        (b"incr nope 1\r\nincr n abc\r\nincr n -1\r\nincr n\r\nincr n 18446744073709551616\r\n",
         b"NOT_FOUND\r\nCLIENT_ERROR invalid numeric delta argument\r\n"
         b"CLIENT_ERROR invalid numeric delta argument\r\nERROR\r\n"
         b"CLIENT_ERROR invalid numeric delta argument\r\n"),
        (b"set n 0 0 3\r\n100\r\ndecr n 1\r\nget n\r\n", b"STORED\r\n99\r\nVALUE n 0 3\r\n99 \r\nEND\r\n"),
        (b"set n 0 0 2\r\n 1\r\nincr n 1\r\n", b"STORED\r\n2\r\n"),
        (b"set n 0 0 0\r\n\r\nincr n 1\r\n",
         b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
        (b"touch nope 10\r\ntouch a\r\ntouch a abc\r\n",
         b"NOT_FOUND\r\nERROR\r\nCLIENT_ERROR invalid exptime argument\r\n"),
        (b"set a 0 0 1\r\nx\r\ntouch a 100\r\ngat 100 a nope\r\ngat a\r\ngat abc a\r\ngat 100\r\n",
         b"STORED\r\nTOUCHED\r\nVALUE a 0 1\r\nx\r\nEND\r\nCLIENT_ERROR invalid exptime argument\r\n"
         b"CLIENT_ERROR invalid exptime argument\r\nEND\r\n"),
        (b"version\r\nversion extra\r\n", b"VERSION 1.6.18\r\nVERSION 1.6.18\r\n"),
        (b"verbosity\r\nverbosity 1\r\nverbosity 1 noreply\r\nverbosity abc\r\nverbosity 1 2 3\r\n"
         b"verbosity 0\r\n", b"ERROR\r\nOK\r\nCLIENT_ERROR bad command line format\r\nERROR\r\nOK\r\n"),
        (b"flush_all abc\r\nflush_all 1 2 3\r\n", b"CLIENT_ERROR invalid exptime argument\r\nERROR\r\n"),
        (b"quit\r\n", b"<EOF>"),
        (b"set a 0 0 1\r\nx\r\nget a\r\nquit\r\nget a\r\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n<EOF>"),
        (b"GET / HTTP/1.1\r\n", b"<EOF>"),
        (b"set a 0 0 1\r\nx\r\n" + b"z" * 3000, b"<EOF>"),
        (b"set a 0 0 1\nx\r\nget a\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
        (b"  get    a  \r\nget a\x00b\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n" * 2),
        (b"set a 0 0 5\r\na\r\nbc\r\nget a\r\n", b"STORED\r\nVALUE a 0 5\r\na\r\nbc\r\nEND\r\n"),
        (b"stats nope\r\nstats detail\r\nstats reset\r\nshutdown\r\nmn\r\n",
         b"ERROR\r\nCLIENT_ERROR usage: stats detail on|off|dump\r\nRESET\r\n"
         b"ERROR: shutdown not enabled\r\nMN\r\n"),
        (b"set a 0 0 1048516\r\n" + b"x" * 1048516 + b"\r\n", b"STORED\r\n"),
        (b"set a 0 0 1048517\r\n" + b"x" * 1048517 + b"\r\nget a\r\n",
         b"SERVER_ERROR object too large for cache\r\nEND\r\n"),
        (b"set b 0 0 1\r\nx\r\nadd b 0 0 2000000\r\n" + b"x" * 2000000 + b"\r\nget b\r\n",
         b"STORED\r\nSERVER_ERROR object too large for cache\r\nVALUE b 0 1\r\nx\r\nEND\r\n"),
    ]
    for data, want in exact:
        got = exchange(srv, data)
        c.eq(got, want, "exact reply to %r" % data[:60])

    # a multiget spanning many tokenizations
    got = exchange(srv, b"set a 0 0 1\r\nx\r\nget " + b"a " * 3000 + b"\r\n", end=b"END\r\n")
    c.eq(got, b"STORED\r\n" + b"VALUE a 0 1\r\nx\r\n" * 3000 + b"END\r\n", "3000-key multiget")

    # --- pymemcache: every command ------------------------------------------------------
    mc = Client(srv.addr(), connect_timeout=10, timeout=10)
    c.true(mc.set("k1", b"v1"), "set")
    c.eq(mc.get("k1"), b"v1", "get")
    c.eq(mc.add("k1", b"x", noreply=False), False, "add existing")
    c.eq(mc.add("k2", b"x", noreply=False), True, "add new")
    c.eq(mc.replace("nope", b"x", noreply=False), False, "replace missing")
    c.eq(mc.replace("k2", b"y", noreply=False), True, "replace")
    c.eq(mc.append("k2", b"z", noreply=False), True, "append")
    c.eq(mc.prepend("k2", b"w", noreply=False), True, "prepend")
    c.eq(mc.get("k2"), b"wyz", "append/prepend result")
    val, cas = mc.gets("k2")
    c.eq(val, b"wyz", "gets value")
    c.eq(mc.cas("k2", b"new", cas, noreply=False), True, "cas with the right unique")
    c.eq(mc.cas("k2", b"newer", cas, noreply=False), False, "cas with a stale unique")
    c.eq(mc.cas("nope", b"x", 1, noreply=False), None, "cas on a missing key")
    _, cas2 = mc.gets("k2")
    c.true(cas2 != cas, "CAS unique changes on update")
    c.eq(mc.get_many(["k1", "k2", "nope"]), {"k1": b"v1", "k2": b"new"}, "get_many")
    c.eq(mc.gets_many(["k1"])["k1"][0], b"v1", "gets_many")
    c.eq(mc.touch("k1", 100, noreply=False), True, "touch")
    c.eq(mc.touch("nope", 100, noreply=False), False, "touch missing")
    # pymemcache 3.5 has no gat/gats: raw protocol
    c.eq(exchange(srv, b"gat 100 k1\r\n", end=b"END\r\n"), b"VALUE k1 0 2\r\nv1\r\nEND\r\n", "gat")
    c.true(exchange(srv, b"gats 100 k1\r\n", end=b"END\r\n").startswith(b"VALUE k1 0 2 "), "gats")
    c.eq(mc.delete("k1", noreply=False), True, "delete")
    c.eq(mc.delete("k1", noreply=False), False, "delete missing")
    mc.set("cnt", b"41")
    c.eq(mc.incr("cnt", 1), 42, "incr")
    c.eq(mc.decr("cnt", 50), 0, "decr floors at 0")
    c.eq(mc.incr("nope", 1), None, "incr missing")
    mc.set("wrap", b"18446744073709551615")
    c.eq(mc.incr("wrap", 2), 1, "incr wraps at 2^64")
    c.eq(mc.version(), b"1.6.18", "version")
    mc.set("nr", b"x", noreply=True)
    c.eq(mc.get("nr"), b"x", "noreply set")
    st = mc.stats()
    c.true(st[b"curr_items"] >= 3 and b"eleos_mode" in st, "stats has memcached and eleos fields")
    c.eq(st[b"eleos_mode"], mode.encode(), "stats reports the mode")

    # binary-safe values: every byte value, CR/LF and NULs inside
    blob = bytes(range(256)) * 64 + b"\r\nEND\r\n\x00"
    mc.set("bin", blob)
    c.eq(mc.get("bin"), blob, "binary-safe value")
    # large values up to -I
    for size in (1024, 4096, 100000, 1000000, 1048514):  # 1048514: the -I limit for a 3-byte key
        data = os.urandom(size)
        c.eq(mc.set("big", data, noreply=False), True, "set %d bytes" % size)
        c.eq(mc.get("big"), data, "get %d bytes" % size)

    # --- expiry: relative, absolute, negative; flush_all with delay ---------------------
    # Expiry has one-second granularity (memcached's clock), so deadlines are 3 s away and
    # the waits 4 s: "alive" and "gone" hold whenever the second boundaries fall.
    mc.set("rel", b"x", expire=3)
    mc.set("abs", b"y", expire=int(time.time()) + 3)
    mc.set("absfar", b"z", expire=int(time.time()) + 3600)
    mc.set("past", b"p", expire=int(time.time()) - 10)
    c.eq(mc.get("rel"), b"x", "relative expiry: alive before")
    c.eq(mc.get("past"), None, "absolute time in the past: expired at once")
    time.sleep(4.1)
    c.eq(mc.get("rel"), None, "relative expiry: gone after")
    c.eq(mc.get("abs"), None, "absolute expiry: gone after")
    c.eq(mc.get("absfar"), b"z", "absolute expiry in an hour: alive")
    mc.set("fl", b"x")
    c.eq(exchange(srv, b"flush_all 3\r\n"), b"OK\r\n", "flush_all 3")
    c.eq(mc.get("fl"), b"x", "delayed flush: alive before the delay")
    time.sleep(4.1)
    c.eq(mc.get("fl"), None, "delayed flush: gone after the delay")
    mc.set("fl2", b"y")
    c.eq(mc.flush_all(noreply=False), True, "flush_all")
    c.eq(mc.get("fl2"), None, "flushed at once")
    mc.set("after", b"z")
    c.eq(mc.get("after"), b"z", "items stored after a flush live")

    # --- malformed input: error reply, and the connection survives --------------------
    s = connect(srv)
    for bad, want in [(b"bogus\r\n", b"ERROR\r\n"), (b"set x y z w\r\n", b"CLIENT_ERROR bad command line format\r\n"),
                      (b"incr\r\n", b"ERROR\r\n"), (b"\x00\xff\xfe\r\n", b"ERROR\r\n"),
                      # the "\n" left after the bad chunk is an empty command: ERROR
                      (b"set k 0 0 2\r\nabc\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")]:
        s.sendall(bad)
        c.eq(recv_until(s, want), want, "error reply to %r" % bad)
    s.sendall(b"set ok 0 0 2\r\nok\r\nget ok\r\n")
    got = recv_until(s, b"END\r\n")
    c.eq(got, b"STORED\r\nVALUE ok 0 2\r\nok\r\nEND\r\n", "connection survives bad input")
    s.close()
    st = stats(srv)
    c.true(int(st["curr_connections"]) >= 1, "server alive after malformed input")
    if os.environ.get("ELEOS_IOQ_NO_URING"):  # the run that stands in for a kernel without it
        c.eq(st.get("eleos_io_executor"), ",".join(["batch"] * int(st["threads"])),
             "without io_uring every worker runs the batch executor")
    mc.close()
except Exception as e:  # report, then still stop the server
    import traceback
    traceback.print_exc()
    c.eq(repr(e), None, "no exception")
c.finish(srv)
