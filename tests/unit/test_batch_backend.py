"""BatchBackend's own logic: lifetime, credentials, per-id answers, submit replies.

The transport here is a recorder that answers what a cluster would; the real thing runs in
tests/e2e/test_backend_*.py. The local transport is exercised for real (it is only anyio
subprocesses).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import pytest
from pydantic import SecretStr, ValidationError

from intercede import (
    AuthenticationError,
    BackendClosedError,
    ConfigurationError,
    CredentialRequirements,
    CredentialSet,
    Diagnosable,
    FileCredentials,
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
from intercede._batch.factory import build
from intercede._batch.local import LocalTransport
from intercede._batch.slurm import SlurmScheduler
from intercede._batch.transport import CommandResult, OutputLimitError, Sink

pytestmark = pytest.mark.anyio

RESOURCE = "submit@ce.example.org:22"
OK_STATUS = b"@@squeue\n@@rc squeue 0\n@@sacct\n@@rc sacct 0\n@@exits\n@@end\n"


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
        self._reply = reply or (lambda script: CommandResult(0, OK_STATUS, b""))

    async def run(
        self,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
        stdout_limit: int | None = None,
        sink: Sink | None = None,
    ) -> CommandResult:
        self.round_trips += 1
        self.scripts.append(argv[-1])
        self.stdins.append(stdin)
        result = self._reply(argv[-1])
        if sink is not None:
            await sink(result.stdout)
            return result._replace(stdout=b"")
        return result

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
    reply = CommandResult(
        0,
        b"@@squeue\n41_0|RUNNING|submit|intercede\n@@rc squeue 0\n"
        b"@@sacct\n41_1|COMPLETED\n@@rc sacct 0\n@@exits\n@@end\n",
        b"",
    )
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
    assert b"J 41_0 " in (transport.stdins[0] or b"")
    assert "41_0" not in transport.scripts[0]  # ids travel on stdin


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
    assert base64.b64encode(b"hunter2-secret") in (transport.stdins[0] or b"")


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


# --- credentials renewal -----------------------------------------------------------------


async def test_refresh_pulls_even_when_the_held_set_is_fresh(config: SSHBatchConfig) -> None:
    provider = CountingProvider(_key(dt.timedelta(hours=2)))
    backend = _backend(config, provider=provider)
    await backend.credentials()
    await backend.credentials()
    assert provider.calls == 1
    await backend.credentials(refresh=True)
    assert provider.calls == 2


class CountingFiles:
    """A real ``FileCredentials`` that counts how often the backend pulls."""

    def __init__(self, provider: FileCredentials) -> None:
        self.calls = 0
        self._provider = provider

    async def get(self, requirements: CredentialRequirements) -> CredentialSet:
        self.calls += 1
        return await self._provider.get(requirements)

    async def __aenter__(self) -> CountingFiles:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_file_credentials_are_read_again_once_stale(
    config: SSHBatchConfig, tmp_path: Path
) -> None:
    key_file = tmp_path / "id"
    key_file.write_text("old key")
    key_file.chmod(0o600)
    # Re-read interval inside the 300 s margin: every operation finds the set stale.
    stale = CountingFiles(FileCredentials(ssh_key_file=key_file, reread_after_s=200))
    backend = _backend(config, provider=stale)
    await backend.counts()
    key_file.write_text("rotated key")
    await backend.counts()
    assert stale.calls == 2
    held = (await backend.credentials()).get(SSHPrivateKey)
    assert held is not None
    assert held.pem.get_secret_value() == "rotated key"
    # Re-read interval beyond the margin: held between operations.
    fresh = CountingFiles(FileCredentials(ssh_key_file=key_file, reread_after_s=3600))
    backend = _backend(config, provider=fresh)
    for _ in range(3):
        await backend.counts()
    assert fresh.calls == 1


# --- the SSH transport against an in-process SSH server ----------------------------------


class _Login:
    """What the test server accepts, changeable while it runs (a rotation on the site)."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()
        self.password: str | None = None
        self.attempts = 0
        self.connections: list[asyncssh.SSHServerConnection] = []
        self.tunnels = 0
        self.drops = 0
        self.refusals = 0
        self.ran: list[str] = []


