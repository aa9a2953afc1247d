#!/usr/bin/python3
"""The reference manual stays complete: every public function declared in
include/eleos/*.h has a comment and a man page, every page renders without a groff
warning, and the generator really refuses an undocumented function (a synthetic header)
and links a group's members to one page.

usage: test_docs_man.py GEN_MAN INCLUDE_DIR WORK_DIR"""
import os
import re
import shutil
import subprocess
import sys

GEN, INC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
failures = 0
passed = 0


def check(cond, what):
    global failures, passed
    if cond:
        passed += 1
    else:
        failures += 1
        print("FAIL: " + what)


def gen(inc, out, *flags):
    return subprocess.run([sys.executable, GEN, *flags, inc, out], capture_output=True,
                          text=True, check=False)


def declared(inc):
    """Public function names, found independently of the generator: an identifier
    eleos_* followed by '(' at the start of a declaration line or after its return type."""
    names = set()
    for h in os.listdir(os.path.join(inc, "eleos")):
        text = open(os.path.join(inc, "eleos", h), encoding="utf-8").read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        for m in re.finditer(r"^[A-Za-z_][\w \t*]*?\b(eleos_\w+)\s*\(", text, flags=re.M):
            if not m.group(1).endswith("_") and "typedef" not in m.group(0):
                names.add(m.group(1))
    return names


def real_headers():
    out = os.path.join(WORK, "man3")
    r = gen(INC, out, "--check", "--render")
    check(r.returncode == 0, "gen_man --check --render on include/: " + r.stderr)
    names = declared(INC)
    check(len(names) > 100, "found only %d public functions" % len(names))
    for n in sorted(names):
        check(os.path.exists(os.path.join(out, n + ".3")), "no page for " + n)
    man = shutil.which("man")
    page = os.path.join(out, "eleos_suvm_alloc.3")
    if man:
        r = subprocess.run([man, "-l", page], capture_output=True, text=True, check=False,
                           env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
        check(r.returncode == 0 and "eleos_suvm_alloc" in r.stdout and "SYNOPSIS" in r.stdout,
              "man -l eleos_suvm_alloc.3: %s" % r.stderr)
    else:
        print("note: man not installed, rendering checked with groff only")


def synthetic():
    inc = os.path.join(WORK, "fake")
    os.makedirs(os.path.join(inc, "eleos"), exist_ok=True)
    with open(os.path.join(inc, "eleos", "fake.h"), "w", encoding="utf-8") as f:
        f.write("/*\n * eleos/fake.h - a header for the generator's test.\n */\n"
                "/* Documented. Host mode, MT-safe. */\n"
                "int eleos_fake_one(int a);\n"
                "int eleos_fake_two(int a);\n\n"
                "/* --- A section --- */\n"
                "int eleos_fake_bare(void);\n")
    out = os.path.join(WORK, "fake-man3")
    r = gen(inc, out, "--check")
    check(r.returncode == 1, "an undocumented function must fail --check")
    check("eleos_fake_bare has no comment" in r.stderr, "message names it: " + r.stderr)
    two = open(os.path.join(out, "eleos_fake_two.3"), encoding="utf-8").read()
    check(two == ".so man3/eleos_fake_one.3\n", "a group member links to its leader")
    one = open(os.path.join(out, "eleos_fake_one.3"), encoding="utf-8").read()
    check("int eleos_fake_two(int a);" in one, "the leader's page shows the whole group")


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
real_headers()
synthetic()
print("%d passed, %d failed" % (passed, failures))
sys.exit(1 if failures else 0)
