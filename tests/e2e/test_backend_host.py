"""``scheduler = "host"`` over SSH against the cluster's login node: no batch system, the copies
are processes on the login node itself (DIRAC's SSH CE with ``BatchSystem = Host``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

import intercede
from intercede import (
    CopyVars,
    Explanation,
    JobHandle,
    JobStatus,
    OpOutcome,
    OutputSpec,
    SSHBatchConfig,
    SubmissionSpec,
)
from intercede._batch.backend import BatchBackend
from tests.e2e.jobs import all_final as _all_final
from tests.e2e.jobs import build as _build
from tests.e2e.jobs import script as _script
from tests.e2e.jobs import wait as _wait

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def config(slurm_cluster: Any, remote_workdir: str) -> SSHBatchConfig:
    """The harness's ``host`` queue, in a work root of this test's own (its own slots)."""
    loaded = intercede.load_config(slurm_cluster.client_config_path)
    base = loaded.queues["host"]
    assert isinstance(base, SSHBatchConfig)
    assert (base.scheduler, base.slots) == ("host", 2)
    return base.model_copy(update={"work_root": f"{remote_workdir}/jobs"})


def _running(n: int) -> Callable[[Mapping[str, JobStatus]], bool]:
    return lambda s: list(s.values()).count(JobStatus.RUNNING) == n


def _on_login(cluster: Any, command: str) -> str:
    code, out = cluster.exec("login", ["sh", "-c", command], user=cluster.user)
    assert code == 0, out
    return str(out)


GATED = (
    'while [ ! -e "$GATE" ]; do sleep 0.2; done\n'
    'echo "$STAMP $(cat "$INTERCEDE_SECRET_TOKEN") $(hostname)"\n'
    "echo made > result.txt\n"
)


async def test_copies_run_detached_on_the_login_node_within_their_slots(
    slurm_cluster: Any,
    config: SSHBatchConfig,
    credentials: intercede.CredentialProvider,
    remote_workdir: str,
    tmp_path: Path,
) -> None:
    gate = f"{remote_workdir}/gate"
    spec = SubmissionSpec(executable=_script(tmp_path, GATED), outputs=OutputSpec.everything())
    copies = [
        CopyVars(environment={"GATE": gate, "STAMP": f"s{i}"}, secrets={"TOKEN": f"t{i}".encode()})
        for i in range(4)
    ]
    async with _build(config, credentials) as first:
        trips = first.transport.round_trips
        sub = await first.submit(spec, copies)
        assert first.transport.round_trips - trips == 1
        handles = [sub.handles[i] for i in range(4)]
        status = await _wait(first, handles, _running(2))
        assert sorted(s.value for s in status.values()) == ["Running"] * 2 + ["Waiting"] * 2
        counts = await first.counts()
        assert (counts.running, counts.waiting) == (2, 2)
        waiting = next(h for h in handles if status[h.id] is JobStatus.WAITING)
        why = (await first.explain([waiting]))[waiting.id]
        assert isinstance(why, Explanation)
        assert why.reason == "waiting for a free slot on the host"
    # The SSH session that started them is closed; a new one finds them as they were.
    async with _build(config, credentials) as second:
        status = await second.get_status(handles)
        assert sorted(s.value for s in status.values()) == ["Running"] * 2 + ["Waiting"] * 2
        for _ in range(5):  # the bound holds while they wait
            assert list((await second.get_status(handles)).values()).count(JobStatus.RUNNING) <= 2
        _on_login(slurm_cluster, f"touch {gate}")
        status = await _wait(second, handles, _all_final)
        assert status == dict.fromkeys((h.id for h in handles), JobStatus.DONE)
        login = _on_login(slurm_cluster, "hostname").strip()
        outputs = await second.get_output(handles, tmp_path / "out")
        for i, handle in enumerate(handles):
            got = outputs[handle.id]
            assert not isinstance(got, OpOutcome), got
            assert got.stdout is not None
            assert got.stdout.read_text() == f"s{i} t{i} {login}\n"
            assert sorted(p.name for p in got.files) == ["result.txt"]
        log = (await second.get_diagnostics(handles[:1], ":log"))[handles[0].id]
        assert not isinstance(log, OpOutcome), log
        assert f"job {handles[0].id}, started on {login}" in log.content.decode()
        purged = await second.purge(handles)
        assert purged == dict.fromkeys((h.id for h in handles), OpOutcome(ok=True))
        again = await second.get_output(handles[:1], tmp_path / "again")
        assert isinstance(again[handles[0].id], OpOutcome)
        assert await second.get_status(handles[:1]) == {handles[0].id: JobStatus.UNKNOWN}


async def test_kill_running_and_waiting_copies(
    backend: BatchBackend, config: SSHBatchConfig, remote_workdir: str, tmp_path: Path
) -> None:
    spec = SubmissionSpec(executable=_script(tmp_path, "echo started\nexec sleep 300\n"))
    sub = await backend.submit(spec, 3)
    handles = [sub.handles[i] for i in range(3)]
    status = await _wait(backend, handles, _running(2))
    running = [h for h in handles if status[h.id] is JobStatus.RUNNING]
    deadline = time.monotonic() + 30
    while True:
        printed = await backend.get_diagnostics(running)
        if all("started" in _stdout(printed, h) for h in running):
            break
        assert time.monotonic() < deadline, "the running copies never printed"
        await anyio.sleep(0.3)
    ghost = handles[0].model_copy(update={"id": f"{'ab' * 16}_0", "routing": f"{'ab' * 16}/0"})
    trips = backend.transport.round_trips
    killed = await backend.kill([*handles, ghost])
    assert backend.transport.round_trips - trips == 1
    assert [killed[h.id] for h in handles] == [OpOutcome(ok=True)] * 3
    assert not killed[ghost.id].ok
    assert "unknown" in (killed[ghost.id].reason or "")
    status = await backend.get_status(handles)
    assert status == dict.fromkeys((h.id for h in handles), JobStatus.ABORTED)
    await anyio.sleep(1.5)  # a dequeued copy never starts, though slots are free now
    assert await backend.get_status(handles) == status
    printed = await backend.get_diagnostics(handles)
    never = [h for h in handles if "started" not in _stdout(printed, h)]
    assert never == [h for h in handles if h not in running]
    assert (await backend.kill(handles[:1]))[handles[0].id] == OpOutcome(ok=True)  # idempotent
    counts = await backend.counts()
    assert (counts.running, counts.waiting) == (0, 0)


def _stdout(diagnostics: Mapping[str, object], handle: JobHandle) -> str:
    got = diagnostics[handle.id]
    content = getattr(got, "content", b"")
    return content.decode() if isinstance(content, bytes) else ""


async def test_failed_and_lost_copies_are_failed(
    slurm_cluster: Any, backend: BatchBackend, config: SSHBatchConfig, tmp_path: Path
) -> None:
    spec = SubmissionSpec(
        executable=_script(tmp_path, '[ "$INTERCEDE_COPY_INDEX" = 0 ] && exit 3\nexec sleep 300\n')
    )
    sub = await backend.submit(spec, 2)
    failed, lost = sub.handles[0], sub.handles[1]
    await _wait(backend, [failed, lost], lambda s: s[lost.id] is JobStatus.RUNNING)
    batch, index = lost.routing.split("/")
    # the job dies without writing its exit code (an OOM kill, an admin's kill -9)
    _on_login(slurm_cluster, f'kill -s KILL -- "-$(cat {config.work_root}/{batch}/{index}/pid)"')
    status = await _wait(backend, [failed, lost], _all_final)
    assert status == {failed.id: JobStatus.FAILED, lost.id: JobStatus.FAILED}
    explained = await backend.explain([failed, lost])
    assert getattr(explained[failed.id], "reason", None) == "exit code 3"
    assert getattr(explained[lost.id], "reason", None) == (
        "its process ended without writing an exit code"
    )
    killed = await backend.kill([failed, lost])
    assert killed[failed.id] == OpOutcome(ok=False, reason="already finished (Failed)")
    assert not killed[lost.id].ok
