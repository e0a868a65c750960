"""The facade's event loop: one asyncio loop in one daemon thread for the facade's whole life.

Connection state (an SSH session, say) is bound to the loop that opened it, and DIRAC keeps CE
objects across agent cycles, so every call of one facade must run on the same loop: never a
fresh ``asyncio.run()`` per call. The loop is asyncio (asyncssh needs it; anyio code runs on
it unchanged). Calls are handed over with ``call_soon_threadsafe`` and answered through a plain
lock rather than an anyio ``BlockingPortal``: it is several times cheaper per call (see
``docs/performance.md``) and lets a Ctrl-C in the waiting thread cancel the coroutine and wait
for it to unwind (docs/adr/0001-sync-facade-lifetime.md has the full reasoning).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ..errors import BackendClosedError, OperationTimeoutError, RunningLoopError

__all__ = ["LoopThread", "running_loop_library"]

T = TypeVar("T")

#: How long a caller interrupted by Ctrl-C waits for its coroutine to finish unwinding.
CANCEL_GRACE_S = 5.0
#: How long ``close()`` gives the backend's ``aclose()`` before stopping the loop anyway.
CLOSE_TIMEOUT_S = 30.0

_names = itertools.count(1)


def running_loop_library() -> str | None:
    """The async library running an event loop in the calling thread, if any.

    asyncio is asked directly; trio (and anything else sniffio knows) only when already
    imported, so a plain sync program pays no import for the check.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return "trio"
    sniffio = sys.modules.get("sniffio")
    if sniffio is not None:
        try:
            return str(sniffio.current_async_library())
        except sniffio.AsyncLibraryNotFoundError:
            pass
    return None


class _Job(Generic[T]):
    """One call in flight: created by the caller, run by the loop, answered through ``done``."""

    __slots__ = (
        "done",
        "error",
        "factory",
        "finished",
        "interrupted",
        "task",
        "timeout",
        "value",
        "what",
    )

    def __init__(
        self, what: str, factory: Callable[[], Awaitable[T]], timeout: float | None
    ) -> None:
        self.what = what
        self.factory = factory
        self.timeout = timeout
        self.done = threading.Lock()
        self.done.acquire()
        self.task: asyncio.Task[None] | None = None
        self.value: T | None = None
        self.error: BaseException | None = None
        self.interrupted = False
        self.finished = False


