"""pyad's exceptions, and the one place where a C status becomes one."""


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

# C status code -> exception class (see enum pyad_status in csrc/pyad.h).
_STATUS_ERRORS = {
    -1: MemoryError,
    -2: ValueError,
    -3: IndexError,
    -4: OverflowError,
    -5: BranchError,
    -6: TapeClosedError,
    -7: TapeBusyError,
    -8: TapeFormatError,
}


def status_error(status, strerror, context=""):
    """The exception for a negative C status, its message saying what failed."""
    cls = _STATUS_ERRORS.get(status, PyadError)
    msg = strerror(status)
    if cls is OverflowError:
        msg += " (a tape holds at most 2**31 - 1 slots)"
    return cls(f"{context}: {msg}" if context else msg)
