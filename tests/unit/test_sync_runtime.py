"""The facade's loop thread: refusal inside running loops, worker threads, Ctrl-C, exit."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

import intercede
import intercede.sync
from intercede import JobHandle, JobID, JobStatus
from tests.unit.child import run_python
from tests.unit.fakes import FakeBackend

HANDLE = JobHandle(backend="fake", resource="mem", id="1")
SRC = str(Path(intercede.__file__).resolve().parents[1])


class Backend(FakeBackend):
    """A JobBackend whose status call sleeps a little and says where it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        self.threads.append(threading.current_thread().name)
        await asyncio.sleep(0.01)
        return {h.id: JobStatus.DONE for h in handles}


@pytest.fixture
def facade() -> Iterator[Any]:
    with intercede.sync.wrap(Backend()) as f:
        yield f


def assert_refused(error: BaseException, library: str) -> None:
    assert isinstance(error, intercede.RunningLoopError)
    assert isinstance(error, intercede.InterCEdeError)
    assert isinstance(error, RuntimeError)
    assert f"whose {library} event loop is running" in str(error)
    assert "Await the async API" in str(error)


def test_refused_inside_a_running_asyncio_loop(facade: Any) -> None:
    async def main() -> BaseException:
        with pytest.raises(intercede.RunningLoopError) as info:
            facade.get_status([HANDLE])
        return info.value

    assert_refused(asyncio.run(main()), "asyncio")
    assert facade.get_status([HANDLE]) == {"1": JobStatus.DONE}  # nothing was left behind


def test_refused_inside_a_running_trio_loop(facade: Any) -> None:
    async def main() -> BaseException:
        with pytest.raises(intercede.RunningLoopError) as info:
            facade.get_status([HANDLE])
        with pytest.raises(intercede.RunningLoopError):
            facade.close()
        return info.value

    assert_refused(trio.run(main), "trio")
    assert not facade.closed


def test_refused_inside_an_asyncio_callback_outside_any_task(facade: Any) -> None:
    async def main() -> BaseException:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException] = loop.create_future()

        def callback() -> None:
            try:
                facade.get_status([HANDLE])
            except intercede.RunningLoopError as exc:
                done.set_result(exc)

        loop.call_soon(callback)
        return await done

    assert_refused(asyncio.run(main()), "asyncio")


def test_works_from_asyncio_worker_threads(facade: Any) -> None:
    async def main() -> list[Mapping[JobID, JobStatus]]:
        return list(
            await asyncio.gather(
                *(asyncio.to_thread(facade.get_status, [HANDLE]) for _ in range(4))
            )
        )

    assert asyncio.run(main()) == [{"1": JobStatus.DONE}] * 4


def test_works_from_trio_worker_threads(facade: Any) -> None:
    async def main() -> Mapping[JobID, JobStatus]:
        return await trio.to_thread.run_sync(facade.get_status, [HANDLE])

    assert trio.run(main) == {"1": JobStatus.DONE}


def test_works_from_a_worker_thread_while_another_thread_runs_a_loop(facade: Any) -> None:
    """How DIRAC's Tornado handlers call: the IOLoop runs in one thread, handlers in others."""
    loop_running = threading.Event()
    release = threading.Event()

    def tornado_like() -> None:
        async def serve() -> None:
            loop_running.set()
            while not release.is_set():
                await asyncio.sleep(0.01)

        asyncio.run(serve())

    server = threading.Thread(target=tornado_like)
    server.start()
    try:
        assert loop_running.wait(5)
        results: list[Any] = []
        handler = threading.Thread(target=lambda: results.append(facade.get_status([HANDLE])))
        handler.start()
        handler.join(10)
        assert results == [{"1": JobStatus.DONE}]
    finally:
        release.set()
        server.join(10)


def test_the_facades_own_loop_thread_is_refused_too(facade: Any) -> None:
    backend = facade._backend

    async def reenter(handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        return dict(facade.get_status(handles))  # would deadlock if it were allowed

    backend.get_status = reenter
    with pytest.raises(intercede.RunningLoopError, match="whose asyncio event loop is running"):
        facade.get_status([HANDLE])


def run_script(body: str, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, json, signal, sys, threading, time
            import intercede, intercede.sync
            from intercede import JobHandle, JobStatus, Submission

            HANDLE = JobHandle(backend="fake", resource="mem", id="1")
            started = threading.Event()
            events = []

            class Backend:
                async def __aenter__(self): return self
                async def __aexit__(self, *exc): await self.aclose()
                async def aclose(self):
                    events.append("aclose")
                    with open(sys.argv[1], "w") as f: json.dump(events, f)
                async def submit(self, spec, copies=1): return Submission(handles={0: HANDLE})
                async def get_status(self, handles):
                    started.set()
                    try:
                        await asyncio.sleep(float(handles[0].routing or 0))
                    except asyncio.CancelledError:
                        events.append("cancelled")
                        raise
                    return {h.id: JobStatus.DONE for h in handles}
            """
        )
        + textwrap.dedent(body)
    )
    marker = tmp_path / "events.json"
    done = run_python(str(script), str(marker), pythonpath=[SRC])
    assert done.returncode == 0, done.stderr
    return {"stdout": json.loads(done.stdout), "events": json.loads(marker.read_text())}


def test_ctrl_c_cancels_the_coroutine_and_the_facade_keeps_working(tmp_path: Path) -> None:
    out = run_script(
        """
        facade = intercede.sync.wrap(Backend())
        def interrupt():
            started.wait(10)
            time.sleep(0.1)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        threading.Thread(target=interrupt).start()
        report = {}
        began = time.monotonic()
        try:
            facade.get_status([HANDLE.model_copy(update={"routing": "30"})])
            report["interrupted"] = False
        except KeyboardInterrupt:
            report["interrupted"] = True
        report["seconds"] = time.monotonic() - began
        report["cancelled_before_raise"] = "cancelled" in events
        report["next_call"] = facade.get_status([HANDLE], timeout=10)["1"]
        facade.close()
        print(json.dumps(report))
        """,
        tmp_path,
    )
    assert out["stdout"]["interrupted"] is True
    assert out["stdout"]["seconds"] < 10
    assert out["stdout"]["cancelled_before_raise"] is True
    assert out["stdout"]["next_call"] == "Done"
    assert out["events"] == ["cancelled", "aclose"]


def test_interpreter_exit_closes_a_facade_nobody_closed(tmp_path: Path) -> None:
    out = run_script(
        """
        facade = intercede.sync.wrap(Backend())
        keep = facade.get_status([HANDLE])["1"]
        print(json.dumps({"status": keep}))
        """,
        tmp_path,
    )
    assert out["stdout"] == {"status": "Done"}
    assert out["events"] == ["aclose"]


LOCAL = {"kind": "batch", "transport": "local", "work_root": "/nonexistent/intercede-work"}


def test_building_from_config_inside_a_loop_is_refused_and_leaks_no_thread() -> None:
    before = {t.name for t in threading.enumerate()}

    async def main() -> None:
        with pytest.raises(intercede.RunningLoopError, match=r"^backend: "):
            intercede.sync.backend(LOCAL)

    asyncio.run(main())
    leaked = {t.name for t in threading.enumerate()} - before
    assert not [name for name in leaked if name.startswith("intercede-sync-")]


def test_building_from_config_builds_on_the_facade_loop() -> None:
    with intercede.sync.backend(LOCAL) as facade:
        assert isinstance(facade, intercede.sync.Killable)
        assert isinstance(facade, intercede.sync.LoadReporter)
        assert "over BatchBackend, open" in repr(facade)
    assert facade.closed
