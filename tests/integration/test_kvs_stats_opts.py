"""memcached's options that change the text protocol, diffed against memcached 1.6.18 run
with the same flags: -C (no CAS), -F (flush_all refused), -X (cachedump refused), -M (out of
memory instead of evicting), -D (per-prefix stats from the start).

The options are parsed by eleos-kvs's command line (host_main.c); a binary that does not
take them yet exits 77 here (ctest: skipped), saying which.

usage: test_kvs_stats_opts.py ELEOS_KVS [native|sgx|eleos] [server args...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import SKIP, Checker, Server, parse_args, recv_until  # noqa: E402
from test_kvs_stats import MEMCACHED, Memcached, converse  # noqa: E402

CFX_CASES = [
    [b"set a 0 0 1\r\nx\r\n", b"gets a\r\n"],
    [b"cas a 0 0 1 0\r\ny\r\n", b"cas a 0 0 1 1\r\ny\r\n", b"cas nokey 0 0 1 0\r\ny\r\n"],
    [b"set n 0 0 1\r\n5\r\n", b"incr n 1\r\n", b"gets n\r\n", b"gats 100 n\r\n"],
    [b"flush_all\r\n", b"flush_all noreply\r\n", b"flush_all 10\r\n", b"get a\r\n"],
    [b"stats cachedump 1 1\r\n", b"stats cachedump\r\n"],
    [b"stats sizes_enable\r\n"],
]
D_CASES = [
    [b"set p:1 0 0 1\r\nx\r\n", b"get p:1 p:2 q\r\n", b"delete p:1\r\n", b"stats detail dump\r\n"],
]


def start(binary, mode, extra, flags):
    try:
        return Server(binary, mode, list(extra) + flags)
    except RuntimeError as e:
        print("SKIP: eleos-kvs does not take %s yet (memcached's command line, host_main.c): %s"
              % (" ".join(flags), str(e)[-300:]))
        sys.exit(SKIP)


def diff_cases(ck, binary, mode, extra, flags, cases):
    ours = start(binary, mode, extra, flags)
    ref = Memcached(flags)
    try:
        for parts in cases:
            want = converse(ref.addr(), parts)
            got = converse(ours.addr(), parts, want)
            ck.eq(got, want, "%s: %r" % (" ".join(flags), b"|".join(parts)[:70]))
    finally:
        ref.stop()
        ck.finish_server(ours)


def fill(addr, n, size):
    """n sets of size bytes on one connection: the set of distinct replies, the last stats."""
    import socket
    s = socket.create_connection(addr, timeout=10)
    replies = set()
    for i in range(n):
        s.sendall(b"set big%d 0 0 %d\r\n" % (i, size) + b"a" * size + b"\r\n")
        replies.add(recv_until(s, b"\r\n"))
    s.sendall(b"get big0\r\n")
    first = recv_until(s, b"END\r\n")
    s.sendall(b"stats\r\n")
    st = recv_until(s, b"END\r\n")
    s.close()
    evictions = [line for line in st.split(b"\r\n") if line.startswith(b"STAT evictions ")]
    return replies, first.startswith(b"VALUE big0 "), evictions


def t_no_evict(ck, binary, mode, extra):
    flags = ["-M", "-m", "2"]
    ours = start(binary, mode, extra, flags)
    ref = Memcached(flags)
    try:
        want = fill(ref.addr(), 40, 100000)
        got = fill(ours.addr(), 40, 100000)
        ck.eq(got, want, "-M: out of memory instead of evicting (replies, first item kept)")
        ck.true(b"SERVER_ERROR out of memory storing object\r\n" in want[0], "memcached ran out")
    finally:
        ref.stop()
        ck.finish_server(ours)


def main():
    binary, mode, extra = parse_args()
    if not os.access(MEMCACHED, os.X_OK):
        print("SKIP: needs %s" % MEMCACHED)
        sys.exit(SKIP)
    ck = Checker("test_kvs_stats_opts[%s]" % mode)
    diff_cases(ck, binary, mode, extra, ["-C", "-F", "-X"], CFX_CASES)
    diff_cases(ck, binary, mode, extra, ["-D", ":"], D_CASES)
    t_no_evict(ck, binary, mode, extra)
    ck.finish()


if __name__ == "__main__":
    main()