class _Server(asyncssh.SSHServer):
    def __init__(self, login: _Login) -> None:
        self._login = login

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._login.connections.append(conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self._login.attempts += 1
        return key.export_public_key() in self._login.keys

    def password_auth_supported(self) -> bool:
        return self._login.password is not None

    def validate_password(self, username: str, password: str) -> bool:
        self._login.attempts += 1
        return password == self._login.password

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        self._login.tunnels += 1
        return True


async def _answer(process: asyncssh.SSHServerProcess[Any], login: _Login) -> None:
    command = process.command or ""
    if command.startswith("drop") and login.drops > 0:
        login.drops -= 1  # the link dies while the command runs
        process.channel.get_connection().abort()
        return
    if command.startswith("sleep "):
        await anyio.sleep(float(command.split()[1]))
    login.ran.append(command)
    process.stdout.write(f"ran {command}\n")
    process.exit(0)


@pytest.fixture
async def ssh_server(tmp_path: Path) -> AsyncIterator[tuple[_Login, SSHBatchConfig]]:
    login = _Login()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        lambda: _Server(login),
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        process_factory=lambda process: _answer(process, login),
    )
    port = server.sockets[0].getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    config = SSHBatchConfig(
        transport="ssh",
        host="127.0.0.1",
        port=port,
        user="submit",
        known_hosts=known,
        work_root="/home/submit/w",
        connect_timeout_s=5,
    )
    try:
        yield login, config
    finally:
        server.close()
        await server.wait_closed()


def _keypair(tmp_path: Path, name: str) -> tuple[Path, bytes]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / name
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    return path, key.export_public_key()


