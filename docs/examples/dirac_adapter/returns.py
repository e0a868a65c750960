"""DIRAC's return convention (DC-01) and the ``Errno`` each interCEde exception becomes.

The adapter must not import DIRAC (it is an example a DIRAC maintainer copies), so these helpers
reproduce the exact shape of ``DIRAC.S_OK``/``DIRAC.S_ERROR``: callers compare ``Errno`` with
``DErrno.cmpError`` and some parse ``Message``, so the ``"<strerror> ( <errno> : <msg>)"``
formatting matters. In DIRAC itself, import the real ones instead.
"""

from __future__ import annotations

import traceback
from typing import Any

from intercede import (
    AuthenticationError,
    BackendClosedError,
    ConfigurationError,
    InterCEdeError,
    OperationTimeoutError,
    ResourceUnavailableError,
    RunningLoopError,
    SpecificationRejectedError,
)

__all__ = [
    "ECONF",
    "EEEXCEPTION",
    "ENOAUTH",
    "ENOMETH",
    "ERESUNA",
    "ERRNO_BY_EXCEPTION",
    "ESECTION",
    "EWMSJDL",
    "EWMSJMAN",
    "EWMSRESC",
    "EWMSSTATUS",
    "EWMSSUBM",
    "S_ERROR",
    "S_OK",
    "errno_for",
    "error_from",
]

# DIRAC's DErrno values (DC-02) and their strerror texts.
ENOMETH = 1002
ECONF = 1003
EEEXCEPTION = 1005
ENOAUTH = 1111
ESECTION = 1400
EWMSJDL = 1501
EWMSRESC = 1502
EWMSSUBM = 1503
EWMSJMAN = 1504
EWMSSTATUS = 1505
ERESUNA = 2001

_STRERROR = {
    ENOMETH: "No such method or function",
    ECONF: "Configuration error",
    EEEXCEPTION: "runtime general exception",
    ENOAUTH: "Unauthorized query",
    ESECTION: "Section is not found",
    EWMSJDL: "Invalid job description",
    EWMSRESC: "Job to reschedule",
    EWMSSUBM: "Job submission error",
    EWMSJMAN: "Job management error",
    EWMSSTATUS: "Job status error",
    ERESUNA: "Resource not available",
}

# The Errno each exception becomes; most specific first, the first match decides.
ERRNO_BY_EXCEPTION: tuple[tuple[type[InterCEdeError], int], ...] = (
    (ConfigurationError, ECONF),
    (SpecificationRejectedError, EWMSJDL),
    (AuthenticationError, ENOAUTH),
    (ResourceUnavailableError, ERESUNA),
    (OperationTimeoutError, ERESUNA),
    (BackendClosedError, ERESUNA),
    (RunningLoopError, EEEXCEPTION),
)


def S_OK(value: Any = None) -> dict[str, Any]:
    """``{"OK": True, "Value": value}``; CEs add further top-level keys to it."""
    return {"OK": True, "Value": value}


def S_ERROR(*args: Any) -> dict[str, Any]:
    """``S_ERROR(message)`` or ``S_ERROR(errno, message)``, formatted as DIRAC does."""
    errno = 0
    message = ""
    if args and isinstance(args[0], int):
        errno = args[0]
        message = str(args[1]) if len(args) > 1 else ""
    elif args:
        message = str(args[0])
    if errno:
        text = _STRERROR.get(errno, f"Unknown error {errno}")
        message = f"{text} ( {errno} : {message})"
    stack = traceback.format_stack()[:-1]
    return {"OK": False, "Errno": errno, "Message": message, "CallStack": stack}


def errno_for(exc: InterCEdeError, operation_errno: int) -> int:
    """The ``Errno`` an interCEde exception becomes; ``operation_errno`` covers the rest
    (``EWMSSUBM`` for submit, ``EWMSSTATUS`` for status, ``EWMSJMAN`` for the others)."""
    for kind, errno in ERRNO_BY_EXCEPTION:
        if isinstance(exc, kind):
            return errno
    return operation_errno


def error_from(exc: InterCEdeError, operation_errno: int) -> dict[str, Any]:
    """``S_ERROR`` for a whole-operation failure; the message is the exception's own."""
    return S_ERROR(errno_for(exc, operation_errno), str(exc) or type(exc).__name__)
