"""The sync facade over in-memory fake backends: capabilities, results, errors, lifecycle."""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import intercede
import intercede.sync
from intercede import (
    CopyVars,
    Diagnostics,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    LoadCounts,
    OpOutcome,
    Submission,
    SubmissionSpec,
)
from intercede.sync import _runtime
from tests.unit.fakes import Instrumented
from tests.unit.fakes import fake_handles as handles

SPEC = SubmissionSpec(executable="pilot.sh")
OPTIONAL = ("get_output", "kill", "purge", "get_diagnostics", "counts")
PAIRS = [
    (intercede.Submitter, intercede.sync.Submitter),
    (intercede.StatusReporter, intercede.sync.StatusReporter),
    (intercede.JobBackend, intercede.sync.JobBackend),
    (intercede.OutputRetriever, intercede.sync.OutputRetriever),
    (intercede.Killable, intercede.sync.Killable),
    (intercede.Purgeable, intercede.sync.Purgeable),
    (intercede.Diagnosable, intercede.sync.Diagnosable),
    (intercede.LoadReporter, intercede.sync.LoadReporter),
]


class Minimal(Instrumented):
    """A JobBackend and nothing more; records where and how it was driven."""

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        await self._op("submit")
        count = copies if isinstance(copies, int) else len(copies)
        return Submission(
            handles={i: h for i, h in enumerate(handles(count)) if i % 3 != 2},
            failures={i: "refused" for i in range(count) if i % 3 == 2},
        )

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        await self._op("get_status")
        return {h.id: list(JobStatus)[i % 7] for i, h in enumerate(handles)}


