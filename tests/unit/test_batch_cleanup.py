"""``cleanup_batch``: what a submit in doubt left is removed by its batch id, never while the
submit still runs or one of its jobs is queued or running. The remote script runs for real
(local ``sh``, awk) against a scripted ``squeue``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from intercede import (
    BatchCleaner,
    CredentialRequirements,
    CredentialSet,
    ResourceUnavailableError,
    SpecificationRejectedError,
    SSHBatchConfig,
    SSHPrivateKey,
)
from intercede._batch.backend import BatchBackend
from intercede._batch.local import LocalTransport
from intercede._batch.slurm import SUBMITTING, SlurmScheduler
from intercede._batch.transport import CommandResult

pytestmark = pytest.mark.anyio

BATCH = "0123456789abcdef" * 2
OTHER = "f" * 32


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Provider:
    async def get(self, requirements: CredentialRequirements) -> CredentialSet:
        return CredentialSet([SSHPrivateKey(pem=SecretStr("k"))])

    async def __aenter__(self) -> _Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Cluster:
    """The local transport with a scripted ``squeue`` first on PATH."""

    kind = "ssh"
    resource = "submit@ce.example.org:22"
    connections_opened = 0

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self._local = LocalTransport(command_timeout_s=60)
        self.calls = 0

    @property
    def round_trips(self) -> int:
        return self._local.round_trips

    async def run(self, argv: list[str], **kw: Any) -> CommandResult:
        self.calls += 1
        script = f'PATH="{self._bin}:$PATH"; export PATH\n' + argv[-1]
        return await self._local.run([*argv[:-1], script], **kw)

    async def aclose(self) -> None:
        await self._local.aclose()


@pytest.fixture
def squeue(tmp_path: Path) -> Path:
    """Write the queue (``%i|%T|%k`` rows) here; a file ``fail`` beside it makes squeue fail."""
    state = tmp_path / "queue.txt"
    state.write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "squeue"
    fake.write_text(
        f'#!/bin/sh\n[ -e "{tmp_path}/fail" ] && {{ echo "squeue: error: down" >&2; exit 1; }}\n'
        f'cat "{state}"\n'
    )
    fake.chmod(0o755)
    return state


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    (path / BATCH / "0" / "secrets").mkdir(parents=True)
    (path / BATCH / "0" / "secrets" / "TOKEN").write_text("s3cret")
    (path / BATCH / "job.sh").write_text("#!/bin/sh\n")
    (path / OTHER).mkdir()
    return path


@pytest.fixture
def cluster(tmp_path: Path, squeue: Path) -> _Cluster:
    return _Cluster(tmp_path / "bin")


@pytest.fixture
def backend(tmp_path: Path, root: Path, cluster: _Cluster) -> BatchBackend:
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = SSHBatchConfig(
        transport="ssh", host="ce.example.org", user="submit", known_hosts=known,
        work_root=str(root),
    )  # fmt: skip
    return BatchBackend(cluster, SlurmScheduler(), config, _Provider())  # type: ignore[arg-type]


def test_the_backend_offers_it() -> None:
    assert issubclass(BatchBackend, BatchCleaner)


async def test_removes_the_batch_then_says_already_gone(
    backend: BatchBackend, root: Path, squeue: Path
) -> None:
    squeue.write_text(f"7_0|COMPLETED|intercede:{BATCH}\n8_0|PENDING|intercede:{OTHER}\n")
    assert (await backend.cleanup_batch(BATCH)).ok
    assert not (root / BATCH).exists()
    assert (root / OTHER).exists()  # another batch is untouched
    again = await backend.cleanup_batch(BATCH)
    assert again.ok
    assert again.reason == "already gone"


@pytest.mark.parametrize(
    "row",
    [
        f"12_3|PENDING|intercede:{BATCH}",
        f"12_3|RUNNING|intercede:{BATCH} dirac-queue",
        f"12_3|COMPLETING|intercede:{BATCH}",
        f"12_3|SOME_NEW_STATE|intercede:{BATCH}",  # not known to be final: live
    ],
)
async def test_a_live_job_of_the_batch_blocks_the_removal(
    backend: BatchBackend, root: Path, squeue: Path, row: str
) -> None:
    squeue.write_text(f"{row}\n")
    outcome = await backend.cleanup_batch(BATCH)
    assert not outcome.ok
    assert "12_3" in (outcome.reason or "")
    assert "cancel them first" in (outcome.reason or "")
    assert (root / BATCH / "0" / "secrets" / "TOKEN").exists()


async def test_jobs_are_recognised_by_the_chunk_record_when_the_comment_was_replaced(
    backend: BatchBackend, root: Path, squeue: Path
) -> None:
    (root / BATCH / "chunks").write_text("@@chunk 0 2 41\n")
    squeue.write_text("41_1|RUNNING|my own comment\n42_0|RUNNING|my own comment\n")
    outcome = await backend.cleanup_batch(BATCH)
    assert not outcome.ok
    assert "41_1" in (outcome.reason or "")
    assert "42_0" not in (outcome.reason or "")


async def test_a_submit_still_running_there_blocks_the_removal(
    backend: BatchBackend, root: Path
) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (root / BATCH / SUBMITTING).write_text(f"{sleeper.pid}\n")
        outcome = await backend.cleanup_batch(BATCH)
        assert not outcome.ok
        assert "still running" in (outcome.reason or "")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (await backend.cleanup_batch(BATCH)).ok  # its process is gone now
    assert not (root / BATCH).exists()


async def test_nothing_is_removed_when_squeue_cannot_answer(
    backend: BatchBackend, root: Path, tmp_path: Path
) -> None:
    (tmp_path / "fail").touch()
    with pytest.raises(ResourceUnavailableError, match="nothing removed"):
        await backend.cleanup_batch(BATCH)
    assert (root / BATCH).exists()


@pytest.mark.parametrize("batch", ["", "x" * 32, BATCH + "\n", BATCH.upper(), "../" + BATCH, 7])
async def test_a_malformed_batch_id_is_refused_without_a_remote_call(
    backend: BatchBackend, cluster: _Cluster, batch: Any
) -> None:
    with pytest.raises(SpecificationRejectedError) as info:
        await backend.cleanup_batch(batch)
    assert info.value.field == "batch"
    assert cluster.calls == 0


async def test_a_missing_work_root_is_already_gone(backend: BatchBackend, root: Path) -> None:
    os.rename(root, root.with_name("moved"))
    assert (await backend.cleanup_batch(BATCH)).reason == "already gone"
