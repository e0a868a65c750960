"""The facade's loop thread (``intercede.sync._runtime.LoopThread``) pinned where mutation
testing found the facade-level tests blind: exact error messages, the timeout's own edge,
interrupt, close with a failing or slow ``aclose``, the background closer's thread and log line,
and a loop thread that dies under its callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from intercede import BackendClosedError, OperationCancelledError, OperationTimeoutError
from intercede.sync import _runtime
from intercede.sync._runtime import LoopThread
from tests.unit.fakes import in_thread

CLOSED = "is closed; build a new one with intercede.sync.backend() or intercede.sync.wrap()"
LOST = (
    "lost its loop thread (it ended without close()); build a new one with "
    "intercede.sync.backend() or intercede.sync.wrap()"
)


def _value(value: Any) -> Callable[[], Any]:
    async def run() -> Any:
        await asyncio.sleep(0)
        return value

    return run


def _raises(error: BaseException) -> Callable[[], Any]:
    async def run() -> None:
        await asyncio.sleep(0)
        raise error

    return run


def _wait_until(condition: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_call_answers_its_value_and_reraises_the_coroutines_own_exception() -> None:
    runtime = LoopThread()
    try:
        assert runtime.closed is False
        assert runtime.call("get", _value(42)) == 42
        assert runtime.call("get", _value(None)) is None
        error = KeyError("the very one")
        with pytest.raises(KeyError) as caught:
            runtime.call("get", _raises(error))
        assert caught.value is error
        # answered calls leave nothing behind: the next one works as the first did
        assert runtime.call("get", _value("again"), timeout=5) == "again"
    finally:
        runtime.close()
    assert runtime.closed is True


@pytest.mark.parametrize("timeout", [0, -1.0, 0.0, float("nan")])
def test_a_timeout_that_is_not_positive_is_refused_before_anything_runs(timeout: float) -> None:
    runtime = LoopThread()
    ran: list[bool] = []

    async def run() -> None:
        ran.append(True)

    try:
        with pytest.raises(ValueError, match=r"^timeout: ") as caught:
            runtime.call("get_status", run, timeout=timeout)
        assert str(caught.value) == (
            f"timeout: must be a positive number of seconds or None, not {timeout!r}"
        )
        assert runtime.call("probe", _value(1), timeout=5) == 1
        assert ran == []
    finally:
        runtime.close()


def test_a_call_over_its_timeout_is_cancelled_with_the_operations_name() -> None:
    runtime = LoopThread("fake://mem")
    unwound = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            unwound.set()

    try:
        with pytest.raises(OperationTimeoutError) as caught:
            runtime.call("get_status", slow, timeout=0.05)
        assert str(caught.value) == (
            "get_status did not finish within 0.05 s; it was cancelled on the facade's loop"
        )
        assert unwound.is_set()  # raised only once the coroutine has unwound
        assert runtime.call("probe", _value(2)) == 2
    finally:
        runtime.close()


def test_a_timeout_error_of_the_coroutine_itself_is_not_the_calls_timeout() -> None:
    runtime = LoopThread()
    error = TimeoutError("the resource's own timeout")
    try:
        with pytest.raises(TimeoutError) as caught:
            runtime.call("get_status", _raises(error), timeout=30)
        assert caught.value is error
    finally:
        runtime.close()


def test_calls_after_close_are_refused_naming_the_operation_and_the_label() -> None:
    runtime = LoopThread()
    runtime.relabel("slurm+ssh://login")
    runtime.close()
    with pytest.raises(BackendClosedError) as caught:
        runtime.call("submit", _value(1))
    assert str(caught.value) == f"submit: the sync facade over slurm+ssh://login {CLOSED}"
    runtime.close()  # idempotent
    runtime.interrupt()  # a no-op once closed
    unlabelled = LoopThread()
    unlabelled.close()
    with pytest.raises(BackendClosedError) as caught:
        unlabelled.call("kill", _value(1))
    assert str(caught.value) == f"kill: the sync facade over facade {CLOSED}"


def test_interrupt_cancels_the_calls_in_flight_and_later_calls_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = LoopThread("fake://mem")
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(30)

    try:
        thread, outcome = in_thread(lambda: runtime.call("get_output", forever))
        assert started.wait(5)
        with caplog.at_level(logging.DEBUG, logger="intercede.sync"):
            runtime.interrupt()
            thread.join(10)
        assert [r.getMessage() for r in caplog.records] == [
            "interrupted 1 call(s) on the facade over fake://mem"
        ]
        assert not thread.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], OperationCancelledError)
        assert str(outcome[0]) == (
            "get_output: interrupted (the facade's interrupt() cancelled it)"
        )
        assert runtime.call("probe", _value(3)) == 3
        runtime.interrupt()  # nothing in flight: harmless
        assert runtime.call("probe", _value(4)) == 4
    finally:
        runtime.close()


def test_close_runs_final_once_and_reraises_its_error_with_the_thread_gone() -> None:
    runtime = LoopThread()
    calls: list[str] = []
    names: list[str] = []

    async def final() -> None:
        calls.append("final")
        names.append(threading.current_thread().name)
        raise OSError("connection reset while closing")

    with pytest.raises(OSError, match=r"^connection reset while closing$"):
        runtime.close(final)
    assert calls == ["final"]
    assert names[0].startswith("intercede-sync-")
    assert names[0] not in {t.name for t in threading.enumerate()}
    runtime.close(final)  # not again
    assert calls == ["final"]


def test_close_with_a_slow_final_times_out_and_stops_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_runtime, "CLOSE_TIMEOUT_S", 0.1)
    runtime = LoopThread()
    name = runtime.call("name", _thread_name)

    async def final() -> None:
        await asyncio.sleep(30)

    with pytest.raises(OperationTimeoutError) as caught:
        runtime.close(final)
    assert str(caught.value) == (
        "close: the backend's aclose() did not finish within 0.1 s; it was cancelled and the "
        "facade's loop stopped anyway"
    )
    assert name not in {t.name for t in threading.enumerate()}


def test_a_timeout_error_raised_by_final_itself_is_reraised_as_is() -> None:
    runtime = LoopThread()
    error = TimeoutError("aclose's own")
    with pytest.raises(TimeoutError) as caught:
        runtime.close(_raises(error))
    assert caught.value is error


async def _thread_name() -> str:
    return threading.current_thread().name


def test_loop_threads_are_named_in_order_and_are_daemons() -> None:
    first, second = LoopThread(), LoopThread()
    try:
        one, two = first.call("name", _thread_name), second.call("name", _thread_name)
        assert one.startswith("intercede-sync-")
        assert two.startswith("intercede-sync-")
        assert int(two.rsplit("-", 1)[1]) == int(one.rsplit("-", 1)[1]) + 1
        daemons = {t.name: t.daemon for t in threading.enumerate()}
        assert daemons[one] is True
        assert daemons[two] is True
        assert first.on_loop_thread() is False
    finally:
        first.close()
        second.close()


def test_closing_in_the_background_runs_in_a_named_daemon_thread_and_logs_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = LoopThread("slurm+local://here")
    name = runtime.call("name", _thread_name)
    seen: dict[str, bool] = {}

    async def final() -> None:
        closers = [t for t in threading.enumerate() if t.name == f"{name}-close"]
        seen["closer"] = len(closers) == 1 and closers[0].daemon
        raise ValueError("aclose broke")

    with caplog.at_level(logging.WARNING, logger="intercede.sync"):
        runtime.close_in_background(final)
        assert runtime.closed is True
        assert _wait_until(lambda: bool(caplog.records))
        assert _wait_until(
            lambda: not {name, f"{name}-close"} & {t.name for t in threading.enumerate()}
        )
    assert seen == {"closer": True}
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "intercede.sync",
            logging.WARNING,
            "closing the sync facade over slurm+local://here in the background failed: "
            "ValueError: aclose broke",
        )
    ]
    runtime.close_in_background(final)  # once only
    runtime.close()  # and close() afterwards returns at once
    assert seen == {"closer": True}


def test_a_close_from_the_loop_thread_itself_happens_in_the_background() -> None:
    runtime = LoopThread()
    done = threading.Event()

    async def final() -> None:
        done.set()

    async def close_from_inside() -> bool:
        runtime.close(final)  # cannot wait for itself: returns at once
        return runtime.on_loop_thread()

    assert runtime.call("close inside", close_from_inside) is True
    assert done.wait(10)
    assert runtime.closed is True


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_loop_thread_answers_its_callers_with_the_exact_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The dying thread answers its callers itself: they must not need the liveness check.
    monkeypatch.setattr(_runtime, "LIVENESS_SLICE_S", 60.0)
    runtime = LoopThread("fake://mem")
    runtime.relabel("fake://relabelled")
    name = runtime.call("name", _thread_name)
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(30)

    thread, outcome = in_thread(lambda: runtime.call("get_status", forever))
    assert started.wait(5)

    def die() -> None:
        raise SystemExit

    runtime._loop.call_soon_threadsafe(die)
    thread.join(10)
    assert _wait_until(lambda: name not in {t.name for t in threading.enumerate()})
    assert len(outcome) == 1
    assert str(outcome[0]) == f"get_status: the sync facade over fake://relabelled {LOST}"
    assert isinstance(outcome[0], BackendClosedError)
    assert runtime.closed is True
    with pytest.raises(BackendClosedError) as caught:
        runtime.call("submit", _value(1))
    assert str(caught.value) == f"submit: the sync facade over fake://relabelled {LOST}"
    runtime.close()  # returns: nothing left to wait for


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_closed_loop_refuses_calls_and_closes_quietly_with_the_lost_mark_undone() -> None:
    """As a forked child's runtime could be: not marked closing, but its loop is closed."""
    runtime = LoopThread("fake://mem")
    name = runtime.call("name", _thread_name)

    def die() -> None:
        raise SystemExit

    runtime._loop.call_soon_threadsafe(die)
    assert _wait_until(lambda: name not in {t.name for t in threading.enumerate()})
    runtime._closing, runtime._broken = False, None
    with pytest.raises(BackendClosedError) as refused:
        runtime.call("kill", _value(1))
    assert str(refused.value) == f"kill: the sync facade over fake://mem {CLOSED}"
    runtime.close()  # nothing to run the close on, and nothing raised
    assert runtime.closed is True


