"""Pytrees (issue 14 item 4): nested dicts, lists, tuples and namedtuples of arrays
and numbers through every transform, pyad.trace, every replay method (batch=True
too) and Tape.input / Tape.output.

The oracle is the same computation on one flat vector, packed and unpacked by the
hand-written layout below (its own leaf order, not optree's sorted one), so a
gradient put back under the wrong key, or a leaf out of order, shows."""
import collections

import numpy as np
import pytest

import pyad
from helpers import central_diff_grad

Pair = collections.namedtuple("Pair", "a c")


def params0():
    return {"w": np.arange(6.0).reshape(3, 2) * 0.1 - 0.2, "b": np.array([0.3, -0.2]),
            "s": 0.7, "nt": Pair(np.array([0.5, 1.5]), -0.4),
            "l": [1.2, np.array([0.1, 0.2, 0.3])], "none": None}


X_DATA = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]])

# (getter, shape) of each leaf, in an order of our own
LAYOUT = [(lambda t: t["w"], (3, 2)), (lambda t: t["b"], (2,)), (lambda t: t["s"], ()),
          (lambda t: t["nt"].a, (2,)), (lambda t: t["nt"].c, ()),
          (lambda t: t["l"][0], ()), (lambda t: t["l"][1], (3,))]
SIZES = [int(np.prod(shape)) for _, shape in LAYOUT]
OFFSETS = np.cumsum([0] + SIZES)
N = OFFSETS[-1]


def pack(tree):
    return np.concatenate([np.ravel(get(tree)) for get, _ in LAYOUT])


def unpack(z):
    part = [z[OFFSETS[k]:OFFSETS[k + 1]].reshape(shape) if shape else z[OFFSETS[k]]
            for k, (_, shape) in enumerate(LAYOUT)]
    return {"w": part[0], "b": part[1], "s": part[2], "nt": Pair(part[3], part[4]),
            "l": [part[5], part[6]], "none": None}


def loss(p, X=X_DATA):
    h = np.tanh(X @ p["w"] + p["b"]) * p["s"]
    return (np.sum(h ** 2) + p["nt"].c * np.sum(p["nt"].a * h[0])
            + p["l"][0] * np.sum(p["l"][1] ** 2))


def vec(p):
    h = np.tanh(X_DATA[0] @ p["w"] + p["b"])
    return {"h": h * p["s"], "t": (p["nt"].c * np.sum(h * p["nt"].a), p["l"][1] * p["l"][0])}


OUT_LAYOUT = [(lambda t: t["h"], (2,)), (lambda t: t["t"][0], ()), (lambda t: t["t"][1], (3,))]
OUT_OFFSETS = np.cumsum([0] + [int(np.prod(s)) for _, s in OUT_LAYOUT])


def loss_flat(z):
    return loss(unpack(z))


def vec_flat(z):
    y = vec(unpack(z))
    return pyad.stack([y["h"][0], y["h"][1], y["t"][0], y["t"][1][0], y["t"][1][1],
                       y["t"][1][2]]) if isinstance(y["t"][0], pyad.Scalar) else \
        np.concatenate([y["h"], [y["t"][0]], y["t"][1]])


def point(k):
    """A parameter tree off the recorded point (k = 0 is it)."""
    return unpack(pack(params0()) + 0.05 * k * np.cos(np.arange(N)))


def assert_like_params(tree, flat, dtype=np.float64):
    """tree has the params' structure and leaf types, and holds the numbers of flat."""
    assert set(tree) == {"w", "b", "s", "nt", "l", "none"}
    assert type(tree["nt"]) is Pair and type(tree["l"]) is list and tree["none"] is None
    assert type(tree["s"]) is float if dtype == np.float64 else np.asarray(tree["s"]).dtype == dtype
    for k, (get, shape) in enumerate(LAYOUT):
        leaf = get(tree)
        assert np.shape(leaf) == shape, (k, np.shape(leaf), shape)
        np.testing.assert_allclose(np.ravel(leaf), flat[OFFSETS[k]:OFFSETS[k + 1]], rtol=1e-12,
                                   atol=1e-14, err_msg=f"leaf {k}")


