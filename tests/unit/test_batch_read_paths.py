"""``get_diagnostics`` and ``get_output`` read only what belongs to the job: links are
resolved and must stay inside the job's directory, an unreadable or special file is a per-job
failure rather than an empty success, a handle whose id is not the one its batch recorded for
that copy is refused, and a ``dest`` that cannot be a directory is the caller's typed error.
The remote scripts run for real (local ``sh``, realpath, tar)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from intercede import (
    CredentialRequirements,
    CredentialSet,
    Diagnostics,
    JobHandle,
    JobOutput,
    OpOutcome,
    SpecificationRejectedError,
    SSHBatchConfig,
    SSHPrivateKey,
)
from intercede._batch.backend import BatchBackend
from intercede._batch.local import LocalTransport
from intercede._batch.slurm import SlurmScheduler
from intercede._batch.transport import CommandResult

pytestmark = pytest.mark.anyio

BATCH = "ab" * 16
RESOURCE = "submit@ce.example.org:22"


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


class _Local:
    kind = "ssh"
    resource = RESOURCE
    connections_opened = 0

    def __init__(self) -> None:
        self._local = LocalTransport(command_timeout_s=60)
        self.calls = 0

    @property
    def round_trips(self) -> int:
        return self._local.round_trips

    async def run(self, argv: list[str], **kw: Any) -> CommandResult:
        self.calls += 1
        return await self._local.run(argv, **kw)

    async def aclose(self) -> None:
        await self._local.aclose()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    for index in (0, 1):
        work = path / BATCH / str(index) / "work"
        work.mkdir(parents=True)
        (work / "ok.txt").write_text(f"copy {index}\n")
        (path / BATCH / str(index) / "stdout").write_text(f"out {index}\n")
    (path / BATCH / "logs").mkdir()
    return path


@pytest.fixture
def transport() -> _Local:
    return _Local()


@pytest.fixture
def backend(tmp_path: Path, root: Path, transport: _Local) -> BatchBackend:
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = SSHBatchConfig(
        transport="ssh", host="ce.example.org", user="submit", known_hosts=known,
        work_root=str(root),
    )  # fmt: skip
    return BatchBackend(transport, SlurmScheduler(), config, _Provider())  # type: ignore[arg-type]


def _handle(job_id: str = "9_0", index: int = 0) -> JobHandle:
    return JobHandle(backend="slurm+ssh", resource=RESOURCE, id=job_id, routing=f"{BATCH}/{index}")


def _failed(outcome: Diagnostics | JobOutput | OpOutcome) -> str:
    assert isinstance(outcome, OpOutcome)
    assert not outcome.ok
    return outcome.reason or ""


async def test_a_payload_file_inside_the_working_directory_is_read(
    backend: BatchBackend, root: Path
) -> None:
    work = root / BATCH / "0" / "work"
    (work / "sub").mkdir()
    os.symlink("../ok.txt", work / "sub" / "inner-link")
    got = await backend.get_diagnostics([_handle()], "sub/inner-link")
    assert got["9_0"] == Diagnostics(name="sub/inner-link", content=b"copy 0\n")


@pytest.mark.parametrize(
    ("link", "name"),
    [
        ("/etc", "etcdir/hostname"),  # the 'ln -s /etc etcdir'
        ("../../1/work", "etcdir/ok.txt"),  # a sibling copy's working directory
        ("/etc/hostname", "etcdir"),
    ],
)
async def test_links_leading_out_of_the_working_directory_are_not_followed(
    backend: BatchBackend, root: Path, link: str, name: str
) -> None:
    os.symlink(link, root / BATCH / "0" / "work" / "etcdir")
    got = await backend.get_diagnostics([_handle()], name)
    assert "leads outside" in _failed(got["9_0"])


async def test_a_swapped_working_directory_is_not_followed(
    backend: BatchBackend, root: Path
) -> None:
    job = root / BATCH / "0"
    os.rename(job / "work", job / "old-work")
    os.symlink("/etc", job / "work")
    got = await backend.get_diagnostics([_handle()], "hostname")
    assert "leads outside" in _failed(got["9_0"])


async def test_a_stream_replaced_by_a_link_is_not_followed(
    backend: BatchBackend, root: Path
) -> None:
    stdout = root / BATCH / "0" / "stdout"
    stdout.unlink()
    os.symlink("/etc/hostname", stdout)
    got = await backend.get_diagnostics([_handle()])
    assert "leads outside" in _failed(got["9_0"])


async def test_a_special_file_is_a_failure_not_empty_content(
    backend: BatchBackend, root: Path
) -> None:
    os.mkfifo(root / BATCH / "0" / "work" / "pipe")
    got = await backend.get_diagnostics([_handle()], "pipe")
    assert "not a regular file" in _failed(got["9_0"])


async def test_a_missing_file_is_still_reported_as_missing(backend: BatchBackend) -> None:
    got = await backend.get_diagnostics([_handle()], "absent")
    assert "no absent for this job" in _failed(got["9_0"])


async def test_diagnostics_and_output_refuse_a_handle_whose_id_is_not_the_batchs(
    backend: BatchBackend, root: Path, tmp_path: Path
) -> None:
    (root / BATCH / "chunks").write_text("@@chunk 0 2 9\n")
    good, wrong = _handle("9_0", 0), _handle("9_1", 0)  # 9_1 is copy 1, not copy 0
    diagnostics = await backend.get_diagnostics([good, wrong])
    assert isinstance(diagnostics["9_0"], Diagnostics)
    assert "is Slurm job 9_0, not 9_1" in _failed(diagnostics["9_1"])
    outputs = await backend.get_output([good, wrong], tmp_path / "out")
    assert isinstance(outputs["9_0"], JobOutput)
    assert "is Slurm job 9_0, not 9_1" in _failed(outputs["9_1"])
    assert not (tmp_path / "out" / "9_1").exists()


@pytest.mark.parametrize(
    "make_dest",
    [
        lambda tmp: (tmp / "a-file").write_text("x") and tmp / "a-file",
        lambda tmp: (tmp / "f").write_text("x") and tmp / "f" / "below",
        lambda tmp: Path("/proc/self/no/such/dir"),
        lambda tmp: Path("bad\x00name"),
    ],
)
async def test_an_impossible_dest_is_refused_naming_it_before_any_remote_call(
    backend: BatchBackend, transport: _Local, tmp_path: Path, make_dest: Any
) -> None:
    dest = make_dest(tmp_path)
    with pytest.raises(SpecificationRejectedError) as info:
        await backend.get_output([_handle()], dest)
    assert info.value.field == "dest"
    assert transport.calls == 0


def test_chunk_records_come_only_from_the_manifest_section() -> None:
    """File names in the find section are the payload's: one spelling a chunk record (and the
    find marker) must not forge or hide a batch's record; bytes that are not UTF-8 are kept."""
    from intercede._batch import collect

    manifest = f"@@manifest {BATCH}\n{{}}\n@@end\n".encode()  # its @@end opens no record
    head = manifest + f"@@chunks {BATCH}\n@@chunk 0 2 9\n@@end\n".encode()
    forged = f"x\n@@chunks {BATCH}\n@@chunk 0 2 666\n@@end\n@@find\n".encode()
    listing = head + b"@@find\nf 1 " + forged + b"\x00\x00"
    assert collect.chunk_records(listing) == {BATCH: ((0, 2, "9"),)}
    assert collect.chunk_records(b"@@find\nf 1 " + forged) == {}
    odd = f"@@chunks {BATCH}\n\xff\xfe\n@@chunk 2 1 10\n@@end\n@@find\n".encode("latin-1")
    assert collect.chunk_records(odd) == {BATCH: ((2, 1, "10"),)}
