"""eleos-kvs: TLS terminated inside the enclave (-Z, -o ssl_*).

A CA, a server certificate and a client certificate are made with the openssl CLI in a
temporary directory. Checked: memcached's start-up refusals; pymemcache over TLS (set, get,
multi-get, 500 KB values, pipelined large replies); `openssl s_client`; refresh_certs;
close_notify; plain text, garbage and renegotiation on the TLS port (closed, server fine);
mutual TLS (ssl_verify_mode=2 + ssl_ca_cert); and in sgx/eleos modes the wire claim: with
TLS on, no value stored through TLS is found in clear in any untrusted mapping of the server
process (with TLS off, the same scan finds them).

usage: test_kvs_tls.py ELEOS_KVS [native|sgx|eleos] [server args...]
"""
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kvs_common import (HOST, SKIP, Checker, Server, exchange, parse_args, root_args,  # noqa: E402
                             recv_until)

binary, mode, extra = parse_args()
try:
    from pymemcache.client.base import Client
except ImportError:
    print("SKIP: python3-pymemcache is not installed (scripts/deps.sh installs it)")
    sys.exit(SKIP)
OPENSSL = shutil.which("openssl")
if not OPENSSL:
    print("SKIP: the openssl command is not installed")
    sys.exit(SKIP)

c = Checker("test_kvs_tls[%s]" % mode)
tmp = tempfile.mkdtemp(prefix="kvs-tls-")


def run(*args):
    subprocess.run([OPENSSL] + list(args), cwd=tmp, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def make_certs():
    """ca.crt/key, srv.crt/key (for 127.0.0.1), cli.crt/key signed by the CA, and an
    unrelated self-signed rogue.crt/key."""
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=eleos-kvs test CA")
    with open(os.path.join(tmp, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for name, cn, ext in (("srv", "127.0.0.1", True), ("cli", "client", False)):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
            name + ".csr", "-subj", "/CN=" + cn)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2",
            *(["-extfile", "san.ext"] if ext else []))
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out",
        "rogue.crt", "-days", "2", "-subj", "/CN=rogue")


def path(name):
    return os.path.join(tmp, name)


def tls_args(more=""):
    opts = "ssl_chain_cert=%s,ssl_key=%s" % (path("srv.crt"), path("srv.key"))
    return ["-Z", "-o", opts + more]


def client_ctx(cert=None):
    ctx = ssl.create_default_context(cafile=path("ca.crt"))
    if cert:
        ctx.load_cert_chain(path(cert + ".crt"), path(cert + ".key"))
    return ctx


def tls_exchange(srv, data, end, ctx=None, timeout=10.0):
    """One TLS connection: sends data, reads until end; exceptions are returned."""
    try:
        raw = socket.create_connection(srv.addr(), timeout=timeout)
        with (ctx or client_ctx()).wrap_socket(raw, server_hostname=HOST) as s:
            s.sendall(data)
            return recv_until(s, end, timeout)
    except (OSError, ssl.SSLError) as e:
        return e


