"""The whole backend with ``scheduler = "host"`` over the local transport, on this machine:
the public API from submit to purge, with the host's real scripts, processes and files."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

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
    Resources,
    SpecificationRejectedError,
    SubmissionSpec,
)
from intercede._batch.backend import BatchBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    return tmp_path / "gate"


@pytest.fixture
async def backend(root: Path) -> AsyncIterator[BatchBackend]:
    config = {
        "kind": "batch",
        "transport": "local",
        "scheduler": "host",
        "slots": 2,
        "work_root": str(root),
        "command_timeout_s": 30.0,
    }
    async with intercede.backend(config) as opened:
        assert isinstance(opened, BatchBackend)
        yield opened
    for pid in root.glob("*/*/pid"):  # nothing of a failed test outlives it
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid.read_text()), signal.SIGKILL)


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / f"payload-{time.monotonic_ns()}.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


async def wait(
    backend: BatchBackend,
    handles: Sequence[JobHandle],
    done: Callable[[Mapping[str, JobStatus]], bool],
    limit: float = 30,
) -> Mapping[str, JobStatus]:
    deadline = time.monotonic() + limit
    while True:
        status = await backend.get_status(handles)
        if done(status) or time.monotonic() > deadline:
            return status
        await anyio.sleep(0.1)


GATED = 'while [ ! -e "$GATE" ]; do sleep 0.1; done\necho "$STAMP"; cat "$INTERCEDE_SECRET_T"\n'


async def test_submit_slots_status_output_purge(
    backend: BatchBackend, tmp_path: Path, gate: Path
) -> None:
    spec = SubmissionSpec(executable=script(tmp_path, GATED), outputs=OutputSpec.everything())
    copies = [
        CopyVars(environment={"GATE": str(gate), "STAMP": f"s{i}"}, secrets={"T": f"t{i}".encode()})
        for i in range(3)
    ]
    trips = backend.transport.round_trips
    sub = await backend.submit(spec, copies)
    assert backend.transport.round_trips - trips == 1
    handles = [sub.handles[i] for i in range(3)]
    batch = handles[0].routing.split("/")[0]
    assert [h.id for h in handles] == [f"{batch}_{i}" for i in range(3)]
    assert str(handles[0]).startswith("host+local://")

    status = await wait(backend, handles, lambda s: list(s.values()).count(JobStatus.RUNNING) == 2)
    assert sorted(s.value for s in status.values()) == ["Running", "Running", "Waiting"]
    counts = await backend.counts()
    assert (counts.running, counts.waiting, counts.queue_state) == (2, 1, None)
    waiting = next(h for h in handles if status[h.id] is JobStatus.WAITING)
    explained = (await backend.explain([waiting]))[waiting.id]
    assert isinstance(explained, Explanation)
    assert (explained.status, explained.reason) == (
        JobStatus.WAITING,
        "waiting for a free slot on the host",
    )
    assert not (await backend.purge([waiting]))[waiting.id].ok  # live: left alone

    gate.touch()
    status = await wait(backend, handles, lambda s: all(v.is_final for v in s.values()))
    assert status == dict.fromkeys((h.id for h in handles), JobStatus.DONE)
    outputs = await backend.get_output(handles, tmp_path / "out")
    for i, handle in enumerate(handles):
        got = outputs[handle.id]
        assert not isinstance(got, OpOutcome), got
        assert got.stdout is not None
        assert got.stdout.read_text() == f"s{i}\nt{i}"
    log = (await backend.get_diagnostics(handles[:1], ":log"))[handles[0].id]
    assert not isinstance(log, OpOutcome)
    assert f"job {handles[0].id}, started on" in log.content.decode()
    assert "intercede: exit code 0 at" in log.content.decode()

    # one round trip per bulk operation, whatever N (get_output and purge: two, as for Slurm)
    for call, trips in (
        (backend.get_status(handles), 1),
        (backend.counts(), 1),
        (backend.explain(handles), 1),
        (backend.get_diagnostics(handles), 1),
        (backend.get_output(handles, tmp_path / "again"), 2),
    ):
        before = backend.transport.round_trips
        await call
        assert backend.transport.round_trips - before == trips
    purged = await backend.purge(handles)
    assert all(o.ok for o in purged.values()), purged
    assert not (Path(backend._config.work_root) / batch).exists()
    assert await backend.get_status(handles) == dict.fromkeys(
        (h.id for h in handles), JobStatus.UNKNOWN
    )


async def test_a_purged_waiting_copy_never_starts(
    backend: BatchBackend, tmp_path: Path, gate: Path, root: Path
) -> None:
    spec = SubmissionSpec(executable=script(tmp_path, GATED))
    sub = await backend.submit(spec, [CopyVars(environment={"GATE": str(gate)})] * 3)
    handles = [sub.handles[i] for i in range(3)]
    status = await wait(backend, handles, lambda s: list(s.values()).count(JobStatus.RUNNING) == 2)
    waiting = next(h for h in handles if status[h.id] is JobStatus.WAITING)
    assert (await backend.kill([waiting]))[waiting.id].ok
    assert (await backend.purge([waiting]))[waiting.id] == OpOutcome(ok=True)
    gate.touch()
    await wait(
        backend, [h for h in handles if h != waiting], lambda s: all(v.is_final for v in s.values())
    )
    await anyio.sleep(1.5)  # the launcher went past it
    assert not (root / waiting.routing).exists()
    assert (await backend.get_status([waiting]))[waiting.id] is JobStatus.UNKNOWN


async def test_kill_running_and_waiting(backend: BatchBackend, tmp_path: Path, gate: Path) -> None:
    spec = SubmissionSpec(executable=script(tmp_path, GATED))
    sub = await backend.submit(spec, [CopyVars(environment={"GATE": str(gate)})] * 3)
    handles = [sub.handles[i] for i in range(3)]
    await wait(backend, handles, lambda s: list(s.values()).count(JobStatus.RUNNING) == 2)
    ghost = handles[0].model_copy(update={"id": f"{'ab' * 16}_0", "routing": f"{'ab' * 16}/0"})
    trips = backend.transport.round_trips
    killed = await backend.kill([*handles, ghost])
    assert backend.transport.round_trips - trips == 1
    assert {h.id: killed[h.id] for h in handles} == dict.fromkeys(
        (h.id for h in handles), OpOutcome(ok=True)
    )
    assert not killed[ghost.id].ok
    assert "unknown" in (killed[ghost.id].reason or "")
    gate.touch()  # a dequeued copy must not start even now
    await anyio.sleep(1.5)
    status = await backend.get_status(handles)
    assert status == dict.fromkeys((h.id for h in handles), JobStatus.ABORTED)
    assert (await backend.kill(handles[:1]))[handles[0].id] == OpOutcome(ok=True)  # idempotent
    counts = await backend.counts()
    assert (counts.running, counts.waiting) == (0, 0)


async def test_failed_lost_and_disagreeing_handles(
    backend: BatchBackend, tmp_path: Path, root: Path
) -> None:
    spec = SubmissionSpec(
        executable=script(tmp_path, '[ "$INTERCEDE_COPY_INDEX" = 0 ] && exit 3\nexec sleep 60\n')
    )
    sub = await backend.submit(spec, 2)
    first, second = sub.handles[0], sub.handles[1]
    await wait(backend, [first, second], lambda s: s[second.id] is JobStatus.RUNNING)
    batch = first.routing.split("/")[0]
    os.killpg(int((root / batch / "1" / "pid").read_text()), signal.SIGKILL)  # no exit code
    status = await wait(backend, [first, second], lambda s: all(v.is_final for v in s.values()))
    assert status == {first.id: JobStatus.FAILED, second.id: JobStatus.FAILED}
    explained = await backend.explain([first, second])
    assert [getattr(explained[h.id], "reason", None) for h in (first, second)] == [
        "exit code 3",
        "its process ended without writing an exit code",
    ]
    killed = await backend.kill([first, second])
    assert killed[first.id] == OpOutcome(ok=False, reason="already finished (Failed)")
    assert not killed[second.id].ok
    forged = first.model_copy(update={"routing": f"{batch}/1"})
    outcome = (await backend.purge([forged]))[forged.id]
    assert not outcome.ok
    assert "disagree" in (outcome.reason or "")
    assert (root / batch / "1").is_dir()


async def test_wall_time_is_enforced(backend: BatchBackend, tmp_path: Path) -> None:
    spec = SubmissionSpec(
        executable=script(tmp_path, "exec sleep 60\n"), resources=Resources(wall_time_s=1)
    )
    handle = (await backend.submit(spec)).handles[0]
    status = await wait(backend, [handle], lambda s: s[handle.id].is_final, limit=20)
    assert status[handle.id] is JobStatus.FAILED


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        (Resources(nodes="2"), "resources.nodes"),
        (Resources(gpus=1), "resources.gpus"),
        (Resources(whole_node=True), "resources.whole_node"),
        (Resources(queue="main"), "resources.queue"),
    ],
)
async def test_what_one_host_cannot_give_is_refused(
    backend: BatchBackend, tmp_path: Path, root: Path, resources: Resources, field: str
) -> None:
    spec = SubmissionSpec(executable=script(tmp_path, "true\n"), resources=resources)
    trips = backend.transport.round_trips
    with pytest.raises(SpecificationRejectedError) as info:
        await backend.submit(spec)
    assert info.value.field == field
    assert backend.transport.round_trips == trips
    assert not root.exists()


async def test_cleanup_of_a_batch_refuses_live_copies(
    backend: BatchBackend, tmp_path: Path, gate: Path
) -> None:
    spec = SubmissionSpec(executable=script(tmp_path, GATED))
    sub = await backend.submit(spec, [CopyVars(environment={"GATE": str(gate)})] * 3)
    handles = [sub.handles[i] for i in range(3)]
    batch = handles[0].routing.split("/")[0]
    await wait(backend, handles, lambda s: list(s.values()).count(JobStatus.RUNNING) == 2)
    refused = await backend.cleanup_batch(batch)
    assert not refused.ok
    assert "3 job(s)" in (refused.reason or "")
    gate.touch()
    await wait(backend, handles, lambda s: all(v.is_final for v in s.values()))
    assert await backend.cleanup_batch(batch) == OpOutcome(ok=True)
    assert await backend.cleanup_batch(batch) == OpOutcome(ok=True, reason="already gone")


def test_the_debug_ce_spike_passes_on_a_host_queue(tmp_path: Path) -> None:
    """``intercede-debug-ce`` as users run it, on a local host queue: every check passes,
    the kill target ends Aborted, and nothing is left behind."""
    import io
    import json

    from intercede._cli.debug_ce import main

    root = tmp_path / "root"
    config = tmp_path / "queues.toml"
    config.write_text(
        '[queues.vm]\nkind = "batch"\ntransport = "local"\nscheduler = "host"\nslots = 2\n'
        f'work_root = "{root}"\n'
    )
    out, err = io.StringIO(), io.StringIO()
    code = main([str(config), "--json", "--timeout", "60", "--copies", "3"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    (queue,) = json.loads(out.getvalue())["queues"]
    assert {n: c["state"] for n, c in queue["checks"].items()} == dict.fromkeys(
        ("load", "submit", "status", "output", "kill", "purge"), "passed"
    ), queue
    assert [job["status"] for job in queue["jobs"]] == ["Done"] * 3 + ["Aborted"]
    assert not [p for p in root.iterdir() if p.name not in (".host", ".trash")]
    for _ in range(50):  # purged batches are unlinked by a detached rm
        if not list((root / ".trash").iterdir()):
            break
        time.sleep(0.1)
    assert list((root / ".trash").iterdir()) == []
