"""BatchBackend's own logic: lifetime, credentials, per-id answers, submit replies.

The transport here is a recorder that answers what a cluster would; the real thing runs in
tests/e2e/test_backend_*.py. The local transport is exercised for real (it is only anyio
subprocesses).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from intercede import (
    AuthenticationError,
    BackendClosedError,
    CredentialRequirements,
    CredentialSet,
    Diagnosable,
    JobBackend,
    JobHandle,
    JobStatus,
    Killable,
    LoadReporter,
    OperationTimeoutError,
    OutputRetriever,
    Purgeable,
    ResourceUnavailableError,
    SpecificationRejectedError,
    SSHBatchConfig,
    SSHPrivateKey,
    SubmissionSpec,
)
from intercede._batch.backend import BatchBackend
from intercede._batch.local import LocalTransport
from intercede._batch.slurm import SlurmScheduler
from intercede._batch.transport import CommandResult

pytestmark = pytest.mark.anyio

RESOURCE = "submit@ce.example.org:22"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A transport that records scripts and answers with a canned reply."""

    kind = "ssh"
    resource = RESOURCE

    def __init__(self, reply: Callable[[str], CommandResult] | None = None) -> None:
        self.scripts: list[str] = []
        self.stdins: list[bytes | None] = []
        self.connections_opened = 0
        self.round_trips = 0
        self.closed = 0
        self._reply = reply or (lambda script: CommandResult(0, b"@@sacct\n@@end\n", b""))

    async def run(
        self,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> CommandResult:
        self.round_trips += 1
        self.scripts.append(argv[-1])
        self.stdins.append(stdin)
        return self._reply(argv[-1])

    async def aclose(self) -> None:
        self.closed += 1


class CountingProvider:
    def __init__(self, credential: Any = None, error: Exception | None = None) -> None:
        self.calls = 0
        self._credential = credential
        self._error = error

    async def get(self, requirements: CredentialRequirements) -> CredentialSet:
        self.calls += 1
        if self._error is not None:
            raise self._error
        return CredentialSet([self._credential] if self._credential else [])

    async def __aenter__(self) -> CountingProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _key(expires_in: dt.timedelta | None = None) -> SSHPrivateKey:
    expires = dt.datetime.now(dt.UTC) + expires_in if expires_in else None
    return SSHPrivateKey(pem=SecretStr("-----BEGIN KEY-----"), expires_at=expires)


@pytest.fixture
def config(tmp_path: Path) -> SSHBatchConfig:
    known = tmp_path / "known_hosts"
    known.write_text("")
    return SSHBatchConfig(
        transport="ssh",
        host="ce.example.org",
        user="submit",
        known_hosts=known,
        work_root="/home/submit/w",
        queue="main",
    )


def _backend(
    config: SSHBatchConfig, transport: Recorder | None = None, provider: Any = None
) -> BatchBackend:
    return BatchBackend(
        transport or Recorder(), SlurmScheduler(), config, provider or CountingProvider(_key())
    )


def _handle(job_id: str = "41_0", routing: str = "ab" * 16 + "/0", **kw: str) -> JobHandle:
    fields = {"backend": "slurm+ssh", "resource": RESOURCE, "id": job_id, "routing": routing}
    return JobHandle(**{**fields, **kw})


def test_satisfies_every_protocol(config: SSHBatchConfig) -> None:
    backend = _backend(config)
    for protocol in (JobBackend, OutputRetriever, Killable, Purgeable, Diagnosable, LoadReporter):
        assert isinstance(backend, protocol)
    assert backend.name == "slurm+ssh"


async def test_construction_does_no_io_and_close_is_idempotent(config: SSHBatchConfig) -> None:
    transport, provider = Recorder(), CountingProvider(_key())
    backend = _backend(config, transport, provider)
    assert (transport.round_trips, provider.calls) == (0, 0)
    async with backend as entered:
        assert entered is backend
    await backend.aclose()
    assert transport.closed == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.get_status([_handle()]),
        lambda b: b.kill([_handle()]),
        lambda b: b.purge([_handle()]),
        lambda b: b.get_output([_handle()], Path("/tmp/x")),
        lambda b: b.get_diagnostics([_handle()]),
        lambda b: b.counts(),
        lambda b: b.submit(SubmissionSpec(executable="/bin/true")),
    ],
)
async def test_every_call_after_close_is_refused(
    config: SSHBatchConfig, call: Callable[[BatchBackend], Awaitable[object]]
) -> None:
    transport = Recorder()
    backend = _backend(config, transport)
    await backend.aclose()
    with pytest.raises(BackendClosedError):
        await call(backend)
    assert transport.round_trips == 0
    with pytest.raises(BackendClosedError):
        async with backend:
            pass


async def test_credentials_pulled_once_then_held(config: SSHBatchConfig) -> None:
    provider = CountingProvider(_key(dt.timedelta(hours=2)))
    backend = _backend(config, provider=provider)
    for _ in range(3):
        await backend.counts()
    assert provider.calls == 1


async def test_credentials_near_expiry_are_pulled_again(config: SSHBatchConfig) -> None:
    provider = CountingProvider(_key(dt.timedelta(seconds=60)))  # margin is 300 s
    backend = _backend(config, provider=provider)
    for _ in range(3):
        await backend.counts()
    assert provider.calls == 3


async def test_missing_credential_is_an_authentication_error(config: SSHBatchConfig) -> None:
    transport = Recorder()
    backend = _backend(config, transport, CountingProvider(None))
    with pytest.raises(AuthenticationError, match="ssh_private_key"):
        await backend.get_status([_handle()])
    assert transport.round_trips == 0


