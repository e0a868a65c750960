"""The public wait helper (``intercede.wait_for_jobs``), its generated sync twin, the facade's
``interrupt()``, and the Slurm backend's ``explain``/partition state parsed from recorded
output."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import pytest

import intercede
import intercede.sync
from intercede import JobHandle, JobID, JobStatus, OperationCancelledError
from intercede._batch import slurm

DATA = Path(__file__).parent / "data" / "slurm"


def handle(job_id: str) -> JobHandle:
    return JobHandle(backend="fake", resource="here", id=job_id)


class Scripted:
    """A structural ``JobBackend`` whose jobs walk through scripted states, one per poll."""

    def __init__(self, plans: Mapping[str, Sequence[JobStatus]]) -> None:
        self.plans = {k: list(v) for k, v in plans.items()}
        self.asked: list[list[str]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def submit(self, spec: object, copies: object = 1) -> intercede.Submission:
        raise NotImplementedError

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        self.asked.append([h.id for h in handles])
        answer = {}
        for h in handles:
            plan = self.plans[h.id]
            answer[h.id] = plan.pop(0) if len(plan) > 1 else plan[0]
        return answer


W, R, D, F = JobStatus.WAITING, JobStatus.RUNNING, JobStatus.DONE, JobStatus.FAILED


def test_waits_until_every_job_is_final_polling_only_the_pending_ones() -> None:
    ce = Scripted({"a": [W, D], "b": [W, R, R, F]})
    result = asyncio.run(
        intercede.wait_for_jobs(ce, [handle("a"), handle("b")], deadline_s=10, first_s=0.01)
    )
    assert result == {"a": D, "b": F}
    assert intercede.reached(result)
    assert ce.asked == [["a", "b"], ["a", "b"], ["b"], ["b"]]


def test_a_set_of_states_and_the_deadline_return_the_full_map() -> None:
    ce = Scripted({"a": [W, R], "b": [W]})
    started = time.monotonic()
    result = asyncio.run(
        intercede.wait_for_jobs(
            ce, [handle("a"), handle("b")], deadline_s=0.3, until={R}, first_s=0.05, cap_s=0.1
        )
    )
    assert time.monotonic() - started < 1.0
    assert result == {"a": R, "b": W}
    assert not intercede.reached(result, {R})


def test_backoff_doubles_up_to_the_cap() -> None:
    sleeps: list[float] = []
    ce = Scripted({"a": [W] * 6 + [D]})

    async def main() -> None:
        real = asyncio.sleep

        async def spy(seconds: float) -> None:
            sleeps.append(round(seconds, 3))
            await real(0)

        import anyio

        original = anyio.sleep
        anyio.sleep = spy  # type: ignore[assignment]
        try:
            await intercede.wait_for_jobs(ce, [handle("a")], deadline_s=60, first_s=0.5, cap_s=2)
        finally:
            anyio.sleep = original

    asyncio.run(main())
    assert sleeps == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"deadline_s": 0}, "deadline_s"), ({"first_s": 9}, "first_s")]
)
def test_bad_arguments_name_the_parameter(kwargs: dict[str, float], field: str) -> None:
    args: dict[str, float] = {"deadline_s": 1.0, **kwargs}
    with pytest.raises(ValueError, match=field):
        asyncio.run(intercede.wait_for_jobs(Scripted({"a": [D]}), [handle("a")], **args))


def test_sync_twin_runs_on_the_facade_and_calls_back() -> None:
    seen: list[dict[str, JobStatus]] = []
    with intercede.sync.wrap(Scripted({"a": [W, R, D]})) as ce:
        result = intercede.sync.wait_for_jobs(
            ce, [handle("a")], deadline_s=10, first_s=0.01, on_poll=lambda m: seen.append(dict(m))
        )
    assert result == {"a": D}
    assert [s["a"] for s in seen] == [W, R, D]


def test_sync_twin_refuses_what_is_not_a_facade() -> None:
    with pytest.raises(TypeError, match="takes a facade"):
        intercede.sync.wait_for_jobs(object(), [handle("a")], deadline_s=1)  # type: ignore[arg-type]


def test_interrupt_cancels_a_blocked_wait_and_the_facade_stays_usable() -> None:
    ce = intercede.sync.wrap(Scripted({"a": [W]}))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            intercede.sync.wait_for_jobs(ce, [handle("a")], deadline_s=60, first_s=0.05)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    ce.interrupt()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2.0
    assert len(errors) == 1
    assert isinstance(errors[0], OperationCancelledError)
    assert ce.get_status([handle("a")]) == {"a": W}  # later calls run normally
    ce.close()


def test_explain_reads_the_pending_reason_and_the_partition_state() -> None:
    text = (DATA / "bookworm" / "explain_partition_down.txt").read_text()
    running = next(line.split("|")[0] for line in text.splitlines() if "|RUNNING|" in line)
    pending = [line.split("|")[0] for line in text.splitlines() if "PartitionDown" in line]
    found = slurm.parse_explain(text, [*pending, running, "99999_0"])
    assert "99999_0" not in found
    for job_id in pending:
        why = found[job_id]
        assert (why.status, why.reason, why.queue, why.queue_state) == (
            W,
            "PartitionDown",
            "second",
            "DOWN",
        )
        assert why.blocked
        assert str(why) == "Waiting (PartitionDown) in second, which is DOWN"
    assert not found[running].blocked
    assert found[running].reason is None


def test_counts_carry_the_partition_state_or_missing() -> None:
    assert slurm.parse_queue_state("RUNNING\n@@partition\nsecond|DRAIN\n") == "DRAIN"
    assert slurm.parse_queue_state("@@partition\n") == slurm.MISSING_PARTITION
    assert slurm.parse_queue_state("RUNNING\nPENDING\n") is None
    assert slurm.parse_counts("RUNNING\nPENDING\n@@partition\nsecond|UP\n") == (1, 1)
    assert slurm.parse_queue_state("RUNNING\n") is None  # no fixed partition: nothing asked
