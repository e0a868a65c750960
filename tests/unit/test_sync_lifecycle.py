"""The facade's end of life: close with calls in flight, fork, a dead loop thread, GC in a loop."""

from __future__ import annotations

import asyncio
import gc
import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import intercede
import intercede.sync
from intercede import JobHandle, Submission, SubmissionSpec
from intercede.sync import _runtime
from tests.unit.child import run_python
from tests.unit.fakes import Instrumented, in_thread

SPEC = SubmissionSpec(executable="pilot.sh")
HANDLE = JobHandle(backend="fake", resource="mem", id="1")
SRC = str(Path(intercede.__file__).resolve().parents[1])


class Connected(Instrumented):
    """A backend over one "connection" that ``aclose()`` tears down, like the SSH transport.

    An operation still running when the connection goes fails with a transport error, which is
    what a caller would see if the facade closed the backend under it (``Instrumented._op``).
    """


def sync_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("intercede-sync-")}


def test_close_lets_a_running_submit_finish_before_closing_the_backend() -> None:
    """The handles of a submission in flight are not lost, and no transport error leaks out."""
    backend = Connected(delay=0.5)
    facade = intercede.sync.wrap(backend)
    thread, outcome = in_thread(lambda: facade.submit(SPEC, 3))
    assert backend.started.wait(5)
    began = time.monotonic()
    facade.close()
    closing = time.monotonic() - began
    thread.join(10)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], Submission), repr(outcome[0])
    assert sorted(outcome[0].handles) == [0, 1, 2]
    assert backend.events == ["finished submit", "aclose"]
    assert closing < _runtime.CLOSE_GRACE_S  # it waited for the submit, not for the grace


def test_close_cancels_what_outlives_the_grace_then_closes_the_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_runtime, "CLOSE_GRACE_S", 0.3)
    backend = Connected(delay=30.0)
    facade = intercede.sync.wrap(backend)
    thread, outcome = in_thread(lambda: facade.get_status([HANDLE]))
    assert backend.started.wait(5)
    began = time.monotonic()
    facade.close()
    closing = time.monotonic() - began
    thread.join(10)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], intercede.BackendClosedError), repr(outcome[0])
    assert str(outcome[0]).startswith("get_status: the sync facade over Connected is closed")
    # Cancelled (and unwound) before the connection was torn down, not after.
    assert backend.events == ["cancelled get_status", "aclose"]
    assert 0.25 <= closing < 5


def test_calls_made_while_close_waits_for_the_grace_are_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_runtime, "CLOSE_GRACE_S", 2.0)
    backend = Connected(delay=30.0)
    facade = intercede.sync.wrap(backend)
    first, _ = in_thread(lambda: facade.get_status([HANDLE]))
    assert backend.started.wait(5)
    closer, _ = in_thread(facade.close)
    deadline = time.monotonic() + 5
    while not facade.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    with pytest.raises(intercede.BackendClosedError, match=r"^submit: the sync facade over"):
        facade.submit(SPEC)
    assert time.monotonic() - began < 0.5
    assert "aclose" not in backend.events  # still within the grace
    closer.join(10)
    first.join(10)
    assert not closer.is_alive()
    assert not first.is_alive()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_caller_whose_loop_thread_died_gets_backend_closed_not_a_hang() -> None:
    """The loop thread can end without answering (here: SystemExit raised on the loop)."""
    backend = Connected(delay=30.0)
    facade = intercede.sync.wrap(backend)
    thread, outcome = in_thread(lambda: facade.get_status([HANDLE]))
    assert backend.started.wait(5)

    def die() -> None:
        raise SystemExit

    facade._runtime._loop.call_soon_threadsafe(die)
    thread.join(10)
    facade._runtime._thread.join(10)  # its SystemExit is reported within this test
    assert not thread.is_alive(), "the caller hung on a dead loop thread"
    assert len(outcome) == 1
    assert isinstance(outcome[0], intercede.BackendClosedError), repr(outcome[0])
    assert "loop thread" in str(outcome[0])
    with pytest.raises(intercede.BackendClosedError, match=r"^submit: "):
        facade.submit(SPEC)
    facade.close()  # does not hang either