class LoopThread:
    """An asyncio loop running in its own daemon thread, and the way to call into it."""

    def __init__(self, label: str = "facade") -> None:
        self._loop = asyncio.new_event_loop()
        self._jobs: set[_Job[Any]] = set()  # touched on the loop thread only
        self._lock = threading.Lock()
        self._closing = False
        self._label = label
        self._thread = threading.Thread(
            target=self._main, name=f"intercede-sync-{next(_names)}", daemon=True
        )
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closing

    def relabel(self, label: str) -> None:
        """Name the backend in error messages once it is known (it is built on this loop)."""
        self._label = label

    def call(
        self, what: str, factory: Callable[[], Awaitable[T]], timeout: float | None = None
    ) -> T:
        """Run ``factory()`` on the loop and wait for its result in the calling thread.

        The coroutine's own exception is re-raised as is (same type, same message). With
        ``timeout`` the coroutine is cancelled on the loop when it runs out, and
        ``OperationTimeoutError`` is raised once it has unwound. A ``KeyboardInterrupt`` (or any
        other exception) raised in this thread while waiting cancels the coroutine too.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(
                f"timeout: must be a positive number of seconds or None, not {timeout!r}"
            )
        self.refuse_running_loop(what)
        job: _Job[T] = _Job(what, factory, timeout)
        with self._lock:
            if self._closing:
                raise self._closed_error(what)
            self._loop.call_soon_threadsafe(self._start, job)
        return self._wait(job)

    def close(self, final: Callable[[], Awaitable[None]] | None = None) -> None:
        """Refuse new calls, run ``final()`` (the backend's ``aclose``) on the loop, then stop
        the loop and join its thread. Idempotent; calls still in flight get
        ``BackendClosedError`` once the loop stops."""
        with self._lock:
            if self._closing:
                first = False
            else:
                self._closing = first = True
        if threading.current_thread() is self._thread:
            # Only the garbage collector gets here (a finaliser run on the loop thread):
            # waiting for ourselves would deadlock, so schedule the shutdown and leave.
            if first:
                self._loop.create_task(self._shutdown_from_inside(final))
            return
        if not first:
            self._thread.join()
            return
        try:
            if final is not None:
                job: _Job[None] = _Job("close", final, CLOSE_TIMEOUT_S)
                self._loop.call_soon_threadsafe(self._start, job)
                self._wait(job)
        finally:
            # Even when aclose() failed or timed out: the thread must not outlive close().
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def _closed_error(self, what: str) -> BackendClosedError:
        return BackendClosedError(
            f"{what}: the sync facade over {self._label} is closed; build a new one with "
            "intercede.sync.backend() or intercede.sync.wrap()"
        )

    @staticmethod
    def refuse_running_loop(what: str) -> None:
        library = running_loop_library()
        if library is not None:
            raise RunningLoopError(
                f"{what}: the sync facade was called from a thread whose {library} event loop "
                "is running; blocking it would stall every task on that loop. Await the async "
                "API (intercede.backend(...)) instead, or call the facade from a worker thread."
            )

    def _wait(self, job: _Job[T]) -> T:
        try:
            job.done.acquire()
        except BaseException:
            # Ctrl-C (or another async exception) while waiting: cancel the coroutine on the
            # loop and give it a moment to unwind, so the loop thread is never left stuck.
            if not job.finished:
                job.interrupted = True
                try:
                    self._loop.call_soon_threadsafe(self._cancel, job)
                except RuntimeError:  # the loop is already closed: nothing is running
                    pass
                else:
                    job.done.acquire(timeout=CANCEL_GRACE_S)
            raise
        if job.error is not None:
            error, job.error = job.error, None
            try:
                raise error
            finally:
                del error
        return job.value  # type: ignore[return-value]

    # Everything below runs on the loop thread.

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            self._loop.run_until_complete(self._drain())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()

    def _start(self, job: _Job[Any]) -> None:
        self._jobs.add(job)
        job.task = self._loop.create_task(self._run(job))

    @staticmethod
    def _cancel(job: _Job[Any]) -> None:
        if job.task is not None:
            job.task.cancel()

    async def _run(self, job: _Job[T]) -> None:
        try:
            if job.timeout is None:
                job.value = await job.factory()
            else:
                try:
                    async with asyncio.timeout(job.timeout) as scope:
                        job.value = await job.factory()
                except TimeoutError:
                    if not scope.expired():
                        raise
                    job.error = OperationTimeoutError(
                        f"{job.what} did not finish within {job.timeout:g} s; "
                        "it was cancelled on the facade's loop"
                    )
        except asyncio.CancelledError as exc:
            job.error = exc if job.interrupted else self._closed_error(job.what)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            job.error = exc
        finally:
            self._finish(job)

    def _finish(self, job: _Job[Any]) -> None:
        if job in self._jobs:
            self._jobs.discard(job)
            job.finished = True
            job.done.release()

    async def _drain(self) -> None:
        """Cancel what is still running and answer every caller, even for a task that was
        cancelled before its first step (and so never ran ``_run``'s ``finally``)."""
        pending = [job for job in self._jobs if job.task is not None]
        for job in pending:
            job.task.cancel()  # type: ignore[union-attr]
        await asyncio.gather(*(job.task for job in pending if job.task), return_exceptions=True)
        for job in list(self._jobs):
            job.error = job.error or self._closed_error(job.what)
            self._finish(job)

    async def _shutdown_from_inside(self, final: Callable[[], Awaitable[None]] | None) -> None:
        try:
            if final is not None:
                await final()
        finally:
            self._loop.stop()
