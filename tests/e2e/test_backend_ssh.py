"""The batch backend over SSH against the harness's real multi-node Slurm cluster."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

import intercede
from intercede import (
    CopyVars,
    FileRef,
    JobHandle,
    JobOutput,
    JobStatus,
    OperationTimeoutError,
    OpOutcome,
    OutputMember,
    OutputSpec,
    Resources,
    SpecificationRejectedError,
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
    loaded = intercede.load_config(slurm_cluster.client_config_path)
    base = loaded.queues["main"]
    assert isinstance(base, SSHBatchConfig)
    return base.model_copy(
        update={"work_root": remote_workdir, "job_name": f"t-{uuid.uuid4().hex[:10]}"}
    )


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- submit, identity, secrets, status ---------------------------------------------------


async def test_copies_see_their_own_values_and_secrets(
    backend: BatchBackend, slurm_cluster: Any, tmp_path: Path
) -> None:
    exe = _script(
        tmp_path,
        'echo "stamp=$STAMP secret=$(cat "$INTERCEDE_SECRET_TOKEN")"\n'
        'stat -c %a "$INTERCEDE_SECRET_TOKEN" > mode.txt\n'
        "env > env.txt\n"
        "sleep 2\n",
    )
    copies = [
        CopyVars(
            environment={"STAMP": f"stamp-{i}"},
            secrets={"TOKEN": f"s3cr3t-{uuid.uuid4().hex}".encode()},
        )
        for i in range(3)
    ]
    spec = SubmissionSpec(executable=exe, outputs=OutputSpec.everything())
    trips = backend.transport.round_trips
    submission = await backend.submit(spec, copies)
    assert backend.transport.round_trips - trips == 1
    assert sorted(submission.handles) == [0, 1, 2]
    assert not submission.failures
    handles = [submission.handles[i] for i in range(3)]
    array = handles[0].id.split("_")[0]
    assert [h.id for h in handles] == [f"{array}_{i}" for i in range(3)]
    assert all(h.backend == "slurm+ssh" for h in handles)
    assert all(h.resource == f"submit@127.0.0.1:{slurm_cluster.ssh_port}" for h in handles)
    assert [h.routing.split("/")[1] for h in handles] == ["0", "1", "2"]
    assert all(JobHandle.parse(str(h)) == h for h in handles)

    # While the jobs exist, Slurm's own view must not hold any secret.
    code, shown = slurm_cluster.exec(
        "controller", ["scontrol", "show", "job", "-dd", array], user=None
    )
    assert code == 0, shown
    code, script = slurm_cluster.exec(
        "controller", ["scontrol", "write", "batch_script", f"{array}_0", "-"]
    )
    assert code == 0, script
    assert "interCEde batch script" in script  # the check below reads the real script
    batch = handles[0].routing.split("/")[0]
    assert f"Comment=intercede:{batch}" in shown  # a lost reply can be reconciled
    code, chunks = slurm_cluster.exec(
        "login", ["cat", f"{backend._config.work_root}/{batch}/chunks"], user="submit"
    )
    assert code == 0, chunks
    assert chunks.strip() == f"@@chunk 0 3 {array}"
    for copy in copies:
        value = copy.secrets["TOKEN"].get_secret_value().decode()
        assert value not in shown
        assert value not in script

    await _wait(backend, handles, _all_final)
    outputs = await backend.get_output(handles, tmp_path / "out")
    for i, handle in enumerate(handles):
        out = outputs[handle.id]
        assert isinstance(out, JobOutput), out
        assert out.stdout is not None
        secret = copies[i].secrets["TOKEN"].get_secret_value().decode()
        assert out.stdout.read_text() == f"stamp=stamp-{i} secret={secret}\n"
        files = {p.name: p for p in out.files}
        assert files["mode.txt"].read_text().strip() == "600"
        env = files["env.txt"].read_text()
        assert secret not in env  # the job's environment holds the path, never the value
        assert f"INTERCEDE_SECRET_TOKEN={backend._config.work_root}/" in env
        assert f"STAMP=stamp-{i}" in env
        assert "INTERCEDE_SECRET_TOKEN=" in env


async def test_status_goes_waiting_running_done(
    config: SSHBatchConfig, credentials: intercede.CredentialProvider, tmp_path: Path
) -> None:
    delayed = config.model_copy(update={"submit_extra": ("--begin=now+4",)})
    async with _build(delayed, credentials) as backend:
        spec = SubmissionSpec(executable=_script(tmp_path, "sleep 4\n"))
        submission = await backend.submit(spec, 2)
        handles = list(submission.handles.values())
        seen: list[Mapping[str, JobStatus]] = []
        trips = backend.transport.round_trips
        final = await _wait(backend, handles, _all_final, seen=seen)
        assert backend.transport.round_trips - trips == len(seen)  # one trip per call
        assert set(final.values()) == {JobStatus.DONE}
        for handle in handles:
            sequence = [s[handle.id] for s in seen]
            assert sequence[0] is JobStatus.WAITING
            assert JobStatus.RUNNING in sequence
            assert JobStatus.UNKNOWN not in sequence
            order = [JobStatus.WAITING, JobStatus.RUNNING, JobStatus.DONE]
            assert [order.index(s) for s in sequence] == sorted(order.index(s) for s in sequence)


async def test_failed_payload_is_failed_and_unknown_ids_are_unknown(
    backend: BatchBackend, tmp_path: Path
) -> None:
    submission = await backend.submit(SubmissionSpec(executable=_script(tmp_path, "exit 3\n")))
    handle = submission.handles[0]
    ghost = handle.model_copy(update={"id": "999999_0"})
    foreign = handle.model_copy(update={"resource": "someone@else:22", "id": "5_0"})
    status = await _wait(backend, [handle], _all_final)
    assert status[handle.id] is JobStatus.FAILED
    status = await backend.get_status([handle, ghost, foreign])
    assert status == {
        handle.id: JobStatus.FAILED,
        "999999_0": JobStatus.UNKNOWN,
        "5_0": JobStatus.UNKNOWN,
    }


async def test_arguments_reach_the_job_byte_exact(backend: BatchBackend, tmp_path: Path) -> None:
    arguments = ("plain", "with space", "it's", '"dq"', "$HOME", "`id`", "a\nb", "ünï©ødé ✓", "")
    exe = _script(tmp_path, 'for a in "$@"; do printf "%s\\0" "$a"; done > args.bin\n')
    spec = SubmissionSpec(
        executable=exe,
        arguments=arguments,
        outputs=OutputSpec(members=(OutputMember(pattern="args.bin"),)),
    )
    handle = (await backend.submit(spec)).handles[0]
    await _wait(backend, [handle], _all_final)
    out = (await backend.get_output([handle], tmp_path / "out"))[handle.id]
    assert isinstance(out, JobOutput)
    assert [p.name for p in out.files] == ["args.bin"]
    assert out.files[0].read_bytes() == b"".join(a.encode() + b"\0" for a in arguments)


async def test_multi_node_job(backend: BatchBackend, tmp_path: Path) -> None:
    spec = SubmissionSpec(
        executable=_script(tmp_path, "srun hostname | sort -u\n"),
        resources=Resources(nodes="2"),
    )
    handle = (await backend.submit(spec)).handles[0]
    status = await _wait(backend, [handle], _all_final, timeout=180)
    assert status[handle.id] is JobStatus.DONE
    out = (await backend.get_output([handle], tmp_path / "out"))[handle.id]
    assert isinstance(out, JobOutput)
    assert out.stdout is not None
    hosts = out.stdout.read_text().split()
    assert len(hosts) == 2, hosts


async def test_inputs_are_staged_into_each_copy(backend: BatchBackend, tmp_path: Path) -> None:
    data = tmp_path / "input.txt"
    data.write_text("input data\n")
    spec = SubmissionSpec(
        executable=_script(tmp_path, "cat in.txt\n"),
        inputs=(FileRef(name="in.txt", source=str(data)),),
    )
    submission = await backend.submit(spec, 2)
    handles = list(submission.handles.values())
    await _wait(backend, handles, _all_final)
    outputs = await backend.get_output(handles, tmp_path / "out")
    for handle in handles:
        out = outputs[handle.id]
        assert isinstance(out, JobOutput)
        assert out.stdout is not None
        assert out.stdout.read_text() == "input data\n"
        assert out.files == ()  # nothing asked for


# --- kill, counts, diagnostics -----------------------------------------------------------


async def test_kill_running_and_pending_jobs(
    backend: BatchBackend,
    config: SSHBatchConfig,
    credentials: intercede.CredentialProvider,
    tmp_path: Path,
) -> None:
    spec = SubmissionSpec(
        executable=_script(
            tmp_path,
            "echo started; echo progress >&2; echo working > progress.txt; sleep 300\n",
        )
    )
    running = (await backend.submit(spec)).handles[0]
    held = config.model_copy(update={"submit_extra": ("--hold",)})
    async with _build(held, credentials) as holding:
        pending = (await holding.submit(spec)).handles[0]
    await _wait(backend, [running], lambda s: s[running.id] is JobStatus.RUNNING)

    counts = await backend.counts()
    assert (counts.running, counts.waiting) == (1, 1)

    diag = await backend.get_diagnostics([running, pending])
    first = diag[running.id]
    assert not isinstance(first, OpOutcome), first
    assert first.content == b"started\n"
    assert first.name == "stdout"
    assert isinstance(diag[pending.id], OpOutcome)
    named = (await backend.get_diagnostics([running], "progress.txt"))[running.id]
    assert not isinstance(named, OpOutcome)
    assert named.content == b"working\n"
    err = (await backend.get_diagnostics([running], ":stderr"))[running.id]
    assert not isinstance(err, OpOutcome), err
    assert err.content == b"progress\n"
    log = (await backend.get_diagnostics([running], ":log"))[running.id]
    assert not isinstance(log, OpOutcome), log
    assert f"job {running.id}," in log.content.decode()
    with pytest.raises(SpecificationRejectedError) as info:
        await backend.get_diagnostics([running], "../../etc/passwd")
    assert info.value.field == "name"

    ghost = running.model_copy(update={"id": "999999_0"})
    trips = backend.transport.round_trips
    outcomes = await backend.kill([running, pending, ghost])
    assert backend.transport.round_trips - trips == 1
    assert outcomes[running.id] == OpOutcome(ok=True)
    assert outcomes[pending.id] == OpOutcome(ok=True)
    assert not outcomes["999999_0"].ok
    assert "unknown" in (outcomes["999999_0"].reason or "")

    status = await _wait(backend, [running, pending], _all_final)
    assert status == {running.id: JobStatus.ABORTED, pending.id: JobStatus.ABORTED}
    again = await backend.kill([running])  # idempotent: what this backend cancelled stays ok
    assert again[running.id] == OpOutcome(ok=True)
    counts = await backend.counts()
    assert (counts.running, counts.waiting) == (0, 0)


async def test_kill_some_pending_tasks_of_one_array(backend: BatchBackend, tmp_path: Path) -> None:
    """Slurm drops a task cancelled inside its pending array record from squeue and gives it
    no sacct row, while sacct keeps the array's range: those tasks must still read Aborted,
    now and once their siblings have finished, and the siblings must be untouched."""
    spec = SubmissionSpec(executable=_script(tmp_path, "sleep 8\n"))
    handles = [h for _, h in sorted((await backend.submit(spec, 20)).handles.items())]
    await anyio.sleep(3)
    status = await backend.get_status(handles)
    doomed = [h for h in handles[10:] if status[h.id] is JobStatus.WAITING][:5]
    assert len(doomed) == 5, status  # four CPUs: tasks 10.. are still pending
    outcomes = await backend.kill(doomed)
    assert outcomes == {h.id: OpOutcome(ok=True) for h in doomed}
    spared = [h for h in handles if h not in doomed]
    now = await backend.get_status(handles)
    assert {now[h.id] for h in doomed} == {JobStatus.ABORTED}
    assert all(now[h.id] is not JobStatus.ABORTED for h in spared), now
    final = await _wait(backend, handles, _all_final, timeout=240)
    assert {final[h.id] for h in doomed} == {JobStatus.ABORTED}
    assert {final[h.id] for h in spared} == {JobStatus.DONE}


# --- output ------------------------------------------------------------------------------


async def test_output_twice_identical_and_streams_kept_apart(
    backend: BatchBackend, tmp_path: Path
) -> None:
    exe = _script(
        tmp_path,
        "echo real-stdout\necho real-stderr >&2\n"
        "echo payload > stdout\necho payload-err > stderr\n"
        "mkdir -p sub/deep && echo nested > sub/deep/n.txt && echo r > result.json\n"
        "ln -s result.json alias.json\n",
    )
    spec = SubmissionSpec(executable=exe, outputs=OutputSpec.everything())
    handles = list((await backend.submit(spec, 2)).handles.values())
    await _wait(backend, handles, _all_final)
    dest = tmp_path / "out"
    trips = backend.transport.round_trips
    first = await backend.get_output(handles, dest)
    assert backend.transport.round_trips - trips == 2
    snapshot = _tree(dest)
    second = await backend.get_output(handles, dest)
    assert first == second
    assert _tree(dest) == snapshot
    for handle in handles:
        out = first[handle.id]
        assert isinstance(out, JobOutput)
        assert out.stdout == dest / f"{handle.id}.out"
        assert out.stderr == dest / f"{handle.id}.err"
        assert out.log == dest / f"{handle.id}.log"
        assert out.stdout.read_text() == "real-stdout\n"
        assert out.stderr.read_text() == "real-stderr\n"
        assert "exit code 0" in out.log.read_text()
        names = sorted(str(p.relative_to(dest / handle.id)) for p in out.files)
        assert names == ["alias.json", "result.json", "stderr", "stdout", "sub/deep/n.txt"]
        assert (dest / handle.id / "stdout").read_text() == "payload\n"
        assert (dest / handle.id / "alias.json").is_symlink()
        assert (dest / handle.id / "alias.json").read_text() == "r\n"
    assert not [p for p in dest.iterdir() if p.name.startswith(".intercede-")]


async def test_purge_then_output_is_gone(
    backend: BatchBackend, config: SSHBatchConfig, slurm_cluster: Any, tmp_path: Path
) -> None:
    spec = SubmissionSpec(
        executable=_script(tmp_path, "echo x\n"),
        outputs=OutputSpec.everything(),
    )
    copies = [CopyVars(secrets={"TOKEN": b"t"}) for _ in range(2)]
    handles = list((await backend.submit(spec, copies)).handles.values())
    await _wait(backend, handles, _all_final)
    job_dir = f"{config.work_root}/{handles[0].routing}"
    assert slurm_cluster.exec("login", ["test", "-d", job_dir], user="submit")[0] == 0
    trips = backend.transport.round_trips
    purged = await backend.purge([handles[0]])
    assert backend.transport.round_trips - trips == 2
    assert purged == {handles[0].id: OpOutcome(ok=True)}
    assert slurm_cluster.exec("login", ["test", "-e", job_dir], user="submit")[0] != 0
    outputs = await backend.get_output(handles, tmp_path / "out")
    gone = outputs[handles[0].id]
    assert isinstance(gone, OpOutcome)
    assert not gone.ok
    assert "gone" in (gone.reason or "")
    assert isinstance(outputs[handles[1].id], JobOutput)
    assert not (tmp_path / "out" / handles[0].id).exists()
    again = await backend.purge([handles[0]])
    assert again[handles[0].id] == OpOutcome(ok=True, reason="already gone")
    # Purging the last copy removes the batch (script, logs) too.
    assert (await backend.purge([handles[1]]))[handles[1].id].ok
    batch_dir = f"{config.work_root}/{handles[0].routing.split('/')[0]}"
    assert slurm_cluster.exec("login", ["test", "-e", batch_dir], user="submit")[0] != 0


async def test_purge_refuses_a_live_job(backend: BatchBackend, tmp_path: Path) -> None:
    handle = (
        await backend.submit(SubmissionSpec(executable=_script(tmp_path, "sleep 300\n")))
    ).handles[0]
    try:
        outcome = (await backend.purge([handle]))[handle.id]
        assert not outcome.ok
        assert "kill it first" in (outcome.reason or "")
    finally:
        await backend.kill([handle])


async def test_limits_and_containment_refuse_per_job(
    config: SSHBatchConfig,
    credentials: intercede.CredentialProvider,
    slurm_cluster: Any,
    tmp_path: Path,
) -> None:
    limited = config.model_copy(update={"output_max_files": 3, "output_max_bytes": 4096})
    async with _build(limited, credentials) as backend:
        body = (
            'case "$MODE" in\n'
            "  many) for i in 1 2 3 4 5; do echo $i > f$i; done ;;\n"
            "  big) head -c 10000 /dev/zero > big.bin ;;\n"
            "  escape) ln -s /etc/passwd leak; echo ok > fine.txt ;;\n"
            "  ok) echo fine > a.txt ;;\n"
            "esac\n"
        )
        spec = SubmissionSpec(executable=_script(tmp_path, body), outputs=OutputSpec.everything())
        modes = ["many", "big", "escape", "ok"]
        submission = await backend.submit(spec, [CopyVars(environment={"MODE": m}) for m in modes])
        handles = [submission.handles[i] for i in range(4)]
        await _wait(backend, handles, _all_final)
        dest = tmp_path / "out"
        outputs = await backend.get_output(handles, dest)
        many, big, escape, ok = (outputs[h.id] for h in handles)
        assert isinstance(many, OpOutcome)
        assert "output_max_files=3" in (many.reason or "")
        assert isinstance(big, OpOutcome)
        assert "output_max_bytes=4096" in (big.reason or "")
        # an escaping link is left out and reported; the rest, streams included, arrives
        assert isinstance(escape, JobOutput)
        assert [p.name for p in escape.files] == ["fine.txt"]
        assert escape.stdout is not None
        assert "leak" in (dest / f"{handles[2].id}.skipped").read_text()
        assert list(escape.skipped) == ["leak"]
        assert isinstance(ok, JobOutput)
        assert [p.name for p in ok.files] == ["a.txt"]
        present = sorted(p.name for p in dest.iterdir())
        delivered = [handles[2].id, handles[3].id]
        assert present == sorted(
            [f"{handles[2].id}.skipped"]
            + [f"{j}{suffix}" for j in delivered for suffix in ("", ".out", ".err", ".log")]
        )


async def test_listed_members_only(backend: BatchBackend, tmp_path: Path) -> None:
    exe = _script(
        tmp_path, "mkdir -p res && echo 1 > res/a.json && echo 2 > b.json && echo 3 > c.log\n"
    )
    spec = SubmissionSpec(
        executable=exe,
        outputs=OutputSpec(members=(OutputMember(pattern="res"), OutputMember(pattern="*.json"))),
    )
    handle = (await backend.submit(spec)).handles[0]
    await _wait(backend, [handle], _all_final)
    out = (await backend.get_output([handle], tmp_path / "out"))[handle.id]
    assert isinstance(out, JobOutput)
    root = tmp_path / "out" / handle.id
    assert sorted(str(p.relative_to(root)) for p in out.files) == ["b.json", "res/a.json"]


async def test_containment_with_dotdot_chained_and_hard_links(
    backend: BatchBackend, tmp_path: Path
) -> None:
    exe = _script(
        tmp_path,
        "mkdir -p a/b && echo inside > a/b/f.txt\n"
        "ln -s ../.. a/b/l\n"  # the working directory itself: fine on its own
        "ln -s l/../.. a/b/x\n"  # through l: one level above the working directory
        "ln -s ../../../stdout up\n"  # .. out of work/ to the job's real stdout
        "echo data > h1 && ln h1 h2\n"  # hard links: both must arrive
        "echo streams-stay\n",
    )
    spec = SubmissionSpec(executable=exe, outputs=OutputSpec.everything())
    handle = (await backend.submit(spec)).handles[0]
    await _wait(backend, [handle], _all_final)
    dest = tmp_path / "out"
    out = (await backend.get_output([handle], dest))[handle.id]
    assert isinstance(out, JobOutput), out
    root = dest / handle.id
    assert out.stdout is not None
    assert out.stdout.read_text() == "streams-stay\n"
    assert (root / "h1").read_text() == "data\n"
    assert (root / "h2").read_text() == "data\n"
    assert (root / "a" / "b" / "l").is_symlink()
    assert not (root / "a" / "b" / "x").is_symlink()
    assert not (root / "up").exists()
    skipped = (dest / f"{handle.id}.skipped").read_text()
    assert "'a/b/x'" in skipped
    assert "'up'" in skipped
    # the typed result carries the same members, relative to the working directory
    assert sorted(out.skipped) == ["a/b/x", "up"]
    assert all("outside the working directory" in why for why in out.skipped.values())
    base = root.resolve()
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(base), path


# --- refusals at submit ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"inputs": (FileRef(name="a", source="https://example.org/a"),)}, "inputs[0].source"),
        (
            {"outputs": OutputSpec(members=(OutputMember(pattern="a", destination="s3://b/a"),))},
            "outputs.members[0].destination",
        ),
        ({"container_image": "alpine:3"}, "container_image"),
    ],
)
async def test_unsupported_specs_are_refused_before_anything_runs(
    backend: BatchBackend,
    config: SSHBatchConfig,
    slurm_cluster: Any,
    tmp_path: Path,
    change: dict[str, Any],
    field: str,
) -> None:
    spec = SubmissionSpec.model_validate({"executable": _script(tmp_path, "true\n"), **change})
    with pytest.raises(SpecificationRejectedError) as info:
        await backend.submit(spec, 3)
    assert info.value.field == field
    assert backend.transport.round_trips == 0
    code, listing = slurm_cluster.exec("login", ["ls", "-A", config.work_root])
    assert code == 0
    assert listing.strip() == ""


async def test_sbatch_refusal_is_a_rejection(
    config: SSHBatchConfig, credentials: intercede.CredentialProvider, tmp_path: Path
) -> None:
    async with _build(config, credentials) as backend:
        spec = SubmissionSpec(
            executable=_script(tmp_path, "true\n"), resources=Resources(queue="no-such-partition")
        )
        with pytest.raises(SpecificationRejectedError, match=r"(?i)partition"):
            await backend.submit(spec, 2)


async def test_big_batches_chunk_at_max_array_size(
    config: SSHBatchConfig, credentials: intercede.CredentialProvider, tmp_path: Path
) -> None:
    chunked = config.model_copy(update={"max_array_size": 4, "submit_extra": ("--hold",)})
    async with _build(chunked, credentials) as backend:
        spec = SubmissionSpec(executable=_script(tmp_path, "true\n"))
        submission = await backend.submit(spec, 10)
        assert backend.transport.round_trips == 1
        handles = [submission.handles[i] for i in range(10)]
        arrays = [h.id.split("_")[0] for h in handles]
        assert len(set(arrays)) == 3
        assert [h.id.split("_")[1] for h in handles] == ["0", "1", "2", "3"] * 2 + ["0", "1"]
        assert [h.routing.split("/")[1] for h in handles] == [str(i) for i in range(10)]
        status = await backend.get_status(handles)
        assert set(status.values()) == {JobStatus.WAITING}
        killed = await backend.kill(handles)
        assert all(o.ok for o in killed.values())


# --- connection ---------------------------------------------------------------------------


async def test_one_connection_for_many_concurrent_calls(
    backend: BatchBackend, tmp_path: Path
) -> None:
    handle = (await backend.submit(SubmissionSpec(executable=_script(tmp_path, "true\n")))).handles[
        0
    ]
    results: list[Mapping[str, JobStatus]] = []

    async def ask() -> None:
        results.append(await backend.get_status([handle]))

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(ask)
    assert len(results) == 20
    assert backend.transport.connections_opened == 1
    assert backend.transport.round_trips == 21


@pytest.mark.faults
async def test_reconnects_after_the_connection_dropped(
    backend: BatchBackend, slurm_cluster: Any
) -> None:
    from harness import faults

    await backend.counts()
    assert backend.transport.connections_opened == 1
    assert faults.drop_ssh_sessions(slurm_cluster) >= 1
    await anyio.sleep(0.5)
    counts = await backend.counts()
    assert counts.running + counts.waiting == 0
    assert backend.transport.connections_opened == 2


@pytest.mark.faults
async def test_paused_login_node_times_out(
    config: SSHBatchConfig,
    credentials: intercede.CredentialProvider,
    slurm_cluster: Any,
) -> None:
    from harness import faults

    quick = config.model_copy(update={"command_timeout_s": 3.0, "connect_timeout_s": 3.0})
    async with _build(quick, credentials) as connected, _build(quick, credentials) as fresh:
        await connected.counts()
        faults.pause(slurm_cluster, "login")
        try:
            started = time.monotonic()
            with pytest.raises(OperationTimeoutError):
                await connected.counts()
            assert time.monotonic() - started < 3.0 + 2.0
            started = time.monotonic()
            with pytest.raises(OperationTimeoutError):
                await fresh.counts()
            assert time.monotonic() - started < 2 * 3.0 + 2.0
        finally:
            faults.unpause(slurm_cluster, "login")
        counts = await connected.counts()  # usable again once the node is back
        assert counts.running == 0


async def test_closed_backend_refuses_calls(
    config: SSHBatchConfig, credentials: intercede.CredentialProvider
) -> None:
    backend = _build(config, credentials)
    async with backend:
        await backend.counts()
    await backend.aclose()  # idempotent
    with pytest.raises(intercede.BackendClosedError):
        await backend.counts()


async def test_wrong_host_key_is_refused(
    config: SSHBatchConfig, credentials: intercede.CredentialProvider, tmp_path: Path
) -> None:
    other = tmp_path / "known_hosts"
    host_line = config.known_hosts.read_text().splitlines()[0].split()
    # Same host pattern, a different (valid) key: verification must fail, not fall back.
    other.write_text(
        f"{host_line[0]} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIBtWnYRBmiTzvmzVMfUuwzzDeSGyHUqiG4b4mOQyDT8t\n"
    )
    async with _build(config.model_copy(update={"known_hosts": other}), credentials) as backend:
        with pytest.raises(intercede.AuthenticationError, match="host key"):
            await backend.counts()


async def test_rejected_key_is_an_authentication_error(config: SSHBatchConfig) -> None:
    import asyncssh

    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    creds = intercede.StaticCredentials(intercede.SSHPrivateKey(pem=SecretStr(stranger)))
    async with _build(config, creds) as backend:
        with pytest.raises(intercede.AuthenticationError, match="rejected"):
            await backend.counts()
        assert backend.transport.connections_opened == 0
