"""Shared helpers for the eleos-kvs integration tests (not a test itself).

Each test starts its own server on a free loopback port (-p 0; the port is read from the
banner), bounds every wait, and stops the server with SIGTERM at the end, checking that it
exits cleanly and prints its statistics. Exit code 77 means a real prerequisite is missing.
"""
import os
import select
import signal
import socket
import subprocess
import sys
import time

SKIP = 77
HOST = "127.0.0.1"


def parse_args():
    """argv: BINARY [MODE [extra server args...]]"""
    if len(sys.argv) < 2:
        print("usage: %s ELEOS_KVS_BINARY [mode] [args...]" % sys.argv[0])
        sys.exit(2)
    binary = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "native"
    return binary, mode, sys.argv[3:]


def need_pymemcache():
    try:
        import pymemcache  # noqa: F401
    except ImportError:
        print("SKIP: python3-pymemcache is not installed (scripts/deps.sh installs it)")
        sys.exit(SKIP)


def root_args():
    """memcached's rule, which eleos-kvs follows: root must say which user to run as (-u).
    The tests run as root in CI; they stay root."""
    return ["-u", "root"] if os.geteuid() == 0 else []


class Server:
    def __init__(self, binary, mode="native", args=(), start_timeout=30.0, prefix=()):
        cmd = list(prefix) + [binary, "-p", "0", "-l", HOST, "--mode", mode] + root_args() + list(args)
        if mode != "native" and "--cost" not in args:
            # The tests check behaviour, not speed: the cost model only slows them down.
            cmd += ["--cost", "off"]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = b""
        self.port = None
        deadline = time.time() + start_timeout
        while self.port is None:
            left = deadline - time.time()
            if left <= 0 or self.proc.poll() is not None:
                self._read_some(0.1)
                self.kill()
                raise RuntimeError("server did not start: %r\n%s" % (cmd, self.output.decode(errors="replace")))
            self._read_some(min(left, 0.5))
            for line in self.output.split(b"\n"):
                if line.startswith(b"listening on "):
                    self.port = int(line.rsplit(b":", 1)[1])
                    break

    def _read_some(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if r:
            data = os.read(self.proc.stdout.fileno(), 65536)
            self.output += data
            return len(data)
        return 0

    def addr(self):
        return (HOST, self.port)

    def stop(self, timeout=30.0):
        """SIGTERM, wait for a clean exit; returns (exit code, output)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self._read_some(0.2)
        if self.proc.poll() is None:
            self.kill()
            return -1, self.output
        while self._read_some(0.05):
            pass
        return self.proc.returncode, self.output

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def connect(server, timeout=10.0):
    s = socket.create_connection(server.addr(), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until(s, end, timeout=10.0, limit=1 << 26):
    """Reads until the data ends with `end` (bytes) or the peer closes."""
    s.settimeout(timeout)
    buf = b""
    while not buf.endswith(end):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            break
    return buf


def exchange(server, data, end=None, timeout=10.0):
    """Sends data on a fresh connection and returns the reply. If `end` is None, reads
    until the server has been quiet for a short while or closes (for error cases)."""
    s = connect(server, timeout)
    try:
        s.sendall(data)
        if end is not None:
            return recv_until(s, end, timeout)
        s.settimeout(0.3)
        out = b""
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    out += b"<EOF>"
                    break
                out += chunk
        except socket.timeout:
            pass
        return out
    finally:
        s.close()


class Checker:
    def __init__(self, name):
        self.name = name
        self.failed = 0
        self.passed = 0

    def eq(self, got, want, what):
        if got == want:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s: %s\n  want %r\n  got  %r" % (self.name, what, want[:300] if isinstance(want, (bytes, str)) else want,
                                                   got[:300] if isinstance(got, (bytes, str)) else got))

    def true(self, cond, what):
        self.eq(bool(cond), True, what)

    def finish_server(self, server):
        """Stops a server started for one part of a test; it must exit cleanly."""
        rc, out = server.stop()
        self.eq(rc, 0, "server exits cleanly on SIGTERM")
        if rc != 0:
            print(out.decode(errors="replace")[-3000:])

    def finish(self, server=None):
        if server is not None:
            rc, out = server.stop()
            self.eq(rc, 0, "server exits cleanly on SIGTERM")
            self.true(b"eleos-kvs statistics" in out and out.rstrip().endswith(b"END"),
                      "server prints its statistics on exit")
            if self.failed:
                print(out.decode(errors="replace")[-3000:])
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


def stats(server):
    raw = exchange(server, b"stats\r\n", end=b"END\r\n")
    out = {}
    for line in raw.split(b"\r\n"):
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[0] == b"STAT":
            out[parts[1].decode()] = parts[2].decode()
    return out


def wait_for(cond, timeout=10.0, step=0.05):
    """Polls cond() (exceptions count as False) until true or timeout; returns the last
    value. Closing a socket is asynchronous for the server, so counts settle shortly after."""
    deadline = time.time() + timeout
    while True:
        try:
            v = cond()
        except (OSError, ValueError, KeyError):
            v = False
        if v or time.time() >= deadline:
            return v
        time.sleep(step)
