"""The interCEde contract: small runtime-checkable protocols, not a base class.

A backend qualifies structurally, so a test fake needs no interCEde import. Every operation is
bulk: it takes many handles and answers per job, keyed by ``JobID`` (``handle.id``), and never
drops an id. Whole-operation failures raise an ``InterCEdeError``; per-job failures come back
as ``JobStatus.UNKNOWN`` or an ``OpOutcome(ok=False, reason=...)``.

This module is the single source of truth for the sync facade: ``tools/gen_sync.py`` reads it
and writes ``intercede/sync/_generated.py``. Keep one ``async def`` per operation, fully typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from .models import (
    CopyVars,
    Diagnostics,
    Explanation,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    LoadCounts,
    OpOutcome,
    Submission,
    SubmissionSpec,
)

__all__ = [
    "AsyncClosable",
    "BatchCleaner",
    "Diagnosable",
    "Explainer",
    "JobBackend",
    "Killable",
    "LoadReporter",
    "OutputRetriever",
    "Purgeable",
    "StatusReporter",
    "Submitter",
]


@runtime_checkable
class AsyncClosable(Protocol):
    """Backends are async context managers: construction does no I/O, close is idempotent."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def aclose(self) -> None:
        """Release connections; calling it again does nothing."""
        ...


@runtime_checkable
class Submitter(Protocol):
    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        """Submit ``copies`` of ``spec`` (a count, or one ``CopyVars`` per copy) in bulk."""
        ...


@runtime_checkable
class StatusReporter(Protocol):
    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        """Answer every handle; jobs the resource does not know are ``Unknown``."""
        ...


@runtime_checkable
class JobBackend(Submitter, StatusReporter, AsyncClosable, Protocol):
    """The essential contract every backend satisfies."""


@runtime_checkable
class OutputRetriever(Protocol):
    async def get_output(
        self, handles: Sequence[JobHandle], dest: Path
    ) -> Mapping[JobID, JobOutput | OpOutcome]:
        """Collect stdout, stderr, the scheduler log and the spec's output members under
        ``dest``; repeatable. A job whose output cannot be collected gets an ``OpOutcome``."""
        ...


@runtime_checkable
class Killable(Protocol):
    async def kill(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        """Cancel the jobs; an already finished or unknown job gets its own outcome."""
        ...


@runtime_checkable
class Purgeable(Protocol):
    async def purge(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        """Release remote state (working directories, staged secrets) without collecting."""
        ...


@runtime_checkable
class Diagnosable(Protocol):
    async def get_diagnostics(
        self, handles: Sequence[JobHandle], name: str | None = None
    ) -> Mapping[JobID, Diagnostics | OpOutcome]:
        """Read a named file (default: the job's stdout) while the job runs."""
        ...


@runtime_checkable
class LoadReporter(Protocol):
    async def counts(self) -> LoadCounts:
        """Running and waiting counts of this backend's own jobs in its queue."""
        ...


@runtime_checkable
class Explainer(Protocol):
    async def explain(
        self, handles: Sequence[JobHandle]
    ) -> Mapping[JobID, Explanation | OpOutcome]:
        """Why each job is in its state (a pending job's reason, its queue's state); a job the
        resource no longer shows gets an ``OpOutcome``."""
        ...


@runtime_checkable
class BatchCleaner(Protocol):
    async def cleanup_batch(self, batch: str) -> OpOutcome:
        """Remove what a submit whose outcome is in doubt left on the resource, by the
        ``batch`` its ``SubmitUnavailableError``/``SubmitTimeoutError`` named; idempotent.
        Refused (``ok=False``) while any job of the batch is queued or running."""
        ...
