"""Every Python block of README.md runs as written: in order, in one namespace
(a reader pastes them one after another), in a scratch folder for the files
they write."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_blocks():
    assert len(python_blocks()) >= 8


def test_every_readme_python_block_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for i, code in enumerate(python_blocks()):
        try:
            exec(compile(code, f"README.md python block {i}", "exec"), namespace)
        except Exception as e:  # name the block, so a reader finds it
            raise AssertionError(f"README python block {i} fails: {e!r}\n{code}") from e
