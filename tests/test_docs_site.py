"""The documentation site (docs/, built by mkdocs in .ci/run): every Python block of
every page runs as written on both backends, and the generated pages list what the
registry holds. (The strict mkdocs build itself runs in .ci/run, where the docs
extra is installed.)"""
import importlib.util
import inspect
import pathlib
import re

import pytest

import pyad
from pyad import ops

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def python_blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def _hooks():
    spec = importlib.util.spec_from_file_location("pyad_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_has_its_pages():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    for page in ("index.md", "quickstart.md", "jax.md", "replay.md", "batches.md",
                 "optimizers.md", "teaching.md", "supported.md", "errors.md"):
        assert page in names
    nav = (ROOT / "mkdocs.yml").read_text()
    assert all(p.relative_to(DOCS).as_posix() in nav for p in PAGES), \
        "a page missing from mkdocs.yml's nav"


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)],
                         ids=lambda p: p.relative_to(DOCS).as_posix())
def test_every_python_block_runs(page, backend, tmp_path, monkeypatch, capsys):
    """A page's blocks run in order in one namespace, as a reader pastes them."""
    monkeypatch.setenv("PYAD_BACKEND", backend)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_page"}
    for i, code in enumerate(python_blocks(page)):
        try:
            exec(compile(code, f"{page.name} python block {i}", "exec"), namespace)
        except Exception as e:  # name the block, so a reader finds it
            raise AssertionError(f"{page.name} python block {i} fails: {e!r}\n{code}") from e


def test_the_supported_functions_page_is_generated_from_the_registry():
    hooks = _hooks()
    markdown = hooks.on_page_markdown((DOCS / "supported.md").read_text(), None, None, None)
    assert "<!-- pyad:" not in markdown  # every marker was expanded
    for op in ops.OPS.values():
        assert f"| `{op.name}` | {op.kind} |" in markdown, f"registry row {op.name} not listed"
        if op.numpy:
            assert f"`{op.numpy}`" in markdown
    for name in ("numpy.sum", "numpy.einsum", "numpy.linalg.norm", "numpy.sort"):
        assert f"`{name}`" in markdown


def test_the_function_reference_names_every_elementary_function():
    hooks = _hooks()
    text = hooks.on_page_markdown((DOCS / "api" / "functions.md").read_text(), None, None, None)
    listed = set(re.findall(r"^ {8}- (\w+)$", text, re.M))
    exported = {n for n in pyad.__all__ if inspect.isfunction(getattr(pyad, n))
                and getattr(pyad, n).__module__ == "pyad.functions"}
    assert exported and exported <= listed


def test_every_public_name_is_in_the_api_reference():
    """A public name has a place in docs/api/: named on a page, or generated onto
    the "More" page until it gets one."""
    hooks = _hooks()
    text = "\n".join(hooks.on_page_markdown(p.read_text(), None, None, None)
                     for p in (DOCS / "api").glob("*.md"))
    for name in pyad.__all__:
        obj = getattr(pyad, name)
        if inspect.ismodule(obj) or getattr(obj, "__module__", "") == "pyad.functions":
            continue  # pyad.ops is internal; the functions page is generated
        assert f"::: pyad.{name}" in text, f"pyad.{name} is missing from docs/api/"


def test_a_new_public_name_lands_on_the_more_page(monkeypatch):
    hooks = _hooks()
    assert "::: pyad" not in hooks.unplaced_reference()  # today every name is placed
    monkeypatch.setattr(pyad, "__all__", pyad.__all__ + ["check_grads_again"])
    monkeypatch.setattr(pyad, "check_grads_again", lambda: None, raising=False)
    assert "::: pyad.check_grads_again" in hooks.unplaced_reference()
