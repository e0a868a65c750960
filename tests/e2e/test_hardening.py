"""Hostile and broken input, and faults, against the real cluster (issue 13): every bad input
is refused naming the field before anything runs, and an interrupted submit leaves nothing on
the login node once ``cleanup_batch`` has run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretBytes

import intercede
from intercede import (
    ConfigurationError,
    CopyVars,
    Diagnostics,
    FileRef,
    JobHandle,
    JobStatus,
    OpOutcome,
    ResourceUnavailableError,
    SpecificationRejectedError,
    SSHBatchConfig,
    SubmissionSpec,
    SubmitUnavailableError,
)
from intercede._batch.backend import BatchBackend
from intercede._batch.staging import MAX_ARG_STRLEN
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
        update={"work_root": remote_workdir, "job_name": f"h-{uuid.uuid4().hex[:10]}"}
    )


def _ls(cluster: Any, path: str) -> list[str]:
    code, out = cluster.exec("login", ["ls", "-A", path], user=cluster.user)
    return out.split() if code == 0 else []


def _our_live_jobs(cluster: Any, batch: str) -> list[str]:
    code, out = cluster.exec(
        "login", ["squeue", "-h", "-r", "-u", cluster.user, "-o", "%i|%T|%k"], user=cluster.user
    )
    assert code == 0, out
    return [line for line in out.splitlines() if f"intercede:{batch}" in line]


# --- handles --------------------------------------------------------------------------------


async def test_a_handle_with_a_trailing_newline_neither_answers_nor_cancels(
    backend: BatchBackend, tmp_path: Path
) -> None:
    submission = await backend.submit(SubmissionSpec(executable=_script(tmp_path, "sleep 300\n")))
    real = submission.handles[0]
    try:
        await _wait(backend, [real], lambda s: s[real.id] is JobStatus.RUNNING)
        forged = JobHandle.parse(str(real).replace(f"/{real.id}", f"/{real.id}%0A", 1))
        assert forged.id == real.id + "\n"
        assert (await backend.get_status([forged]))[forged.id] is JobStatus.UNKNOWN
        outcome = (await backend.kill([forged]))[forged.id]
        assert not outcome.ok
        assert "malformed" in (outcome.reason or "")
        await anyio.sleep(1)
        assert (await backend.get_status([real]))[real.id] is JobStatus.RUNNING  # untouched
    finally:
        assert (await backend.kill([real]))[real.id].ok


# --- submit_extra ---------------------------------------------------------------------------


async def test_a_positional_submit_extra_is_refused_and_a_valued_option_works(
    config: SSHBatchConfig,
    credentials: intercede.CredentialProvider,
    slurm_cluster: Any,
    tmp_path: Path,
) -> None:
    evil = f"{config.work_root}/evil.sh"
    with pytest.raises(ConfigurationError) as info:
        intercede.parse_config({**config.model_dump(), "submit_extra": [evil]})
    assert info.value.field == "submit_extra"
    valued = intercede.parse_config(
        {**config.model_dump(), "submit_extra": ["-p", "main", "--time", "5"]}
    )
    assert isinstance(valued, SSHBatchConfig)
    async with _build(valued, credentials) as backend:
        submission = await backend.submit(
            SubmissionSpec(executable=_script(tmp_path, "echo ran as ours\n"))
        )
        handle = submission.handles[0]
        await _wait(backend, [handle], lambda s: s[handle.id].is_final)
        diagnostics = (await backend.get_diagnostics([handle]))[handle.id]
        assert isinstance(diagnostics, Diagnostics)
        assert diagnostics.content == b"ran as ours\n"


# --- sizes and staging failures -------------------------------------------------------------


async def test_an_argument_over_the_kernel_limit_is_refused_before_anything_is_sent(
    backend: BatchBackend, slurm_cluster: Any, tmp_path: Path
) -> None:
    spec = SubmissionSpec(executable=_script(tmp_path, "true\n"), arguments=("x" * MAX_ARG_STRLEN,))
    trips = backend.transport.round_trips
    with pytest.raises(SpecificationRejectedError) as info:
        await backend.submit(spec)
    assert info.value.field == "arguments[0]"
    assert backend.transport.round_trips == trips
    # one byte less reaches the payload whole
    fits = SubmissionSpec(
        executable=_script(tmp_path, 'printf %s "$1" | wc -c\n'),
        arguments=("x" * (MAX_ARG_STRLEN - 1),),
    )
    handle = (await backend.submit(fits)).handles[0]
    status = await _wait(backend, [handle], lambda s: s[handle.id].is_final)
    assert status[handle.id] is JobStatus.DONE
    out = (await backend.get_diagnostics([handle]))[handle.id]
    assert isinstance(out, Diagnostics)
    assert out.content.strip() == str(MAX_ARG_STRLEN - 1).encode()


async def test_a_staging_failure_queued_nothing_and_is_not_in_doubt(
    config: SSHBatchConfig,
    credentials: intercede.CredentialProvider,
    slurm_cluster: Any,
    tmp_path: Path,
) -> None:
    blocker = f"{config.work_root}/a-file"
    code, out = slurm_cluster.exec("login", ["touch", blocker], user=slurm_cluster.user)
    assert code == 0, out
    broken = config.model_copy(update={"work_root": f"{blocker}/below"})
    async with _build(broken, credentials) as backend:
        with pytest.raises(ResourceUnavailableError) as info:
            await backend.submit(SubmissionSpec(executable=_script(tmp_path, "true\n")), 3)
    assert not isinstance(info.value, SubmitUnavailableError)
    assert "nothing was queued" in str(info.value)
    code, out = slurm_cluster.exec(
        "login", ["squeue", "-h", "-n", config.job_name, "-o", "%i"], user=slurm_cluster.user
    )
    assert (code, out.strip()) == (0, "")


# --- diagnostics containment ----------------------------------------------------------------


async def test_diagnostics_follow_no_link_out_and_report_unreadable_files(
    backend: BatchBackend, tmp_path: Path
) -> None:
    exe = _script(
        tmp_path,
        "ln -s /etc etcdir\nln -s /etc/hostname host\necho inside > ok.txt\n"
        "echo hidden > locked.txt\nchmod 000 locked.txt\n",
    )
    handle = (await backend.submit(SubmissionSpec(executable=exe))).handles[0]
    await _wait(backend, [handle], lambda s: s[handle.id].is_final)
    for name in ("etcdir/hostname", "host"):
        outside = (await backend.get_diagnostics([handle], name))[handle.id]
        assert isinstance(outside, OpOutcome)
        assert "leads outside" in (outside.reason or "")
    locked = (await backend.get_diagnostics([handle], "locked.txt"))[handle.id]
    assert isinstance(locked, OpOutcome)
    assert "cannot be read" in (locked.reason or "")
    inside = (await backend.get_diagnostics([handle], "ok.txt"))[handle.id]
    assert inside == Diagnostics(name="ok.txt", content=b"inside\n")


# --- an interrupted submit leaves nothing behind ----------------------------------------------


async def _drop_when(
    slurm_cluster: Any, ready: Callable[[], bool], dropped: list[float], timeout: float = 60
) -> None:
    """Poll the login node (in a worker thread) until ``ready``; then drop every SSH session."""
    from harness import faults

    deadline = time.monotonic() + timeout
    while not await anyio.to_thread.run_sync(ready):
        if time.monotonic() > deadline:
            return
        await anyio.sleep(0.05)
    await anyio.to_thread.run_sync(faults.drop_ssh_sessions, slurm_cluster)
    dropped.append(time.monotonic())


async def _submit_and_drop(
    backend: BatchBackend,
    slurm_cluster: Any,
    spec: SubmissionSpec,
    copies: int | list[CopyVars],
    ready: Callable[[str], bool],
    root: str,
) -> str:
    """Submit while a watcher drops the connection once ``ready(batch dir)`` holds; the batch
    id of the submit in doubt."""
    dropped: list[float] = []

    def batch_ready() -> bool:
        batches = [name for name in _ls(slurm_cluster, root) if len(name) == 32]
        return bool(batches) and ready(f"{root}/{batches[0]}")

    errors: list[SubmitUnavailableError] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_drop_when, slurm_cluster, batch_ready, dropped)
        try:
            await backend.submit(spec, copies)
        except SubmitUnavailableError as exc:
            errors.append(exc)
    assert dropped, "the watcher never saw the moment to drop the connection"
    assert errors, "the submit finished before the connection was dropped"
    return errors[0].batch


async def _clean_up_to_nothing(
    backend: BatchBackend, slurm_cluster: Any, batch: str, root: str
) -> OpOutcome:
    """Let the remote side settle, cancel whatever the batch queued (by its chunk record, as a
    caller reconciling would), then ``cleanup_batch`` until it is done; its first answer."""
    first: OpOutcome | None = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        outcome = await backend.cleanup_batch(batch)
        first = first or outcome
        if outcome.ok:
            break
        code, text = slurm_cluster.exec(
            "login", ["cat", f"{root}/{batch}/chunks"], user=slurm_cluster.user
        )
        handles = [
            JobHandle(
                backend=backend.name,
                resource=backend.transport.resource,
                id=f"{array}_{task}",
                routing=f"{batch}/{int(offset) + task}",
            )
            for _, offset, size, array in (line.split() for line in text.splitlines() if code == 0)
            for task in range(int(size))
        ]
        if handles:
            await backend.kill(handles)
        await anyio.sleep(1)
    assert first is not None
    return first


@pytest.mark.faults
async def test_a_drop_while_staging_leaves_nothing_after_cleanup(
    config: SSHBatchConfig,
    credentials: intercede.CredentialProvider,
    slurm_cluster: Any,
    tmp_path: Path,
) -> None:
    held = config.model_copy(update={"submit_extra": ("--hold",)})
    copies = [CopyVars(secrets={"TOKEN": SecretBytes(b"s" * 64)}) for _ in range(3000)]
    # Staging writes the same few files for any number of copies, so the window to drop the
    # connection in is the upload: a large input keeps the tar stream flowing for a while.
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(256 << 20)
    spec = SubmissionSpec(
        executable=_script(tmp_path, "true\n"), inputs=(FileRef(name="big", source=str(big)),)
    )
    async with _build(held, credentials) as backend:
        batch = await _submit_and_drop(
            backend,
            slurm_cluster,
            spec,
            copies,
            lambda batch_dir: not _ls(slurm_cluster, f"{batch_dir}/chunks"),
            config.work_root,
        )
        await _clean_up_to_nothing(backend, slurm_cluster, batch, config.work_root)
        assert batch not in _ls(slurm_cluster, config.work_root)
        assert _our_live_jobs(slurm_cluster, batch) == []
        again = await backend.cleanup_batch(batch)
        assert again == OpOutcome(ok=True, reason="already gone")


@pytest.mark.faults
async def test_a_drop_between_sbatch_calls_leaves_nothing_after_cleanup(
    config: SSHBatchConfig,
    credentials: intercede.CredentialProvider,
    slurm_cluster: Any,
    tmp_path: Path,
) -> None:
    one_by_one = config.model_copy(update={"submit_extra": ("--hold",), "max_array_size": 1})
    copies = [CopyVars(secrets={"TOKEN": SecretBytes(b"t" * 32)}) for _ in range(60)]
    async with _build(one_by_one, credentials) as backend:
        batch = await _submit_and_drop(
            backend,
            slurm_cluster,
            SubmissionSpec(executable=_script(tmp_path, "sleep 600\n")),
            copies,
            lambda batch_dir: bool(_ls(slurm_cluster, f"{batch_dir}/chunks")),
            config.work_root,
        )
        first = await _clean_up_to_nothing(backend, slurm_cluster, batch, config.work_root)
        assert not first.ok  # refused while the batch's held jobs were queued
        assert batch not in _ls(slurm_cluster, config.work_root)
        assert _our_live_jobs(slurm_cluster, batch) == []