def assert_like_outputs(tree, flat):
    assert set(tree) == {"h", "t"} and type(tree["t"]) is tuple
    for k, (get, shape) in enumerate(OUT_LAYOUT):
        assert np.shape(get(tree)) == shape
        np.testing.assert_allclose(np.ravel(get(tree)), flat[OUT_OFFSETS[k]:OUT_OFFSETS[k + 1]],
                                   rtol=1e-12, atol=1e-14)


# ---- the transforms ----

def test_grad_of_a_params_dict_is_a_dict_of_gradients(backend):
    g = pyad.grad(loss, backend=backend)(params0())
    g_flat = pyad.grad(loss_flat, backend=backend)(pack(params0()))
    assert_like_params(g, g_flat)
    # and the flat oracle itself against finite differences of plain numpy
    np.testing.assert_allclose(g_flat, central_diff_grad(loss_flat, pack(params0())),
                               rtol=1e-6, atol=1e-8)
    v, g2 = pyad.value_and_grad(loss, backend=backend)(params0())
    assert v == pytest.approx(loss(params0()), rel=1e-14)
    assert_like_params(g2, g_flat)


def test_grad_with_respect_to_several_pytree_arguments(backend):
    f = lambda p, X, extra: loss(p, X) * extra["k"][0]  # noqa: E731
    extra = {"k": (2.0,)}
    gp, gX, ge = pyad.grad(f, argnums=(0, 1, 2), backend=backend)(params0(), X_DATA, extra)
    assert_like_params(gp, 2.0 * pyad.grad(loss_flat, backend=backend)(pack(params0())))
    np.testing.assert_allclose(gX, 2.0 * pyad.grad(lambda X: loss(params0(), X),
                                                   backend=backend)(X_DATA), rtol=1e-13)
    assert type(ge) is dict and type(ge["k"]) is tuple
    assert ge["k"][0] == pytest.approx(loss(params0()), rel=1e-13)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_jacobian_nests_outputs_outside_inputs_inside(backend, mode):
    J = pyad.jacobian(vec, mode=mode, backend=backend)(params0())
    J_flat = pyad.jacobian(vec_flat, mode=mode, backend=backend)(pack(params0()))
    assert J_flat.shape == (6, N)
    assert set(J) == {"h", "t"} and type(J["t"]) is tuple
    for i, (get_out, oshape) in enumerate(OUT_LAYOUT):
        rows = J_flat[OUT_OFFSETS[i]:OUT_OFFSETS[i + 1]]
        block_tree = get_out(J)                      # the input structure, inside
        for k, (get_in, ishape) in enumerate(LAYOUT):
            block = get_in(block_tree)
            assert np.shape(block) == oshape + ishape, (i, k)
            np.testing.assert_allclose(np.reshape(block, (rows.shape[0], -1)),
                                       rows[:, OFFSETS[k]:OFFSETS[k + 1]], rtol=1e-12,
                                       atol=1e-14)


def test_hessian_nests_inputs_outside_and_inside(backend):
    H = pyad.hessian(loss, backend=backend)(params0())
    H_flat = pyad.hessian(loss_flat, backend=backend)(pack(params0()))
    for i, (get_i, shape_i) in enumerate(LAYOUT):
        inner = get_i(H)
        assert type(inner) is dict and type(inner["nt"]) is Pair
        for k, (get_k, shape_k) in enumerate(LAYOUT):
            block = get_k(inner)
            assert np.shape(block) == shape_i + shape_k
            np.testing.assert_allclose(np.reshape(block, (SIZES[i], SIZES[k])),
                                       H_flat[OFFSETS[i]:OFFSETS[i + 1], OFFSETS[k]:OFFSETS[k + 1]],
                                       rtol=1e-12, atol=1e-14)


def test_jvp_vjp_hvp_take_and_give_trees(backend):
    p, v = params0(), point(3)  # any tree of the params' structure is a direction
    y, t = pyad.jvp(vec, p, v, backend=backend)
    y_flat, t_flat = pyad.jvp(vec_flat, pack(p), pack(v), backend=backend)
    assert_like_outputs(y, y_flat)
    assert_like_outputs(t, t_flat)
    u = {"h": np.array([0.3, -1.0]), "t": (2.0, np.array([1.0, 0.5, -0.5]))}
    u_flat = np.concatenate([u["h"], [u["t"][0]], u["t"][1]])
    y, g = pyad.vjp(vec, p, u, backend=backend)
    assert_like_outputs(y, y_flat)
    assert_like_params(g, pyad.vjp(vec_flat, pack(p), u_flat, backend=backend)[1])
    hv = pyad.hvp(loss, p, v, backend=backend)
    assert_like_params(hv, pyad.hvp(loss_flat, pack(p), pack(v), backend=backend))


