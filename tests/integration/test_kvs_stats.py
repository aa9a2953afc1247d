"""eleos-kvs's stats, long multigets and ASCII authentication, diffed against a real
memcached 1.6.18 (/usr/bin/memcached) started on a free port with the same options.

- the field names of `stats`, `stats settings`, `stats items`, `stats slabs`: memcached's,
  in its order (our eleos_* fields after them)
- memcdump lists the keys (`stats cachedump`)
- curr_items, bytes and `stats items` drop after flush_all
- a 20,000-key x 60-byte multiget line (1.2 MiB) answers every key, server memory bounded
- -Y: the same exchanges give memcached's bytes, with the same credential file

usage: test_kvs_stats.py ELEOS_KVS [native|sgx|eleos] [server args...]
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import (SKIP, Checker, Server, connect, exchange, parse_args,  # noqa: E402
                             recv_until, stats, wait_for)

MEMCACHED = "/usr/bin/memcached"
MIB = 1 << 20


class Memcached:
    """The reference: memcached on a free loopback port, stopped by its PID."""

    def __init__(self, args=()):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        cmd = [MEMCACHED, "-p", str(self.port), "-U", "0", "-l", "127.0.0.1"] + list(args)
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # memcached refuses to run as root without -u
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        up = wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), 1).close() or True,
                      timeout=10)
        if not up:
            self.stop()
            raise RuntimeError("memcached did not start: %r" % cmd)

    def addr(self):
        return ("127.0.0.1", self.port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def names(reply, prefix=""):
    out = []
    for line in reply.split(b"\r\n"):
        parts = line.split(b" ")
        if len(parts) >= 3 and parts[0] == b"STAT" and parts[1].startswith(prefix.encode()):
            name = parts[1].decode()[len(prefix):]
            if not name.startswith("eleos_"):
                out.append(name)
    return out


def t_field_names(ck, ours, ref):
    for srv in (ours, ref):
        exchange(srv, b"set a:b 0 0 1\r\nx\r\n", end=b"\r\n")
    for group, prefix in (("stats", ""), ("stats settings", ""), ("stats items", "items:1:"),
                          ("stats slabs", "1:")):
        cmd = group.encode() + b"\r\n"
        got = names(exchange(ours, cmd, end=b"END\r\n"), prefix)
        want = names(exchange(ref, cmd, end=b"END\r\n"), prefix)
        ck.eq(got, want, "%s: memcached's field names in its order (%d)" % (group, len(want)))
    slabs = exchange(ours, b"stats slabs\r\n", end=b"END\r\n")
    ck.true(b"STAT active_slabs " in slabs and b"STAT total_malloced " in slabs, "slabs summary")
    gen = exchange(ours, b"stats\r\n", end=b"END\r\n")
    ck.true(gen.index(b"STAT lru_bumps_dropped") < gen.index(b"STAT eleos_version"),
            "eleos fields after memcached's")
    for srv in (ours, ref):  # the unknown group: memcached's reply
        ck.eq(exchange(srv, b"stats nosuchgroup\r\n", end=b"\r\n"), b"ERROR\r\n", "unknown group")


def t_conns(ck, ours, ref):
    """`stats conns`: the listener, an idle connection and the asking one, with memcached's
    fields and states (descriptor numbers differ)."""
    shapes = []
    for srv in (ref, ours):
        idle = connect(srv)
        idle.sendall(b"version\r\n")
        recv_until(idle, b"\r\n")
        me = connect(srv)
        me.sendall(b"stats conns\r\n")
        raw = recv_until(me, b"END\r\n")
        port = me.getsockname()[1]
        me.close()
        idle.close()
        lines = [line.split(b" ", 2) for line in raw.split(b"\r\n") if line.startswith(b"STAT ")]
        conns = {}  # per descriptor: its field names and state, in order
        # An idle connection's state is read while its worker may still be finishing the
        # reply (conn_mwrite) or already waiting (conn_read), in memcached as here: either
        # is right. The asking connection's and the listener's are exact.
        idle_states = (b"conn_read", b"conn_mwrite", b"conn_new_cmd")
        for f in lines:
            fd, name = f[1].split(b":", 1)
            state = f[2] if name == b"state" else b""
            conns.setdefault(fd, []).append((name, b"idle" if state in idle_states else state))
        # A connection an earlier step closed may still be listed (by either server, until
        # its worker sees the close; memcached as conn_closing): such leftovers are not
        # compared, and the rest as a set.
        shapes.append(sorted(set(tuple(v) for v in conns.values()
                                 if (b"state", b"conn_closing") not in v)))
        if srv is ours:
            mine = b"addr tcp:127.0.0.1:%d" % port
            ck.true(any(b" ".join(f[1:]).split(b":", 1)[1] == mine for f in lines),
                    "our connection's address listed")
    ck.eq(shapes[1], shapes[0], "stats conns: memcached's fields and states")


def t_memcdump(ck, ours):
    keys = sorted("dump%d" % i for i in range(10))
    data = b"".join(b"set %s 0 0 1 noreply\r\nv\r\n" % k.encode() for k in keys)
    ck.eq(exchange(ours, data + b"get dump0\r\n", end=b"END\r\n"), b"VALUE dump0 0 1\r\nv\r\nEND\r\n",
          "stored")
    raw = exchange(ours, b"stats cachedump 1 0\r\n", end=b"END\r\n")
    ck.true(raw.endswith(b"END\r\n") and raw.count(b"ITEM dump") == 10, "cachedump ends with END")
    r = subprocess.run(["memcdump", "--servers=127.0.0.1:%d" % ours.port], capture_output=True,
                       timeout=30)
    ck.eq(r.returncode, 0, "memcdump exits 0 (%r)" % r.stderr[-200:])
    listed = sorted(k for k in r.stdout.decode(errors="replace").split() if k.startswith("dump"))
    ck.eq(listed, keys, "memcdump lists every key")


def t_flush(ck, ours):
    data = b"".join(b"set fl%d 0 0 3 noreply\r\nabc\r\n" % i for i in range(50))
    exchange(ours, data + b"version\r\n", end=b"\r\n")
    ck.true(int(stats(ours)["curr_items"]) >= 50, "items stored")
    ck.eq(exchange(ours, b"flush_all\r\n", end=b"\r\n"), b"OK\r\n", "flush_all")
    dropped = wait_for(lambda: stats(ours)["curr_items"] == "0", timeout=2.0)
    ck.true(dropped, "curr_items drops to 0 within 2 s of flush_all")
    st = stats(ours)
    ck.eq(st.get("bytes"), "0", "bytes drop too")
    ck.eq(exchange(ours, b"stats items\r\n", end=b"END\r\n"), b"END\r\n", "stats items empty")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def t_long_multiget(ck, ours):
    nkeys, klen = 20000, 60
    keys = [b"%0*d" % (klen, i) for i in range(nkeys)]
    s = connect(ours, timeout=30)
    s.sendall(b"".join(b"set %s 0 0 2 noreply\r\nv%d\r\n" % (k, i % 10)
                       for i, k in enumerate(keys)) + b"version\r\n")
    recv_until(s, b"\r\n", timeout=30)
    before = rss_kib(ours.proc.pid)
    line = b"get " + b" ".join(keys) + b"\r\n"
    ck.true(len(line) > MIB, "the line is over 1 MiB (%d bytes)" % len(line))
    s.sendall(line)
    reply = recv_until(s, b"END\r\n", timeout=30, limit=8 * MIB)
    s.close()
    ck.eq(reply.count(b"VALUE "), nkeys, "every key of the 20,000-key multiget answered")
    ck.true(reply.endswith(b"END\r\n"), "the multiget ends with END")
    ck.true(reply.startswith(b"VALUE " + keys[0] + b" 0 2\r\nv0\r\n"), "first value right")
    grown = rss_kib(ours.proc.pid) - before
    ck.true(grown < 64 * 1024, "server grew %d KiB for the multiget (bounded)" % grown)


AUTH_CASES = [
    [b"get a\r\n"], [b"stats\r\n"], [b"version\r\n"], [b"set x\r\n"], [b"set x 0 0 abc\r\n"],
    [b"set x 0 0 12\r\nalice secret\r\n"], [b"set x 0 0 5\r\nalice\r\n"],
    [b"set x 0 0 11\r\nalice wrong\r\n"], [b"set x 0 0 12\r\nalice secretXX"],
    [b"set x 0 0 16\r\nalice secret bob\r\n"], [b"set x 0 0 6\r\n a  b \r\n"],
    [b"set k 0 0 7\r\nbob pw2\r\n", b"set b 0 0 1\r\nz\r\n", b"get b\r\n"],
    [b"get a\r\n", b"set x 0 0 11\r\nalice wrong\r\n", b"set x 0 0 12\r\nalice secret\r\n",
     b"gets nokey\r\n"],
    [b"garbage\r\nget a\r\n"], [b"x" * 3000],
]


def converse(addr, parts, wants=None):
    """Sends each part on one connection and returns what came back after each. Without
    wants (memcached), a part's reply is what arrives until 0.3 s of quiet; with wants
    (ours), it is read until it is as long as memcached's was, then 0.1 s more for extras,
    so a slow server is waited for and no byte too many goes unseen."""
    s = socket.create_connection(addr, timeout=5)
    replies = []
    try:
        for i, part in enumerate(parts):
            s.sendall(part)
            out = b""
            need = len(wants[i]) if wants else None
            try:
                while True:
                    done = need is not None and len(out) >= need
                    s.settimeout(0.1 if done else 0.3 if need is None else 5.0)
                    chunk = s.recv(65536)
                    if not chunk:
                        out += b"<EOF>"
                        break
                    out += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                out += b"<EOF>"
            replies.append(out)
            if out.endswith(b"<EOF>"):
                break
    finally:
        s.close()
    return replies


def t_auth(ck, binary, mode, extra):
    # memcached drops privileges before reading the file: it must be world-readable.
    fd, path = tempfile.mkstemp(prefix="kvs-auth-", dir="/tmp")
    os.write(fd, b"alice:secret\nbob:pw2\n")
    os.close(fd)
    os.chmod(path, 0o644)
    ours = ref = None
    try:
        ours = Server(binary, mode, list(extra) + ["-Y", path])
        ref = Memcached(["-Y", path])
        for parts in AUTH_CASES:
            want = converse(ref.addr(), parts)
            got = converse(ours.addr(), parts, want)
            ck.eq(got, want, "-Y: %r" % b"|".join(parts)[:60])
        # the same attempts counted as memcached counts them
        login = [b"set x 0 0 12\r\nalice secret\r\n", b"stats\r\n"]
        counts = []
        for addr in (ref.addr(), ours.addr()):
            c = socket.create_connection(addr, timeout=10)
            c.sendall(login[0])
            recv_until(c, b"STORED\r\n")
            c.sendall(login[1])
            st = recv_until(c, b"END\r\n")
            c.close()
            counts.append([line for line in st.split(b"\r\n") if line.startswith(b"STAT auth_")])
        ck.eq(counts[1], counts[0], "auth_cmds and auth_errors as memcached's")
        ck.true(len(counts[0]) == 2, "memcached printed them")
    finally:
        if ref:
            ref.stop()
        if ours:
            rc, out = ours.stop()
            ck.eq(rc, 0, "-Y server exits cleanly on SIGTERM")
            ck.true(out.rstrip().endswith(b"END") and b"STAT auth_cmds" in out,
                    "-Y server prints its statistics on exit (the report needs no login)")
        os.unlink(path)


def main():
    binary, mode, extra = parse_args()
    if not os.access(MEMCACHED, os.X_OK) or shutil.which("memcdump") is None:
        print("SKIP: needs %s and memcdump (scripts/deps.sh installs them)" % MEMCACHED)
        sys.exit(SKIP)
    ck = Checker("test_kvs_stats[%s]" % mode)
    ours = Server(binary, mode, extra)
    ref = Memcached()
    try:
        t_field_names(ck, ours, ref)
        t_conns(ck, ours, ref)
        t_memcdump(ck, ours)
        t_flush(ck, ours)
        t_long_multiget(ck, ours)
    finally:
        ref.stop()
    t_auth(ck, binary, mode, extra)
    ck.finish(ours)


if __name__ == "__main__":
    main()
