"""Which backend a tape records in: "c" (pyad.backend_c) or "python"
(pyad.backend_python), by argument or the PYAD_BACKEND environment variable."""
import os

BACKENDS = ("c", "python")


def resolve_backend(backend):
    name = backend if backend is not None else os.environ.get("PYAD_BACKEND", "c")
    if name not in BACKENDS:
        raise ValueError(f"unknown pyad backend {name!r}: expected one of {BACKENDS}")
    return name


_LOADED = {}  # backend name -> its store class, once imported


def store_class(backend):
    """The store class of a backend (None: the default one)."""
    name = resolve_backend(backend)
    cls = _LOADED.get(name)
    if cls is None:
        # Imported on demand: a program that only uses one backend never loads the other.
        if name == "c":
            from .backend_c import CStore as cls
        else:
            from .backend_python import PyStore as cls
        _LOADED[name] = cls
    return cls


def new_store(backend):
    """An empty store to record in."""
    return store_class(backend)()