# ---- record once, replay many ----

def test_trace_replays_a_tree_at_new_points(backend):
    tape = pyad.trace(loss, params0(), backend=backend)
    assert tape.n_inputs == N
    for k in (0, 1, 2):
        p = point(k)
        assert tape(p) == pytest.approx(loss(p), rel=1e-13)
        assert_like_params(tape.gradient(p), pyad.grad(loss_flat, backend=backend)(pack(p)))
        v, g = tape.value_and_gradient(p)
        assert_like_params(g, pyad.grad(loss_flat, backend=backend)(pack(p)))
        d = point(k + 5)
        assert_like_params(tape.hvp(p, d), pyad.hvp(loss_flat, pack(p), pack(d),
                                                    backend=backend))
        H = tape.hessian(p)
        np.testing.assert_allclose(np.reshape(H["w"]["b"], (6, 2)),
                                   pyad.hessian(loss_flat, backend=backend)(pack(p))[0:6, 6:8],
                                   rtol=1e-12, atol=1e-14)
    assert_like_params(tape.gradient(), pyad.grad(loss_flat, backend=backend)(pack(params0())))


def test_tape_methods_with_tree_outputs(backend):
    tape = pyad.trace(vec, params0(), backend=backend)
    flat = pyad.trace(vec_flat, pack(params0()), backend=backend)
    p, v = point(2), point(4)
    u = {"h": np.array([1.0, 2.0]), "t": (-1.0, np.array([0.5, 0.25, 2.0]))}
    u_flat = np.concatenate([u["h"], [u["t"][0]], u["t"][1]])
    assert_like_outputs(tape(p), flat(pack(p)))
    y, t = tape.jvp(p, v)
    assert_like_outputs(t, flat.jvp(pack(p), pack(v))[1])
    y, g = tape.vjp(p, u)
    assert_like_outputs(y, flat(pack(p)))
    assert_like_params(g, flat.vjp(pack(p), u_flat)[1])
    for mode in ("forward", "reverse", "auto"):
        J = tape.jacobian(p, mode=mode)
        np.testing.assert_allclose(J["t"][1]["nt"].a, flat.jacobian(pack(p))[3:6, 8:10],
                                   rtol=1e-12, atol=1e-14)


def stack(trees):
    """Leaves of equal-structure trees stacked along a new leading (batch) axis."""
    leaves = [[get(t) for get, _ in LAYOUT] for t in trees]
    cols = [np.stack([np.asarray(row[k]) for row in leaves]) for k in range(len(LAYOUT))]
    return {"w": cols[0], "b": cols[1], "s": cols[2], "nt": Pair(cols[3], cols[4]),
            "l": [cols[5], cols[6]], "none": None}


def test_batched_replay_of_trees_equals_the_loop(backend):
    tape = pyad.trace(loss, params0(), backend=backend)
    pts, dirs = [point(k) for k in range(4)], [point(k + 7) for k in range(4)]
    P, D = stack(pts), stack(dirs)
    np.testing.assert_allclose(tape(P, batch=True), [tape(p) for p in pts], rtol=1e-14)
    G = tape.gradient(P, batch=True, threads=2)
    assert G["w"].shape == (4, 3, 2) and G["s"].shape == (4,) and type(G["nt"]) is Pair
    for k, p in enumerate(pts):
        assert_like_params({"w": G["w"][k], "b": G["b"][k], "s": float(G["s"][k]),
                            "nt": Pair(G["nt"].a[k], G["nt"].c[k]),
                            "l": [G["l"][0][k], G["l"][1][k]], "none": None},
                           pack(tape.gradient(p)))
    HV = tape.hvp(P, D, batch=True)
    for k in range(4):
        np.testing.assert_allclose(HV["l"][1][k], tape.hvp(pts[k], dirs[k])["l"][1],
                                   rtol=1e-13)
    H = tape.hessian(P, batch=True)
    np.testing.assert_allclose(H["b"]["w"][2], tape.hessian(pts[2])["b"]["w"], rtol=1e-13)
    vt = pyad.trace(vec, params0(), backend=backend)
    Y, T = vt.jvp(P, D, batch=True)
    np.testing.assert_allclose(T["t"][1][3], vt.jvp(pts[3], dirs[3])[1]["t"][1], rtol=1e-13)
    U = {"h": np.ones((4, 2)), "t": (np.arange(4.0), np.ones((4, 3)))}
    _, VJ = vt.vjp(P, U, batch=True)
    u1 = {"h": np.ones(2), "t": (1.0, np.ones(3))}
    np.testing.assert_allclose(VJ["w"][1], vt.vjp(pts[1], u1)[1]["w"], rtol=1e-13)
    J = vt.jacobian(P, batch=True)
    np.testing.assert_allclose(J["h"]["nt"].c[2], vt.jacobian(pts[2])["h"]["nt"].c, rtol=1e-13)


