"""The exception hierarchy.

Whole-operation failures raise; per-item failures come back in result maps. Every exception
derives from :class:`InterCEdeError` so a caller (a DIRAC adapter, say) can map the whole family
onto ``S_ERROR`` with one ``except`` and pick an ``Errno`` by subclass.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BackendClosedError",
    "ConfigurationError",
    "InterCEdeError",
    "OperationCancelledError",
    "OperationTimeoutError",
    "ResourceUnavailableError",
    "RunningLoopError",
    "SpecificationRejectedError",
    "SubmitTimeoutError",
    "SubmitUnavailableError",
]


class InterCEdeError(Exception):
    """Root of every error interCEde raises."""


class _NamesField(InterCEdeError):
    """An error that can name the field to blame: ``field`` is kept and leads the message."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class _NamesBatch(InterCEdeError):
    """An error about a submit in doubt: ``batch`` is kept and ends the message."""

    def __init__(self, message: str, *, batch: str) -> None:
        self.batch = batch
        super().__init__(f"{message} [batch {batch}]")


class ConfigurationError(_NamesField, ValueError):
    """Backend configuration is invalid: unknown kind, missing field, bad value.

    ``field`` is the dotted path of the offending field (``"queues.main.port"``), when one is
    to blame, so the message can point at the exact key a user has to fix.
    """


class AuthenticationError(InterCEdeError):
    """The resource rejected our credentials, or the provider could not give any."""


class ResourceUnavailableError(InterCEdeError, ConnectionError):
    """The transport or the resource is down: connection refused, reset, host unreachable,
    or the scheduler's commands failing as a whole."""


class OperationTimeoutError(InterCEdeError, TimeoutError):
    """An operation did not finish within its configured (or per-call) timeout."""


class OperationCancelledError(InterCEdeError):
    """A call was cancelled from outside before it finished (the sync facade's
    ``interrupt()``, used by a supervisor stopping worker threads); its outcome is unknown."""


class SpecificationRejectedError(_NamesField, ValueError):
    """The backend refuses this submission at submit time, before anything ran.

    ``field`` names the part of the spec that cannot be honoured (``"outputs.members[0]"``).
    """


class RunningLoopError(InterCEdeError, RuntimeError):
    """A synchronous facade call was made from a thread whose event loop is running.

    Blocking that loop until our own loop answers would deadlock or stall every other task on
    it; async callers must await the async API instead.
    """


class BackendClosedError(InterCEdeError, RuntimeError):
    """The backend (or the sync facade over it) was used after ``close()``."""


class SubmitUnavailableError(_NamesBatch, ResourceUnavailableError):
    """A submit failed in a way that leaves its outcome in doubt: some copies may have been
    accepted before the connection or the scheduler went away.

    ``batch`` names the submission (a Slurm backend tags every job with it), so the caller can
    reconcile instead of resubmitting blindly and leaving unmonitored duplicates.
    """


class SubmitTimeoutError(_NamesBatch, OperationTimeoutError):
    """A submit ran out of time with its outcome in doubt; ``batch`` as for
    :class:`SubmitUnavailableError`."""
