"""eleos-kvs with the libmemcached command-line tools: memccp, memccat, memcstat, memcrm,
memcflush, memcexist.

usage: test_kvs_tools.py ELEOS_KVS [native|sgx|eleos] [server args...]
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import SKIP, Checker, Server, parse_args  # noqa: E402

binary, mode, extra = parse_args()
tools = ["memccp", "memccat", "memcstat", "memcrm", "memcflush"]
missing = [t for t in tools if shutil.which(t) is None]
if missing:
    print("SKIP: libmemcached-tools not installed (%s); scripts/deps.sh installs it" % " ".join(missing))
    sys.exit(SKIP)

c = Checker("test_kvs_tools[%s]" % mode)
srv = Server(binary, mode, extra)


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, timeout=30, **kw)


try:
    servers = "--servers=127.0.0.1:%d" % srv.port
    tmp = tempfile.mkdtemp(prefix="kvs-tools-")
    files = {"small.txt": b"hello eleos\n", "binary.bin": os.urandom(200000) + b"\r\nEND\r\n\x00",
             "empty": b""}
    for name, data in files.items():
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(data)
        r = run("memccp", servers, name, cwd=tmp)
        c.eq(r.returncode, 0, "memccp %s (%s)" % (name, r.stderr[-200:]))
    for name, data in files.items():
        r = run("memccat", servers, name)
        c.eq(r.returncode, 0, "memccat %s" % name)
        # memccat prints the value followed by a newline
        c.eq(r.stdout, data + b"\n", "memccat returns what memccp stored (%s)" % name)
    r = run("memcstat", servers)
    c.eq(r.returncode, 0, "memcstat")
    c.true(b"curr_items: 3" in r.stdout or b"curr_items" in r.stdout, "memcstat shows curr_items")
    c.true(b"eleos_mode" in r.stdout, "memcstat shows the eleos group")
    r = run("memcrm", servers, "small.txt")
    c.eq(r.returncode, 0, "memcrm")
    r = run("memccat", servers, "small.txt")
    c.true(r.returncode != 0 and r.stdout == b"", "memccat of a removed key fails")
    r = run("memcflush", servers)
    c.eq(r.returncode, 0, "memcflush")
    r = run("memccat", servers, "binary.bin")
    c.true(r.returncode != 0, "memccat after memcflush fails")
    shutil.rmtree(tmp)
except Exception as e:
    import traceback
    traceback.print_exc()
    c.eq(repr(e), None, "no exception")
c.finish(srv)
