"""Imports inside pyad/ go one way: no module imports, at module level or inside
a function, a module that imports it back (directly or around a longer loop)."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "pyad"


def pyad_imports(tree, module, modules):
    """The pyad modules a parsed module imports, anywhere in its body (module level,
    functions, methods, conditionals), as {name: first line}."""
    found = {}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = node.module
                targets = [base] if base else [alias.name for alias in node.names]
            elif node.level == 0 and node.module and node.module.split(".")[0] == "pyad":
                parts = node.module.split(".")
                targets = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name.split(".")[1] for a in node.names
                       if a.name.startswith("pyad.") and a.name.count(".") >= 1]
        for name in targets:
            name = name.split(".")[0]
            if name in modules and name != module:
                found.setdefault(name, node.lineno)
    return found


def import_graph(sources):
    """{module: {imported module: line}} from {module: source text}."""
    modules = set(sources)
    return {m: pyad_imports(ast.parse(text), m, modules) for m, text in sources.items()}


def find_cycle(graph):
    """One import cycle as [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                cycle = visit(n)
                if cycle:
                    return cycle
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            if cycle:
                return cycle
    return None


def cycle_through(graph, module):
    """The shortest import loop from module back to itself, or None."""
    paths, seen = [[module]], {module}
    while paths:
        path = paths.pop(0)
        for n in sorted(graph[path[-1]]):
            if n == module:
                return path + [n]
            if n not in seen:
                seen.add(n)
                paths.append(path + [n])
    return None


def describe(cycle, graph):
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + \
        f" -> {cycle[-1]}"


def package_sources():
    return {p.stem: p.read_text() for p in sorted(PACKAGE.glob("*.py"))}


def test_no_import_cycle_in_pyad():
    graph = import_graph(package_sources())
    assert len(graph) > 10 and graph["tape"], "the walk found no pyad modules or imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in pyad/: " + describe(cycle, graph)


@pytest.mark.parametrize("planted", [
    "    from .tape import Tape\n",              # a function-local import, as there were 15
    "    from pyad.transforms import trace\n",
    "    import pyad.tape\n",
    "    from . import tape\n",
])
def test_a_planted_function_level_import_back_is_a_cycle(planted):
    """serialize.py imported by tape.py: a function in it importing tape (or what
    imports tape) again must be found and named."""
    sources = package_sources()
    sources["serialize"] += "\n\ndef _planted():\n" + planted
    graph = import_graph(sources)
    assert cycle_through(import_graph(package_sources()), "serialize") is None
    cycle = cycle_through(graph, "serialize")
    assert cycle is not None and cycle[0] == cycle[-1] == "serialize"
    assert find_cycle(graph) is not None
    assert "serialize (line" in describe(cycle, graph)


def test_a_module_level_cycle_is_found():
    graph = import_graph({"a": "from .b import x\n", "b": "import os\nfrom . import c\n",
                          "c": "def f():\n    if True:\n        from .a import y\n"})
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle(import_graph({"a": "from .b import x\n", "b": "import os\n"})) is None
