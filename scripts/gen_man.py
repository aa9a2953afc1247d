#!/usr/bin/python3
"""Generates section-3 man pages from the comments of Eleos's public headers.

Usage: gen_man.py [--check] [--render] INCLUDE_DIR OUT_DIR

Reads INCLUDE_DIR/eleos/*.h and writes into OUT_DIR (made if missing):
  - one page per header, named after its subsystem (eleos_sys.3, eleos_suvm.3 ...), from the
    header's opening comment: what the subsystem is, its conventions and its limits;
  - one page per public function, from the comment in front of its declaration. Functions
    declared one after another under one comment form a group, as in liburing: the first
    function's page holds the text, the others are ".so" links to it.

What counts as a function's comment: the nearest block comment above the declaration, with
nothing but other function declarations (of its group) in between. A comment that opens
with "---" or "===" is a section title: its text, if any, goes into every page of the
section (CONTEXT), and it documents nothing on its own. Names ending in "_" are the
library's private helpers for inline functions: they need a comment but get no page.

--check fails (exit 1) when a public function has no comment or no page was written for it,
so a function cannot be added undocumented; --render additionally runs every page through
groff with warnings on (exit 1 on any warning). CI runs both (ctest test_docs_man).
"""

import os
import re
import shutil
import subprocess
import sys

VERSION_DATE = "Eleos-C"

FUNC_RE = re.compile(r"\b(eleos_\w+)\s*\(")


def strip_preprocessor(text):
    """Blanks out preprocessor lines and the C++ guards, keeping line numbers."""
    def blank(m):
        return "\n" * m.group(0).count("\n")
    text = re.sub(r"#ifdef __cplusplus\n.*?#endif", blank, text, flags=re.S)
    out = []
    cont = False
    for line in text.split("\n"):
        if cont or line.lstrip().startswith("#"):
            cont = line.endswith("\\")
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def tokenize(text):
    """Splits a header into items: ("comment", text) and ("decl", text), in order.

    A declaration runs to a top-level ';', or to the end of a brace block that follows a
    ')' (an inline function's body). Struct and enum bodies are kept inside their
    declaration. String and character literals in inline bodies hold no braces here."""
    items = []
    i, n = 0, len(text)
    start = None
    depth = 0
    while i < n:
        if text.startswith("/*", i):
            j = text.index("*/", i + 2)
            if depth or (start is not None and text[start:i].strip()):
                pass  # a comment inside a declaration (a field's): not a doc comment
            else:
                items.append(("comment", text[i + 2:j]))
                start = None
            i = j + 2
            continue
        if text.startswith("//", i):
            i = text.index("\n", i)
            continue
        c = text[i]
        if start is None and not c.isspace():
            start = i
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start is not None:
                head = text[start:i]
                body_open = head.find("{")
                if re.search(r"\)\s*$", head[:body_open]):
                    items.append(("decl", text[start:i + 1]))
                    start = None
        elif c == ";" and depth == 0 and start is not None:
            items.append(("decl", text[start:i + 1]))
            start = None
        i += 1
    return items


