"""One set of differentiation mode names for every function that takes one:
"forward" / "reverse" (also "fwd" / "rev", as JAX's jacfwd / jacrev and
check_grads spell them), and "auto" where pyad may choose."""

_NAMES = {"forward": "forward", "fwd": "forward", "reverse": "reverse", "rev": "reverse"}


def mode_name(mode, auto=True, what="mode"):
    """The canonical name ("forward", "reverse" or, with auto=True, "auto") of mode;
    ValueError listing the accepted names otherwise."""
    if isinstance(mode, str):
        if mode in _NAMES:
            return _NAMES[mode]
        if auto and mode == "auto":
            return "auto"
    accepted = (["auto"] if auto else []) + list(_NAMES)
    raise ValueError(f"{what} must be one of {', '.join(map(repr, accepted))}; got {mode!r}")
