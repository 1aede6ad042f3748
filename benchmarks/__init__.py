"""pyad's benchmark suite: `python benchmarks/run.py` or `python -m benchmarks`.

The modules import each other as top-level siblings (`import problems`), so
that benchmarks/run.py works as a plain script; `python -m benchmarks` puts
this folder on sys.path first (see __main__.py).
"""
