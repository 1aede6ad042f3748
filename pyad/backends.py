"""Which backend a tape records in: "c" (pyad.backend_c) or "python"
(pyad.backend_python), by argument or the PYAD_BACKEND environment variable."""
import os

BACKENDS = ("c", "python")


def resolve_backend(backend):
    name = backend if backend is not None else os.environ.get("PYAD_BACKEND", "c")
    if name not in BACKENDS:
        raise ValueError(f"unknown pyad backend {name!r}: expected one of {BACKENDS}")
    return name


def store_class(backend):
    """The store class of a backend (None: the default one)."""
    # Imported on demand: a program that only uses one backend never loads the other.
    if resolve_backend(backend) == "c":
        from .backend_c import CStore
        return CStore
    from .backend_python import PyStore
    return PyStore


def new_store(backend):
    """An empty store to record in."""
    return store_class(backend)()