async def test_provider_failure_never_leaks_its_message(config: SSHBatchConfig) -> None:
    backend = _backend(config, provider=CountingProvider(error=RuntimeError("token=hunter2")))
    with pytest.raises(AuthenticationError) as info:
        await backend.counts()
    assert "hunter2" not in str(info.value)
    assert "RuntimeError" in str(info.value)


async def test_foreign_and_malformed_handles_are_answered_without_io(
    config: SSHBatchConfig,
) -> None:
    transport = Recorder()
    backend = _backend(config, transport)
    bad = [
        _handle(resource="other@host:22"),
        _handle(job_id="notslurm"),
        _handle(job_id="42_0", routing="../../etc"),
        _handle(job_id="43_0", backend="slurm+local"),
    ]
    ids = {h.id for h in bad}
    assert await backend.get_status(bad) == dict.fromkeys(ids, JobStatus.UNKNOWN)
    for outcomes in (
        await backend.kill(bad),
        await backend.purge(bad),
        await backend.get_output(bad, Path("/nonexistent")),
        await backend.get_diagnostics(bad),
    ):
        assert set(outcomes) == ids
        assert all(not o.ok for o in outcomes.values())  # type: ignore[union-attr]
    assert transport.round_trips == 0
    kill = await backend.kill([bad[0]])
    assert "not this backend" in (kill[bad[0].id].reason or "")


async def test_status_answers_every_handle_in_one_trip(config: SSHBatchConfig) -> None:
    reply = CommandResult(0, b"41_0|RUNNING\n@@sacct\n41_1|COMPLETED\n@@end\n", b"")
    transport = Recorder(lambda script: reply)
    backend = _backend(config, transport)
    handles = [_handle(f"41_{i}", f"{'ab' * 16}/{i}") for i in range(3)]
    status = await backend.get_status(handles)
    assert status == {
        "41_0": JobStatus.RUNNING,
        "41_1": JobStatus.DONE,
        "41_2": JobStatus.UNKNOWN,
    }
    assert transport.round_trips == 1
    assert "-j 41 " in transport.scripts[0]


async def test_broken_status_reply_raises(config: SSHBatchConfig) -> None:
    transport = Recorder(lambda script: CommandResult(127, b"", b"squeue: not found"))
    with pytest.raises(ResourceUnavailableError, match="squeue: not found"):
        await _backend(config, transport).get_status([_handle()])


@pytest.fixture
def exe(tmp_path: Path) -> str:
    path = tmp_path / "pilot.sh"
    path.write_text("#!/bin/sh\n")
    return str(path)


async def test_partial_submit_reports_failed_copies(config: SSHBatchConfig, exe: str) -> None:
    reply = b"@@max 2\n@@chunk 0 2 41\n@@fail 2\nsbatch: error: QOSMaxSubmitJobPerUserLimit\n"
    transport = Recorder(lambda script: CommandResult(93, reply, b""))
    backend = _backend(config, transport)
    submission = await backend.submit(SubmissionSpec(executable=exe), 3)
    assert [h.id for h in submission.handles.values()] == ["41_0", "41_1"]
    assert "QOSMaxSubmitJobPerUserLimit" in submission.failures[2]
    assert backend._scheduler.max_array_size == 2  # cached for the next submit
    assert transport.round_trips == 1
    assert transport.stdins[0]  # the tar stream travels on stdin, not the command line


@pytest.mark.parametrize(
    ("rc", "reply", "error"),
    [
        (
            93,
            b"@@fail 0\nsbatch: error: invalid partition specified: x\n",
            SpecificationRejectedError,
        ),
        (
            93,
            b"@@fail 0\nsbatch: error: Unable to contact slurm controller\n",
            ResourceUnavailableError,
        ),
        (91, b"", ResourceUnavailableError),
    ],
)
async def test_refused_submit_raises(
    config: SSHBatchConfig, exe: str, rc: int, reply: bytes, error: type[Exception]
) -> None:
    transport = Recorder(lambda script: CommandResult(rc, reply, b"mkdir: denied"))
    with pytest.raises(error):
        await _backend(config, transport).submit(SubmissionSpec(executable=exe), 2)


@pytest.mark.parametrize(("copies", "field"), [(0, "copies"), ([], "copies"), (["x"], "copies[0]")])
async def test_bad_copies_are_refused_naming_the_field(
    config: SSHBatchConfig, exe: str, copies: Any, field: str
) -> None:
    transport = Recorder()
    with pytest.raises(SpecificationRejectedError) as info:
        await _backend(config, transport).submit(SubmissionSpec(executable=exe), copies)
    assert info.value.field == field
    assert transport.round_trips == 0


async def test_secrets_never_reach_the_command_line(config: SSHBatchConfig, exe: str) -> None:
    from intercede import CopyVars

    transport = Recorder(lambda script: CommandResult(0, b"@@chunk 0 1 41\n", b""))
    await _backend(config, transport).submit(
        SubmissionSpec(executable=exe), [CopyVars(secrets={"TOKEN": b"hunter2-secret"})]
    )
    assert "hunter2-secret" not in transport.scripts[0]
    assert b"hunter2-secret" in (transport.stdins[0] or b"")


async def test_local_transport_runs_and_times_out() -> None:
    transport = LocalTransport(command_timeout_s=0.3)
    result = await transport.run(["sh", "-c", "cat; echo err >&2; exit 3"], stdin=b"in")
    assert result == CommandResult(3, b"in", b"err\n")
    with pytest.raises(OperationTimeoutError, match=r"0\.3 s"):
        await transport.run(["sleep", "5"])
    with pytest.raises(ResourceUnavailableError):
        await transport.run(["/nonexistent/binary"])
    assert transport.round_trips == 3
    assert transport.connections_opened == 0
