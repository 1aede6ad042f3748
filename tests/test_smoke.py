import numpy as np

import pyad


def test_textbook_example(backend):
    f = lambda x: pyad.log(x[0]) + x[0] * x[1] - pyad.sin(x[1])
    g = pyad.grad(f, backend=backend)(np.array([2.0, 5.0]))
    np.testing.assert_allclose(g, [5.5, 2.0 - np.cos(5.0)], rtol=1e-15)
