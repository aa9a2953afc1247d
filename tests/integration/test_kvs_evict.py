"""eleos-kvs: LRU eviction under the -m memory limit, and a data set larger than the EPC
(sgx: emulated EPC paging of the enclave heap; eleos: SUVM paging) read back intact.

usage: test_kvs_evict.py ELEOS_KVS [native|sgx|eleos] [server args...]
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import Checker, Server, connect, parse_args, recv_until, stats  # noqa: E402

binary, mode, extra = parse_args()
c = Checker("test_kvs_evict[%s]" % mode)


def value(i, size):
    seed = hashlib.sha256(b"%d" % i).digest()
    return (seed * (size // len(seed) + 1))[:size]


def put_all(srv, n, size, prefix=b"k"):
    s = connect(srv, timeout=60)
    batch = []
    for i in range(n):
        v = value(i, size)
        batch.append(b"set %s%d %d 0 %d noreply\r\n%s\r\n" % (prefix, i, i & 0xffff, len(v), v))
        if len(batch) == 200 or i == n - 1:
            s.sendall(b"".join(batch))
            batch = []
    s.sendall(b"version\r\n")  # replies come in order: this one means all sets are done
    recv_until(s, b"VERSION 1.6.18\r\n", timeout=120)
    return s


def check_all(s, n, size, prefix=b"k"):
    good = missing = bad = 0
    for i in range(n):
        s.sendall(b"get %s%d\r\n" % (prefix, i))
        got = recv_until(s, b"END\r\n", timeout=60)
        if got == b"END\r\n":
            missing += 1
            continue
        v = value(i, size)
        if got == b"VALUE %s%d %d %d\r\n%s\r\nEND\r\n" % (prefix, i, i & 0xffff, len(v), v):
            good += 1
        else:
            bad += 1
    return good, missing, bad


# --- 1. eviction under -m: 4 MiB of memory, 20 MiB of 10 KiB values -------------------------
srv = Server(binary, mode, ["-m", "4", "-t", "2"] + extra)
try:
    n, size = 2000, 10000
    s = put_all(srv, n, size)
    st = stats(srv)
    c.true(int(st["evictions"]) > 0, "evictions under -m 4 (%s)" % st["evictions"])
    c.true(int(st["curr_items"]) < n, "fewer items than stored")
    good, missing, bad = check_all(s, n, size)
    c.eq(bad, 0, "no corrupted values after eviction")
    c.true(missing > 0 and good > 0, "old items evicted (%d), recent ones kept (%d)" % (missing, good))
    s.sendall(b"get k%d\r\n" % (n - 1))
    c.true(recv_until(s, b"END\r\n").startswith(b"VALUE k%d " % (n - 1)), "most recent item kept")
    # the server keeps serving new writes once full
    s.sendall(b"set fresh 0 0 5\r\nhello\r\nget fresh\r\n")
    c.eq(recv_until(s, b"END\r\n"), b"STORED\r\nVALUE fresh 0 5\r\nhello\r\nEND\r\n", "store works when full")
    s.close()
except Exception as e:
    import traceback
    traceback.print_exc()
    c.eq(repr(e), None, "no exception")
rc, out = srv.stop()
c.eq(rc, 0, "server (-m 4) exits cleanly")

# --- 2. a data set 2.5x the EPC (enclave modes), all read back intact ---------------------
if mode == "native":
    c.finish()
args = ["-m", "64", "-t", "2", "--epc", "16", "--suvm-cache", "8"] + extra
srv = Server(binary, mode, args)
try:
    n, size = 10000, 4000  # ~40 MiB of values against a 16 MiB EPC
    s = put_all(srv, n, size, b"p")
    good, missing, bad = check_all(s, n, size, b"p")
    c.eq((good, missing, bad), (n, 0, 0), "every value of a data set 2.5x the EPC reads back intact")
    st = stats(srv)
    if st.get("eleos_suvm") == "on":
        c.true(int(st["eleos_suvm_evictions"]) > 0 and int(st["eleos_suvm_major_faults"]) > 0,
               "SUVM paged (evictions %s, major faults %s)" % (st["eleos_suvm_evictions"], st["eleos_suvm_major_faults"]))
        c.eq(st["eleos_suvm_integrity_failures"], "0", "no SUVM integrity failures")
        sync, batches = int(st["eleos_suvm_sync_evictions"]), int(st["eleos_suvm_evictor_batches"])
        c.true(sync + batches > 0 and sync <= int(st["eleos_suvm_evictions"])
               and int(st["eleos_suvm_evictor_naps"]) > 0,
               "who evicted is reported (sync %d, evictor batches %d, naps %s)"
               % (sync, batches, st["eleos_suvm_evictor_naps"]))
    else:
        c.true(int(st["eleos_epc_evictions"]) > 0 and int(st["eleos_epc_faults"]) > 0,
               "EPC paged (evictions %s, faults %s)" % (st["eleos_epc_evictions"], st["eleos_epc_faults"]))
    s.close()
except Exception as e:
    import traceback
    traceback.print_exc()
    c.eq(repr(e), None, "no exception")
c.finish(srv)
