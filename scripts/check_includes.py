#!/usr/bin/env python3
"""check_includes.py - fails when the project's modules include each other in a cycle.

A module is a header and its source of the same name in one folder (model/preprocess.h and
model/preprocess.c are the module model/preprocess). Module A depends on module B when A's
header or source has `#include "B.h"`. The quoted name is looked up as the compiler does with
the build's include folders: first A's own folder, then every project folder (model/, api/,
server/, cli/, config/, util/); a name that none of them holds (a system or generated header)
is no edge. Any cycle between two or more modules fails the check: the layers should read one
way (util <- model <- api <- server <- cli), and a cycle means two modules can only be
understood, built or replaced together.

Usage: check_includes.py [ROOT]   (ROOT: the repository, default: this script's parent's parent)
Exit status 0: no cycle; 1: a cycle (each printed as a path a -> b -> a with the include lines
that make it); 2: the check itself is broken (it could not find a cycle planted on purpose).
Run by ctest as `include_cycles`."""

import os
import re
import sys
import tempfile

MODULE_DIRS = ("model", "api", "server", "cli", "config", "util")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def project_files(root):
    """{relative path: text} of every .c and .h in the module folders."""
    files = {}
    for d in MODULE_DIRS:
        top = os.path.join(root, d)
        if not os.path.isdir(top):
            continue
        for dirpath, _, names in os.walk(top):
            for n in sorted(names):
                if n.endswith((".c", ".h")):
                    path = os.path.join(dirpath, n)
                    with open(path, encoding="utf-8", errors="replace") as f:
                        files[os.path.relpath(path, root)] = f.read()
    return files


def resolve(name, from_file, headers):
    """The project header `#include "name"` in from_file means, or None."""
    own = os.path.normpath(os.path.join(os.path.dirname(from_file), name))
    if own in headers:
        return own
    for d in MODULE_DIRS:
        candidate = os.path.normpath(os.path.join(d, name))
        if candidate in headers:
            return candidate
    return None


def module_of(path):
    return os.path.splitext(path)[0]


def module_graph(files):
    """{module: {module it includes: the first include line that says so}}."""
    headers = {p for p in files if p.endswith(".h")}
    graph = {}
    for path, text in files.items():
        edges = graph.setdefault(module_of(path), {})
        for m in INCLUDE.finditer(text):
            target = resolve(m.group(1), path, headers)
            if target is None or module_of(target) == module_of(path):
                continue
            line = text.count("\n", 0, m.start()) + 1
            edges.setdefault(module_of(target), f'{path}:{line}: #include "{m.group(1)}"')
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm, iterative; returns the components of more than one module."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def one_cycle(graph, component):
    """A shortest cycle through the component's first module, as a list of modules."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph.get(node, {})):
            if child == start:
                return paths[node] + [start]
            if child in members and child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    return component  # not reached: a component of two or more modules holds a cycle


def cycles_in(root):
    graph = module_graph(project_files(root))
    return graph, [one_cycle(graph, c) for c in strongly_connected(graph)]


def planted_cycle_is_found():
    """The check checks itself: a two-module cycle written to a temporary tree must be found."""
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "model"))
        os.makedirs(os.path.join(tmp, "api"))
        for path, text in {
            "model/a.h": '#include "b.h"\n',
            "model/b.h": "\n",
            "model/b.c": '#include "b.h"\n#include "errors.h"\n',
            "api/errors.h": '#include "a.h"\n#include <stdio.h>\n',
        }.items():
            with open(os.path.join(tmp, path), "w") as f:
                f.write(text)
        _, cycles = cycles_in(tmp)
        return len(cycles) == 1 and set(cycles[0]) == {"model/a", "model/b", "api/errors"}


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not planted_cycle_is_found():
        print("check_includes.py: the planted cycle was not found; the check is broken")
        return 2
    graph, cycles = cycles_in(root)
    if not graph:
        print(f"check_includes.py: no module under {root}; the check is broken")
        return 2
    for cycle in cycles:
        print("include cycle: " + " -> ".join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            print("    " + graph[a][b])
    if cycles:
        return 1
    print(f"no include cycle between {len(graph)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