def closed_within(srv, data, timeout=10.0):
    """Sends data in clear to the TLS port; True if the server closes the connection."""
    s = socket.create_connection(srv.addr(), timeout=timeout)
    try:
        s.sendall(data)
        s.settimeout(timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            chunk = s.recv(65536)  # an alert record may come first
            if not chunk:
                return True
            if b"VERSION" in chunk or b"ERROR" in chunk:
                return False
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def refusals():
    """memcached's start-up refusals, with its messages and exit status."""
    cases = [
        (["-Z"], 64, b"Error loading the certificate chain: (null)"),
        (["-Z", "-o", "ssl_chain_cert=%s/none.crt,ssl_key=%s" % (tmp, path("srv.key"))], 64,
         b"Error loading the certificate chain: %s/none.crt : " % tmp.encode()),
        (["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s/none.key" % (path("srv.crt"), tmp)], 64,
         b"Error loading the key: %s/none.key" % tmp.encode()),
        (["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s" % (path("srv.crt"), path("rogue.key"))], 64,
         b"Error loading the key: %s : error:05800074:x509 certificate routines::key values "
         b"mismatch" % path("rogue.key").encode()),
        (tls_args(",ssl_ca_cert=%s/none.crt" % tmp), 64, b"Error loading the CA certificate"),
        (tls_args(",ssl_ciphers=NOSUCHCIPHER"), 64,
         b"Error setting the provided cipher(s): NOSUCHCIPHER"),
        (["-Z", "-o", "ssl_verify_mode=5"], None, b"Invalid ssl_verify_mode"),
    ]
    for args, want_rc, want_msg in cases:
        cmd = [binary, "-p", "0", "-l", HOST, "--mode", mode, "--cost", "off"] + root_args() + args
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if want_rc is None:
            c.true(p.returncode != 0, "%s refused" % args)
        else:
            c.eq(p.returncode, want_rc, "exit status for %s" % args)
        c.true(want_msg in p.stdout, "message %r for %s (got %r)" % (want_msg, args, p.stdout[-300:]))


def basic(srv):
    """pymemcache over TLS, s_client, refresh_certs, close_notify, bounded output."""
    mc = Client(srv.addr(), tls_context=client_ctx(), connect_timeout=10, timeout=10)
    c.true(mc.set("k1", b"hello"), "set over TLS")
    c.eq(mc.get("k1"), b"hello", "get over TLS")
    vals = {"multi%d" % i: os.urandom(100 + i) for i in range(20)}
    mc.set_many(vals)
    c.eq(mc.get_many(list(vals)), vals, "multi-get over TLS")
    big = os.urandom(500 * 1024)
    c.true(mc.set("big", big), "set a 500 KB value over TLS")
    c.eq(mc.get("big"), big, "get a 500 KB value back over TLS")
    mc.close()
    # 24 pipelined gets of the 500 KB value (12 MB of replies, > the 1 MiB output bound)
    reply = tls_exchange(srv, b"get big\r\n" * 24 + b"version\r\n", b"VERSION 1.6.18\r\n",
                         timeout=30)
    one = b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(big), big)
    c.true(isinstance(reply, bytes) and reply == one * 24 + b"VERSION 1.6.18\r\n",
           "pipelined large replies over TLS arrive whole and in order")
    p = subprocess.run([OPENSSL, "s_client", "-quiet", "-connect", "%s:%d" % srv.addr(),
                        "-CAfile", path("ca.crt")], input=b"version\r\nquit\r\n",
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
    c.true(b"VERSION 1.6.18\r\n" in p.stdout, "openssl s_client -quiet: version (%r)" % p.stdout[-200:])
    c.eq(tls_exchange(srv, b"refresh_certs\r\n", b"\r\n"), b"OK\r\n", "refresh_certs")
    c.eq(tls_exchange(srv, b"refresh_certs noreply\r\nversion\r\n", b"\r\n"),
         b"VERSION 1.6.18\r\n", "refresh_certs noreply")
    # close_notify both ways: our unwrap() returns once the server's close_notify arrives
    raw = socket.create_connection(srv.addr(), timeout=10)
    s = client_ctx().wrap_socket(raw, server_hostname=HOST)
    s.sendall(b"version\r\n")
    c.eq(recv_until(s, b"\r\n"), b"VERSION 1.6.18\r\n", "version before close_notify")
    try:
        s.unwrap().close()
        c.true(True, "close_notify answered")
    except (OSError, ssl.SSLError) as e:
        c.true(False, "close_notify answered (%r)" % e)
    # quit: the server's close_notify follows, then EOF
    reply = tls_exchange(srv, b"version\r\nquit\r\n", b"\r\n\r\n")
    c.eq(reply, b"VERSION 1.6.18\r\n", "quit over TLS closes cleanly")


def hostile(srv):
    """Plain text, garbage and renegotiation on the TLS port: closed, the server fine."""
    c.true(closed_within(srv, b"version\r\n"), "plain text to the TLS port: closed")
    c.true(closed_within(srv, b"get foo\r\n" * 100), "plain commands to the TLS port: closed")
    c.true(closed_within(srv, random.Random(7).randbytes(3000)), "garbage: closed")
    c.true(closed_within(srv, b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100),
           "a broken ClientHello: closed")
    p = subprocess.Popen([OPENSSL, "s_client", "-tls1_2", "-connect", "%s:%d" % srv.addr(),
                          "-CAfile", path("ca.crt")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)
        p.stdin.write(b"R\n")  # s_client: renegotiate
        p.stdin.flush()
        time.sleep(1.0)
        p.stdin.write(b"version\r\n")
        p.stdin.flush()
        time.sleep(1.0)
        p.stdin.close()
    except BrokenPipeError:
        pass
    out = p.communicate(timeout=20)[0]
    c.true(b"RENEGOTIATING" in out and b"VERSION 1.6.18" not in out.split(b"RENEGOTIATING")[-1]
           and b"no renegotiation" in out, "renegotiation refused (%r)" % out[-200:])
    c.eq(tls_exchange(srv, b"version\r\n", b"\r\n"), b"VERSION 1.6.18\r\n",
         "server fine after hostile clients")


def mutual():
    srv = Server(binary, mode, tls_args(",ssl_verify_mode=2,ssl_ca_cert=%s" % path("ca.crt"))
                 + extra)
    try:
        r = tls_exchange(srv, b"version\r\n", b"\r\n")
        c.true(not (isinstance(r, bytes) and b"VERSION" in r), "mTLS: no client certificate refused")
        r = tls_exchange(srv, b"version\r\n", b"\r\n", client_ctx("rogue"))
        c.true(not (isinstance(r, bytes) and b"VERSION" in r), "mTLS: a certificate of another CA refused")
        r = tls_exchange(srv, b"version\r\n", b"\r\n", client_ctx("cli"))
        c.eq(r, b"VERSION 1.6.18\r\n", "mTLS: a certificate signed by the CA is served")
        mc = Client(srv.addr(), tls_context=client_ctx("cli"), connect_timeout=10, timeout=10)
        c.true(mc.set("m", b"mutual") and mc.get("m") == b"mutual", "mTLS: pymemcache set/get")
        mc.close()
    finally:
        c.finish_server(srv)


def scan(pid, values):
    """Every readable mapping of pid outside the enclave (the emulator's ELRANGE is the memfd
    "eleos-elrange", mapped twice): how many of values appear in clear."""
    marker = values[0][:8]
    rest = {v[8:] for v in values}
    found = set()
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            name = f[5] if len(f) > 5 else ""
            if "r" not in f[1] or "eleos-elrange" in line or name in ("[vvar]", "[vsyscall]"):
                continue
            if hi - lo > (1 << 30):  # sanitizer shadow: reserved, not data
                continue
            for at in range(lo, hi, 16 << 20):
                try:
                    mem.seek(at)
                    data = mem.read(min(hi - at, (16 << 20) + 64))
                except OSError:
                    continue
                i = data.find(marker)
                while i >= 0:
                    if data[i + 8:i + 48] in rest:
                        found.add(data[i + 8:i + 48])
                    i = data.find(marker, i + 1)
    return len(found)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def notls():
    """-l notls:ADDR:PORT: that listener speaks plain text while the other one wants TLS."""
    port = free_port()
    srv = Server(binary, mode, tls_args() + ["-l", "notls:%s:%d" % (HOST, port)] + extra)
    try:
        plain = socket.create_connection((HOST, port), timeout=10)
        plain.sendall(b"set nt 0 0 2\r\nok\r\nget nt\r\n")
        c.eq(recv_until(plain, b"END\r\n", 10), b"STORED\r\nVALUE nt 0 2\r\nok\r\nEND\r\n",
             "notls listener: plain text served")
        plain.close()
        c.eq(tls_exchange(srv, b"get nt\r\n", b"END\r\n"), b"VALUE nt 0 2\r\nok\r\nEND\r\n",
             "the other listener: TLS, same store")
        c.true(closed_within(srv, b"version\r\n"), "the other listener refuses plain text")
    finally:
        c.finish_server(srv)


def wire(tls):
    """200 values of 48 bytes through TLS (or not), read back, then the process scanned."""
    rnd = random.Random(1234 if tls else 4321)
    values = [b"ELEOSTLS" + bytes(rnd.choice(b"0123456789abcdef") for _ in range(40))
              for _ in range(200)]
    srv = Server(binary, mode, (tls_args() if tls else []) + extra)
    try:
        mc = Client(srv.addr(), tls_context=client_ctx() if tls else None, connect_timeout=10,
                    timeout=10)
        for i, v in enumerate(values):
            mc.set("wire%d" % i, v)
        got = mc.get_many(["wire%d" % i for i in range(200)])
        c.eq(sum(got.get("wire%d" % i) == v for i, v in enumerate(values)), 200,
             "wire (tls=%s): 200 values read back" % tls)
        n = scan(srv.proc.pid, values)
        mc.close()
        if tls:
            c.eq(n, 0, "wire claim: no value in clear outside the enclave with TLS on")
        else:
            c.eq(exchange(srv, b"refresh_certs\r\n", end=b"\r\n"), b"Error TLS not enabled\r\n",
                 "refresh_certs without -Z")
            c.true(n > 0, "the scan sees values in clear with TLS off (found %d)" % n)
        print("wire (tls=%s): %d of 200 values found in clear" % (tls, n))
    finally:
        c.finish_server(srv)


try:
    make_certs()
    refusals()
    srv = Server(binary, mode, tls_args() + extra)
    try:
        basic(srv)
        hostile(srv)
    finally:
        c.finish_server(srv)
    mutual()
    notls()
    if mode != "native":
        wire(True)
        wire(False)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
c.finish()
