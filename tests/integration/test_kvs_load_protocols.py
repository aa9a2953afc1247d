"""eleos-kvs-load's --protocol text|binary|meta and --tls against the reference, a real
memcached 1.6.18 (so the generator is checked independently of eleos-kvs's own protocol work).

usage: test_kvs_load_protocols.py ELEOS_KVS_LOAD [MEMCACHED]

Plain memcached: a text preload, then per protocol a 1.5 s pipelined measuring run with
--verify (no errors, no misses, GETs and SETs, hits verified); then ten keys overwritten
with wrong bytes must make every protocol's --verify fail (exit 1, verify failures, no
protocol errors). memcached -Z with a throw-away CA and certificate (openssl CLI): per
protocol a preload + verified run over TLS with the certificate checked against the CA; a
CA that did not sign it is refused (exit 2), --tls-insecure accepts it, and --tls against
the plain server fails the handshake with a clear message (exit 2).
"""
import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import HOST, SKIP, Checker  # noqa: E402

if len(sys.argv) not in (2, 3):
    print("usage: %s ELEOS_KVS_LOAD [MEMCACHED]" % sys.argv[0])
    sys.exit(2)
load = sys.argv[1]
memcached = sys.argv[2] if len(sys.argv) == 3 else shutil.which("memcached") or "/usr/bin/memcached"
if not os.access(memcached, os.X_OK) or shutil.which("openssl") is None:
    print("SKIP: memcached (%s) or the openssl CLI is not installed" % memcached)
    sys.exit(SKIP)
