"""eleos-kvs's binary protocol against memcached 1.6.18's.

Raw requests (every opcode, quiet variants, CAS, error cases, malformed headers) are sent
on fresh connections to eleos-kvs and to a real memcached started here, and the replies are
compared packet by packet (CAS values are renumbered by first appearance, as the two
servers number items differently; everything else must be equal, including whether the
connection was closed). Then real clients: pylibmc with binary=True, bmemcached with SASL
against a server started with -S and MEMCACHED_SASL_PWDB, and libmemcached's memccapable -b.
A value holding text commands must be stored as data (it used to be executed).
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_kvs_common as kc  # noqa: E402

HDR = ">BBHBBHIIQ"


def req(op, key=b"", extras=b"", value=b"", cas=0, opaque=0, magic=0x80, bodylen=None,
        keylen=None):
    bl = len(key) + len(extras) + len(value) if bodylen is None else bodylen
    kl = len(key) if keylen is None else keylen
    return struct.pack(HDR, magic, op, kl, len(extras), 0, 0, bl, opaque, cas) + extras + key + value


NOOP = req(0x0A, opaque=0x4E4F4F50)
SE = struct.pack(">II", 0, 0)          # set extras: flags 0, exptime 0


def sx(flags=0, exp=0):
    return struct.pack(">II", flags, exp)


def dx(delta, initial=0, exp=0):
    return struct.pack(">QQI", delta, initial, exp)


def read_reply(sock, timeout=5.0):
    """Reads packets until the NOOP terminator's reply or EOF; returns (packets, closed)."""
    sock.settimeout(timeout)
    buf, closed, pkts = b"", False, []
    deadline = time.time() + timeout
    while time.time() < deadline:
        while len(buf) >= 24:
            f = struct.unpack(HDR, buf[:24])
            if len(buf) < 24 + f[6]:
                break
            pkts.append(f + (buf[24:24 + f[6]],))
            buf = buf[24 + f[6]:]
            if f[1] == 0x0A and f[7] == 0x4E4F4F50:
                return pkts, False
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            break
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            closed = True
            break
        buf += chunk
    if buf:
        pkts.append(("trailing", buf))
    return pkts, closed


def normalize(pkts):
    """Renumbers CAS values by first appearance (0 stays 0)."""
    seen, out = {0: 0}, []
    for p in pkts:
        if p[0] == "trailing":
            out.append(p)
            continue
        cas = p[8]
        if cas not in seen:
            seen[cas] = len(seen)
        out.append(p[:8] + (seen[cas], p[9]))
    return out


def exchange(addr, data):
    s = socket.create_connection(addr, timeout=5)
    try:
        s.sendall(data)
        return read_reply(s)
    finally:
        s.close()


