"""Issue 12, numpy-facing items: clip's numpy 2 keywords, every norm numpy
computes, in-place operators with numpy's aliasing, the public Array
constructor, dtype= / masked arrays / read-only views, errors that name the
function as the user called it, and the teaching views of max/min reductions.

Oracles: numpy itself (values, shapes, which exception), central differences
(derivatives), and numpy's aliasing semantics run on plain arrays.
"""
import operator

import numpy as np
import pytest
import scipy.linalg
import scipy.special

import pyad
from helpers import central_diff_grad

INF = np.inf


def _builtin_class(exc):
    """numpy's own exception classes (UFuncTypeError, AxisError) derive from the
    builtin ones a caller catches; compare at that level."""
    return next(c for c in type(exc).__mro__ if c.__module__ == "builtins")


def _same_error_as_numpy(numpy_call, pyad_call):
    """pyad raises the (builtin) exception class numpy raises for the same call."""
    with pytest.raises(Exception) as ref:
        numpy_call()
    with pytest.raises(_builtin_class(ref.value)):
        pyad_call()


# ---- 5. np.clip: numpy 2 keywords min= / max= ---------------------------------------

CLIP_FORMS = [
    ("min/max keywords", lambda x: np.clip(x, min=0.0, max=1.0)),
    ("a_min/a_max keywords", lambda x: np.clip(x, a_min=0.0, a_max=1.0)),
    ("positional", lambda x: np.clip(x, 0.0, 1.0)),
    ("method-free min only", lambda x: np.clip(x, min=0.0)),
    ("max only", lambda x: np.clip(x, max=1.0)),
    ("array bounds", lambda x: np.clip(x, min=np.array([-2.0, 0.7, 0.0]), max=[1.0, 1.0, 3.0])),
]


@pytest.mark.parametrize("name, clip", CLIP_FORMS, ids=[n for n, _ in CLIP_FORMS])
def test_clip_forms_clip_value_and_gradient_like_numpy(backend, name, clip):
    x0 = np.array([-1.0, 0.5, 2.0])
    w = np.array([1.0, 2.0, 3.0])
    f = lambda x: np.sum(w * clip(x))
    val, g = pyad.value_and_grad(f, backend=backend)(x0)
    assert val == pytest.approx(f(x0), rel=1e-15)
    np.testing.assert_allclose(g, central_diff_grad(f, x0), atol=1e-8)


