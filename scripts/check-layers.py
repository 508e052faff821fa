#!/usr/bin/env python3
"""Checks that rtmd's sources keep the layering of docs/architecture.md.

The layers, lowest first, and where their files live:

    0 core       src/core/                  shared with the SDK
    1 base       src/rtmd/config.*, src/rtmd/store/
    2 transport  src/rtmd/transport/
    3 dispatch   src/rtmd/dispatch/
    4 modules    src/rtmd/modules/          (a folder in it is one module)
    5 program    src/rtmd/*.c besides config (builds the layers)

A node is a file stem (x.c and x.h are one node; store/db.h and its
backends store/db_*.c are one node, and so are store/store_schema.h and
its engines store/store_schema*.c), or a module folder under modules/. An edge runs from a node to another when one of its files
includes the other's header with quotes, or names a function that the
other's .c file defines (so a function declared in one header but defined
elsewhere still counts where it lives). The check fails when a node
depends on a node of a higher layer, or when nodes depend on each other in
a cycle (within a layer too); it prints each offence.

It also keeps the store's SQL seam: no C file outside src/rtmd/store/
(in src/, tools/, tests/, fuzz/) includes <sqlite3.h> or <libpq-fe.h> or
names SQLite's API (sqlite3_*, SQLITE_*, the sqlite3 type) or libpq's
(PQ*() calls, PGconn, PGresult); SQL goes through
src/rtmd/store/db.h, so that another database backend needs no change of
the modules.

    scripts/check-layers.py            (run by scripts/test.sh)
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LAYERS = [  # (rank, name, path prefix relative to src/); first match wins
    (1, "base", "rtmd/config"),
    (1, "base", "rtmd/store/"),
    (2, "transport", "rtmd/transport/"),
    (3, "dispatch", "rtmd/dispatch/"),
    (4, "modules", "rtmd/modules/"),
    (5, "program", "rtmd/"),
    (0, "core", "core/"),
]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function definition: a line naming it, not static, then a line "{".
DEFINITION = re.compile(r'^(?!static\b)[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\([^;{]*\)\s*\n\{', re.M)
IDENT = re.compile(r'\b[A-Za-z_]\w*\b')
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\])*"', re.S)


def layer(node):
    for rank, name, prefix in LAYERS:
        if node.startswith(prefix):
            return rank, name
    raise SystemExit(f"check-layers: {node} is in no layer; add its folder to LAYERS")


def node_of(rel):
    """rel: a path under src/, e.g. rtmd/modules/history/retention.c"""
    parts = rel.split("/")
    if re.fullmatch(r"rtmd/store/db_\w+\.[ch]", rel):
        return "rtmd/store/db"  # the backends of db.h and their dispatch (db_backend.h): one node
    if re.fullmatch(r"rtmd/store/store_schema_\w+\.[ch]", rel):
        return "rtmd/store/store_schema"  # the schema of each engine: one node
    if len(parts) > 3 and parts[:2] == ["rtmd", "modules"]:
        return "/".join(parts[:3])  # a module folder is one node
    return os.path.splitext(rel)[0]


def nodes_and_edges():
    files = {}
    for sub in ("core", "rtmd"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, "src", sub)):
            for name in names:
                if name.endswith((".c", ".h")):
                    path = os.path.join(dirpath, name)
                    rel = os.path.relpath(path, os.path.join(ROOT, "src"))
                    files.setdefault(node_of(rel), []).append(path)
    by_header = {}
    for node, paths in files.items():
        for path in paths:
            if path.endswith(".h"):
                by_header[os.path.basename(path)] = node
    texts = {}
    defined_in = {}
    for node, paths in files.items():
        for path in paths:
            with open(path, encoding="utf-8") as f:
                texts[path] = f.read()
            if path.endswith(".c"):
                for name in DEFINITION.findall(texts[path]):
                    defined_in.setdefault(name, node)
    edges = {n: {} for n in files}  # node -> {target: why}
    for node, paths in files.items():
        for path in paths:
            text = texts[path]
            base = os.path.basename(path)
            for inc in INCLUDE.findall(text):
                target = by_header.get(os.path.basename(inc))
                if target and target != node:
                    edges[node].setdefault(target, f"{base} includes {inc}")
            for name in sorted(set(IDENT.findall(COMMENT.sub(" ", text)))):
                target = defined_in.get(name)
                if target and target != node:
                    edges[node].setdefault(target, f"{base} calls {name}")
    return edges


SEAM_DIRS = ("src", "tools", "tests", "fuzz")
SEAM_OWNER = os.path.join("src", "rtmd", "store") + os.sep
SEAM_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](sqlite3\.h|libpq-fe\.h)[>"]', re.M)
SEAM_NAME = re.compile(r'\b(sqlite3_\w+|SQLITE_\w+|sqlite3\b(?=\s*\*)|PQ[a-z]\w*(?=\s*\()|PGconn\b|PGresult\b)')


def seam_offences():
    """Files outside src/rtmd/store/ that use SQLite's or libpq's API directly."""
    out = []
    for top in SEAM_DIRS:
        for dirpath, dirs, names in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "node_modules" and not d.startswith(".")]
            for name in sorted(names):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ROOT)
                if rel.startswith(SEAM_OWNER):
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                inc = SEAM_INCLUDE.search(text)
                if inc:
                    out.append(f"seam: {rel} includes {inc.group(1)} (use src/rtmd/store/db.h)")
                m = SEAM_NAME.search(COMMENT.sub(" ", text))
                if m:
                    out.append(f"seam: {rel} names {m.group(1)} (use src/rtmd/store/db.h)")
    return out


def cycles(edges):
    """Tarjan's strongly connected components, those of two or more nodes."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = nodes_and_edges()
    offences = []
    for node in sorted(edges):
        rank, name = layer(node)
        for target, why in sorted(edges[node].items()):
            trank, tname = layer(target)
            if trank > rank:
                offences.append(f"upward: {node} ({name}) -> {target} ({tname}): {why}")
    for comp in cycles(edges):
        inner = [f"{a} -> {b} ({edges[a][b]})" for a in comp for b in comp if b in edges[a]]
        offences.append("cycle: " + "; ".join(inner))
    offences += seam_offences()
    for o in offences:
        print("FAIL " + o)
    if offences:
        print("see the layer rules in docs/architecture.md")
        return 1
    counts = {}
    for node in edges:
        counts[layer(node)[1]] = counts.get(layer(node)[1], 0) + 1
    summary = ", ".join(f"{name} {counts.get(name, 0)}" for name in ("core", "base", "transport", "dispatch", "modules", "program"))
    print(f"layers: no upward dependency, no cycle ({summary} nodes); SQLite and libpq used only in src/rtmd/store/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
