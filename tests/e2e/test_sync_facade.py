"""The sync facade driving the real Slurm backend against the harness cluster.

What only a live stack can show: the whole lifecycle (submit -> status -> output -> kill ->
purge) through blocking calls, ONE SSH connection reused by every call of one facade (the
loop outlives the calls), and several threads sharing that facade and connection.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import intercede
import intercede.sync
from harness.cluster import Cluster
from intercede import (
    CopyVars,
    JobHandle,
    JobOutput,
    JobStatus,
    OpOutcome,
    OutputMember,
    OutputSpec,
    Resources,
    SubmissionSpec,
)

pytestmark = pytest.mark.e2e

PAYLOAD = """\
#!/bin/sh
echo "hello $STAMP"
echo "to stderr" >&2
echo "result of $STAMP" > result.txt
"""
SLEEPER = "#!/bin/sh\necho started\nsleep 600\n"


def executable(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def wait_final(
    facade: intercede.sync.Facade, handles: Sequence[JobHandle], limit: float = 180.0
) -> dict[str, JobStatus]:
    """Poll as an agent would: the same facade (and connection) every time."""
    deadline = time.monotonic() + limit
    while True:
        statuses = dict(facade.get_status(handles, timeout=60))
        assert set(statuses) == {h.id for h in handles}
        if all(s.is_final for s in statuses.values()) or time.monotonic() > deadline:
            return statuses
        time.sleep(1.0)


@pytest.fixture
def queue_config(slurm_cluster: Cluster, remote_workdir: str) -> Any:
    config = intercede.load_config(slurm_cluster.client_config_path)
    main = config.queues["main"].model_copy(
        update={"work_root": remote_workdir, "job_name": f"sync-{uuid.uuid4().hex[:8]}"}
    )
    return main, config.credentials()


@pytest.fixture
def async_and_facade(queue_config: Any) -> Iterator[tuple[Any, intercede.sync.Facade]]:
    config, credentials = queue_config
    async_backend = intercede.backend(config, credentials)
    with intercede.sync.wrap(async_backend) as facade:
        yield async_backend, facade


def test_lifecycle_through_the_facade_on_one_connection(
    async_and_facade: tuple[Any, intercede.sync.Facade], tmp_path: Path
) -> None:
    async_backend, facade = async_and_facade
    # The Slurm backend has every optional capability, so its facade has them all too
    # (each isinstance also narrows the type for the calls below).
    assert isinstance(facade, intercede.sync.Killable)
    assert isinstance(facade, intercede.sync.Diagnosable)
    assert isinstance(facade, intercede.sync.Purgeable)
    assert isinstance(facade, intercede.sync.OutputRetriever)
    assert isinstance(facade, intercede.sync.LoadReporter)

    stamps = [uuid.uuid4().hex for _ in range(3)]
    spec = SubmissionSpec(
        executable=executable(tmp_path, "payload.sh", PAYLOAD),
        outputs=OutputSpec(members=(OutputMember(pattern="result.txt"),)),
        resources=Resources(wall_time_s=300),
    )
    submission = facade.submit(spec, [CopyVars(environment={"STAMP": s}) for s in stamps])
    assert submission.failures == {}
    handles = [submission.handles[i] for i in range(3)]

    statuses = wait_final(facade, handles)
    assert statuses == {h.id: JobStatus.DONE for h in handles}

    dest = tmp_path / "out"
    outputs = facade.get_output(handles, dest, timeout=120)
    assert set(outputs) == {h.id for h in handles}
    for handle, stamp in zip(handles, stamps, strict=True):
        output = outputs[handle.id]
        assert isinstance(output, JobOutput), output
        assert output.stdout is not None
        assert output.stdout.read_text().strip() == f"hello {stamp}"
        assert output.stderr is not None
        assert output.stderr.read_text().strip() == "to stderr"
        (result,) = output.files
        assert result.read_text().strip() == f"result of {stamp}"
    again = facade.get_output(handles, tmp_path / "again", timeout=120)  # repeatable
    assert all(isinstance(o, JobOutput) for o in again.values())

    sleeper = SubmissionSpec(executable=executable(tmp_path, "sleeper.sh", SLEEPER))
    (running,) = facade.submit(sleeper).handles.values()
    deadline = time.monotonic() + 120
    while facade.get_status([running])[running.id] is not JobStatus.RUNNING:
        assert time.monotonic() < deadline, "the sleeper never started"
        time.sleep(1.0)
    assert facade.counts(timeout=60).running == 1
    diagnostics = facade.get_diagnostics([running], timeout=60)[running.id]
    assert not isinstance(diagnostics, OpOutcome), diagnostics
    assert diagnostics.content.strip() == b"started"
    killed = facade.kill([running], timeout=60)
    assert killed[running.id].ok, killed
    assert wait_final(facade, [running])[running.id] is JobStatus.ABORTED

    purged = facade.purge([*handles, running], timeout=60)
    assert purged == {h.id: OpOutcome(ok=True) for h in [*handles, running]}
    gone = facade.get_output(handles, tmp_path / "gone", timeout=120)
    assert all(isinstance(o, OpOutcome) and not o.ok for o in gone.values()), gone

    # Every one of those calls ran on the facade's single loop, over a single SSH connection.
    assert async_backend.transport.connections_opened == 1


def test_several_threads_share_one_facade_and_one_connection(
    async_and_facade: tuple[Any, intercede.sync.Facade], tmp_path: Path
) -> None:
    async_backend, facade = async_and_facade
    spec = SubmissionSpec(executable=executable(tmp_path, "payload.sh", PAYLOAD))
    results: dict[int, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def queue_thread(i: int) -> None:
        """One SiteDirector queue thread: submit, then poll its own pilots."""
        try:
            barrier.wait()
            submission = facade.submit(spec, [CopyVars(environment={"STAMP": f"t{i}"})] * 2)
            handles = list(submission.handles.values())
            assert isinstance(facade, intercede.sync.LoadReporter)
            results[i] = (submission, wait_final(facade, handles), facade.counts(timeout=60))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=queue_thread, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    assert sorted(results) == list(range(6))
    for submission, statuses, _counts in results.values():
        assert submission.count == 2
        assert submission.failures == {}
        assert set(statuses.values()) == {JobStatus.DONE}
    all_ids = [h.id for submission, _, _ in results.values() for h in submission.handles.values()]
    assert len(set(all_ids)) == 12
    assert async_backend.transport.connections_opened == 1


def test_registry_entry_point_timeout_and_close(queue_config: Any) -> None:
    config, credentials = queue_config
    facade = intercede.sync.backend(config, credentials)
    assert isinstance(facade, intercede.sync.Killable)
    assert isinstance(facade, intercede.sync.LoadReporter)
    assert facade.counts(timeout=60).total == 0
    with pytest.raises(intercede.OperationTimeoutError, match="did not finish within"):
        facade.counts(timeout=0.001)
    assert facade.counts(timeout=60).total == 0  # the facade survives a cancelled call
    facade.close()
    facade.close()
    with pytest.raises(intercede.BackendClosedError, match="is closed"):
        facade.counts()


def test_close_during_a_submission_keeps_its_jobs(
    queue_config: Any, async_and_facade: tuple[Any, intercede.sync.Facade], tmp_path: Path
) -> None:
    """close() while sbatch runs: the submitter gets its handles, nothing is orphaned."""
    async_backend, facade = async_and_facade
    entered = threading.Event()
    real_submit = async_backend.submit

    async def submit(spec: SubmissionSpec, copies: Any = 1) -> Any:
        entered.set()
        await asyncio.sleep(0)
        return await real_submit(spec, copies)

    async_backend.submit = submit
    spec = SubmissionSpec(executable=executable(tmp_path, "sleeper.sh", SLEEPER))
    outcome: list[Any] = []

    def submitter() -> None:
        try:
            outcome.append(facade.submit(spec, 3, timeout=120))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=submitter)
    thread.start()
    assert entered.wait(30)
    facade.close()  # lands while the submission (staging, sbatch) is under way
    thread.join(60)
    assert not thread.is_alive()
    (submission,) = outcome
    assert isinstance(submission, intercede.Submission), repr(submission)
    assert submission.failures == {}
    handles = [submission.handles[i] for i in range(3)]
    config, credentials = queue_config
    with intercede.sync.backend(config, credentials) as again:
        statuses = again.get_status(handles, timeout=60)
        assert set(statuses) == {h.id for h in handles}
        assert JobStatus.UNKNOWN not in statuses.values(), statuses
        assert isinstance(again, intercede.sync.Killable)
        killed = again.kill(handles, timeout=60)
        assert all(o.ok for o in killed.values()), killed


def test_configuration_errors_name_the_field(slurm_cluster: Cluster) -> None:
    config = intercede.load_config(slurm_cluster.client_config_path).queues["main"]
    bad = {**config.model_dump(mode="json"), "port": 0}
    with pytest.raises(intercede.ConfigurationError) as info:
        intercede.sync.backend(bad)
    assert info.value.field == "port"
