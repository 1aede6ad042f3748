"""Both backends implement pyad.store.Store, member for member, with the same
signatures; sweeps are dispatched by the Sweep enum."""
import inspect

import numpy as np
import pytest

import pyad
from pyad.backends import store_class
from pyad.store import Store, Sweep, sweep_table


def protocol_members():
    """{name: what Store declares}: its methods, properties and annotated attributes."""
    members = {name: value for name, value in vars(Store).items() if not name.startswith("__")
               and (isinstance(value, (property, classmethod)) or inspect.isfunction(value))}
    members.update({name: None for name in Store.__annotations__})
    return members


def signature_of(owner, name):
    # Bound to the class for a classmethod, plain function otherwise (self included).
    return inspect.signature(getattr(owner, name))


def differences(cls):
    """What cls lacks or spells differently, as readable lines."""
    store = cls()
    try:
        out = []
        for name, declared in protocol_members().items():
            if declared is None or isinstance(declared, property):
                if not hasattr(store, name):
                    out.append(f"{cls.__name__} has no attribute {name}")
                continue
            if not callable(getattr(cls, name, None)):
                out.append(f"{cls.__name__} has no method {name}")
                continue
            want, got = signature_of(Store, name), signature_of(cls, name)
            strip = [p.replace(annotation=p.empty) for p in want.parameters.values()]
            if strip != [p.replace(annotation=p.empty) for p in got.parameters.values()]:
                out.append(f"{cls.__name__}.{name}{got} is not Store.{name}{want}")
            if isinstance(declared, classmethod) != isinstance(
                    inspect.getattr_static(cls, name), classmethod):
                out.append(f"{cls.__name__}.{name} is not a classmethod as Store's is")
        return out
    finally:
        store.close()


def test_the_protocol_declares_what_the_layers_above_call():
    members = protocol_members()
    for name in ("sweep", "export", "from_arrays", "slot_values", "output_slots", "backend",
                 "n_ops", "closed", "close", "push2", "gradient_flat"):
        assert name in members
    for kind in Sweep:
        assert kind.value in members, f"Store does not declare the {kind} sweep"
    assert all(inspect.getdoc(v) for v in members.values() if v is not None)


def test_each_backend_provides_every_member_with_the_same_signature(backend):
    cls = store_class(backend)
    assert differences(cls) == []
    store = cls()
    try:
        assert isinstance(store, Store) and store.backend == backend
    finally:
        store.close()


def test_a_differing_signature_or_a_missing_member_is_reported(backend):
    base = store_class(backend)

    class Renamed(base):
        def vjp(self, x, w):
            return base.vjp(self, x, w)

    class Lacking(base):
        op_at = None

    assert differences(Renamed) == [f"Renamed.vjp{inspect.signature(Renamed.vjp)} is not "
                                    f"Store.vjp{inspect.signature(Store.vjp)}"]
    assert differences(Lacking) == ["Lacking has no method op_at"]


def test_a_store_class_without_a_sweep_method_is_refused_when_defined(backend):
    base = store_class(backend)
    with pytest.raises(TypeError, match=r"lacks the sweep method\(s\) \['hvp_vec'\]"):
        type("NoHvpVec", (base,), {"hvp_vec": None})
    assert sweep_table(base)[Sweep.JVP] is base.jvp


def test_sweep_dispatches_by_enum_to_the_method_it_names(backend):
    tape = pyad.trace(lambda x: pyad.sin(x[0]) * x[1], np.array([0.5, 2.0]), backend=backend)
    store, x, v = tape._store, np.array([0.3, -1.5]), np.array([1.0, 2.0])
    for kind, args in [(Sweep.FORWARD, (x,)), (Sweep.JVP, (x, v)), (Sweep.VJP, (x, np.ones(1))),
                       (Sweep.HVP, (x, v, np.ones(1))), (Sweep.SLOT_VALUES, (x, v)),
                       (Sweep.VJP_BATCH, (x[None], np.ones((1, 1))))]:
        got, want = store.sweep(kind, *args), getattr(store, kind.value)(*args)
        for a, b in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            np.testing.assert_array_equal(a, b)
    tape.close()


def test_sweep_kinds_are_what_tape_sweep_counts_counts():
    assert {k.kind for k in Sweep} == {"forward", "reverse", "forward_over_reverse", None}
    assert [k.value for k in Sweep if k.batched] == ["forward_batch", "jvp_batch", "vjp_batch",
                                                     "hvp_batch"]
    assert Sweep("vjp") is Sweep.VJP and Sweep.HVP_VEC.kind == "forward_over_reverse"
    assert Sweep.VJP_BATCH.input_sized == (1,) and Sweep.HVP_BATCH.n_results == 3


def test_tape_sweep_takes_the_enum_or_its_name_and_counts_its_kind(backend):
    tape = pyad.trace(lambda x: pyad.exp(x) * 2.0, 0.5, backend=backend)
    tape._sweep(Sweep.VJP, np.array([0.1]), np.ones(1))
    tape._sweep("slot_adjoints", np.array([0.1]), np.ones(1))
    tape._sweep(Sweep.HVP, np.array([0.1]), np.ones(1), np.ones(1))
    assert tape.sweep_counts == {"forward": 0, "reverse": 2, "forward_over_reverse": 1}
    with pytest.raises(ValueError, match="gradient_flat"):
        tape._sweep("gradient_flat", np.array([0.1]), 1)
    tape.close()


def test_a_tape_builds_itself_from_a_loaded_store(backend):
    """serialize turns bytes into a store and shapes; Tape.from_store is the public
    way in (serialize no longer writes a Tape's internals)."""
    f = lambda x, y: pyad.sin(x) * y  # noqa: E731
    tape = pyad.trace(f, np.array([0.5, 1.0]), 2.0, backend=backend)
    store, in_shapes, out_shapes = pyad.serialize.load_store(pyad.serialize.dumps(tape),
                                                             backend)
    assert (in_shapes, out_shapes) == ([(2,), ()], [(2,)])
    loaded = pyad.Tape.from_store(store, in_shapes, out_shapes)
    assert loaded.backend == backend and loaded._store is store and loaded.sweeps == 0
    x = (np.array([0.1, -0.7]), 3.0)
    np.testing.assert_array_equal(loaded(*x), tape(*x))
    for got, want in zip(loaded.jacobian(x), tape.jacobian(x)):  # one block per argument
        np.testing.assert_array_equal(got, want)
    other = "python" if backend == "c" else "c"
    with pytest.raises(ValueError, match=f"a {backend!r} store cannot make a {other!r} tape"):
        pyad.Tape.from_store(store, in_shapes, out_shapes, other)
    assert type(pyad.loads(pyad.serialize.dumps(tape), backend)) is pyad.Tape
    loaded.close()
    tape.close()
