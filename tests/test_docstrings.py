"""The public API documents itself: every public function, class and method has a
numpy-style docstring (Parameters, Returns, Raises, Examples) and type hints, and
every example runs, on both backends. A new public name without them fails here;
the API reference (docs/, mkdocs) is built from these same docstrings."""
import doctest
import inspect
import re

import numpy as np
import pytest

import pyad
from pyad import errors

EXCEPTIONS = tuple(getattr(errors, n) for n in dir(errors)
                   if isinstance(getattr(errors, n), type)
                   and issubclass(getattr(errors, n), (Warning, Exception))
                   and getattr(errors, n).__module__ == errors.__name__)


def _top_level():
    """(public name, object): pyad.__all__, its errors, and pyad.linalg's names
    once that module exists."""
    names = [(n, getattr(pyad, n)) for n in pyad.__all__ if not inspect.ismodule(getattr(pyad, n))]
    names += [(f"pyad.errors.{e.__name__}", e) for e in EXCEPTIONS]
    linalg = getattr(pyad, "linalg", None)
    if inspect.ismodule(linalg):
        names += [(f"linalg.{n}", getattr(linalg, n)) for n in getattr(linalg, "__all__", ())]
    return names


def _members(cls):
    """The public methods and properties a class defines itself (inherited ones are
    checked on the class that defines them), with __call__ where it has one."""
    for name, attr in vars(cls).items():
        if (name.startswith("_") and name != "__call__") or not (
                inspect.isfunction(attr) or isinstance(attr, (property, classmethod,
                                                              staticmethod))):
            continue
        yield name, attr


def public_api():
    """(qualified name, object, kind) once per object (pyad.sub is pyad.subtract)."""
    seen, out = set(), []
    for name, obj in _top_level():
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        kind = "class" if inspect.isclass(obj) else "function"
        out.append((name.removeprefix("pyad."), obj, kind))
        if kind == "class" and not issubclass(obj, BaseException):
            for mname, attr in _members(obj):
                kind = "property" if isinstance(attr, property) else "method"
                out.append((f"{obj.__name__}.{mname}", attr, kind))
    return out


API = public_api()
IDS = [name for name, _, _ in API]


def _function_of(obj):
    return obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj


def _sections(doc):
    """The numpy-style section titles of a docstring (a title line over dashes)."""
    return set(re.findall(r"^\s*(\w[\w ]*)\n\s*-{3,}\s*$", doc, flags=re.M))


def _parameters(fn, skip_self):
    params = list(inspect.signature(fn).parameters.values())
    return params[1:] if skip_self and params else params


def test_the_public_api_is_found():
    names = set(IDS)
    for expected in ("grad", "trace", "Tape", "Tape.gradient", "Tape.__call__", "Array.sum",
                     "sin", "BranchError", "Tape.n_inputs", "BoolArray.all"):
        assert expected in names
    assert len(API) > 100


@pytest.mark.parametrize("name, obj, kind", API, ids=IDS)
def test_documented(name, obj, kind):
    doc = inspect.getdoc(obj.fget if kind == "property" else obj) or ""
    assert doc.strip(), f"{name} has no docstring"
    if kind == "property":
        return  # a property is documented by its docstring; its example sits on the class
    sections = _sections(doc)
    missing = [s for s in ("Examples",) if s not in sections]
    assert ">>>" in doc, f"{name}'s docstring has no example (an Examples section of >>> lines)"
    if kind == "class":
        if issubclass(obj, BaseException):
            assert not missing, f"{name}'s docstring lacks the sections {missing}"
            return
        init = _parameters(obj.__init__, skip_self=True) if "__init__" in vars(obj) else []
        if init:
            missing += [s for s in ("Parameters",) if s not in sections]
        assert not missing, f"{name}'s docstring lacks the sections {missing}"
        return
    fn = _function_of(obj)
    skip_self = kind == "method" and not isinstance(obj, staticmethod)
    params = _parameters(fn, skip_self)
    wanted = ["Returns", "Examples"] + (["Parameters", "Raises"] if params else [])
    missing = [s for s in wanted if s not in sections]
    assert not missing, f"{name}'s docstring lacks the sections {missing}"


@pytest.mark.parametrize("name, obj, kind",
                         [a for a in API if a[2] in ("function", "method")],
                         ids=[a[0] for a in API if a[2] in ("function", "method")])
def test_annotated(name, obj, kind):
    """Public signatures carry type hints: every parameter (but self) and the
    return value."""
    fn = _function_of(obj)
    sig = inspect.signature(fn)
    skip_self = kind == "method" and not isinstance(obj, staticmethod)
    bare = [p.name for p in _parameters(fn, skip_self) if p.annotation is inspect.Parameter.empty]
    assert not bare, f"{name}: parameters without a type hint: {bare}"
    assert sig.return_annotation is not inspect.Signature.empty, \
        f"{name}: no return type hint"


def _doctests(name, obj):
    finder = doctest.DocTestFinder(recurse=False, exclude_empty=True)
    target = obj.fget if isinstance(obj, property) else _function_of(obj)
    return finder.find(target, name, globs={"np": np, "pyad": pyad})


DOCTESTED = [a for a in API if a[2] != "property"]


@pytest.mark.parametrize("name, obj, kind", DOCTESTED, ids=[a[0] for a in DOCTESTED])
def test_examples_run(name, obj, kind, backend, monkeypatch, tmp_path):
    """Each docstring's examples, run as doctests on this backend (a tape the
    example records without naming a backend records on PYAD_BACKEND's)."""
    monkeypatch.setenv("PYAD_BACKEND", backend)
    monkeypatch.chdir(tmp_path)  # examples that save a tape write here
    tests = _doctests(name, obj)
    assert tests, f"{name} has no doctest"
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    report = []
    runner = doctest.DocTestRunner(optionflags=flags)
    for t in tests:
        runner.run(t, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)


def test_the_package_is_typed():
    """py.typed ships inside the package (PEP 561), so type checkers read the hints."""
    from importlib import resources
    assert resources.files("pyad").joinpath("py.typed").is_file()