def test_explicit_tape_input_and_output_trees(backend):
    with pyad.Tape(backend=backend) as tape:
        p = tape.input(params0())
        assert type(p["nt"]) is Pair and isinstance(p["w"], pyad.Array) and p["none"] is None
        scale = tape.input((2.0,))
        tape.output({"loss": loss(p) * scale[0], "h": p["b"] * scale[0]})
    assert tape.n_inputs == N + 1 and tape.n_outputs == 3
    q = point(3)
    out = tape(q, (1.5,))
    assert set(out) == {"loss", "h"}
    assert out["loss"] == pytest.approx(1.5 * loss(q), rel=1e-13)
    np.testing.assert_allclose(out["h"], 1.5 * q["b"], rtol=1e-15)
    J = tape.jacobian((q, (1.5,)))
    gp, gs = J["loss"]                                  # one block per argument
    assert_like_params(gp, 1.5 * pyad.grad(loss_flat, backend=backend)(pack(q)))
    assert type(gs) is tuple and gs[0] == pytest.approx(loss(q), rel=1e-13)
    # the classic a, b = tape.input([4.0, 3.0]): a list of two scalar inputs
    with pyad.Tape(backend=backend) as t2:
        a, b = t2.input([4.0, 3.0])
        t2.output(a * (a + b))
    assert t2.gradient() == [11.0, 4.0]
    assert t2.gradient([1.0, 2.0]) == [4.0, 1.0]


def test_none_leaves_are_empty_nodes(backend):
    f = lambda t: t[0] * t[0] + (0.0 if t[1] is None else 1.0)  # noqa: E731
    assert pyad.grad(f, backend=backend)((3.0, None)) == (6.0, None)
    tape = pyad.trace(lambda t: {"y": t["x"] * 2.0, "nothing": None}, {"x": 1.0, "z": None},
                      backend=backend)
    assert tape.n_inputs == 1 and tape.n_outputs == 1
    assert tape({"x": 4.0, "z": None}) == {"y": 8.0, "nothing": None}
    assert tape.gradient({"x": 4.0, "z": None}) == {"x": 2.0, "z": None}


def test_retracing_keeps_the_tree(backend):
    def f(p):
        if p["x"][0] > 0:                    # a Python branch on an active value
            return {"v": np.sum(p["x"] ** 2) * p["k"]}
        return {"v": np.sum(p["x"] ** 3) * p["k"]}
    tape = pyad.trace(f, {"x": np.array([1.0, 2.0]), "k": 3.0}, backend=backend)
    g = tape.gradient({"x": np.array([-1.0, 2.0]), "k": 2.0})
    assert tape.retraces == 1
    np.testing.assert_allclose(g["x"], 3 * np.array([-1.0, 2.0]) ** 2 * 2.0)
    assert g["k"] == 7.0
    assert tape({"x": np.array([-1.0, 2.0]), "k": 2.0}) == {"v": 14.0}


def test_a_re_record_of_another_output_structure_is_a_branch_error(backend):
    def f(p):
        if p["x"] > 0:
            return {"v": p["x"] * 2.0}
        return {"w": p["x"] * 2.0}            # same shapes, another structure
    tape = pyad.trace(f, {"x": 1.0}, backend=backend)
    with pytest.raises(pyad.BranchError, match=r"structure .*'w'.*recorded with.*'v'"):
        tape({"x": -1.0})