c = Checker("test_kvs_load_protocols")
PROTOS = ("text", "binary", "meta")
KEYS = 5000


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Memcached:
    """A real memcached on a free loopback port (retried if the port is taken meanwhile)."""

    def __init__(self, *args):
        for _ in range(5):
            self.port = free_port()
            # memcached refuses to run as root without -u
            user = ["-u", "root"] if os.geteuid() == 0 else []
            self.proc = subprocess.Popen(
                [memcached, "-p", str(self.port), "-U", "0", "-l", HOST, "-t", "2", "-m", "64"]
                + user + list(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection((HOST, self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("memcached did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_load(port, *args, timeout=40, expect_rc=0):
    cmd = [load, "-s", HOST, "-p", str(port), "--csv", "-T", "2", "-c", "4"] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rows = {row["phase"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    if r.returncode != expect_rc:
        print("$ %s (exit %d)\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr[-2000:]))
    return r.returncode, rows, r.stderr


def verified_run(port, label, proto, *extra):
    rc, rows, _ = run_load(port, "--protocol", proto, "--keys", KEYS, "--secs", 1.5,
                           "--get-ratio", 0.8, "--pipeline", 4, "--verify", *extra)
    c.eq(rc, 0, "%s %s: exit code" % (label, proto))
    m = rows.get("measure")
    c.true(m is not None, "%s %s: a measure row" % (label, proto))
    if m is None:
        return
    c.eq(m["protocol"], proto, "%s %s: protocol column" % (label, proto))
    c.eq(m["tls"], "1" if "--tls" in extra else "0", "%s %s: tls column" % (label, proto))
    for k in ("errors", "verify_failures", "conn_failures", "misses"):
        c.eq(int(m[k]), 0, "%s %s: %s" % (label, proto, k))
    c.true(int(m["hits"]) > 100 and int(m["sets"]) > 10,
           "%s %s: verified hits (%s) and sets (%s)" % (label, proto, m["hits"], m["sets"]))
    print("%s %s: %s ops/s, p99 %s us" % (label, proto, m["ops_per_s"], m["p99_us"]))


def corrupt_keys(port, n):
    """Overwrites keys 0..n-1 with values of the right length but wrong bytes."""
    with socket.create_connection((HOST, port), timeout=5) as s:
        for i in range(n):
            key = ("key:%060d" % i).encode()
            s.sendall(b"set %s %d 0 1024\r\n%s\r\n" % (key, i, b"x" * 1024))
        buf = b""
        while buf.count(b"STORED\r\n") < n:
            data = s.recv(65536)
            if not data:
                break
            buf += data
    c.eq(buf.count(b"STORED\r\n"), n, "corrupted %d keys" % n)


def make_certs(d):
    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True, timeout=30)
    for ca in ("ca", "other"):
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "2", "-subj", "/CN=%s test CA" % ca, "-keyout", ca + ".key", "-out", ca + ".crt")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=127.0.0.1", "-keyout", "srv.key", "-out", "srv.csr")
    with open(os.path.join(d, "srv.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "srv.ext", "-out", "srv.crt")


def plain_checks():
    mc = Memcached()
    try:
        rc, rows, _ = run_load(mc.port, "--keys", KEYS, "--preload")
        c.eq(rc, 0, "plain: text preload")
        for proto in PROTOS:
            verified_run(mc.port, "plain", proto)
        # --verify must catch wrong bytes whatever the protocol (and not call them errors)
        corrupt_keys(mc.port, 10)
        for proto in PROTOS:
            rc, rows, err = run_load(mc.port, "--protocol", proto, "--keys", 10, "--secs", 0.3,
                                     "--get-ratio", 1, "--verify", expect_rc=1)
            m = rows.get("measure") or {}
            c.eq(rc, 1, "corrupted %s: exit code 1" % proto)
            c.true(int(m.get("verify_failures", 0)) > 0 and "content differs" in err,
                   "corrupted %s: verify failures (%s)" % (proto, m.get("verify_failures")))
            c.eq(int(m.get("errors", -1)), 0, "corrupted %s: no protocol errors" % proto)
        return mc
    except Exception:
        mc.stop()
        raise


def tls_checks(d, plain):
    mc = Memcached("-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s" % (
        os.path.join(d, "srv.crt"), os.path.join(d, "srv.key")))
    try:
        ca = ("--tls", "--tls-ca", os.path.join(d, "ca.crt"))
        rc, _, _ = run_load(mc.port, "--keys", KEYS, "--preload", *ca)
        c.eq(rc, 0, "tls: text preload over TLS")
        for proto in PROTOS:
            verified_run(mc.port, "tls", proto, *ca)
        rc, rows, err = run_load(mc.port, "--keys", 10, "--secs", 0.3, "--tls", "--tls-ca",
                                 os.path.join(d, "other.crt"), expect_rc=2)
        c.eq(rc, 2, "tls: a CA that did not sign the certificate: exit code 2")
        c.true("certificate" in err and rows == {}, "tls: wrong CA: a clear message (%r)" % err.strip())
        rc, rows, _ = run_load(mc.port, "--keys", 10, "--secs", 0.3, "--tls", "--tls-insecure")
        c.eq(rc, 0, "tls: --tls-insecure accepts it")
    finally:
        mc.stop()
    rc, rows, err = run_load(plain.port, "--keys", 10, "--secs", 0.3, *ca, expect_rc=2)
    c.eq(rc, 2, "tls against a plain server: exit code 2")
    c.true("TLS handshake" in err and "speak TLS" in err, "tls against plain: a clear message (%r)"
           % err.strip())
    for bad in (["--protocol", "ascii"], ["--tls-ca", "x"], ["--tls", "--tls-insecure", "--tls-ca", "x"]):
        r = subprocess.run([load] + bad, capture_output=True, text=True, timeout=10)
        c.eq(r.returncode, 2, "bad option %s: exit code 2" % " ".join(bad))


d = tempfile.mkdtemp(prefix="kvs-load-tls-")
plain = None
try:
    make_certs(d)
    plain = plain_checks()
    tls_checks(d, plain)
except Exception as e:
    import traceback
    traceback.print_exc()
    c.eq(repr(e), None, "no exception")
finally:
    if plain is not None:
        plain.stop()
    shutil.rmtree(d, ignore_errors=True)
c.finish()