FORK_SCRIPT = """
import asyncio, json, os, signal, sys, time
import intercede, intercede.sync
from intercede import JobHandle, JobStatus, Submission

HANDLE = JobHandle(backend="fake", resource="mem", id="1")
ACLOSE_PIDS = []

class Backend:
    async def __aenter__(self): return self
    async def __aexit__(self, *exc): await self.aclose()
    async def aclose(self): ACLOSE_PIDS.append(os.getpid())
    async def submit(self, spec, copies=1): return Submission(handles={0: HANDLE})
    async def get_status(self, handles):
        await asyncio.sleep(0.01)
        return {h.id: JobStatus.DONE for h in handles}

facade = intercede.sync.wrap(Backend())
assert facade.get_status([HANDLE])["1"] == "Done"
pid = os.fork()
if pid == 0:
    code = 0
    try:
        facade.get_status([HANDLE], timeout=5)
        code = 10
    except intercede.BackendClosedError as exc:
        if "does not survive fork" not in str(exc) or "get_status" not in str(exc):
            code = 11
    except BaseException:
        code = 12
    try:
        with intercede.sync.wrap(Backend()) as fresh:
            if fresh.get_status([HANDLE])["1"] != "Done":
                code = code or 13
    except BaseException:
        code = code or 14
    if ACLOSE_PIDS != [os.getpid()]:  # only the fresh facade's backend, not the parent's
        code = code or 15
    # Even with the fork hook's mark undone, a call must not wait forever for a loop thread
    # that does not exist in this process.
    facade._runtime._closing = False
    facade._runtime._broken = None
    began = time.monotonic()
    try:
        facade.get_status([HANDLE])
        code = code or 16
    except intercede.BackendClosedError as exc:
        if "loop thread" not in str(exc) or time.monotonic() - began > 5:
            code = code or 17
    except BaseException:
        code = code or 18
    sys.exit(code)  # through atexit, where the inherited facade's finaliser runs
deadline = time.monotonic() + 20
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        child = os.waitstatus_to_exitcode(status)
        break
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        child = "hung"
        break
    time.sleep(0.05)
parent = facade.get_status([HANDLE], timeout=5)["1"]
facade.close()
print(json.dumps({"child": child, "parent": parent, "aclose_pids": ACLOSE_PIDS == [os.getpid()]}))
"""


def test_a_forked_child_gets_backend_closed_and_can_build_its_own(tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(textwrap.dedent(FORK_SCRIPT))
    done = run_python(str(script), pythonpath=[SRC])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"child": 0, "parent": "Done", "aclose_pids": True}


def test_a_facade_dropped_inside_a_running_loop_does_not_block_it() -> None:
    # A close that blocked would cost the whole close_delay; the bound is half of it, so a
    # loaded machine's slow gc.collect() cannot pass for blocking.
    backend = Connected(close_delay=5.0)
    before = sync_threads()
    held: list[Any] = [intercede.sync.wrap(backend)]
    held[0].get_status([HANDLE])
    measured: dict[str, float] = {}

    async def main() -> None:
        began = time.monotonic()
        held.clear()
        gc.collect()
        measured["drop"] = time.monotonic() - began
        ticks = time.monotonic()
        await asyncio.sleep(0.1)  # the loop keeps turning while the backend closes
        measured["tick"] = time.monotonic() - ticks

    asyncio.run(main())
    assert measured["drop"] < 2.5, f"dropping the facade blocked the loop {measured['drop']:.2f} s"
    assert measured["tick"] < 2.5
    assert backend.aclose_done.wait(10), "the backend was never closed"
    deadline = time.monotonic() + 10
    while sync_threads() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sync_threads() - before, "the facade's threads outlived its close"
    assert backend.events == ["finished get_status", "aclose"]


def test_a_finaliser_run_on_the_facades_own_loop_thread_closes_without_deadlock() -> None:
    backend = Connected(close_delay=0.2)
    before = sync_threads()
    facade = intercede.sync.wrap(backend)
    facade._runtime._loop.call_soon_threadsafe(facade._finalizer)
    assert backend.aclose_done.wait(10)
    deadline = time.monotonic() + 10
    while sync_threads() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sync_threads() - before
    assert facade.closed
    with pytest.raises(intercede.BackendClosedError):
        facade.get_status([HANDLE])
