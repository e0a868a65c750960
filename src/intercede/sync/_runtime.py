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
import contextlib
import itertools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ..errors import (
    BackendClosedError,
    OperationCancelledError,
    OperationTimeoutError,
    RunningLoopError,
)

__all__ = ["LoopThread", "running_loop_library"]

T = TypeVar("T")

#: How long a caller interrupted by Ctrl-C waits for its coroutine to finish unwinding.
CANCEL_GRACE_S = 5.0
#: How long ``close()`` lets calls already in flight finish before cancelling them. A submit
#: that is running is allowed to complete so its handles reach the caller instead of leaving
#: orphaned jobs on the resource; only then is the backend's connection closed.
CLOSE_GRACE_S = 10.0
#: How long ``close()`` gives the backend's ``aclose()`` before stopping the loop anyway.
CLOSE_TIMEOUT_S = 30.0
#: How often a waiting caller checks that the loop thread still exists. The answer normally
#: arrives long before; this only bounds the wait when the thread is gone (a forked child).
LIVENESS_SLICE_S = 1.0

_names = itertools.count(1)
_log = logging.getLogger("intercede.sync")
# Every runtime whose thread may still run, so a forked child can mark them unusable.
_live: weakref.WeakSet[LoopThread] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """The child has none of the parent's threads: no facade of the parent can answer there."""
    for runtime in list(_live):
        runtime._orphan()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
        "stopped",
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
        self.stopped = False
        self.finished = False


