#!/usr/bin/env python3
"""Checks the dependency graph of rtmd's sources for the layering
docs/architecture.md promises: the transport (conn.c with conn.h) is in no
cycle, and so depends on nothing that depends on it.

A node is a file stem under src/ (x.c and x.h are one node). An edge runs
from a node to another when one of its files includes the other's header
with quotes, or names a function that the other's .c file defines (so a
function declared in one header but defined elsewhere still counts where
it lives). Prints every cycle it finds (strongly connected components of
more than one node) and exits 1 when one of them holds a node of
TRANSPORT.

    scripts/check-layers.py            (run by scripts/test.sh)
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TRANSPORT = {"rtmd/conn"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function definition: a line naming it, not static, then a line "{".
DEFINITION = re.compile(r'^(?!static\b)[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\([^;{]*\)\s*\n\{', re.M)
IDENT = re.compile(r'\b[A-Za-z_]\w*\b')
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\])*"', re.S)


def nodes_and_edges():
    files = {}
    for sub in ("src/core", "src/rtmd"):
        for name in os.listdir(os.path.join(ROOT, sub)):
            stem, ext = os.path.splitext(name)
            if ext in (".c", ".h"):
                files.setdefault(f"{sub[4:]}/{stem}", []).append(os.path.join(ROOT, sub, name))
    by_header = {os.path.basename(n) + ".h": n for n in files}
    texts = {}
    defined_in = {}
    for node, paths in files.items():
        for path in paths:
            with open(path, encoding="utf-8") as f:
                texts[path] = f.read()
            if path.endswith(".c"):
                for name in DEFINITION.findall(texts[path]):
                    defined_in.setdefault(name, node)
    edges = {n: set() for n in files}
    for node, paths in files.items():
        for path in paths:
            text = texts[path]
            for inc in INCLUDE.findall(text):
                target = by_header.get(os.path.basename(inc))
                if target and target != node:
                    edges[node].add(target)
            for name in set(IDENT.findall(COMMENT.sub(" ", text))):
                target = defined_in.get(name)
                if target and target != node:
                    edges[node].add(target)
    return edges


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
    found = cycles(nodes_and_edges())
    bad = False
    for comp in found:
        through = TRANSPORT & set(comp)
        bad = bad or bool(through)
        print(("FAIL " if through else "note ") + "cycle: " + " -> ".join(comp))
    if bad:
        print("the transport (conn.c, conn.h) must not be in a dependency cycle: see docs/architecture.md")
        return 1
    print(f"layers: the transport is in no dependency cycle ({len(found)} other cycle(s) noted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
