"""pyad's exceptions, and the one place where a C status becomes one."""
import numpy as np

from . import ops


class PyadError(Exception):
    """Base class of pyad's own errors."""


class BranchError(PyadError):
    """Replay reached a point where a recorded Python branch goes the other way."""


class TapeFormatError(PyadError, ValueError):
    """A saved tape is corrupt, truncated or of an unknown version."""


class TapeClosedError(PyadError, ValueError):
    """The tape was closed (its C storage freed) and cannot be used."""


class MixedTapeError(PyadError, ValueError):
    """Values recorded on two different tapes met in one operation."""


class TapeBusyError(PyadError, RuntimeError):
    """Another thread is recording on, or sweeping, this tape."""


class RetraceWarning(UserWarning):
    """Most points of a batch took another Python branch and were re-recorded one
    by one: correct but slow (pyad.where records both sides of a branch)."""


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