def free_port():
    s = socket.socket()
    s.bind((kc.HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Memcached:
    """The reference server on a free port (killed by PID at the end)."""

    def __init__(self, args=(), env=None):
        if not os.path.exists("/usr/bin/memcached"):
            print("SKIP: /usr/bin/memcached (memcached 1.6.18) is not installed")
            sys.exit(kc.SKIP)
        self.port = free_port()
        cmd = ["/usr/bin/memcached", "-p", str(self.port), "-U", "0", "-l", kc.HOST] + list(args)
        if os.geteuid() == 0:
            cmd += ["-u", "root"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        ok = kc.wait_for(lambda: socket.create_connection((kc.HOST, self.port), 0.5).close() or True,
                         timeout=10)
        if not ok:
            self.stop()
            raise RuntimeError("memcached did not start: %r" % cmd)

    def addr(self):
        return (kc.HOST, self.port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def raw_cases():
    """(name, request bytes). Keys are unique per case; NOOP ends every case."""
    c = []
    add = c.append
    add(("noop_version", req(0x0B) + NOOP))
    add(("set_get_getk", req(0x01, b"a1", sx(7), b"hello") + req(0x00, b"a1") +
         req(0x0C, b"a1", opaque=9) + NOOP))
    add(("miss_get_getk", req(0x00, b"m1") + req(0x0C, b"m1", opaque=3) + NOOP))
    add(("quiet_get", req(0x11, b"q1", SE, b"v") + req(0x09, b"q1") + req(0x09, b"qmiss") +
         req(0x0D, b"q1") + req(0x0D, b"qmiss") + NOOP))
    add(("add_replace", req(0x02, b"a2", SE, b"x") + req(0x02, b"a2", SE, b"y") +
         req(0x03, b"a2", SE, b"z") + req(0x03, b"a2miss", SE, b"z") + req(0x00, b"a2") + NOOP))
    add(("quiet_store_errors", req(0x12, b"a2", SE, b"y") + req(0x13, b"a3miss", SE, b"z") +
         req(0x11, b"a3", SE, b"ok") + NOOP))
    add(("append_prepend", req(0x01, b"ap", SE, b"mid") + req(0x0E, b"ap", value=b">") +
         req(0x0F, b"ap", value=b"<") + req(0x19, b"ap", value=b"]") +
         req(0x1A, b"ap", value=b"[") + req(0x0E, b"apmiss", value=b"x") + req(0x00, b"ap") + NOOP))
    add(("delete", req(0x01, b"d1", SE, b"v") + req(0x04, b"d1") + req(0x04, b"d1") +
         req(0x01, b"d2", SE, b"v") + req(0x14, b"d2") + req(0x14, b"d2") + NOOP))
    add(("incr_decr", req(0x05, b"n1", dx(5, 10)) + req(0x05, b"n1", dx(5, 10)) +
         req(0x06, b"n1", dx(100, 0)) + req(0x05, b"n2", dx(1, 0, 0xFFFFFFFF)) +
         req(0x15, b"n1", dx(1)) + req(0x16, b"n1", dx(1)) + req(0x00, b"n1") +
         req(0x01, b"n3", SE, b"abc") + req(0x05, b"n3", dx(1)) +
         req(0x01, b"n4", SE, b"18446744073709551615") + req(0x05, b"n4", dx(2)) + NOOP))
    add(("cas", req(0x01, b"c1", SE, b"v1") + req(0x01, b"c1", SE, b"v2", cas=123456789) +
         req(0x01, b"c1miss", SE, b"v2", cas=5) + req(0x04, b"c1", cas=987654321) +
         req(0x0E, b"c1", value=b"x", cas=987654321) + req(0x05, b"c1", dx(1), cas=42) +
         req(0x02, b"c1", SE, b"v3", cas=7) + NOOP))
    add(("touch_gat", req(0x01, b"t1", sx(3, 100), b"val") + req(0x1C, b"t1", struct.pack(">I", 200)) +
         req(0x1D, b"t1", struct.pack(">I", 0)) + req(0x23, b"t1", struct.pack(">I", 0)) +
         req(0x1E, b"t1", struct.pack(">I", 0)) + req(0x24, b"t1", struct.pack(">I", 0)) +
         req(0x1C, b"tmiss", struct.pack(">I", 0)) + req(0x1D, b"tmiss", struct.pack(">I", 0)) +
         req(0x23, b"tmiss", struct.pack(">I", 0)) + req(0x1E, b"tmiss", struct.pack(">I", 0)) +
         req(0x24, b"tmiss", struct.pack(">I", 0)) + NOOP))
    add(("multiget_getkq", req(0x11, b"mg1", SE, b"1") + req(0x11, b"mg2", sx(2), b"22") +
         req(0x0D, b"mg1", opaque=1) + req(0x0D, b"mgx", opaque=2) + req(0x0D, b"mg2", opaque=3) +
         req(0x09, b"mg2", opaque=4) + NOOP))
    add(("opaque_echo", req(0x00, b"o1", opaque=0xDEADBEEF) + req(0x0B, opaque=7) + NOOP))
    add(("flags_binary_value", req(0x01, b"bv", sx(0xFFFFFFFF), bytes(range(256))) +
         req(0x00, b"bv") + NOOP))
    add(("empty_value", req(0x01, b"ev", SE, b"") + req(0x00, b"ev") + NOOP))
    add(("e2big", req(0x01, b"big", SE, b"x" * (1 << 20)) + req(0x00, b"big") + NOOP))
    add(("set_huge_bodylen", req(0x01, b"hb", SE, bodylen=0xFFFFFFFF) + NOOP))
    add(("set_negative_len", req(0x01, b"hb", SE, bodylen=0x80000010) + NOOP))
    add(("unknown_opcode", req(0x50) + NOOP))
    add(("unknown_swallows_key", req(0x50, b"abc", value=b"xy") + b"\0" * 3 + NOOP))
    add(("verbosity_is_unknown", req(0x1B, extras=struct.pack(">I", 1)) + b"\0" * 4 + NOOP))
    add(("sasl_without_S", req(0x20) + req(0x21, b"PLAIN", value=b"\0u\0p") + NOOP))
    add(("stat_reset", req(0x10, b"reset") + NOOP))
    add(("stat_detail_on_off", req(0x10, b"detail on") + req(0x10, b"detail off") + NOOP))
    add(("stat_detail_dump", req(0x10, b"detail dump") + NOOP))
    add(("stat_unknown", req(0x10, b"bogus") + req(0x10, b"conns") + req(0x10, b"detail") +
         req(0x10, b"detail xx") + NOOP))
    add(("stat_sizes", req(0x10, b"sizes") + NOOP))
    add(("flush", req(0x01, b"f1", SE, b"v") + req(0x08) + req(0x00, b"f1") +
         req(0x18, extras=struct.pack(">I", 0)) + NOOP))
    # errors that close the connection
    add(("quit", req(0x07) + NOOP))
    add(("quitq", req(0x17) + NOOP))
    add(("bad_magic", NOOP + b"\x81" + b"\0" * 23 + NOOP))
    add(("bodylen_lt_key", req(0x00, b"abc", bodylen=1) + NOOP))
    add(("bodylen_lt_ext_key", req(0x01, b"abc", SE, bodylen=9) + NOOP))
    add(("key_too_long", req(0x00, b"k" * 251) + NOOP))
    add(("get_no_key", req(0x00) + NOOP))
    add(("get_with_extras", req(0x00, b"k", b"ab") + NOOP))
    add(("get_huge_bodylen", req(0x00, b"k", bodylen=0xFFFFFFFF) + NOOP))
    add(("set_no_extras", req(0x01, b"k", value=b"v") + NOOP))
    add(("incr_short_extras", req(0x05, b"k", b"\0" * 8) + NOOP))
    add(("flush_bad_extras", req(0x08, extras=b"ab") + NOOP))
    add(("noop_with_body", req(0x0A, value=b"x") + NOOP))
    add(("version_with_key", req(0x0B, b"k") + NOOP))
    add(("delete_with_value", req(0x04, b"k", value=b"v") + NOOP))
    add(("pipeline_then_close", req(0x01, b"pc", SE, b"v") + req(0x00, b"k", bodylen=0xFFFFFFFF) + NOOP))
    return c


def diff_raw(ck, kvs_addr, mc_addr, cases, tag):
    for name, data in cases:
        mc_pk, mc_closed = exchange(mc_addr, data)
        kv_pk, kv_closed = exchange(kvs_addr, data)
        ck.eq(normalize(kv_pk), normalize(mc_pk), "%s %s: replies" % (tag, name))
        ck.eq(kv_closed, mc_closed, "%s %s: closed" % (tag, name))


def stat_shape(ck, addr):
    """General and settings stats: one STAT packet per field, then the empty terminator."""
    for group, must in ((b"", (b"pid", b"cmd_get", b"curr_items", b"auth_cmds")),
                        (b"settings", (b"maxbytes", b"item_size_max")),
                        (b"items", ()), (b"slabs", (b"active_slabs",))):
        pk, closed = exchange(addr, req(0x10, group) + NOOP)
        ck.true(not closed and len(pk) >= 2, "stat %r answered" % group)
        body = pk[:-1]
        ck.true(all(p[1] == 0x10 and p[5] == 0 for p in body), "stat %r: STAT packets" % group)
        ck.eq(body[-1][2:4] + (body[-1][6],), (0, 0, 0), "stat %r ends with the terminator" % group)
        names = set(p[9][:p[2]] for p in body[:-1])
        ck.true(all(m in names for m in must), "stat %r has %r" % (group, must))
    pk, _ = exchange(addr, req(0x10, b"") + NOOP)
    ver = [p[9][p[2]:] for p in pk if p[9][:p[2]] == b"version"]
    ck.eq(ver, [b"1.6.18"], "stat version")


def injection(ck, addr):
    """A value holding text commands is data: nothing is flushed, no key is created."""
    evil = b"x\r\nflush_all\r\nset evil 0 0 4\r\npwnd\r\n"
    pk, closed = exchange(addr, req(0x01, b"keep", SE, b"1") + req(0x01, b"inj", SE, evil) +
                          req(0x00, b"inj") + req(0x00, b"evil") + req(0x00, b"keep") + NOOP)
    ck.eq([(p[1], p[5]) if len(p) == 10 else p for p in pk],
          [(1, 0), (1, 0), (0, 0), (0, 1), (0, 0), (0x0A, 0)],
          "injection: stored, read back; evil missing; keep survives")
    ck.eq(pk[2][9][4:] if len(pk) > 2 and len(pk[2]) == 10 else pk, evil,
          "injection: the value reads back identical")
    text = kc.exchange(kc_server_of(addr), b"get evil\r\n", end=b"END\r\n")
    ck.eq(text, b"END\r\n", "injection: evil does not exist for a text client either")


_servers = {}
_started = []  # every server started here, killed if the test dies half-way


def start(binary, mode, args):
    server = kc.Server(binary, mode, args)
    _started.append(server)
    return server


def kc_server_of(addr):
    return _servers[addr]


def pylibmc_checks(ck, server):
    import pylibmc
    mc = pylibmc.Client(["%s:%d" % server.addr()], binary=True, behaviors={"cas": True})
    ck.true(mc.set("pk", "v1"), "pylibmc set")
    ck.eq(mc.get("pk"), "v1", "pylibmc get")
    mc.set_multi({"pm1": "a", "pm2": "b"})
    ck.eq(mc.get_multi(["pm1", "pm2", "pmx"]), {"pm1": "a", "pm2": "b"}, "pylibmc multi-get")
    ck.true(mc.add("pk", "x") is False, "pylibmc add on existing fails")
    mc.set("pn", "10")
    ck.eq(mc.incr("pn", 5), 15, "pylibmc incr")
    ck.eq(mc.decr("pn", 20), 0, "pylibmc decr floors at 0")
    ck.true(mc.append("pk", "+"), "pylibmc append")
    ck.true(mc.prepend("pk", "-"), "pylibmc prepend")
    ck.eq(mc.get("pk"), "-v1+", "pylibmc append/prepend result")
    val, cas = mc.gets("pk")
    ck.true(mc.cas("pk", "v2", cas), "pylibmc cas with the right unique")
    ck.true(not mc.cas("pk", "v3", cas), "pylibmc cas with a stale unique fails")
    ck.eq(mc.get("pk"), "v2", "pylibmc value after cas")
    ck.true(mc.touch("pk", 100), "pylibmc touch")
    ck.true(mc.delete("pk"), "pylibmc delete")
    ck.eq(mc.get("pk"), None, "pylibmc get after delete")
    big = os.urandom(500000)
    mc.set("pbig", big)
    ck.eq(mc.get("pbig"), big, "pylibmc 500 KB binary value")
    mc.flush_all()
    ck.eq(mc.get("pm1"), None, "pylibmc flush_all")


def sasl_checks(ck, binary, mode, extra, tmp):
    import bmemcached
    from bmemcached.exceptions import InvalidCredentials, MemcachedException
    pwdb = os.path.join(tmp, "pwdb")
    with open(pwdb, "w") as f:
        f.write("alice:s3cret\nbob:hunter2\n")
    old = os.environ.get("MEMCACHED_SASL_PWDB")
    os.environ["MEMCACHED_SASL_PWDB"] = pwdb
    try:
        server = start(binary, mode, ["-S"] + extra)
    finally:
        if old is None:
            del os.environ["MEMCACHED_SASL_PWDB"]
        else:
            os.environ["MEMCACHED_SASL_PWDB"] = old
    addr = "%s:%d" % server.addr()
    good = bmemcached.Client((addr,), "alice", "s3cret")
    ck.true(good.set("sk", "sv"), "bmemcached with SASL: set")
    ck.eq(good.get("sk"), "sv", "bmemcached with SASL: get")
    good.disconnect_all()
    refused = False
    try:
        bad = bmemcached.Client((addr,), "alice", "wrong")
        refused = not bad.set("sk", "x")
    except InvalidCredentials:
        refused = True
    except MemcachedException as e:
        # bmemcached knows the old auth-error code (0x08); memcached sends 0x20
        refused = "Auth failure." in str(e)
    ck.true(refused, "bmemcached with a wrong password is refused")
    pk, closed = exchange(server.addr(), req(0x00, b"sk") + NOOP)
    ck.eq([(p[1], p[5], p[9]) for p in pk], [(0, 0x20, b"Auth failure.")],
          "-S: get before auth: Auth failure.")
    ck.true(closed, "-S: and the connection is closed")
    pk, closed = exchange(server.addr(), b"get sk\r\n" + b" " * 30)
    ck.true(closed and not pk, "-S: the text protocol is refused (closed)")
    st = dict((p[9][:p[2]], p[9][p[2]:]) for p in exchange(
        server.addr(), req(0x21, b"PLAIN", value=b"\0bob\0hunter2") + req(0x10) + NOOP)[0][1:-2])
    ck.eq((st.get(b"auth_cmds"), st.get(b"auth_errors")), (b"3", b"1"),
          "-S: auth_cmds/auth_errors count SASL attempts")
    ck.finish_server(server)
    return pwdb


def sasl_diff(ck, binary, mode, extra, tmp):
    """Unauthenticated behaviour with -S, diffed against memcached -S."""
    conf = os.path.join(tmp, "sasl")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "memcached.conf"), "w") as f:
        f.write("mech_list: plain\n")
    mc = Memcached(["-S"], env=dict(os.environ, SASL_CONF_PATH=conf))
    os.environ["MEMCACHED_SASL_PWDB"] = os.path.join(tmp, "pwdb")
    try:
        server = start(binary, mode, ["-S"] + extra)
    finally:
        del os.environ["MEMCACHED_SASL_PWDB"]
    try:
        cases = [
            ("list_mechs", req(0x20) + NOOP),
            ("version_unauth", req(0x0B) + NOOP),
            ("get_unauth", req(0x00, b"x") + NOOP),
            ("stat_unauth", req(0x10) + NOOP),
            ("bad_password", req(0x21, b"PLAIN", value=b"\0alice\0nope") + NOOP),
            ("bad_mech", req(0x21, b"FOO", value=b"\0alice\0nope") + NOOP),
            ("long_mech", req(0x21, b"M" * 33, value=b"\0a\0b") + NOOP),
            ("plain_continue", req(0x21, b"PLAIN") + req(0x22, b"PLAIN", value=b"\0alice\0nope") + NOOP),
            ("step_unstarted", req(0x22, b"PLAIN", value=b"\0alice\0nope") + NOOP),
            ("auth_no_key", req(0x21, value=b"x") + NOOP),
        ]
        diff_raw(ck, server.addr(), mc.addr(), cases, "-S")
    finally:
        mc.stop()
    ck.finish_server(server)


def memccapable(ck, server):
    tool = shutil.which("memccapable")
    if not tool:
        print("SKIP: memccapable (libmemcached-tools) is not installed")
        sys.exit(kc.SKIP)
    r = subprocess.run([tool, "-h", kc.HOST, "-p", str(server.port), "-b"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors="replace")
    ck.true(r.returncode == 0 and "All tests passed" in out and "[pass]" in out,
            "memccapable -b passes every binary check")
    if r.returncode != 0:
        print(out[-2000:])


def main():
    binary, mode, extra = kc.parse_args()
    ck = kc.Checker("test_kvs_binary_%s" % mode)
    tmp = tempfile.mkdtemp(prefix="kvs-bin-")
    mc = Memcached()
    server = start(binary, mode, extra)
    _servers[server.addr()] = server
    try:
        diff_raw(ck, server.addr(), mc.addr(), raw_cases(), "raw")
        stat_shape(ck, server.addr())
        injection(ck, server.addr())
        pylibmc_checks(ck, server)
        memccapable(ck, server)
        # a text client on the same server is unaffected by negotiation
        ck.eq(kc.exchange(server, b"version\r\n", end=b"\r\n"), b"VERSION 1.6.18\r\n",
              "text clients still negotiate text")
    finally:
        mc.stop()
    bserver = start(binary, mode, ["-B", "binary"] + extra)
    pk, closed = exchange(bserver.addr(), b"version\r\n" + b" " * 20)
    ck.true(closed and not pk, "-B binary: a text request is closed (memcached: bad magic)")
    pk, closed = exchange(bserver.addr(), req(0x0B) + NOOP)
    ck.eq([p[9] for p in pk], [b"1.6.18", b""], "-B binary: binary works")
    rc, out = bserver.stop()
    ck.true(rc == 0 and out.rstrip().endswith(b"END") and b"STAT cmd_get" in out,
            "-B binary: the exit statistics are still formatted (as text)")
    sasl_checks(ck, binary, mode, extra, tmp)
    sasl_diff(ck, binary, mode, extra, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    ck.finish(server)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        for s in _started:
            s.kill()
        raise
