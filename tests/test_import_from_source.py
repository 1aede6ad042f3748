"""Importing an unbuilt source checkout of pyad says how to fix it."""
import shutil
import subprocess
import sys
from pathlib import Path

import pyad


def test_an_unbuilt_checkout_raises_an_import_error_that_says_what_to_do(tmp_path):
    source = Path(pyad.__file__).parent
    shutil.copytree(source, tmp_path / "pyad",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    # import the copy as `python` run beside it would (an editable install's
    # finder would otherwise win over the current folder in this test environment)
    script = ("import importlib.util, sys\n"
              "sys.meta_path[:] = [f for f in sys.meta_path\n"
              "                    if getattr(f, '__name__', '') != '_EditableFinder']\n"
              "spec = importlib.util.spec_from_file_location('pyad', 'pyad/__init__.py',\n"
              "    submodule_search_locations=['pyad'])\n"
              "sys.modules['pyad'] = module = importlib.util.module_from_spec(spec)\n"
              "spec.loader.exec_module(module)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "pip install -e ." in out.stderr, out.stderr
    assert "is not built in" in out.stderr


def test_a_built_package_imports():
    out = subprocess.run([sys.executable, "-c", "import pyad; print(pyad.grad(pyad.sin)(0.0))"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "1.0", out.stderr


def test_python_m_benchmarks_runs_from_an_unbuilt_checkout(tmp_path):
    """From the repository root after a plain `pip install .`, the source's ./pyad
    (no compiled parts) must not shadow the installed package."""
    root = Path(__file__).resolve().parent.parent
    for part in ("pyad", "benchmarks"):
        shutil.copytree(root / part, tmp_path / part,
                        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--quick" in out.stdout and "--targets" in out.stdout