def test_a_runtime_orphaned_by_fork_refuses_every_call_naming_the_parent() -> None:
    """What the fork hook does in the child, done here to the runtime alone (a real fork is
    covered by test_sync_lifecycle)."""
    runtime = LoopThread("fake://mem")
    name = runtime.call("name", _thread_name)
    runtime._orphan()
    try:
        assert runtime.closed is True
        with pytest.raises(BackendClosedError) as caught:
            runtime.call("get_status", _value(1))
        assert str(caught.value) == (
            f"get_status: the sync facade over fake://mem was created in process "
            f"{os.getppid()} and does not survive fork; build a new one in the child with "
            "intercede.sync.backend() or intercede.sync.wrap()"
        )
        runtime.close()  # returns at once: there is nothing of its own to wait for
    finally:  # this process still has the thread a real child would not
        runtime._loop.call_soon_threadsafe(runtime._loop.stop)
        assert _wait_until(lambda: name not in {t.name for t in threading.enumerate()})


def test_the_fork_hook_orphans_every_live_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = LoopThread("fake://mem")
    name = runtime.call("name", _thread_name)
    monkeypatch.setattr(_runtime, "_live", weakref.WeakSet([runtime]))  # this test's only
    _runtime._after_fork_in_child()
    try:
        with pytest.raises(BackendClosedError, match=r"does not survive fork"):
            runtime.call("get_status", _value(1))
    finally:
        runtime._loop.call_soon_threadsafe(runtime._loop.stop)
        assert _wait_until(lambda: name not in {t.name for t in threading.enumerate()})


