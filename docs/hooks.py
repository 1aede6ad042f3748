"""mkdocs hook: the "Supported numpy/scipy functions" page, generated at build time
from the primitive registry (pyad.ops, read from the C core's csrc/ops.def) and the
numpy protocol tables (pyad.numpy_api), so the page cannot drift from the code.

A page asks for a table by a marker line, e.g. ``<!-- pyad:registry -->``."""
import inspect

MARKERS = {}


def _marker(name):
    def register(fn):
        MARKERS[f"<!-- pyad:{name} -->"] = fn
        return fn
    return register


def _code(text):
    return f"`{text}`" if text else ""


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pyad_functions():
    """row name -> the pyad.<name> functions computing it (aliases included)."""
    import pyad
    by_row = {}
    for name in pyad.__all__:
        fn = getattr(pyad, name)
        if inspect.isfunction(fn) and fn.__module__ == "pyad.functions":
            by_row.setdefault(fn.__name__, []).append(name)
    return by_row


@_marker("registry")
def registry_table():
    """One line per registry row: what it implements and how constants are folded in."""
    from pyad import ops
    functions = _pyad_functions()
    rows = []
    for op in ops.OPS.values():
        names = functions.get(op.name, [])
        rows.append((
            _code(op.name), op.kind,
            _code(op.numpy),
            _code(op.operator),
            ", ".join(_code(f"pyad.{n}") for n in names),
            ", ".join(_code(c) for c in dict.fromkeys((op.const_form, op.rconst_form)) if c),
            "yes" if op.differentiable else "no (zero)",
        ))
    return (f"{len(rows)} rows, in op-code order.\n\n"
            + _table(("row", "kind", "numpy / scipy function", "Python operator", "pyad function",
                      "constant forms", "derivative"), rows))


def _public(fn):
    from pyad import numpy_api
    try:
        return numpy_api.public_name(fn)
    except Exception:  # a table entry numpy_api cannot name: its plain name
        return f"numpy.{getattr(fn, '__name__', fn)}"


@_marker("array-functions")
def array_function_table():
    """numpy functions that pyad implements through __array_function__ (composites,
    reductions, products and structural moves), and the ufunc methods it handles."""
    from pyad import numpy_api
    names = sorted(_public(fn) for fn in numpy_api.FUNCTIONS)
    reducing = sorted(f"numpy.{u.__name__}.reduce" for u in numpy_api.REDUCING_UFUNCS)
    composed = sorted(f"numpy.{u.__name__}" for u in numpy_api.COMPOSED_UFUNCS)
    out = [f"{len(names)} functions: " + ", ".join(_code(n) for n in names) + ".", "",
           "Ufunc reductions: " + ", ".join(_code(n) for n in reducing) + ".", "",
           "Logical ufuncs composed from comparison rows: "
           + ", ".join(_code(n) for n in composed) + "."]
    return "\n".join(out)


@_marker("alternatives")
def alternatives_table():
    """Functions pyad refuses on active values, with the way to write them."""
    from pyad import numpy_api
    supported = {_public(fn) for fn in numpy_api.FUNCTIONS}
    rows = sorted((_code(k), _code(v)) for k, v in numpy_api.ALTERNATIVES.items()
                  if k not in supported)  # a supported one lists the forms it refuses
    return _table(("called on an active value", "raises TypeError naming"), rows)


@_marker("linalg")
def linalg_table():
    """pyad.linalg's functions, once that module exists."""
    import pyad
    linalg = getattr(pyad, "linalg", None)
    if not inspect.ismodule(linalg):
        return "This build of pyad has no `pyad.linalg` module."
    names = getattr(linalg, "__all__", [n for n in dir(linalg) if not n.startswith("_")])
    return ", ".join(_code(f"pyad.linalg.{n}") for n in names) + "."


@_marker("function-reference")
def function_reference():
    """mkdocstrings' directive for pyad.functions, naming its public functions
    (pyad.functions.__all__, generated from the registry): the module's imported
    helpers stay out of the reference."""
    from pyad import functions
    names = sorted(dict.fromkeys(functions.__all__))
    return "::: pyad.functions\n    options:\n      show_root_heading: false\n" \
        "      members_order: alphabetical\n      members:\n" \
        + "".join(f"        - {n}\n" for n in names)


@_marker("linalg-reference")
def linalg_reference():
    """The reference of pyad.linalg once that module exists."""
    import pyad
    if not inspect.ismodule(getattr(pyad, "linalg", None)):
        return "This build of pyad has no `pyad.linalg` module."
    return "::: pyad.linalg\n    options:\n      show_root_heading: false\n"


def _placed_names(api_dir):
    """The names docs/api/*.md place with a `::: pyad.<name>` line."""
    import pathlib
    import re
    text = "\n".join(p.read_text() for p in pathlib.Path(api_dir).glob("*.md"))
    return set(re.findall(r"^::: pyad\.(\w+)\s*$", text, re.M))


@_marker("unplaced")
def unplaced_reference():
    """Public names (pyad.__all__) that no reference page places yet, so that a new
    one appears in the reference as soon as it exists; its docstring is checked by
    tests/test_docstrings.py."""
    import os
    import pyad
    placed = _placed_names(os.path.join(os.path.dirname(__file__), "api"))
    names = [n for n in pyad.__all__ if n not in placed
             and not inspect.ismodule(getattr(pyad, n))
             and getattr(getattr(pyad, n), "__module__", "") != "pyad.functions"]
    if not names:
        return "Every public name has its place on the pages above."
    return "\n\n".join(f"::: pyad.{n}" for n in names)


def on_page_markdown(markdown, page, config, files):
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
