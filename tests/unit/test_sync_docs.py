"""The agent-style example in docs/facade.md runs and keeps the pilot store in step."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import intercede.sync
from intercede import CopyVars, JobHandle, JobID, JobStatus, LoadCounts, Submission, SubmissionSpec
from tests.unit.fakes import FakeBackend

DOC = Path(__file__).resolve().parents[2] / "docs" / "facade.md"


def example_namespace() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if "def cycle(" in b]
    namespace: dict[str, Any] = {"__name__": "facade_example"}
    exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


class Queue(FakeBackend):
    """A backend that remembers what it was given and says each job is running."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[JobID, JobHandle] = {}

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        count = copies if isinstance(copies, int) else len(copies)
        handles = {}
        for index in range(count):
            job_id = str(4242 + len(self.jobs))
            handle = JobHandle(backend="slurm+ssh", resource="ce:22", id=job_id, routing="w/1")
            self.jobs[job_id] = handles[index] = handle
        return Submission(handles=handles)

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        return {
            h.id: JobStatus.RUNNING if h.id in self.jobs else JobStatus.UNKNOWN for h in handles
        }

    async def counts(self) -> LoadCounts:
        return LoadCounts(running=0, waiting=len(self.jobs))


class Store:
    """DIRAC's PilotAgentsDB in miniature: one row per stored pilot reference."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Any]] = {}
        self.failures: list[str] = []

    def add_pilot(self, ref: str, stamp: str, status: JobStatus) -> None:
        self.rows[ref] = [stamp, status]

    def log_failure(self, stamp: str, reason: str) -> None:
        self.failures.append(stamp)

    def transient_refs(self) -> list[str]:
        return [ref for ref, (_, status) in self.rows.items() if status != JobStatus.DONE]

    def update(self, ref: str, status: JobStatus) -> None:
        self.rows[ref][1] = status  # a reference the store never saw is a bug in the caller


def test_the_agent_example_updates_the_pilots_it_stored() -> None:
    example = example_namespace()
    store = Store()
    stamps = ["stamp-a", "stamp-b", "stamp-c"]
    with intercede.sync.wrap(Queue()) as ce:
        example["cycle"](ce, "pilot.sh", stamps, store)
        assert sorted(stamp for stamp, _ in store.rows.values()) == stamps
        statuses = {status for _, status in store.rows.values()}
        assert statuses == {JobStatus.RUNNING}  # the first cycle's monitoring matched them all
        assert all(JobHandle.parse(ref).id.startswith("42") for ref in store.rows)