def test_an_interrupt_of_the_waiting_thread_cancels_the_coroutine_at_once() -> None:
    """Ctrl-C while waiting (here SIGALRM raising ``KeyboardInterrupt`` in this, the main,
    thread): the coroutine is cancelled on the loop, not left running."""
    runtime = LoopThread()
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            runtime.call("get_status", slow)
        assert cancelled.is_set()
        assert runtime.call("probe", _value(5)) == 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        runtime.close()


def test_close_does_not_wait_for_a_call_that_ignores_its_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the grace a call is cancelled and given ``CANCEL_GRACE_S``; one that ignores it
    does not hold up ``aclose()``, and its caller still gets what it returns in the end."""
    monkeypatch.setattr(_runtime, "CLOSE_GRACE_S", 0.1)
    monkeypatch.setattr(_runtime, "CANCEL_GRACE_S", 0.1)
    runtime = LoopThread()
    events: list[str] = []
    started = threading.Event()

    async def stubborn() -> str:
        started.set()
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0
        while (left := end - loop.time()) > 0:
            try:
                await asyncio.sleep(left)
            except asyncio.CancelledError:
                events.append("cancelled")
        events.append("stubborn done")
        return "done"

    async def final() -> None:
        events.append("aclose")

    thread, outcome = in_thread(lambda: runtime.call("submit", stubborn))
    assert started.wait(5)
    runtime.close(final)
    thread.join(10)
    assert outcome == ["done"]
    assert events == ["cancelled", "aclose", "cancelled", "stubborn done"]


def test_a_call_still_running_when_the_loop_stops_is_cancelled_and_the_runtime_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It ignored the grace's cancellation and obeys the last one, as the loop stops: its
    caller is told the facade closed, and the runtime reads closed, not a lost thread."""
    monkeypatch.setattr(_runtime, "CLOSE_GRACE_S", 0.1)
    monkeypatch.setattr(_runtime, "CANCEL_GRACE_S", 0.1)
    runtime = LoopThread("fake://mem")
    started = threading.Event()

    async def stubborn_once() -> str:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        await asyncio.sleep(30)  # the second cancellation ends it
        return "never"

    thread, outcome = in_thread(lambda: runtime.call("submit", stubborn_once))
    assert started.wait(5)
    runtime.close()
    thread.join(10)
    assert len(outcome) == 1
    assert str(outcome[0]) == f"submit: the sync facade over fake://mem {CLOSED}"
    with pytest.raises(BackendClosedError) as caught:
        runtime.call("kill", _value(1))
    assert str(caught.value) == f"kill: the sync facade over fake://mem {CLOSED}"
