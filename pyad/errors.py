"""pyad's exceptions, and the one place where a C status becomes one."""
import numpy as np

from . import ops


class PyadError(Exception):
    """Base class of pyad's own errors (bad input otherwise raises Python's built-in
    ``TypeError`` / ``ValueError`` with a message naming what was wrong).

    Examples
    --------
    >>> import pyad
    >>> issubclass(pyad.BranchError, pyad.PyadError)
    True
    """


class BranchError(PyadError):
    """Replay reached a point where a recorded Python branch goes the other way.

    A tape from ``pyad.trace`` re-records there instead; an explicit ``Tape``, a
    ``trace(..., retrace=False)`` and a loaded tape raise this, naming the point
    and the guard. ``pyad.where`` records a branch that replays both ways.

    Examples
    --------
    >>> import pyad
    >>> with pyad.Tape() as tape:
    ...     x = tape.input(1.0)
    ...     y = tape.output(x * x if x > 0 else -x)
    >>> tape.gradient(-1.0)
    Traceback (most recent call last):
    ...
    pyad.errors.BranchError: replay at x = [-1.] takes another branch: ...
    """


class SingularMatrixError(PyadError, np.linalg.LinAlgError):
    """Replay reached a point where a recorded np.linalg.solve or inv meets a
    singular matrix (numpy raises LinAlgError there; so does this).

    Examples
    --------
    >>> import numpy as np, pyad
    >>> tape = pyad.trace(lambda a: np.sum(np.linalg.inv(a)), np.eye(2))
    >>> try:
    ...     tape(np.ones((2, 2)))
    ... except pyad.SingularMatrixError:
    ...     print("singular")
    singular
    """


class RepeatedEigenvalueError(PyadError, np.linalg.LinAlgError):
    """A derivative through np.linalg.eigh / eigvalsh would divide by the gap of
    (near-)repeated eigenvalues (|w_i - w_j| <= sqrt(eps) * max|w|): eigenvector
    derivatives and second derivatives are not defined there. First derivatives
    of the eigenvalues alone are still given. A ``numpy.linalg.LinAlgError``.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> top = lambda a: np.linalg.eigvalsh(a)[-1] ** 2
    >>> try:
    ...     pyad.hessian(top)(np.eye(2))
    ... except pyad.RepeatedEigenvalueError:
    ...     print("repeated")
    repeated
    """


class TapeFormatError(PyadError, ValueError):
    """A saved tape is corrupt, truncated, of an unknown version, or uses an op this
    pyad does not know (a ``ValueError``).

    Examples
    --------
    >>> import pyad
    >>> pyad.loads(b"garbage")
    Traceback (most recent call last):
    ...
    pyad.errors.TapeFormatError: not a valid pyad tape: ...
    """


class TapeClosedError(PyadError, ValueError):
    """The tape was closed (its storage freed) and cannot be used (a ``ValueError``).

    Examples
    --------
    >>> import pyad
    >>> tape = pyad.trace(lambda x: x * x, 3.0)
    >>> tape.close()
    >>> tape.gradient(1.0)
    Traceback (most recent call last):
    ...
    pyad.errors.TapeClosedError: tape is closed
    """


class MixedTapeError(PyadError, ValueError):
    """Values recorded on two different tapes met in one operation (a ``ValueError``).

    Examples
    --------
    >>> import pyad
    >>> with pyad.Tape() as t1:
    ...     a = t1.input(1.0)
    >>> with pyad.Tape() as t2:
    ...     b = t2.input(1.0)
    >>> a + b
    Traceback (most recent call last):
    ...
    pyad.errors.MixedTapeError: values from two different tapes met in one operation; ...
    """


class TapeBusyError(PyadError, RuntimeError):
    """Another thread is recording on, or sweeping, this tape (a ``RuntimeError``).

    Record each tape in one thread at a time; replaying one tape from many threads
    at once is safe.

    Examples
    --------
    >>> import pyad
    >>> issubclass(pyad.TapeBusyError, RuntimeError)
    True
    """


class CustomRuleError(PyadError, NotImplementedError):
    """A sweep needs a derivative rule that a pyad.custom_jvp / pyad.custom_vjp
    function was not given (the message names which), or a tape holding such a
    function was to be saved (Python code is never serialized).

    Examples
    --------
    >>> import pyad
    >>> f = pyad.custom_vjp(lambda x: 2 * x)
    >>> _ = f.defvjp(lambda x: (2 * x, None), lambda r, g: (2 * g,))
    >>> try:
    ...     pyad.jvp(f, 1.0, 1.0)
    ... except pyad.CustomRuleError:
    ...     print("no forward rule")
    no forward rule
    """


class RetraceWarning(UserWarning):
    """Most points of a batch took another Python branch and were re-recorded one by
    one: correct but slow (``pyad.where`` records both sides of a branch). A
    ``UserWarning``, given once per call.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, pyad
    >>> tape = pyad.trace(lambda x: x * x if x > 0 else -x, 1.0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     g = tape.gradient(np.array([-1.0, -2.0, 3.0]), batch=True)
    >>> g, caught[0].category.__name__
    (array([-1., -1.,  6.]), 'RetraceWarning')
    """


INTERLEAVED = ("operations were recorded on this tape from two threads at once; the tape "
               "is now closed. Record each tape in one thread at a time (replaying one tape "
               "from many threads is safe)")

# The exception class of each C status, by its C name (enum pyad_status in
# csrc/pyad.h); codes and messages come from the C core through pyad.ops.
_ERROR_OF_STATUS = {
    "PYAD_ENOMEM": MemoryError,
    "PYAD_EINVAL": ValueError,
    "PYAD_EINDEX": IndexError,
    "PYAD_ETOOBIG": OverflowError,
    "PYAD_EBRANCH": BranchError,
    "PYAD_ECLOSED": TapeClosedError,
    "PYAD_EBUSY": TapeBusyError,
    "PYAD_EFORMAT": TapeFormatError,
    "PYAD_ECALLBACK": CustomRuleError,
    "PYAD_ELINALG": np.linalg.LinAlgError,  # as numpy.linalg raises
}


def _errors_by_code(statuses, error_of_status):
    """{status code: exception class}; a failure status the table does not map
    fails here, at import, naming it (rather than as a vague error at run time)."""
    unmapped = [name for code, (name, _) in statuses.items()
                if code != 0 and name not in error_of_status]
    if unmapped:
        raise ImportError(f"pyad.errors maps no exception to the C statuses {unmapped}")
    return {code: error_of_status[name] for code, (name, _) in statuses.items() if code != 0}


_STATUS_ERRORS = _errors_by_code(ops.STATUS, _ERROR_OF_STATUS)
STATUS_CODE = {name: code for code, (name, _) in ops.STATUS.items()}


def _message(status):
    return ops.STATUS[status][1] if status in ops.STATUS else f"unknown status {status}"


def status_error(status, strerror=None, context=""):
    """The exception for a negative C status (a code, or its C name such as
    "PYAD_EINDEX"), its message C's own (pyad_strerror) saying what failed."""
    if isinstance(status, str):
        status = STATUS_CODE[status]
    cls = _STATUS_ERRORS.get(status, PyadError)
    msg = (strerror or _message)(status)
    if cls is OverflowError:
        msg += " (a tape holds at most 2**31 - 1 slots)"
    return cls(f"{context}: {msg}" if context else msg)