async def test_a_rejected_login_pulls_once_more_and_retries(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    login, config = ssh_server
    old_file, old_public = _keypair(tmp_path, "old")
    new_file, new_public = _keypair(tmp_path, "new")
    key_file = tmp_path / "id"
    key_file.write_bytes(old_file.read_bytes())
    key_file.chmod(0o600)
    login.keys = {old_public}
    provider = CountingFiles(FileCredentials(ssh_key_file=key_file, reread_after_s=3600))
    async with build(config, provider) as backend:
        transport = backend.transport
        assert (await transport.run(["echo", "1"])).stdout == b"ran echo 1\n"
        assert (provider.calls, transport.connections_opened) == (1, 1)
        # The site rotates the key and drops our connection; the agent's held key is now stale.
        key_file.write_bytes(new_file.read_bytes())
        login.keys = {new_public}
        for conn in login.connections:
            conn.close()
        assert (await transport.run(["echo", "2"])).stdout == b"ran echo 2\n"
        assert provider.calls == 2  # exactly one extra pull
        assert transport.connections_opened == 2


async def test_a_login_rejected_twice_is_an_authentication_error(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    login, config = ssh_server
    key_file, _ = _keypair(tmp_path, "id")
    _, other_public = _keypair(tmp_path, "other")
    login.keys = {other_public}
    provider = CountingFiles(FileCredentials(ssh_key_file=key_file, reread_after_s=3600))
    async with build(config, provider) as backend:
        with pytest.raises(AuthenticationError, match="rejected our credentials") as info:
            await backend.transport.run(["true"])
        assert "also with credentials pulled again" in str(info.value)
        assert provider.calls == 2
        assert backend.transport.connections_opened == 0


async def test_password_from_a_file_logs_in(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    login, config = ssh_server
    login.password = "s3cret pass"
    password_file = tmp_path / "password"
    password_file.write_text("s3cret pass\n")
    config = config.model_copy(update={"auth": "password"})
    async with build(config, FileCredentials(ssh_password_file=password_file)) as backend:
        assert (await backend.transport.run(["true"])).rc == 0


async def test_the_jump_host_endpoint_is_used(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    login, config = ssh_server
    key_file, public = _keypair(tmp_path, "id")
    login.keys = {public}
    config = config.model_copy(update={"jump_host": f"hop@[127.0.0.1]:{config.port}"})
    async with build(config, FileCredentials(ssh_key_file=key_file)) as backend:
        assert (await backend.transport.run(["true"])).rc == 0
    assert login.tunnels == 1  # reached through the bastion, not directly
    assert len(login.connections) == 2


@pytest.mark.parametrize("problem", ["missing", "directory"])
async def test_known_hosts_is_checked_when_connecting(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path, problem: str
) -> None:
    login, config = ssh_server
    key_file, public = _keypair(tmp_path, "id")
    login.keys = {public}
    absent = tmp_path / "no_such_known_hosts"
    if problem == "directory":
        absent.mkdir()
    config = config.model_copy(update={"known_hosts": absent})
    async with build(config, FileCredentials(ssh_key_file=key_file)) as backend:
        with pytest.raises(ConfigurationError) as info:
            await backend.transport.run(["true"])
    assert info.value.field == "known_hosts"
    assert str(absent) in str(info.value)
    assert login.connections == []  # refused before any connection


# --- SSH retry rules, closing, refused channels ------------------------------------------


async def _connected(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> tuple[_Login, BatchBackend]:
    login, config = ssh_server
    key_file, public = _keypair(tmp_path, "id")
    login.keys = {public}
    return login, build(config, FileCredentials(ssh_key_file=key_file))


async def test_a_lost_idempotent_command_is_retried_on_a_new_connection(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    login, backend = await _connected(ssh_server, tmp_path)
    async with backend:
        login.drops = 1
        result = await backend.transport.run(["drop", "status"])
        assert result.stdout == b"ran drop status\n"
        assert backend.transport.connections_opened == 2
        assert login.ran == ["drop status"]


async def test_output_over_its_limit_keeps_the_connection_and_is_not_run_again(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    """``OutputLimitError`` is a ``ConnectionError`` by inheritance; it must not be taken for a
    lost connection (dropped, then the command run a second time)."""
    login, backend = await _connected(ssh_server, tmp_path)
    async with backend:
        with pytest.raises(OutputLimitError, match="more than 4 bytes"):
            await backend.transport.run(["echo", "long"], stdout_limit=4)
        assert login.ran == ["echo long"]
        assert (await backend.transport.run(["true"])).stdout == b"ran true\n"
        assert backend.transport.connections_opened == 1


async def test_local_output_over_its_limit_is_the_limit_error_not_a_start_failure() -> None:
    local = LocalTransport(command_timeout_s=30)
    with pytest.raises(OutputLimitError) as caught:
        await local.run(["echo", "long"], stdout_limit=4)
    assert str(caught.value) == "the command printed more than 4 bytes; stopped reading"


async def test_a_new_connection_uses_the_held_credentials_without_pulling_again(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    login, config = ssh_server
    key_file, public = _keypair(tmp_path, "id")
    login.keys = {public}
    provider = CountingFiles(FileCredentials(ssh_key_file=key_file, reread_after_s=3600))
    async with build(config, provider) as backend:
        await backend.transport.run(["true"])
        login.drops = 1
        await backend.transport.run(["drop", "status"])
        assert backend.transport.connections_opened == 2
        assert provider.calls == 1


async def test_a_lost_submit_is_not_retried(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    login, backend = await _connected(ssh_server, tmp_path)
    async with backend:
        await backend.transport.run(["true"])
        login.drops = 1
        with pytest.raises(ResourceUnavailableError, match="may or may not have taken effect"):
            await backend.transport.run(["drop", "sbatch"], idempotent=False)
        assert login.ran == ["true"]  # never run a second time
        assert backend.transport.connections_opened == 1


async def test_closing_while_a_retry_waits_opens_no_new_connection(
    ssh_server: tuple[_Login, SSHBatchConfig], tmp_path: Path
) -> None:
    login, backend = await _connected(ssh_server, tmp_path)
    await backend.transport.run(["true"])
    login.drops = 1
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await backend.transport.run(["drop", "status"])
        except BackendClosedError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await anyio.sleep(0.1)  # the command was dropped; the retry waits for its back-off
        await backend.aclose()
    assert len(outcome) == 1
    assert backend.transport.connections_opened == 1
    assert len(login.connections) == 1


async def test_a_refused_channel_is_retried_without_dropping_the_connection(
    tmp_path: Path,
) -> None:
    login = _Login()
    key_file, public = _keypair(tmp_path, "id")
    login.keys = {public}

    class Refusing(_Server):
        def session_requested(self) -> Any:
            if login.refusals > 0:
                login.refusals -= 1
                return False  # what MaxSessions looks like to the client

            async def handler(
                stdin: asyncssh.SSHReader[bytes],
                stdout: asyncssh.SSHWriter[bytes],
                stderr: asyncssh.SSHWriter[bytes],
            ) -> None:
                command = stdout.channel.get_command() or ""
                if command.startswith("sleep "):
                    await anyio.sleep(float(command.split()[1]))
                stdout.write(f"ran {command}\n".encode())
                stdout.channel.exit(0)

            return handler

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        lambda: Refusing(login), "127.0.0.1", 0, server_host_keys=[host_key], encoding=None
    )
    port = server.sockets[0].getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    config = SSHBatchConfig(
        transport="ssh",
        host="127.0.0.1",
        port=port,
        user="submit",
        known_hosts=known,
        work_root="/w",
    )
    try:
        async with build(config, FileCredentials(ssh_key_file=key_file)) as backend:
            transport = backend.transport
            results: dict[str, bytes] = {}

            async def run(command: str, idempotent: bool) -> None:
                result = await transport.run(command.split(), idempotent=idempotent)
                results[command] = result.stdout

            async with anyio.create_task_group() as group:
                group.start_soon(run, "sleep 0.5", False)  # a submit in flight
                await anyio.sleep(0.2)
                login.refusals = 3
                group.start_soon(run, "echo second", False)
            assert results == {"sleep 0.5": b"ran sleep 0.5\n", "echo second": b"ran echo second\n"}
            assert transport.connections_opened == 1
            assert transport.channel_retries == 3  # type: ignore[attr-defined]
    finally:
        server.close()
        await server.wait_closed()


def test_work_root_with_sbatch_pattern_characters_is_refused(tmp_path: Path) -> None:
    for bad in ("/home/%u/w", "/home/a\\b"):
        with pytest.raises(ValueError, match="work_root"):
            SSHBatchConfig(
                transport="ssh",
                host="h",
                user="u",
                known_hosts=tmp_path / "k",
                work_root=bad,
            )


# --- submit in doubt, transient refusals, one deadline -----------------------------------


async def test_a_submit_in_doubt_names_its_batch(config: SSHBatchConfig, exe: str) -> None:
    from intercede import SubmitUnavailableError

    def lost(script: str) -> CommandResult:
        raise ResourceUnavailableError("connection lost while a non-repeatable command ran")

    transport = Recorder(lost)
    with pytest.raises(SubmitUnavailableError) as info:
        await _backend(config, transport).submit(SubmissionSpec(executable=exe), 3)
    batch = info.value.batch
    assert len(batch) == 32
    assert batch in str(info.value)
    assert f"intercede:{batch}" in transport.scripts[0]  # the jobs carry it as --comment
    assert isinstance(info.value, ResourceUnavailableError)


async def test_an_unreadable_submit_reply_is_in_doubt_not_a_crash(
    config: SSHBatchConfig, exe: str
) -> None:
    from intercede import SubmitUnavailableError

    transport = Recorder(lambda script: CommandResult(0, b"@@chunk 0 two 41\n", b""))
    with pytest.raises(SubmitUnavailableError, match="unreadable reply"):
        await _backend(config, transport).submit(SubmissionSpec(executable=exe), 2)


async def test_a_submit_that_runs_out_of_time_names_its_batch(
    config: SSHBatchConfig, exe: str
) -> None:
    from intercede._batch.backend import SubmitTimeoutError

    class Slow(Recorder):
        async def run(self, argv: list[str], **kw: Any) -> CommandResult:
            await anyio.sleep(5)
            raise AssertionError("unreachable")

    quick = config.model_copy(update={"transfer_timeout_s": 0.2})
    with pytest.raises(SubmitTimeoutError) as info:
        await _backend(quick, Slow()).submit(SubmissionSpec(executable=exe))
    assert isinstance(info.value, OperationTimeoutError)
    assert info.value.batch in str(info.value)


@pytest.mark.parametrize(
    "message",
    [
        "sbatch: error: Slurm job queue full, sleeping and retrying",
        "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
        "(job submit limit, user's size and/or time limits)",
        "sbatch: error: Batch job submission failed: Resource temporarily unavailable",
    ],
)
async def test_transient_sbatch_refusals_are_unavailable_not_rejected(
    config: SSHBatchConfig, exe: str, message: str
) -> None:
    reply = f"@@fail 0\n{message}\n".encode()
    transport = Recorder(lambda script: CommandResult(93, reply, b""))
    with pytest.raises(ResourceUnavailableError):
        await _backend(config, transport).submit(SubmissionSpec(executable=exe))


async def test_one_deadline_covers_a_hanging_credential_provider(
    config: SSHBatchConfig,
) -> None:
    class Hanging(CountingProvider):
        async def get(self, requirements: CredentialRequirements) -> CredentialSet:
            await anyio.sleep(30)
            raise AssertionError("unreachable")

    quick = config.model_copy(update={"command_timeout_s": 0.3})
    with anyio.fail_after(5):
        with pytest.raises(OperationTimeoutError, match="get_status"):
            await _backend(quick, provider=Hanging()).get_status([_handle()])


async def test_submitted_handles_are_exactly_what_validation_would_build(
    config: SSHBatchConfig, exe: str
) -> None:
    reply = b"@@chunk 0 1001 41\n@@chunk 1001 1001 9041\n@@chunk 2002 3 99999041\n"
    transport = Recorder(lambda script: CommandResult(0, reply, b""))
    submission = await _backend(config, transport).submit(SubmissionSpec(executable=exe), 2005)
    assert sorted(submission.handles) == list(range(2005))
    for index, handle in submission.handles.items():
        rebuilt = JobHandle.model_validate(handle.model_dump())
        assert rebuilt == handle
        assert JobHandle.parse(str(handle)) == handle
        assert handle.routing.endswith(f"/{index}")
    assert submission.handles[2004].id == "99999041_2"


async def test_a_resource_too_long_for_dirac_s_column_is_refused_even_among_many(
    config: SSHBatchConfig, exe: str
) -> None:
    class LongName(Recorder):
        resource = "submit@" + "h" * 200 + ":22"

    transport = LongName(lambda script: CommandResult(0, b"@@chunk 0 3 4242424242\n", b""))
    with pytest.raises(ValidationError, match="more than 255"):
        await _backend(config, transport).submit(SubmissionSpec(executable=exe), 3)