class Full(Minimal):
    """Every optional capability too."""

    async def get_output(
        self, handles: Sequence[JobHandle], dest: Path
    ) -> Mapping[JobID, JobOutput | OpOutcome]:
        await self._op("get_output")
        return {
            h.id: JobOutput(root=dest / h.id, stdout=dest / f"{h.id}.out", stderr=None)
            if i % 2
            else OpOutcome(ok=False, reason="not finished")
            for i, h in enumerate(handles)
        }

    async def kill(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        await self._op("kill")
        return {h.id: OpOutcome(ok=h.id != "job1", reason="gone") for h in handles}

    async def purge(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        await self._op("purge")
        return {h.id: OpOutcome(ok=True) for h in handles}

    async def get_diagnostics(
        self, handles: Sequence[JobHandle], name: str | None = None
    ) -> Mapping[JobID, Diagnostics | OpOutcome]:
        await self._op("get_diagnostics")
        return {h.id: Diagnostics(name=name or "stdout", content=b"x") for h in handles}

    async def counts(self) -> LoadCounts:
        await self._op("counts")
        return LoadCounts(running=3, waiting=2)


# Every way to call each operation, async and sync, with the same arguments.
CALLS: dict[str, Callable[[Any], Any]] = {
    "submit": lambda b: b.submit(SPEC, [CopyVars(environment={"STAMP": str(i)}) for i in range(5)]),
    "get_status": lambda b: b.get_status(handles(9)),
    "get_output": lambda b: b.get_output(handles(4), Path("out")),
    "kill": lambda b: b.kill(handles(3)),
    "purge": lambda b: b.purge(handles(2)),
    "get_diagnostics": lambda b: b.get_diagnostics(handles(2), "log.txt"),
    "counts": lambda b: b.counts(),
}


def run_async(call: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        return await call()

    return asyncio.run(main())


def sync_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("intercede-sync-")]


@pytest.fixture
def full() -> Full:
    return Full()


@pytest.fixture
def facade(full: Full) -> Any:
    with intercede.sync.wrap(full) as f:
        yield f


@pytest.mark.parametrize(
    "present",
    [combo for n in range(len(OPTIONAL) + 1) for combo in itertools.combinations(OPTIONAL, n)],
    ids=lambda combo: "+".join(combo) or "minimal",
)
def test_facade_has_exactly_the_backends_capabilities(present: tuple[str, ...]) -> None:
    cls = type("Fake", (Minimal,), {name: getattr(Full, name) for name in present})
    backend = cls()
    with intercede.sync.wrap(backend) as facade:
        for async_protocol, sync_protocol in PAIRS:
            assert isinstance(facade, sync_protocol) == isinstance(backend, async_protocol), (
                sync_protocol.__name__
            )
        for name in OPTIONAL:
            assert hasattr(facade, name) == (name in present)
        assert isinstance(facade, intercede.sync.Facade)
        assert isinstance(facade, intercede.sync.Closable)
        leaked: object = facade
        assert not isinstance(leaked, intercede.JobBackend)  # no async methods leak through


def test_facade_classes_are_shared_per_capability_combination() -> None:
    with intercede.sync.wrap(Full()) as a, intercede.sync.wrap(Full()) as b:
        assert type(a) is type(b)
        assert type(a).__name__ == (
            "Facade[OutputRetriever, Killable, Purgeable, Diagnosable, LoadReporter]"
        )
    with intercede.sync.wrap(Minimal()) as c:
        assert type(c) is intercede.sync.Facade


@pytest.mark.parametrize("operation", list(CALLS))
def test_results_are_the_async_results(operation: str) -> None:
    expected = run_async(lambda: CALLS[operation](Full()))
    with intercede.sync.wrap(Full()) as facade:
        assert CALLS[operation](facade) == expected
    if isinstance(expected, Mapping):
        assert len(expected) > 1  # the comparison covers several per-item answers


def test_bulk_submission_keeps_every_copy(facade: Any) -> None:
    submission = facade.submit(SPEC, 7)
    assert submission.count == 7
    assert set(submission.failures) == {2, 5}


@pytest.mark.parametrize(
    "error",
    [
        intercede.SpecificationRejectedError("no native container field", field="container_image"),
        intercede.ResourceUnavailableError("ssh: connection refused"),
        intercede.AuthenticationError("no credential of kind ssh_private_key for ce"),
        ValueError("plain bug in a backend"),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("operation", list(CALLS))
def test_exceptions_are_the_async_exceptions(operation: str, error: Exception) -> None:
    async_backend = Full()
    async_backend.failure = error
    with pytest.raises(type(error)) as from_async:
        run_async(lambda: CALLS[operation](async_backend))
    sync_backend = Full()
    sync_backend.failure = error
    with intercede.sync.wrap(sync_backend) as facade, pytest.raises(type(error)) as from_sync:
        CALLS[operation](facade)
    assert type(from_sync.value) is type(from_async.value)
    assert str(from_sync.value) == str(from_async.value)
    assert getattr(from_sync.value, "field", None) == getattr(error, "field", None)


def test_timeout_cancels_the_coroutine_on_the_loop() -> None:
    backend = Full(delay=5.0)
    with intercede.sync.wrap(backend) as facade:
        assert isinstance(facade, intercede.sync.Killable)
        assert isinstance(facade, intercede.sync.LoadReporter)
        started = time.monotonic()
        with pytest.raises(
            intercede.OperationTimeoutError, match=r"kill did not finish within 0\.2 s"
        ):
            facade.kill(handles(2), timeout=0.2)
        assert time.monotonic() - started < 2.0
        assert backend.cancelled == ["kill"]  # unwound before the caller saw the error
        assert backend.in_flight == 0
        backend.delay = 0.0
        assert facade.counts(timeout=5) == LoadCounts(running=3, waiting=2)


def test_a_backends_own_timeout_is_not_rewritten() -> None:
    backend = Full()
    backend.failure = intercede.OperationTimeoutError("sbatch took longer than 30 s")
    with intercede.sync.wrap(backend) as facade:
        with pytest.raises(
            intercede.OperationTimeoutError, match=r"^sbatch took longer than 30 s$"
        ):
            facade.get_status(handles(1), timeout=10)
        backend.failure = TimeoutError("socket timeout")
        with pytest.raises(TimeoutError, match=r"^socket timeout$") as info:
            facade.get_status(handles(1), timeout=10)
        assert type(info.value) is TimeoutError


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_a_bad_timeout_is_refused_naming_it(facade: Any, bad: float) -> None:
    with pytest.raises(ValueError, match=r"^timeout: must be a positive number"):
        facade.counts(timeout=bad)


def test_calls_from_many_threads_share_one_loop_and_run_concurrently() -> None:
    backend = Full(delay=0.2)
    with intercede.sync.wrap(backend) as facade:
        results: list[Any] = [None] * 16
        barrier = threading.Barrier(16)

        def worker(i: int) -> None:
            barrier.wait()
            results[i] = facade.get_status(handles(i + 1))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    assert backend.max_in_flight == 16
    assert elapsed < 0.2 * 16 / 4, f"16 x 0.2 s calls took {elapsed:.2f} s: not concurrent"
    assert [len(r) for r in results] == list(range(1, 17))
    assert len(backend.loops) == 1
    assert len(backend.threads) == 1
    assert backend.threads != {threading.current_thread().name}


def test_the_loop_outlives_calls_so_connections_can_be_reused(facade: Any, full: Full) -> None:
    for _ in range(5):
        facade.counts()
    facade.submit(SPEC, 2)
    assert len(full.loops) == 1


def test_close_closes_the_backend_on_its_loop_once_and_stops_the_thread(full: Full) -> None:
    before = set(sync_threads())
    facade = intercede.sync.wrap(full)
    assert isinstance(facade, intercede.sync.LoadReporter)
    facade.counts()
    (loop_thread,) = set(sync_threads()) - before
    facade.close()
    facade.close()
    assert full.acloses == 1
    assert full.aclose_threads == [loop_thread]
    assert loop_thread not in sync_threads()
    assert facade.closed


@pytest.mark.parametrize("operation", list(CALLS))
def test_use_after_close_raises_backend_closed(full: Full, operation: str) -> None:
    facade = intercede.sync.wrap(full)
    facade.close()
    with pytest.raises(
        intercede.BackendClosedError, match=f"^{operation}: the sync facade over Full is closed"
    ):
        CALLS[operation](facade)
    assert full.cancelled == []


def test_context_manager_closes(full: Full) -> None:
    with intercede.sync.wrap(full) as facade:
        assert repr(facade).endswith("open>")
    assert facade.closed
    assert full.acloses == 1


def test_close_answers_calls_still_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runtime, "CLOSE_GRACE_S", 0.2)  # the call outlives the grace
    backend = Full(delay=30.0)
    facade = intercede.sync.wrap(backend)
    outcome: list[BaseException] = []

    def caller() -> None:
        try:
            facade.get_status(handles(1))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    while backend.in_flight == 0:
        time.sleep(0.01)
    facade.close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], intercede.BackendClosedError)
    assert "get_status" in str(outcome[0])
    assert backend.cancelled == ["get_status"]


def test_a_dropped_facade_closes_its_backend_and_thread() -> None:
    backend = Full()
    before = set(sync_threads())
    facade = intercede.sync.wrap(backend)
    assert isinstance(facade, intercede.sync.LoadReporter)
    facade.counts()
    del facade
    gc.collect()
    assert backend.acloses == 1
    assert set(sync_threads()) <= before


def test_wrap_refuses_what_is_not_an_async_backend() -> None:
    class NoClose:
        async def submit(self, spec: SubmissionSpec, copies: int = 1) -> Submission:
            raise NotImplementedError

        async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
            raise NotImplementedError

    with pytest.raises(TypeError, match=r"NoClose lacks __aenter__, __aexit__, aclose$"):
        intercede.sync.wrap(NoClose())  # type: ignore[arg-type]
    with (
        intercede.sync.wrap(Minimal()) as facade,
        pytest.raises(TypeError, match="already a sync facade"),
    ):
        intercede.sync.wrap(facade)  # type: ignore[arg-type]


def test_backend_reports_config_errors_like_the_registry() -> None:
    config = {"kind": "batch", "transport": "ssh", "scheduler": "slurm", "port": "x"}
    with pytest.raises(intercede.ConfigurationError) as from_async:
        intercede.backend(config)
    before = set(sync_threads())
    with pytest.raises(intercede.ConfigurationError) as from_sync:
        intercede.sync.backend(config)
    assert str(from_sync.value) == str(from_async.value)
    assert from_sync.value.field == from_async.value.field
    assert set(sync_threads()) <= before  # the loop started for it was stopped


def test_repr_names_the_backend_and_state(full: Full) -> None:
    facade = intercede.sync.wrap(full)
    assert repr(facade).endswith("over Full, open>")
    facade.close()
    assert repr(facade).endswith("over Full, closed>")


def test_a_failing_aclose_is_reported_and_the_thread_still_stops() -> None:
    class BadClose(Full):
        async def aclose(self) -> None:
            await super().aclose()
            raise intercede.ResourceUnavailableError("connection reset while closing")

    backend = BadClose()
    before = set(sync_threads())
    facade = intercede.sync.wrap(backend)
    with pytest.raises(intercede.ResourceUnavailableError, match="reset while closing"):
        facade.close()
    assert set(sync_threads()) <= before
    facade.close()  # idempotent: the failure is not raised twice
    assert backend.acloses == 1
    with pytest.raises(intercede.BackendClosedError):
        facade.get_status(handles(1))