def test_clip_keywords_regression_values(backend):
    g = pyad.grad(lambda x: np.sum(np.clip(x, min=0.0, max=1.0)), backend=backend)(
        np.array([-1.0, 0.5, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])
    tape = pyad.trace(lambda x: np.sum(np.clip(x, min=0.0, max=1.0)), np.array([-1.0, 0.5, 2.0]),
                      backend=backend)
    assert tape(np.array([-1.0, 0.5, 2.0])) == 1.5


def test_clip_bad_keyword_mixes_raise_like_numpy(backend):
    x0 = np.array([-1.0, 0.5, 2.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        _same_error_as_numpy(lambda: np.clip(x0, a_min=0.0, a_max=1.0, max=2.0),
                             lambda: np.clip(x, a_min=0.0, a_max=1.0, max=2.0))
        _same_error_as_numpy(lambda: np.clip(x0, a_min=0.0), lambda: np.clip(x, a_min=0.0))
        with pytest.raises(TypeError, match="out="):
            np.clip(x, 0.0, 1.0, out=np.empty(3))
        # no bounds: a new array over the same values, not an alias
        y = np.clip(x, None, None)
        y += 1.0
        np.testing.assert_array_equal(x.value, x0)


# ---- 6. np.linalg.norm: every ord / axis combination numpy takes --------------------

ORDS = [None, 1, -1, 2, -2, INF, -INF, 0, 3, 0.5, -1.5, "fro", "f", "nuc", "bad"]
SINGULAR_VALUE_ORDS = (2, -2, "nuc")


def _axes(nd):
    ints = list(range(-nd, nd))
    pairs = [(i, j) for i in range(nd) for j in range(nd)] + [(-1, 0)]
    return [None] + ints + pairs + ([tuple(range(nd))] if nd > 2 else [])


def _norm_cases():
    for shape in [(4,), (3, 4), (2, 3, 4), (0,), (3, 0)]:
        for axis in _axes(len(shape)):
            for ord in ORDS:
                yield shape, ord, axis


def _is_matrix_call(shape, ord, axis):
    two_axes = axis is not None and isinstance(axis, tuple) and len(axis) == 2
    return two_axes or (axis is None and len(shape) == 2 and ord is not None)


def test_norm_every_ord_and_axis_matches_numpy(backend):
    """Values and shapes equal numpy's; where numpy raises, pyad raises the same
    class; the singular-value matrix norms raise TypeError naming the case."""
    rng = np.random.default_rng(6)
    checked = refused = 0
    for shape, ord, axis in _norm_cases():
        x0 = rng.normal(size=shape)
        for keepdims in (False, True):
            try:
                with np.errstate(divide="ignore"):
                    ref = np.linalg.norm(x0, ord, axis, keepdims)
            except Exception as e:
                ref = e
            with pyad.Tape(backend=backend) as tape:
                x = tape.input(x0)
                svd = _is_matrix_call(shape, ord, axis) and (
                    ord == "nuc" or (not isinstance(ord, str) and ord in (2, -2)))
                if svd and not isinstance(ref, Exception):
                    with pytest.raises(TypeError, match="singular values"):
                        np.linalg.norm(x, ord, axis, keepdims)
                    refused += 1
                    continue
                if isinstance(ref, Exception):
                    # (an empty matrix's 2-norm: numpy's ValueError or pyad's refusal)
                    with pytest.raises((type(ref), TypeError) if svd else type(ref)):
                        np.linalg.norm(x, ord, axis, keepdims)
                    continue
                r = np.linalg.norm(x, ord, axis, keepdims)
                tape.output(r)
            got = tape(x0)
            assert np.shape(got) == np.shape(ref), (shape, ord, axis, keepdims)
            np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-15,
                                       err_msg=f"{shape} ord={ord} axis={axis}")
            checked += 1
    assert checked > 300 and refused > 20


def _differentiable_cases():
    for shape in [(4,), (3, 4), (2, 3, 4)]:
        x0 = np.random.default_rng(7).uniform(0.5, 2.0, size=shape)
        x0 *= np.where(np.arange(x0.size).reshape(shape) % 3 == 0, -1.0, 1.0)
        for axis in _axes(len(shape)):
            for ord in ORDS:
                try:
                    np.linalg.norm(x0, ord, axis)
                except Exception:
                    continue
                if _is_matrix_call(x0.shape, ord, axis) and ord in SINGULAR_VALUE_ORDS:
                    continue
                yield x0, ord, axis


def test_norm_gradients_match_central_differences(backend):
    count = 0
    for x0, ord, axis in _differentiable_cases():
        w = np.linspace(1.0, 2.0, np.size(np.linalg.norm(x0, ord, axis)))
        f = lambda x: np.sum(w * np.ravel(np.linalg.norm(x, ord, axis)))
        g = pyad.grad(f, backend=backend)(x0)
        np.testing.assert_allclose(g, central_diff_grad(f, x0), rtol=1e-6, atol=1e-7,
                                   err_msg=f"shape {x0.shape} ord={ord} axis={axis}")
        count += 1
    assert count > 150


def test_norm_regressions_never_fall_back_to_another_norm(backend):
    X0 = np.array([[3.0, 1.0], [1.0, 2.0]])
    with pyad.Tape(backend=backend) as tape:
        X = tape.input(X0)
        with pytest.raises(TypeError, match=r"ord=2.*singular values"):
            np.linalg.norm(X, 2, axis=(0, 1))          # numpy: 3.618, not Frobenius 3.873
        with pytest.raises(ValueError, match="Invalid norm order 'fro' for vectors"):
            np.linalg.norm(X[0], "fro")
        X3 = tape.input(np.ones((2, 2, 2)))
        with pytest.raises(ValueError, match="Improper number of dimensions"):
            np.linalg.norm(X3, "fro")
        # the matrix 1-norm is the largest column sum of |X|, as numpy computes it
        r = np.linalg.norm(X, 1)
        assert r.value == np.linalg.norm(X0, 1) == 4.0


# ---- 7. in-place operators: numpy's aliasing semantics -------------------------------

IN_PLACE = [("+=", operator.iadd), ("-=", operator.isub), ("*=", operator.imul),
            ("/=", operator.itruediv), ("**=", operator.ipow)]


@pytest.mark.parametrize("sym, op", IN_PLACE, ids=[s for s, _ in IN_PLACE])
def test_in_place_op_mutates_aliases_and_view_bases(backend, sym, op):
    def f(x):
        alias, tail = x, x[1:]
        op(x, 1.5)                          # x op= 1.5: alias and view must see it
        op(tail, x[:-1])                    # a view written in place reaches x
        return np.sum(alias * alias) + np.sum(tail * np.array([1.0, 3.0]))

    x0 = np.array([1.2, 2.0, 0.7])
    f_numpy = lambda x: f(x.copy())         # numpy semantics on a private copy
    val, g = pyad.value_and_grad(f, backend=backend)(x0)
    assert val == pytest.approx(f_numpy(x0), rel=1e-14)
    np.testing.assert_allclose(g, central_diff_grad(f_numpy, x0), rtol=1e-7)
    tape = pyad.trace(f, x0, backend=backend)       # replay at another point
    x1 = np.array([0.9, 1.4, 1.1])
    np.testing.assert_allclose(tape.gradient(x1), central_diff_grad(f_numpy, x1), rtol=1e-7)


def test_in_place_add_regression_from_the_issue(backend):
    def f(x):
        y = x
        x += 1.0
        return np.sum(y * y)

    np.testing.assert_array_equal(pyad.grad(f, backend=backend)(np.array([1.0, 2.0])), [4.0, 6.0])


def test_in_place_matmul_and_transpose_view(backend):
    A = np.array([[1.0, 2.0], [-0.5, 3.0]])

    def f(X):
        alias, t = X, X.T
        X @= A
        t += 1.0                            # the transpose view's base is X
        return np.sum(alias * alias)

    X0 = np.array([[0.3, -1.0], [2.0, 0.5]])
    f_numpy = lambda X: f(X.copy())
    val, g = pyad.value_and_grad(f, backend=backend)(X0)
    assert val == pytest.approx(f_numpy(X0), rel=1e-14)
    np.testing.assert_allclose(g, central_diff_grad(f_numpy, X0), rtol=1e-7)


def test_in_place_overlapping_operand_reads_before_writing(backend):
    f = lambda x: (operator.iadd(x, x[::-1]), np.sum(x * np.arange(1.0, 4.0)))[1]
    x0 = np.array([1.0, 2.0, 4.0])
    assert pyad.grad(f, backend=backend)(x0) == pytest.approx(
        central_diff_grad(lambda x: f(x.copy()), x0))


def test_copies_are_not_aliases(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([[1.0, 2.0], [3.0, 4.0]]))
        for copy in (+x, np.positive(x), x.flatten(), pyad.array(x), x.copy()):
            copy += 10.0
        np.testing.assert_array_equal(x.value, [[1.0, 2.0], [3.0, 4.0]])


def test_in_place_refusals_match_numpy(backend):
    x0 = np.array([1.0, -2.0, 3.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        # a result of another shape cannot be written into x
        _same_error_as_numpy(lambda: operator.iadd(x0.copy(), np.ones((2, 3))),
                             lambda: operator.iadd(x, np.ones((2, 3))))
        # read-only views
        b0, b = np.broadcast_to(x0, (2, 3)), np.broadcast_to(x, (2, 3))
        _same_error_as_numpy(lambda: operator.iadd(b0, 1.0), lambda: operator.iadd(b, 1.0))
        with pytest.raises(ValueError, match="read-only"):
            b += 1.0
        # a float result cannot be cast into a bool array
        m0, m = x0 > 0, x > 0
        _same_error_as_numpy(lambda: operator.iadd(m0, 1.5), lambda: operator.iadd(m, 1.5))
        m &= x < 2.0                        # bool op= bool is allowed, as in numpy
        np.testing.assert_array_equal(m.value, [1.0, 0.0, 0.0])
        # complex results cannot be cast into float64
        _same_error_as_numpy(lambda: operator.imul(x0.copy(), 1j), lambda: operator.imul(x, 1j))
        np.testing.assert_array_equal(x.value, x0)     # nothing was written
        plain = np.zeros(3)
        with pytest.raises(TypeError, match="out="):   # a float array cannot hold derivatives
            plain += x


# ---- 12. the public Array constructor validates its slot indices ---------------------

def test_array_constructor_converts_integer_dtypes_and_reads_the_right_slots(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([10.0, 20.0, 30.0]))
        for dtype in (np.int64, np.int8, np.uint16, np.int32):
            a = pyad.Array(x._s, np.array([2, 0], dtype=dtype))
            np.testing.assert_array_equal(a.value, [30.0, 10.0])
            assert a.slots.dtype == np.int32
        a = pyad.Array(x._s, [[1, 2]])
        tape.output(np.sum(a * a))
    np.testing.assert_array_equal(tape.gradient(), [0.0, 40.0, 60.0])


def test_array_constructor_refuses_bad_indices(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([10.0, 20.0, 30.0]))
        n = x._s.n_slots   # the inputs are one block row of 3 slots
        for bad in (np.array([0, n], dtype=np.int64), np.array([-1], dtype=np.int8),
                    np.array([2**40], dtype=np.int64)):
            with pytest.raises(IndexError, match=f"0 .. {n - 1}"):
                pyad.Array(x._s, bad)
        for bad in (np.array([0.0, 1.0]), np.array([True]), np.array(["0"])):
            with pytest.raises(TypeError, match="integer slot indices"):
                pyad.Array(x._s, bad)
        with pytest.raises(TypeError, match="store"):
            pyad.Array(object(), np.array([0], dtype=np.int32))


# ---- 13. dtype=, masked arrays, read-only views --------------------------------------

REDUCERS = [("sum", np.sum), ("prod", np.prod), ("mean", np.mean), ("cumsum", np.cumsum),
            ("cumprod", np.cumprod)]


@pytest.mark.parametrize("name, fn", REDUCERS, ids=[n for n, _ in REDUCERS])
def test_dtype_other_than_float64_is_refused(backend, name, fn):
    x0 = np.array([1.5, 2.5, 3.2, 4.3, 4.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        for dtype in (int, np.int32, np.float32, bool):
            with pytest.raises(TypeError, match=f"{name}.*dtype"):
                fn(x, dtype=dtype)
            with pytest.raises(TypeError, match=f"{name}.*dtype"):
                getattr(x, name)(dtype=dtype)
        for dtype in (float, np.float64, "float64"):
            np.testing.assert_allclose(np.ravel(fn(x, dtype=dtype).value), np.ravel(fn(x0)),
                                       rtol=1e-15)


def test_dtype_on_ufunc_methods_is_refused(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.5, 2.5]))
        with pytest.raises(TypeError, match="numpy.add.*dtype"):
            np.add.reduce(x, dtype=int)
        with pytest.raises(TypeError, match="numpy.multiply.*dtype"):
            np.multiply(x, x, dtype=np.float32)
        assert np.add.reduce(x, dtype=np.float64).value == 4.0


def test_reduction_methods_take_numpys_positional_order(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([[1.0, 2.0], [3.0, 4.0]]))
        assert x.sum(0, None, None, True).shape == (1, 2)     # axis, dtype, out, keepdims
        assert x.max(1, None, True).shape == (2, 1)           # axis, out, keepdims
        assert np.max(x, 0, None, True).shape == (1, 2)
        with pytest.raises(TypeError, match="out="):
            x.max(0, np.empty(2))


def test_masked_arrays_are_refused(backend):
    mask = np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(3))
        for use in (lambda: x * mask, lambda: mask * x, lambda: np.ma.sum(x),
                    lambda: pyad.where(np.ma.array([True, False, True], mask=[0, 1, 0]), x, 0.0),
                    lambda: np.add(x, mask)):
            with pytest.raises(TypeError, match="masked"):
                use()


def test_writes_through_read_only_views_raise_like_numpy(backend):
    x0 = np.array([[1.0, 2.0], [3.0, 4.0]])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        for view, view0 in ((np.broadcast_to(x[0], (3, 2)), np.broadcast_to(x0[0], (3, 2))),
                            (np.diagonal(x), np.diagonal(x0))):
            _same_error_as_numpy(lambda: view0.__setitem__(0, 9.0),
                                 lambda: view.__setitem__(0, 9.0))
        np.testing.assert_array_equal(x.value, x0)


# ---- 15. errors name the function as the user called it ------------------------------

UNSUPPORTED = [
    # (np.linalg.inv and det are rows now: tests/test_linalg_lu.py)
    ("numpy.linalg.pinv", lambda x: np.linalg.pinv(x)),
    ("numpy.linalg.eig", lambda x: np.linalg.eig(x)),
    ("scipy.special.gamma", lambda x: scipy.special.gamma(x)),
    ("scipy.special.logsumexp", lambda x: scipy.special.logsumexp(x)),
    ("scipy.linalg.solve", lambda x: scipy.linalg.solve(x, np.ones(2))),
    ("scipy.special.softmax", lambda x: scipy.special.softmax(x)),
]


@pytest.mark.parametrize("name, call", UNSUPPORTED, ids=[n for n, _ in UNSUPPORTED])
def test_unsupported_functions_are_named_by_their_public_path(backend, name, call):
    with pyad.Tape(backend=backend) as tape:
        X = tape.input(np.array([[2.0, 1.0], [1.0, 3.0]]))
        with pytest.raises(TypeError) as err:
            call(X)
    message = str(err.value)
    assert f"pyad does not support {name} on active values" in message
    assert "numpy.inv" not in message and "numpy.gamma" not in message


@pytest.mark.parametrize("name, call", UNSUPPORTED, ids=[n for n, _ in UNSUPPORTED])
def test_unsupported_functions_on_an_active_scalar_are_named_too(backend, name, call):
    """Scalar.__array__ and numpy functions scipy calls inside (numpy.result_type
    from logsumexp) name what the user called, as for arrays."""
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        with pytest.raises(TypeError) as err:
            call(x)
    assert f"pyad does not support {name} on active values" in str(err.value)


def test_unsupported_function_errors_suggest_a_pyad_way(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        with pytest.raises(TypeError, match=r"logsumexp.*instead: pyad\.logsumexp\(x, axis"):
            scipy.special.logsumexp(x)
        with pytest.raises(TypeError, match=r"log_expit.*instead: -np\.logaddexp\(0\.0, -x\)"):
            scipy.special.log_expit(x)
    # the suggestions are right: they record and match scipy
    x0 = np.array([1.0, 2.0, -0.5])
    assert pyad.value_and_grad(pyad.logsumexp, backend=backend)(x0)[0] == pytest.approx(
        scipy.special.logsumexp(x0))
    np.testing.assert_allclose(pyad.grad(pyad.logsumexp, backend=backend)(x0),
                               scipy.special.softmax(x0), rtol=1e-12)
    log_expit = lambda x: -np.logaddexp(0.0, -x)   # noqa: E731
    np.testing.assert_allclose(pyad.jacobian(log_expit, backend=backend)(x0),
                               np.diag(scipy.special.expit(-x0)), rtol=1e-12)
    np.testing.assert_allclose(pyad.trace(log_expit, x0, backend=backend)(),
                               scipy.special.log_expit(x0), rtol=1e-14)


def test_plain_conversion_outside_numpy_keeps_the_generic_message(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        with pytest.raises(TypeError, match="cannot become a plain numpy array"):
            x.__array__()


# ---- 16. teaching views of max/min reductions ----------------------------------------

def test_table_and_dot_show_the_operands_of_max_and_min_reductions(backend):
    # Rows (DOT nodes): x -> 0..2, x * 2 -> 3 (one block row, slots 3..5), max -> 4,
    # min -> 5. The operand list of each reduction sits in the pool at an offset
    # unrelated to its first slot.
    f = lambda x: np.max(x * 2.0) + np.min(x[1:])
    tape = pyad.trace(f, np.array([1.0, 3.0, 2.0]), backend=backend)
    table = tape.table()
    assert table["v[1:4]"]["op"] == "v[-2:1] * 2"
    assert table["v_4"]["op"] == "max(v[1:4])"
    assert table["v_5"]["op"] == "min(v[-1:1])"
    dot = tape.to_dot()
    for edge in ("s3 -> s4;", "s1 -> s5;", "s2 -> s5;"):
        assert edge in dot
    # one edge per row read (the reduce_max row reads one block row)
    assert dot.count("s3 -> s4;") == 1 and dot.count("-> s4;") == 1
    assert dot.count("-> s5;") == 2


def test_max_reduction_splits_ties_evenly_as_the_readme_says(backend):
    g = pyad.grad(lambda x: np.max(x), backend=backend)(np.array([3.0, 1.0, 3.0, 3.0]))
    np.testing.assert_allclose(g, [1 / 3, 0.0, 1 / 3, 1 / 3], rtol=1e-15)
