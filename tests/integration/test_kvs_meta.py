"""eleos-kvs's meta protocol (mg ms md ma mn me) against a real memcached 1.6.18.

The same list of meta requests goes, in the same order, to eleos-kvs and to a memcached the
test starts on a free port; the replies must be identical byte for byte. Both servers start
empty and hand out CAS uniques from the same counter rule, so after the same sequence the
CAS numbers agree too and are compared unmasked. Only clock readings may differ by a tick:
remaining TTLs (t, me's exp) and access ages (l, me's la) are compared with +-1 tolerance,
as the two servers' one-second clocks do not tick together. Each request is followed by
"mn", and the reply read up to "MN\\r\\n", so quiet mode (q: no reply at all) is compared
too. The stats counters meta commands move are compared at the end.

argv: ELEOS_KVS_BINARY MODE [server args...]
"""
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import (SKIP, HOST, Checker, Server, connect, parse_args,  # noqa: E402
                             stats)

MEMCACHED = "/usr/bin/memcached"
K250 = b"k" * 250
K251 = b"k" * 251
B64_FOO = b"Zm9v"            # "foo"
B64_BIN = b"AAEC/w=="        # 00 01 02 ff: a key no text command could name
B64_SPACE = b"YSBi"          # "a b"

# (request, note). Requests run in order on one connection per server.
REQUESTS = [
    # --- mn, me, unknown m-commands, token counts -----------------------------------------
    (b"mn\r\n", "mn alone"),
    (b"mx foo\r\n", "unknown two-letter m command"),
    (b"mg\r\n", "mg without a key"),
    (b"ms\r\n", "ms without a key"),
    (b"md\r\n", "md without a key"),
    (b"ma\r\n", "ma without a key"),
    (b"me\r\n", "me without a key"),
    (b"mgx foo\r\n", "three-letter m command"),
    # --- ms basics --------------------------------------------------------------------------
    (b"ms foo 3\r\nbar\r\n", "ms set"),
    (b"ms foo 3 T0 F5 c k O123\r\nbaz\r\n", "ms with flags, returns c k O in order"),
    (b"ms foo 3 O9 c k\r\nbaz\r\n", "ms returns O c k in request order"),
    (b"ms foo 3 q\r\nqqq\r\n", "ms quiet: HD suppressed"),
    (b"ms foo 3 q MR\r\nqqq\r\n", "ms quiet replace"),
    (b"ms nokey 3 q MR\r\nabc\r\n", "ms quiet replace miss: NS shown"),
    (b"ms foo\r\n", "ms without length"),
    (b"ms foo x\r\nabc\r\n", "ms bad length"),
    (b"ms foo -1\r\n", "ms negative length"),
    (b"ms foo 3\r\nabcd\r\n", "ms bad data chunk"),
    (b"ms foo 3 q\r\nabcd\r\n", "ms bad data chunk in quiet mode"),
    (b"ms " + K251 + b" 3\r\nabc\r\n", "ms key too long: value read as command"),
    (b"ms " + K250 + b" 1 k\r\nx\r\n", "ms 250-byte key"),
    (b"ms foo 2 Z\r\nxy\r\n", "ms unknown flag: value swallowed"),
    (b"ms foo 2 S2\r\nxy\r\n", "ms S is not a 1.6.18 flag"),
    (b"ms foo 2 E5\r\nxy\r\n", "ms E is not a 1.6.18 flag"),
    (b"ms foo 2 T1 T2\r\nxy\r\n", "ms duplicate flag"),
    (b"ms foo 2 MX\r\nxy\r\n", "ms invalid mode"),
    (b"ms foo 2 MEE\r\nxy\r\n", "ms mode token too long"),
    (b"ms foo 2 Fx\r\nxy\r\n", "ms bad F"),
    (b"ms foo 2 Tx\r\nxy\r\n", "ms bad T"),
    (b"ms foo 2 Cx\r\nxy\r\n", "ms bad C"),
    (b"ms foo 2 O" + b"o" * 33 + b"\r\nxy\r\n", "ms opaque too long"),
    (b"ms foo 2 O" + b"o" * 31 + b" c\r\nxy\r\n", "ms opaque of 32 bytes with the O"),
    (b"ms foo 2 O" + b"o" * 32 + b"\r\nxy\r\n", "ms opaque of 33 bytes with the O"),
    (b"ms foo 2 O" + b"o" * 33 + b" MX\r\nxy\r\n", "ms opaque too long and bad mode"),
    (b"ms foo 2 " + b" ".join(b"O%d" % i for i in range(18)) + b"\r\nxy\r\n", "ms too many tokens"),
    (b"ms foo 2 P1 L2\r\nxy\r\n", "ms proxy hints P L accepted"),
    (b"ms foo 3 F4294967295 T0\r\nbar\r\n", "ms largest flags"),
    (b"ms exp 3 T-1\r\nbar\r\n", "ms negative TTL"),
    (b"mg exp v\r\n", "mg after a negative TTL: miss"),
    (b"ms crlf 4\r\n\r\n\r\n\r\n", "ms value holding CRLF"),
    (b"mg crlf v s\r\n", "mg value holding CRLF"),
    (b"set txt 7 0 2\r\nhi\r\nmg txt f v k s\r\n", "mg on a text set item"),
    (b"ms big 1048577 T0\r\n" + b"x" * 1048577 + b"\r\n", "ms too large: value swallowed"),
    (b"ms big 100000 c\r\n" + b"y" * 100000 + b"\r\n", "ms 100 kB"),
    (b"mg big s v\r\n", "mg 100 kB"),
    (b"ms foo 3 I\r\nbar\r\n", "ms I without C is a plain set"),
    # --- mg ----------------------------------------------------------------------------------
    (b"mg foo\r\n", "mg hit, no flags"),
    (b"mg foo v\r\n", "mg value"),
    (b"mg foo s v f t c k O77\r\n", "mg many flags"),
    (b"mg foo k v q\r\n", "mg quiet hit still answers"),
    (b"mg missing\r\n", "mg miss"),
    (b"mg missing O5 k\r\n", "mg miss with opaque and key"),
    (b"mg missing q O5\r\n", "mg quiet miss"),
    (b"mg missing v q k\r\n", "mg quiet miss with value flag"),
    (b"mg foo Z\r\n", "mg invalid flag"),
    (b"mg foo v v\r\n", "mg duplicate flag"),
    (b"mg foo O" + b"o" * 33 + b"\r\n", "mg opaque too long on a hit"),
    (b"mg missing O" + b"o" * 33 + b"\r\n", "mg opaque too long on a miss"),
    (b"mg missing q O" + b"o" * 33 + b"\r\n", "mg opaque too long in quiet mode"),
    (b"mg " + K251 + b" v\r\n", "mg key too long"),
    (b"mg " + K250 + b" v k\r\n", "mg 250-byte key"),
    (b"mg foo " + b" ".join(b"O%d" % i for i in range(18)) + b"\r\n", "mg too many tokens"),
    (b"mg foo Tx\r\n", "mg bad T"),
    (b"mg foo Nx\r\n", "mg bad N"),
    (b"mg foo Rx\r\n", "mg bad R"),
    (b"mg foo N\r\n", "mg N without a number"),
    (b"mg foo E5\r\n", "mg E is not a 1.6.18 flag"),
    (b"mg foo P L u\r\n", "mg P L u accepted"),
    (b"mg foo \xff\r\n", "mg flag byte above 126"),
    (b"ms hfoo 2\r\nhi\r\n", "ms for h/l"),
    (b"mg hfoo h l\r\n", "mg h before any fetch"),
    (b"mg hfoo h l v\r\n", "mg h after a fetch"),
    (b"ms ufoo 2\r\nhi\r\n", "ms for u"),
    (b"mg ufoo u h\r\n", "mg u: no bump"),
    (b"mg ufoo h\r\n", "mg h still 0 after u"),
    # --- TTLs: T, t, N, R ------------------------------------------------------------------
    (b"ms ttl 2 T100\r\nhi\r\n", "ms with T"),
    (b"mg ttl t\r\n", "mg t"),
    (b"mg ttl t T300\r\n", "mg t before T: the old TTL"),
    (b"mg ttl T200 t\r\n", "mg t after T: the new TTL"),
    (b"mg ttl t\r\n", "mg t after a touch"),
    (b"mg ttl T-1 v\r\n", "mg T-1 expires the item"),
    (b"mg ttl v\r\n", "mg after T-1: gone"),
    (b"mg ttl T0 t\r\n", "mg T0 clears the TTL"),
    (b"mg ttl t\r\n", "mg t: no TTL"),
    (b"ms ttl 2 T100\r\nhi\r\n", "ms TTL again"),
    (b"mg ttl R30 t c\r\n", "mg R: TTL above the token, no win"),
    (b"mg ttl R200 t c\r\n", "mg R: TTL below the token, win"),
    (b"mg ttl R200 c\r\n", "mg R again: Z"),
    (b"mg ttl c v\r\n", "mg without R: Z stays"),
    (b"mg viv N30 s t v c\r\n", "mg N vivifies: W"),
    (b"mg viv N30 s t v c\r\n", "mg N again: Z"),
    (b"mg viv2 t N30 k c\r\n", "mg N: t before N"),
    (b"mg viv4 N30 t k c\r\n", "mg N: t after N"),
    (b"mg viv5 N30 T40 t\r\n", "mg N then T: T wins"),
    (b"mg viv6 T40 N30 t\r\n", "mg T then N: N wins on a vivify"),
    (b"mg viv3 q N0 c\r\n", "mg N0 quiet vivify still answers"),
    (b"mg viv3 t\r\n", "mg t on an N0 item"),
    (b"ms viv 3 T60\r\nnew\r\n", "ms clears the token"),
    (b"mg viv c t v\r\n", "mg after recache"),
    # --- md ----------------------------------------------------------------------------------
    (b"md foo\r\n", "md hit"),
    (b"md foo\r\n", "md miss"),
    (b"md foo q\r\n", "md quiet miss: NF shown"),
    (b"ms foo 3\r\nbar\r\n", "ms for md q"),
    (b"md foo q O1 k\r\n", "md quiet hit"),
    (b"md foo O1 k\r\n", "md miss with O k"),
    (b"ms foo 3\r\nbar\r\n", "ms for md C"),
    (b"md foo C1\r\n", "md C mismatch"),
    (b"md foo C0\r\n", "md C0 mismatch"),
    (b"mg foo c\r\n", "cas before md C"),
    (b"md foo x\r\n", "md invalid flag"),
    (b"md foo Cx\r\n", "md bad C"),
    (b"md foo q q\r\n", "md duplicate flag"),
    (b"md foo O" + b"o" * 33 + b"\r\n", "md opaque too long"),
    (b"md " + K251 + b"\r\n", "md key too long"),
    (b"md foo " + b" ".join(b"O%d" % i for i in range(18)) + b"\r\n", "md too many tokens"),
    # --- invalidation: md I, stale, W/X/Z, ms I ---------------------------------------------
    (b"ms st 5 T100\r\nvalue\r\n", "ms for invalidation"),
    (b"md st I T30\r\n", "md I marks stale"),
    (b"mg st t c v\r\n", "mg stale: X W"),
    (b"mg st c v\r\n", "mg stale again: X Z"),
    (b"ms st 3 C1 I\r\nold\r\n", "ms I with an older CAS: stored stale"),
    (b"mg st c v t\r\n", "mg after stale set"),
    (b"md st I q\r\n", "md I quiet"),
    (b"mg st c\r\n", "mg stale after re-invalidation: W"),
    (b"ms st 3 C99999 I\r\nnew\r\n", "ms I with a newer CAS: EX"),
    (b"ms st 3\r\nnew\r\n", "ms plain set clears stale"),
    (b"mg st c v\r\n", "mg fresh"),
    (b"md st I C1\r\n", "md I with a wrong CAS"),
    # --- ms modes with CAS -------------------------------------------------------------------
    (b"ms m 1 ME\r\na\r\n", "ms add new"),
    (b"ms m 1 ME\r\nb\r\n", "ms add existing: NS"),
    (b"ms m 1 MA\r\nc\r\n", "ms append"),
    (b"ms m 1 MP c\r\nd\r\n", "ms prepend returns c"),
    (b"mg m v c\r\n", "after append/prepend"),
    (b"ms m 1 MA C1\r\ne\r\n", "ms append with a wrong CAS: EX"),
    (b"ms m 1 MR\r\nf\r\n", "ms replace"),
    (b"ms none 1 MR\r\nf\r\n", "ms replace miss: NS"),
    (b"ms none 1 MA\r\nf\r\n", "ms append miss: NS"),
    (b"ms none 1 C5\r\nf\r\n", "ms CAS miss: NF"),
    (b"ms m 1 C1 c\r\ng\r\n", "ms CAS mismatch: EX c0"),
    (b"ms m 1 C0\r\ng\r\n", "ms C0 is a CAS of 0: EX"),
    (b"ms m 1 MS k\r\nh\r\n", "ms explicit set mode"),
    (b"ms m 1 ME C5\r\nh\r\n", "ms add with CAS on an existing key"),
    (b"ms m2 1 ME C5 c\r\nh\r\n", "ms add with CAS on a new key"),
    (b"ms m 1 MR C1\r\nh\r\n", "ms replace with a wrong CAS"),
    (b"ms m 5 MA q\r\nappnd\r\n", "ms quiet append"),
    (b"mg m v s\r\n", "value after quiet append"),
    # --- ma ----------------------------------------------------------------------------------
    (b"ma cnt\r\n", "ma miss"),
    (b"ma cnt q O1 k\r\n", "ma quiet miss: NF shown"),
    (b"ma cnt N0 J10 v\r\n", "ma vivify with J"),
    (b"ma cnt v\r\n", "ma incr"),
    (b"ma cnt D5 v c t\r\n", "ma D with c t"),
    (b"ma cnt MD D3 v\r\n", "ma decr"),
    (b"ma cnt M- D100 v\r\n", "ma decr below zero"),
    (b"ma cnt M+ D7 v\r\n", "ma M+"),
    (b"ma cnt MI v\r\n", "ma MI"),
    (b"ma cnt q\r\n", "ma quiet hit"),
    (b"ma cnt q v\r\n", "ma quiet hit with v"),
    (b"ma cnt MX\r\n", "ma invalid mode"),
    (b"ma cnt MII\r\n", "ma mode token too long"),
    (b"ma cnt Dx\r\n", "ma bad D"),
    (b"ma cnt Jx N0\r\n", "ma bad J"),
    (b"ma cnt Z\r\n", "ma invalid flag"),
    (b"ma cnt D1 D2\r\n", "ma duplicate flag"),
    (b"ma cnt C1 v\r\n", "ma CAS mismatch"),
    (b"ma cnt D18446744073709551615 v\r\n", "ma wraps"),
    (b"ma cnt D1 v\r\n", "ma from max to 0"),
    (b"ma cnt D123456789012 v T100 t\r\n", "ma grows the value: T ignored"),
    (b"ma cnt t\r\n", "ma t after the ignored T"),
    (b"ma cnt D1 T100 t\r\n", "ma in place: T applies"),
    (b"ma cnt t T50\r\n", "ma t before T"),
    (b"ma cnt t\r\n", "ma t after T"),
    (b"ma cnt O" + b"o" * 33 + b"\r\n", "ma opaque too long (counts anyway)"),
    (b"mg cnt v\r\n", "value after ma"),
    (b"ma cnt2 N100 J5 t v k O3\r\n", "ma vivify with N TTL"),
    (b"ma cnt3 q N0\r\n", "ma quiet vivify answers"),
    (b"ms nn 3\r\nabc\r\n", "ms non-numeric"),
    (b"ma nn\r\n", "ma non-numeric"),
    (b"ms empty 0\r\n\r\n", "ms empty value"),
    (b"ma empty\r\n", "ma empty value: non-numeric"),
    (b"ma empty C1\r\n", "ma empty value with a CAS"),
    (b"ma " + K251 + b"\r\n", "ma key too long"),
    (b"ma cnt " + b" ".join(b"O%d" % i for i in range(18)) + b"\r\n", "ma too many tokens"),
    # --- base64 keys -------------------------------------------------------------------------
    (b"ms " + B64_FOO + b" 3 b k\r\nb64\r\n", "ms b stores foo"),
    (b"mg foo v k\r\n", "text key sees the b-stored item, k in base64"),
    (b"mg " + B64_FOO + b" b v k\r\n", "mg b hit"),
    (b"ms " + B64_BIN + b" 2 b c k\r\nbn\r\n", "ms binary key"),
    (b"mg " + B64_BIN + b" b k v s\r\n", "mg binary key"),
    (b"mg " + B64_SPACE + b" b k\r\n", "mg b miss, key with a space"),
    (b"mg " + B64_SPACE + b" b N0 k\r\n", "mg b vivify: key printed raw"),
    (b"me " + B64_SPACE + b" b\r\n", "me of a vivified item"),
    (b"mg " + B64_SPACE + b" b h l t s\r\n", "mg of a vivified item"),
    (b"ma " + B64_BIN + b" b k\r\n", "ma b non-numeric"),
    (b"ma Y250 b k N0 v\r\n", "ma b vivify"),
    (b"md " + B64_BIN + b" b k\r\n", "md b"),
    (b"mg ab!c b\r\n", "mg b bad base64"),
    (b"ms ab!c 2 b\r\nxy\r\n", "ms b bad base64: swallowed"),
    (b"md ab!c b\r\n", "md b bad base64"),
    (b"mg AA== b k\r\n", "mg b one byte"),
    (b"mg A=== b k\r\n", "mg b bad padding"),
    (b"me " + B64_FOO + b" b\r\n", "me b"),
    (b"me ab!c b\r\n", "me b bad base64"),
    # --- me ----------------------------------------------------------------------------------
    (b"ms dbg 5 T0 F3\r\nhello\r\n", "ms for me"),
    (b"me dbg\r\n", "me hit"),
    (b"mg dbg v\r\n", "fetch for me"),
    (b"me dbg\r\n", "me fetched"),
    (b"me missing\r\n", "me miss"),
    (b"me " + K251 + b"\r\n", "me key too long"),
    (b"me ttl\r\n", "me with TTL"),
    (b"me dbg extra tokens here\r\n", "me ignores extra tokens"),
    # --- more corners -------------------------------------------------------------------------
    (b"set plain 0 0 1\r\nx\r\nmg " + B64_FOO + b" b k\r\n", "b request, text-stored item: raw k"),
    (b"mg missing T30 t\r\n", "mg T on a miss counts a get miss"),
    (b"ms foo 3\r\nbar\r\nmd foo q C1\r\n", "md quiet CAS mismatch: EX shown"),
    (b"md nothere I\r\n", "md I on a miss"),
    (b"ma cnt q C1\r\n", "ma quiet CAS mismatch: EX shown"),
    (b"mg foo R30 t\r\n", "mg R on an item without TTL: no win"),
    (b"mg foo O" + b"o" * 31 + b" k\r\n", "mg opaque of 32 bytes"),
    (b"ms foo 3 T0 b\r\nbar\r\n", "ms b with a key that is not base64"),
    (b"mg foo v\r\nflush_all\r\nmg foo v\r\nms foo 1 c\r\nx\r\nmg foo v c\r\n",
     "flush_all and meta"),
    # --- pipelining ---------------------------------------------------------------------------
    (b"ms p1 1 q\r\na\r\nms p2 1 q\r\nb\r\nmg p1 v q\r\nmg p3 v q\r\nmg p2 v k q\r\n", "quiet pipeline"),
    (b"mg p1 v\r\nget p2\r\nmd p1 q\r\nmg p1\r\n", "meta and text commands mixed"),
]


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_memcached():
    for _ in range(5):
        port = free_port()
        cmd = [MEMCACHED, "-p", str(port), "-U", "0", "-l", HOST]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # memcached refuses to run as root without -u
        proc = subprocess.Popen(cmd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline and proc.poll() is None:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    raise RuntimeError("memcached did not start")


def ask(sock, req):
    """Sends req and an mn; returns the replies up to that mn's MN. memcached writes at
    each mn, so a request holding its own mn replies in pieces: count them."""
    want = req.count(b"mn\r\n") + 1
    sock.sendall(req + b"mn\r\n")
    sock.settimeout(10.0)
    buf = b""
    while buf.count(b"MN\r\n") < want or not buf.endswith(b"MN\r\n"):
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    return buf


CLOCK = re.compile(rb"(?<= )(t|l|exp=|la=)(-?\d+)")


def same(a, b):
    """Equal, except clock readings (t, l, exp=, la=) may differ by one tick."""
    if a == b:
        return True
    ta, tb = CLOCK.split(a), CLOCK.split(b)
    if len(ta) != len(tb):
        return False
    for i, (x, y) in enumerate(zip(ta, tb)):
        if i % 3 == 2:
            if abs(int(x) - int(y)) > 1:
                return False
        elif x != y:
            return False
    return True


COUNTERS = ["cmd_get", "get_hits", "get_misses", "cmd_set", "cmd_touch", "touch_hits",
            "touch_misses", "delete_hits", "delete_misses", "incr_hits", "incr_misses",
            "decr_hits", "decr_misses", "cas_hits", "cas_misses", "cas_badval", "cmd_meta",
            "total_items"]  # not curr_items: memcached's LRU crawler reaps dead items at will


def main():
    binary, mode, extra = parse_args()
    if not os.access(MEMCACHED, os.X_OK):
        print("SKIP: %s is not installed (the reference server)" % MEMCACHED)
        sys.exit(SKIP)
    c = Checker("test_kvs_meta[%s]" % mode)
    c.true(len(REQUESTS) >= 80, "at least 80 meta requests")
    mc, port = start_memcached()
    server = Server(binary, mode, extra)
    try:
        ref = socket.create_connection((HOST, port), timeout=10)
        ours = connect(server)
        for req, note in REQUESTS:
            want, got = ask(ref, req), ask(ours, req)
            if not same(got, want):
                c.eq(got, want, "%s: %r" % (note, req[:80]))
            else:
                c.passed += 1
        # The counters meta commands move, as memcached moves them.
        class Ref:
            def addr(self):
                return (HOST, port)
        sr, so = stats(Ref()), stats(server)
        for k in COUNTERS:
            c.eq(so.get(k), sr.get(k), "stats %s" % k)
        ref.close()
        ours.close()
    finally:
        mc.terminate()
        mc.wait(10)
    c.finish(server)


if __name__ == "__main__":
    main()