def test_a_flat_vector_of_all_the_numbers_is_taken(backend):
    tape = pyad.trace(loss, params0(), backend=backend)
    z = pack(point(2))
    # in optree's leaf order (sorted keys): the order tape.gradient's leaves take too
    import optree
    z_tree = np.concatenate([np.ravel(x) for x in optree.tree_leaves(point(2))])
    assert tape(z_tree) == pytest.approx(loss(unpack(z)), rel=1e-13)
    assert_like_params(tape.gradient(z_tree), pyad.grad(loss_flat, backend=backend)(z))


# ---- structure mismatches ----

@pytest.mark.parametrize("bad,expected", [
    ({"w": 1.0}, "dictionary key mismatch|structure"),
    ((1.0, 2.0), "structure"),
    ([np.ones(2), 3.0], "structure"),
])
def test_a_replay_of_another_structure_names_both(backend, bad, expected):
    tape = pyad.trace(lambda p: np.sum(p["a"][0]) * p["b"], {"a": (np.ones(2),), "b": 3.0},
                      backend=backend)
    with pytest.raises(ValueError) as info:
        tape.gradient(bad)
    msg = str(info.value)
    assert "{'a': (*,), 'b': *}" in msg, msg           # what the tape expects
    assert pyad.pytree.describe_value((bad,)) in msg, msg   # what it got


def test_structure_errors_on_every_replay_method(backend):
    p0 = {"a": np.ones(2), "b": 3.0}
    vt = pyad.trace(lambda p: p["a"] * p["b"], p0, backend=backend)
    st = pyad.trace(lambda p: np.sum(p["a"]) * p["b"], p0, backend=backend)
    P = {"a": np.ones((2, 2)), "b": np.ones(2)}
    wrong, wrong_batch = {"a": np.ones(2), "c": 3.0}, {"a": np.ones((2, 2)), "c": np.ones(2)}
    for call in (lambda: vt(wrong), lambda: st.gradient(wrong), lambda: st.value_and_gradient(wrong),
                 lambda: vt.jvp(wrong, p0), lambda: vt.jvp(p0, wrong),
                 lambda: vt.vjp(wrong, np.ones(2)), lambda: st.hvp(wrong, p0),
                 lambda: st.hvp(p0, wrong), lambda: vt.jacobian(wrong), lambda: st.hessian(wrong),
                 lambda: vt(wrong_batch, batch=True), lambda: st.gradient(wrong_batch, batch=True),
                 lambda: vt.jacobian(wrong_batch, batch=True),
                 lambda: st.hessian(wrong_batch, batch=True),
                 lambda: vt.jvp(P, wrong_batch, batch=True),
                 lambda: st.hvp(wrong_batch, P, batch=True)):
        with pytest.raises(ValueError, match=r"\{'a': \*, 'b': \*\}"):
            call()
    # a vjp cotangent of another structure than the outputs': a container where the
    # tape has an array is a TypeError, as any value that is not numbers
    with pytest.raises(TypeError, match=r"outputs have the structure \(\*,\), got \(\{'y': \*\},\)"):
        vt.vjp(p0, {"y": np.ones(2)})
    with pytest.raises(ValueError, match=r"outputs have the structure \(\(\*, \*\),\); got \(\[\*, \*\],\)"):
        pyad.trace(lambda p: (p["a"], p["b"]), p0, backend=backend).vjp(p0, [np.ones(2), 1.0])


def test_a_leaf_of_the_wrong_shape_is_named_by_its_path(backend):
    tape = pyad.trace(lambda p: np.sum(p["a"][1]) * p["b"], {"a": (1.0, np.ones(2)), "b": 3.0},
                      backend=backend)
    with pytest.raises(ValueError, match=r"argument 0\['a'\]\[1\] has shape \(3,\)"):
        tape.gradient({"a": (1.0, np.ones(3)), "b": 3.0})
    with pytest.raises(ValueError, match=r"argument 0\['a'\]\[1\] has shape \(2,\); a batch"):
        tape.gradient({"a": (np.ones(2), np.ones(2)), "b": np.ones(2)}, batch=True)


def test_namedtuple_and_tuple_are_different_structures(backend):
    tape = pyad.trace(lambda p: p.a * p.c, Pair(2.0, 3.0), backend=backend)
    assert tape.gradient(Pair(1.0, 5.0)) == Pair(5.0, 1.0)
    with pytest.raises(ValueError, match="Pair"):
        tape.gradient((1.0, 5.0))