class LoopThread:
    """An asyncio loop running in its own daemon thread, and the way to call into it."""

    def __init__(self, label: str = "facade") -> None:
        self._loop = asyncio.new_event_loop()
        self._jobs: set[_Job[Any]] = set()  # touched on the loop thread only
        self._lock = threading.Lock()
        self._closing = False
        self._broken: str | None = None  # why the runtime is unusable without close()
        self._label = label
        self._thread = threading.Thread(
            target=self._main, name=f"intercede-sync-{next(_names)}", daemon=True
        )
        self._thread.start()
        _live.add(self)

    @property
    def closed(self) -> bool:
        return self._closing

    def relabel(self, label: str) -> None:
        """Name the backend in error messages once it is known (it is built on this loop)."""
        self._label = label

    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

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
            try:
                self._loop.call_soon_threadsafe(self._start, job)
            except RuntimeError:  # the loop is closed: its thread ended without close()
                raise self._closed_error(what) from None
        return self._wait(job)

    def interrupt(self) -> None:
        """Cancel every call in flight (from any thread, without waiting); their callers raise
        ``OperationCancelledError``. Later calls are accepted as usual."""
        with self._lock:
            if self._closing:
                return
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
                self._loop.call_soon_threadsafe(self._stop_all)

    def close(self, final: Callable[[], Awaitable[None]] | None = None) -> None:
        """Refuse new calls, let calls in flight finish for up to ``CLOSE_GRACE_S`` and cancel
        the rest (their callers get ``BackendClosedError``), run ``final()`` (the backend's
        ``aclose``) on the loop, then stop the loop and join its thread.

        Idempotent. Only the first call runs ``final()``; later calls wait for the thread to
        end. On the loop thread itself (a finaliser run there) it cannot wait for itself, so it
        closes in the background, as ``close_in_background`` does.
        """
        first = self._begin_close()
        if self.on_loop_thread():
            if first:
                self._spawn_closer(final)
            return
        if first:
            self._finish_close(final)
        elif self._broken is None:
            self._thread.join()

    def close_in_background(self, final: Callable[[], Awaitable[None]] | None = None) -> None:
        """``close()`` without blocking the caller: for finalisers that run inside an event
        loop (asyncio's or the facade's own), where waiting for ``aclose()`` would stall it."""
        if self._begin_close():
            self._spawn_closer(final)

    def _begin_close(self) -> bool:
        with self._lock:
            first = not self._closing
            self._closing = True
        return first and self._broken is None

    def _spawn_closer(self, final: Callable[[], Awaitable[None]] | None) -> None:
        def run() -> None:
            try:
                self._finish_close(final)
            except Exception as exc:  # noqa: BLE001 - nobody is left to raise it to
                _log.warning(
                    "closing the sync facade over %s in the background failed: %s: %s",
                    self._label,
                    type(exc).__name__,
                    exc,
                )

        closer = threading.Thread(target=run, name=f"{self._thread.name}-close", daemon=True)
        # At interpreter shutdown no thread can start; the loop's daemon thread dies with it.
        with contextlib.suppress(RuntimeError):
            closer.start()

    def _finish_close(self, final: Callable[[], Awaitable[None]] | None) -> None:
        try:
            job: _Job[None] = _Job("close", lambda: self._close_on_loop(final), None)
            self._loop.call_soon_threadsafe(self._start, job)
            self._wait(job)
        except RuntimeError:  # the loop is closed: its thread already ended
            if self._thread.is_alive():
                raise
        finally:
            # Even when aclose() failed or timed out: the thread must not outlive close().
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            _live.discard(self)

    def _orphan(self) -> None:
        """Called in a forked child: refuse every call, touch nothing the parent still uses."""
        self._lock = threading.Lock()  # another parent thread may have held it at fork time
        self._closing = True
        self._broken = (
            f"was created in process {os.getppid()} and does not survive fork; build a new one "
            "in the child with intercede.sync.backend() or intercede.sync.wrap()"
        )

    def _closed_error(self, what: str) -> BackendClosedError:
        reason = self._broken or (
            "is closed; build a new one with intercede.sync.backend() or intercede.sync.wrap()"
        )
        return BackendClosedError(f"{what}: the sync facade over {self._label} {reason}")

    def _lost_thread(self) -> None:
        with self._lock:
            self._closing = True
            self._broken = self._broken or (
                "lost its loop thread (it ended without close()); build a new one with "
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
            answered = self._answered(job)
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
        if not answered:
            self._lost_thread()
            raise self._closed_error(job.what)
        if job.error is not None:
            error, job.error = job.error, None
            try:
                raise error
            finally:
                del error
        return job.value  # type: ignore[return-value]

    def _answered(self, job: _Job[Any]) -> bool:
        """Wait for the loop's answer; ``False`` if the loop thread is gone without giving it.

        Waiting in slices rather than forever: a thread can vanish without answering (in a
        forked child, or when a ``BaseException`` escapes the loop), and a caller must not hang.
        """
        while not job.done.acquire(timeout=LIVENESS_SLICE_S):
            if not self._thread.is_alive():
                return job.done.acquire(blocking=False)
        return True

    # Everything below runs on the loop thread.

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            self._loop.run_until_complete(self._drain())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        except BaseException:
            # SystemExit (or KeyboardInterrupt) raised by code on the loop ends the thread:
            # answer every caller now instead of leaving them to notice the thread is gone.
            self._lost_thread()
            for job in list(self._jobs):
                job.error = self._closed_error(job.what)
                self._finish(job)
            raise
        finally:
            self._loop.close()

    def _start(self, job: _Job[Any]) -> None:
        self._jobs.add(job)
        job.task = self._loop.create_task(self._run(job))

    def _stop_all(self) -> None:
        for job in list(self._jobs):
            if job.task is not None and job.what != "close":
                job.stopped = True
                job.task.cancel()
        if self._jobs:
            _log.debug("interrupted %d call(s) on the facade over %s", len(self._jobs), self._label)

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
                    _log.debug("%s on %s timed out after %g s", job.what, self._label, job.timeout)
                    job.error = OperationTimeoutError(
                        f"{job.what} did not finish within {job.timeout:g} s; "
                        "it was cancelled on the facade's loop"
                    )
        except asyncio.CancelledError as exc:
            if job.interrupted:
                job.error = exc
            elif job.stopped:
                job.error = OperationCancelledError(
                    f"{job.what}: interrupted (the facade's interrupt() cancelled it)"
                )
            else:
                job.error = self._closed_error(job.what)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            job.error = exc
        finally:
            self._finish(job)

    def _finish(self, job: _Job[Any]) -> None:
        if job in self._jobs:
            self._jobs.discard(job)
            job.finished = True
            job.done.release()

    async def _close_on_loop(self, final: Callable[[], Awaitable[None]] | None) -> None:
        """Quiesce, then close the backend: in-flight calls must not see its connection go.

        New calls are already refused. Every call accepted before that has its task by now
        (``call_soon_threadsafe`` runs callbacks in order), so waiting for those tasks covers
        every caller.
        """
        current = asyncio.current_task()
        running = {task for job in self._jobs if (task := job.task) and task is not current}
        if running:
            _, late = await asyncio.wait(running, timeout=CLOSE_GRACE_S)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=CANCEL_GRACE_S)
        for job in [j for j in self._jobs if j.task is not current and j.task and j.task.done()]:
            # Cancelled before its first step, so ``_run`` never answered it.
            job.error = job.error or self._closed_error(job.what)
            self._finish(job)
        if final is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S) as scope:
                await final()
        except TimeoutError:
            if not scope.expired():
                raise
            raise OperationTimeoutError(
                f"close: the backend's aclose() did not finish within {CLOSE_TIMEOUT_S:g} s; "
                "it was cancelled and the facade's loop stopped anyway"
            ) from None

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
