#!/usr/bin/env python3
"""lint-boundary.py: checks the C++ / PostgreSQL boundary rule of DESIGN.md on src/pg.

An ERROR in PostgreSQL is a longjmp: it must never cross a frame that holds a live C++ object with
a destructor. demper keeps that rule with one guard (pg_guard in src/pg/guard.hpp) placed deeper
than the objects it protects. This script checks the two halves of the rule on every file of
src/pg (guard.hpp's static_assert checks a third: a guard's captures hold nothing to destroy):

1. A pg_guard body holds no C++ object: no std:: or core:: name, no throw/try/catch/new, no
   declaration of one of the project's class types.
2. A call that can raise an ERROR (ereport/elog at ERROR or above, SPI, palloc, array and text
   builders, tuplestores, configuration and latch calls...) is inside a pg_guard body, or in a
   plain function: one that holds no C++ object at all (as the SQL-callable functions of
   demper.cpp, written like C).

An audited exception carries a comment "boundary-ok: <why>" on its line or the line above.
Exit status 0 when clean; 1 with one line per finding (file:line: what).

Usage: scripts/lint-boundary.py [files...]   (default: src/pg/*.cpp src/pg/*.hpp)
"""
import glob
import os
import re
import sys

# Calls that can raise an ERROR (or worse) through a longjmp.
RAISING = re.compile(
    r"\b(?:ereport|elog)\s*\(\s*(?:ERROR|FATAL|PANIC)\b"
    r"|\bPG_RE_THROW\b"
    r"|\bSPI_\w+\s*\("
    r"|\bpalloc\w*\s*\(|\brepalloc\s*\("
    r"|\bconstruct_(?:md_)?array\s*\("
    r"|\bcstring_to_text\w*\s*\(|\btext_to_cstring\s*\(|\bCStringGetTextDatum\s*\("
    r"|\bTextDatumGetCString\s*\(|\bpg_detoast_datum\w*\s*\(|\bPG_GETARG_(?:TEXT|BYTEA|ARRAYTYPE)_P\w*\s*\("
    r"|\bheap_form_tuple\s*\(|\btuplestore_\w+\s*\(|\bInitMaterializedSRF\s*\("
    r"|\bget_call_result_type\s*\(|\bBlessTupleDesc\s*\("
    r"|\bSetConfigOption\s*\(|\bProcessConfigFile\s*\(|\bCHECK_FOR_INTERRUPTS\s*\("
    r"|\bWaitEventSetWait\s*\(|\bCreateWaitEventSet\s*\(|\bAddWaitEventToSet\s*\(|\bResetLatch\s*\("
    r"|\bStartTransactionCommand\s*\(|\bCommitTransactionCommand\s*\(|\bAbortCurrentTransaction\s*\("
    r"|\bBackgroundWorkerInitializeConnection\s*\(|\bDirectFunctionCall\w*\s*\("
    r"|\bRegisterBackgroundWorker\s*\(|\bDefineCustom\w+Variable\s*\(|\bMarkGUCPrefixReserved\s*\("
)

# What marks a C++ object with a destructor (or code that makes one).
CPP_OBJECT = re.compile(
    r"\bstd::|\bcore::|\bthrow\b|\btry\b|\bcatch\b|\bnew\b|\bmake_(?:shared|unique)\b"
    r"|\b(?:Rows|Args|Statement|PreparedStatement)\s*<|\b(?:RawResult|ClaimBatch|ClaimedProduct|CheckOutcome"
    r"|PushJob|PushResultRow|StorePolicy|Settings|Catalog|Worker|CheckPipeline|Publisher|StatusReport"
    r"|Housekeeping|RequestRouter|QueueRepair|ApplyColumns|SecretKey)\b"
)

AUDITED = "boundary-ok:"


def strip(text):
    """Blanks comments and the contents of string and character literals, keeping line breaks."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i) and re.match(r'R"([^(\s]*)\(', text[i:]):
            delim = re.match(r'R"([^(\s]*)\(', text[i:]).group(1)
            end = text.find(")" + delim + '"', i)
            j = n if end < 0 else end + len(delim) + 2
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j]) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def guard_bodies(code):
    """(start, end) of every pg_guard lambda body."""
    bodies = []
    for m in re.finditer(r"\bpg_guard\s*\(\s*\[[^\]]*\]\s*(?:\([^)]*\)\s*)?(?:mutable\s*)?\{", code):
        start = m.end() - 1
        bodies.append((start, matching_brace(code, start)))
    return bodies


def function_bodies(code):
    """(start, end) of every outermost function body (blocks not in namespaces, classes, enums)."""
    bodies = []
    stack = []  # kinds of the open blocks
    last_stop = 0
    for i, c in enumerate(code):
        if c == "{":
            head = code[last_stop:i]
            if stack and stack[-1][0] == "function":
                kind = "inner"
            elif re.search(r"\bnamespace\b[^;{}]*$|\bextern\s*\"\"\s*$", head):
                kind = "namespace"
            elif re.search(r"\b(?:class|struct|enum|union)\b[^();{}]*$", head):
                kind = "type"
            elif re.search(r"\)\s*(?:const\s*)?(?:noexcept\s*)?(?:override\s*)?(?:->\s*[\w:<>]+\s*)?$", head) or \
                    re.search(r"\)\s*:\s*[\w\s:,(){}<>.&*\[\]-]*$", head):
                kind = "function"
            else:
                kind = "inner"
            stack.append((kind, i))
            last_stop = i + 1
        elif c == "}":
            if stack:
                kind, start = stack.pop()
                if kind == "function":
                    bodies.append((start, i))
            last_stop = i + 1
        elif c == ";":
            last_stop = i + 1
    return bodies


def line_of(code, pos):
    return code.count("\n", 0, pos) + 1


def audited(lines, line):
    return any(AUDITED in lines[k] for k in (line - 1, line - 2) if 0 <= k < len(lines))


def inside(ranges, pos):
    return any(a < pos < b for a, b in ranges)


def lint(path):
    text = open(path, encoding="utf-8").read()
    code = strip(text)
    lines = text.split("\n")
    findings = []
    guards = guard_bodies(code)
    for a, b in guards:
        body = code[a + 1:b]
        for m in CPP_OBJECT.finditer(body):
            line = line_of(code, a + 1 + m.start())
            if not audited(lines, line):
                findings.append(f"{path}:{line}: a pg_guard body holds a C++ object or exception ({m.group(0).strip()})")
    functions = function_bodies(code)
    for m in RAISING.finditer(code):
        pos = m.start()
        line = line_of(code, pos)
        if inside(guards, pos) or audited(lines, line):
            continue
        enclosing = [(a, b) for a, b in functions if a < pos < b]
        if not enclosing:
            continue  # a declaration or a macro definition, not a call
        a, b = enclosing[0]
        # The function's own text outside its guard bodies decides whether it holds C++ objects.
        own = "".join(code[k] for k in range(a, b) if not inside(guards, k))
        if CPP_OBJECT.search(own):
            findings.append(f"{path}:{line}: {m.group(0).strip()} can raise an ERROR in a function that holds "
                            "C++ objects: call it inside pg_guard")
    return findings


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(root, "src/pg/*.cpp")) +
                                   glob.glob(os.path.join(root, "src/pg/*.hpp")))
    findings = []
    for f in files:
        findings += lint(f)
    for f in findings:
        print(f)
    print(f"lint-boundary: {len(files)} files, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