def clean_comment(raw):
    """The text of a block comment, without its leading stars, dedented."""
    lines = raw.split("\n")
    out = []
    for line in lines:
        s = line.strip()
        if s.startswith("*"):
            s = line.split("*", 1)[1]
            s = s[1:] if s.startswith(" ") else s
        else:
            s = line[1:] if line.startswith(" ") else line
        out.append(s.rstrip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def is_section(text):
    s = text.lstrip()
    return s.startswith("---") or s.startswith("===")


def section_body(text):
    """A section comment's text after its title line, or ''."""
    lines = text.split("\n")
    return "\n".join(lines[1:]).strip("\n")


def prototype(decl):
    """A function declaration as the SYNOPSIS shows it: attributes and bodies dropped."""
    head = decl
    if decl.rstrip().endswith("}"):
        head = decl[:decl.index("{")]
    head = head.replace("ELEOS_MUST_CHECK", "").replace("static inline", "")
    head = re.sub(r"__attribute__\s*\(\(.*?\)\)", "", head)
    head = " ".join(head.split()).rstrip(";").strip()
    return head + ";"


def parse_header(path):
    """Returns (header comment, [function records]) of one header.

    A record: name, prototype, doc (the group's comment), section context, group leader."""
    with open(path, encoding="utf-8") as f:
        items = tokenize(strip_preprocessor(f.read()))
    header_doc = ""
    if items and items[0][0] == "comment":
        header_doc = clean_comment(items[0][1])
        items = items[1:]
    funcs = []
    doc, context, leader = None, "", None
    for kind, text in items:
        if kind == "comment":
            t = clean_comment(text)
            if is_section(t):
                context = section_body(t)
                doc = None
            else:
                doc = t
            leader = None
            continue
        head = text.split("{")[0]
        m = FUNC_RE.search(head)
        definition = "{" in text and not re.search(r"\)\s*$", head)  # struct, enum
        if not m or definition or text.lstrip().startswith("typedef"):
            doc, leader = None, None
            continue
        name = m.group(1)
        if leader is None:
            leader = name
        funcs.append({"name": name, "proto": prototype(text), "doc": doc,
                      "context": context, "leader": leader})
    return header_doc, funcs


def roff_escape(s):
    s = s.replace("\\", "\\e")
    s = s.replace("-", "\\-")
    # groff reads the page as Latin-1 unless preconv runs: name every other character.
    return "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in s)


def roff_text(text, names):
    """Turns comment text into man(7) paragraphs. Lines indented or starting a list item
    are kept as lines; blank lines separate paragraphs; names of public functions and of
    constants are set in bold."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = para.split("\n")
        structured = any(re.match(r"\s+\S", ln) or re.match(r"\s*[-*] ", ln) for ln in lines)
        out.append(".PP")
        if structured:
            out.append(".nf")
        for ln in lines:
            ln = roff_escape(ln if structured else ln.strip())
            ln = re.sub(r"\b(eleos_\w+|ELEOS_\w+)\b", r"\\fB\1\\fR", ln)
            if ln.startswith((".", "'")):
                ln = "\\&" + ln
            out.append(ln)
        if structured:
            out.append(".fi")
    return "\n".join(out)


def page(title, sname, names_line, synopsis, desc, context, see_also, public):
    o = ['.TH %s 3 "%s" "%s" "Eleos-C Programmer\'s Manual"' % (
        title.upper(), VERSION_DATE, "libeleos")]
    o.append(".SH NAME")
    o.append("%s \\- %s" % (roff_escape(names_line), roff_escape(sname)))
    if synopsis is not None:
        o.append(".SH SYNOPSIS")
        o.append(".nf")
        o.append(".B #include <eleos/%s>" % synopsis[0])
        o.append(".PP")
        for p in synopsis[1]:
            o.append(".BI \"%s\"" % roff_escape(p).replace('"', '\\(dq'))
        o.append(".fi")
    o.append(".SH DESCRIPTION")
    o.append(roff_text(desc, public))
    if context:
        o.append(".SH CONTEXT")
        o.append(roff_text(context, public))
    if see_also:
        o.append(".SH SEE ALSO")
        o.append(",\n".join(".BR %s (3)" % roff_escape(s) for s in see_also))
    return "\n".join(o) + "\n"


def summary(doc, header):
    """The first sentence of a comment, for the NAME line. A system-call wrapper's comment
    opens with the call's name ("readv: ..."), which says less than the call's own page."""
    s = " ".join(doc.split())
    m = re.match(r"([a-z0-9_]+(?:, [a-z0-9_]+)*)( \([^)]*\))?:", s)
    if header == "sys.h" and m:
        calls = ", ".join(c + "(2)" for c in m.group(1).split(", "))
        return "exitless %s for enclave code" % calls
    m = re.match(r"(.+?[.:])(\s|$)", s)
    s = m.group(1) if m else s
    s = s.rstrip(".:")
    return s if len(s) <= 110 else s[:107].rsplit(" ", 1)[0] + "..."


def generate(incdir, outdir):
    """Writes every page; returns (public names, problems, files written)."""
    os.makedirs(outdir, exist_ok=True)
    for old in os.listdir(outdir):  # pages of functions that no longer exist
        if old.startswith("eleos_") and old.endswith(".3"):
            os.unlink(os.path.join(outdir, old))
    headers = sorted(h for h in os.listdir(os.path.join(incdir, "eleos")) if h.endswith(".h"))
    parsed = {h: parse_header(os.path.join(incdir, "eleos", h)) for h in headers}
    public = {f["name"] for h in headers for f in parsed[h][1] if not f["name"].endswith("_")}
    problems, written = [], []
    for h in headers:
        header_doc, funcs = parsed[h]
        base = "eleos_" + h[:-2]
        fnames = [f["name"] for f in funcs if not f["name"].endswith("_")]
        if fnames:
            if not header_doc:
                problems.append("%s: no opening comment" % h)
            path = os.path.join(outdir, base + ".3")
            with open(path, "w", encoding="utf-8") as f:
                f.write(page(base, "overview of <eleos/%s>" % h, base, None, header_doc, "",
                             fnames, public))
            written.append(path)
        groups = {}
        for fn in funcs:
            if not fn["doc"]:
                problems.append("%s: %s has no comment" % (h, fn["name"]))
                continue
            if fn["name"].endswith("_"):
                continue
            groups.setdefault(fn["leader"], []).append(fn)
        for leader, members in groups.items():
            members = [m for m in members if not m["name"].endswith("_")]
            if not members:
                continue
            first = members[0]["name"]
            names = [m["name"] for m in members]
            text = members[0]["doc"]
            mentioned = [n for n in dict.fromkeys(re.findall(r"\beleos_\w+", text))
                         if n in public and n not in names]
            see = [base] + mentioned
            path = os.path.join(outdir, first + ".3")
            with open(path, "w", encoding="utf-8") as f:
                f.write(page(first, summary(text, h), ", ".join(names),
                             (h, [m["proto"] for m in members]), text,
                             members[0]["context"], see, public))
            written.append(path)
            for other in names[1:]:
                p = os.path.join(outdir, other + ".3")
                with open(p, "w", encoding="utf-8") as f:
                    f.write(".so man3/%s.3\n" % first)
                written.append(p)
    for name in sorted(public):
        if not os.path.exists(os.path.join(outdir, name + ".3")):
            problems.append("%s: no man page written" % name)
    return public, problems, written


def render(outdir, written):
    """Runs each page through groff with every warning on; returns the problems."""
    groff = shutil.which("groff")
    if not groff:
        print("gen_man: groff not found: pages written but their rendering is not checked")
        return []
    problems = []
    for path in written:
        with open(path, encoding="utf-8") as f:
            if f.read().startswith(".so "):
                continue
        r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", path],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0 or r.stderr.strip():
            problems.append("%s: groff: %s" % (os.path.basename(path), r.stderr.strip()))
    return problems


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    if len(args) != 2 or flags - {"--check", "--render"}:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    public, problems, written = generate(args[0], args[1])
    if "--render" in flags:
        problems += render(args[1], written)
    for p in problems:
        print("gen_man: " + p, file=sys.stderr)
    print("gen_man: %d public functions, %d files in %s" % (len(public), len(written), args[1]))
    return 1 if problems and ("--check" in flags or "--render" in flags) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
