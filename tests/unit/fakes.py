"""In-memory backends the unit tests share: what every fake needs written once.

A fake here is a structural ``intercede.JobBackend`` (no base class from the library: the
protocols are structural, and a fake proves it). :class:`FakeBackend` is the part every test's
fake repeated (the async context manager over ``aclose``, counting closes, one handle per copy);
:class:`Instrumented` adds the instrumented operation the facade tests drive (a delay, a failure
to raise, cancellation, concurrency, which loop and thread ran it, a connection that ``aclose``
takes away). A test subclasses one of them and writes only what its scenario needs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Self

import intercede
from intercede import CopyVars, JobHandle, JobID, JobStatus, Submission, SubmissionSpec
from intercede._batch.layout import JobLocation, locate

__all__ = ["FakeBackend", "Instrumented", "as_copies", "fake_handle", "fake_handles"]


def in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``call`` in a thread; its result or exception lands in the returned list."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def local_job(index: int, batch: str, array: str = "9") -> JobLocation:
    """Copy ``index`` of ``batch`` as the local Slurm backend locates it: ``<array>_<index>``."""
    handle = JobHandle(
        backend="slurm+local",
        resource="localhost",
        id=f"{array}_{index}",
        routing=f"{batch}/{index}",
    )
    where = locate(handle, backend="slurm+local", resource="localhost")
    assert isinstance(where, JobLocation)
    return where


def fake_handle(job_id: str, resource: str = "mem") -> JobHandle:
    return JobHandle(backend="fake", resource=resource, id=job_id)


def fake_handles(n: int, resource: str = "mem") -> list[JobHandle]:
    """``job0`` .. ``job<n-1>``."""
    return [fake_handle(f"job{i}", resource) for i in range(n)]


def as_copies(copies: int | Sequence[CopyVars]) -> list[CopyVars]:
    """``submit``'s ``copies`` as one ``CopyVars`` per copy (an int means plain copies)."""
    return [CopyVars()] * copies if isinstance(copies, int) else list(copies)


class FakeBackend:
    """The JobBackend lifecycle plus a plain submit (one handle per copy) and status.

    ``status`` is what ``get_status`` answers for every job; ``submits`` records each call.
    """

    status = JobStatus.RUNNING

    def __init__(self) -> None:
        self.acloses = 0
        self.aclose_threads: list[str] = []
        self.submits: list[tuple[SubmissionSpec, list[CopyVars]]] = []

    @property
    def closed(self) -> bool:
        return self.acloses > 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.acloses += 1
        self.aclose_threads.append(threading.current_thread().name)

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        varied = as_copies(copies)
        self.submits.append((spec, varied))
        return Submission(handles={i: fake_handle(str(i)) for i in range(len(varied))})

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        return {h.id: self.status for h in handles}


class Instrumented(FakeBackend):
    """A backend over one "connection" whose operations record how they were driven.

    ``submit`` and ``get_status`` go through :meth:`_op`; a subclass's own operations call it
    first too. It sleeps ``delay`` (cancellable),
    raises ``failure`` when set, and fails with a transport error when ``aclose`` ran meanwhile:
    what a caller would see if the facade closed the backend under a running call. ``events``
    says in order what finished, what was cancelled and when ``aclose`` ran.
    """

    def __init__(self, delay: float = 0.0, close_delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.close_delay = close_delay
        self.failure: BaseException | None = None
        self.connected = True
        self.events: list[str] = []
        self.started = threading.Event()
        self.aclose_done = threading.Event()
        self.loops: set[int] = set()
        self.threads: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def cancelled(self) -> list[str]:
        """The operations cancelled while running, in order."""
        return [e.removeprefix("cancelled ") for e in self.events if e.startswith("cancelled ")]

    async def aclose(self) -> None:
        self.events.append("aclose")
        await super().aclose()
        await asyncio.sleep(self.close_delay)
        self.connected = False
        self.aclose_done.set()

    async def _op(self, name: str) -> None:
        self.started.set()
        self.loops.add(id(asyncio.get_running_loop()))
        self.threads.add(threading.current_thread().name)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.failure is not None:
                raise self.failure
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.events.append(f"cancelled {name}")
            raise
        finally:
            self.in_flight -= 1
        if not self.connected:
            raise intercede.ResourceUnavailableError(f"{name}: connection closed under it")
        self.events.append(f"finished {name}")

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        await self._op("submit")
        return await super().submit(spec, copies)

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        await self._op("get_status")
        return await super().get_status(handles)
