"""Tape._repr_html_ (Jupyter): stats always, the Wengert table when the tape is small,
every piece of text escaped."""
import re

import numpy as np

import pyad
from pyad import teaching


def textbook(x):
    return pyad.log(x[0]) + x[0] * x[1] - pyad.sin(x[1])


def cells(html):
    return re.findall(r"<td[^>]*>(.*?)</td>", html)


def test_a_small_tape_shows_its_stats_and_its_wengert_table(backend):
    tape = pyad.trace(textbook, np.array([2.0, 5.0]), backend=backend)
    html = tape._repr_html_()
    got = cells(html)
    assert backend in got and str(tape.n_ops) in got and str(tape.nbytes) in got
    assert "log(v_{-1})" in got and "v_3 - v_4" in got
    # the textbook's forward trace along x1: y = 11.6521, dy/dx1 = 5.5
    last = got[-5:]
    assert last[0] == "v_5" and last[2] == "11.6521" and last[3] == "5.5" and last[4] == "y"


def test_a_large_tape_shows_only_its_stats(backend):
    n = teaching.HTML_TABLE_ROWS + 5
    tape = pyad.trace(lambda x: sum(pyad.sin(x[i]) for i in range(n)), np.ones(n),
                      backend=backend)
    assert tape.n_ops > teaching.HTML_TABLE_ROWS
    html = tape._repr_html_()
    assert "Wengert" not in html and "sin" in html
    assert str(tape.n_ops) in cells(html)


def test_html_text_is_escaped(backend):
    tape = pyad.trace(lambda x: pyad.where(x[0] < x[1], x[0], x[1]) * 1.0,
                      np.array([1.0, 2.0]), backend=backend)
    html = tape._repr_html_()
    assert "&lt;" in html
    assert all("<" not in c and ">" not in c for c in cells(html))


def test_a_closed_tape_says_so(backend):
    tape = pyad.trace(textbook, np.array([2.0, 5.0]), backend=backend)
    tape.close()
    assert "closed" in tape._repr_html_()
