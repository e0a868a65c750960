"""Reach the resource over SSH with asyncssh: one long-lived connection, many channels.

DIRAC's SSH CE pays a new ``ssh`` process per call (DC-31); here one connection serves every
call and every concurrent operation (each command is a channel on it, at most
``MAX_CHANNELS`` at once). A connection found dropped before a command starts is re-opened with
tenacity (``reconnect_attempts``); a command that may already have run is retried only if it is
idempotent, so a lost ``sbatch`` reply never submits twice. A channel the server refuses
(``MaxSessions``) while the connection is up is retried with back-off on the same connection:
dropping it would kill every other command in flight. Host keys are always verified against
the configured ``known_hosts``. A login the resource rejects pulls the credentials once more
and tries again, so a key or password rotated under a running agent costs one failed login,
not an outage. Once closed, the transport never connects again (``BackendClosedError``), even
for a retry that was already under way.
"""

from __future__ import annotations

import logging
import math
import shlex
from collections.abc import AsyncIterator
from typing import Any, Protocol

import anyio
import asyncssh
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from ..config import SSHBatchConfig
from ..credentials import CredentialSet, SSHPassword, SSHPrivateKey
from ..errors import (
    AuthenticationError,
    BackendClosedError,
    ConfigurationError,
    OperationTimeoutError,
    ResourceUnavailableError,
)
from .transport import CommandResult, OutputLimitError, Sink, StdoutCollector, exchange

_log = logging.getLogger("intercede.ssh")

__all__ = ["MAX_CHANNELS", "CredentialSource", "SSHTransport"]

MAX_CHANNELS = 8
"""Commands in flight at once on the one connection: under OpenSSH's default ``MaxSessions``
of 10. A server with a lower limit (or other clients of the account using it up) refuses
channels; those are asked for again with back-off, never by dropping the connection."""

_CHANNEL_BACKOFF_S = (0.05, 1.0)
"""First and longest pause before asking again for a channel the server refused."""

_READ_SIZE = 1 << 16

_CONNECTION_ERRORS = (OSError, asyncssh.ConnectionLost, asyncssh.DisconnectError, EOFError)


class _Dropped(Exception):
    """The connection failed where a retry cannot run anything twice."""


class _Rejected(Exception):
    """The resource refused the login: the credentials may have been rotated since pulled."""


class CredentialSource(Protocol):
    """The backend's held credentials; ``refresh=True`` pulls from the provider regardless."""

    async def __call__(self, *, refresh: bool = False) -> CredentialSet: ...


class SSHTransport:
    kind = "ssh"

    def __init__(
        self,
        config: SSHBatchConfig,
        credentials: CredentialSource,
    ) -> None:
        self._config = config
        self._credentials = credentials
        self.resource = f"{config.user}@{config.host}:{config.port}"
        self.connections_opened = 0
        self.round_trips = 0
        self._conn: asyncssh.SSHClientConnection | None = None
        self._jump: asyncssh.SSHClientConnection | None = None
        self._connect_lock = anyio.Lock()
        self._channels = anyio.Semaphore(MAX_CHANNELS)
        self._closed = False
        self.channel_retries = 0

    # --- connection ------------------------------------------------------------------------

    async def _connection(self) -> asyncssh.SSHClientConnection:
        async with self._connect_lock:
            self._check_open()
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._conn is not None:
                _log.debug("%s: the connection is closed; reconnecting", self.resource)
            await self._drop()
            await self._check_known_hosts()
            try:
                await self._open_all(await self._credentials())
            except _Rejected:
                _log.debug("%s: login rejected; pulling credentials again", self.resource)
                try:
                    await self._open_all(await self._credentials(refresh=True))
                except _Rejected as exc:
                    raise AuthenticationError(
                        f"{exc} (also with credentials pulled again)"
                    ) from None
            if self._closed:  # closed while we were logging in: do not keep it
                await self._drop()
                self._check_open()
            self.connections_opened += 1
            _log.debug("%s: connected (connection %d)", self.resource, self.connections_opened)
            if self._conn is None:  # _open_all sets it or raises
                raise ResourceUnavailableError(f"{self.resource}: no connection after login")
            return self._conn

    def _check_open(self) -> None:
        if self._closed:
            raise BackendClosedError(f"the SSH transport to {self.resource} is closed")

    async def _check_known_hosts(self) -> None:
        """At connect time, not validation: a config is valid on a host that lacks the file."""
        path = self._config.known_hosts
        try:
            async with await anyio.open_file(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {path}: {exc.strerror or type(exc).__name__}", field="known_hosts"
            ) from None

    async def _open_all(self, creds: CredentialSet) -> None:
        endpoint = self._config.jump_endpoint
        try:
            with anyio.fail_after(self._config.connect_timeout_s * 2):
                if endpoint is not None:
                    user, host, port = endpoint
                    self._jump = await self._open(host, port, user, creds, tunnel=None)
                self._conn = await self._open(
                    self._config.host,
                    self._config.port,
                    self._config.user,
                    creds,
                    tunnel=self._jump,
                )
        except TimeoutError:
            await self._drop()
            raise OperationTimeoutError(
                f"connecting to {self.resource} took more than {self._config.connect_timeout_s:g} s"
            ) from None
        except BaseException:
            await self._drop()  # a jump connection must not outlive a failed login behind it
            raise

    async def _open(
        self,
        host: str,
        port: int,
        user: str,
        creds: CredentialSet,
        *,
        tunnel: asyncssh.SSHClientConnection | None,
    ) -> asyncssh.SSHClientConnection:
        auth: dict[str, Any]
        if self._config.auth == "key":
            key = creds.get(SSHPrivateKey)
            if key is None:
                raise AuthenticationError(f"no SSH private key for {self.resource}")
            try:
                imported = asyncssh.import_private_key(
                    key.pem.get_secret_value(),
                    key.passphrase.get_secret_value() if key.passphrase else None,
                )
            except (asyncssh.KeyImportError, ValueError):
                raise _Rejected(
                    f"the SSH private key for {self.resource} cannot be read "
                    "(wrong format or passphrase)"
                ) from None
            auth = {"client_keys": [imported], "preferred_auth": "publickey"}
        else:
            password = creds.get(SSHPassword)
            if password is None:
                raise AuthenticationError(f"no SSH password for {self.resource}")
            auth = {
                "client_keys": None,
                "password": password.value.get_secret_value(),
                "preferred_auth": "password,keyboard-interactive",
            }
        try:
            return await asyncssh.connect(
                host,
                port,
                tunnel=tunnel if tunnel is not None else (),
                username=user,
                known_hosts=str(self._config.known_hosts),
                config=None,
                agent_path=None,
                connect_timeout=self._config.connect_timeout_s,
                login_timeout=self._config.connect_timeout_s,
                keepalive_interval=self._config.keepalive_interval_s,
                keepalive_count_max=3,
                **auth,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise AuthenticationError(
                f"host key of {host}:{port} not verified against "
                f"{self._config.known_hosts}: {exc.reason}"
            ) from None
        except asyncssh.PermissionDenied:
            raise _Rejected(f"{user}@{host}:{port} rejected our credentials") from None
        except TimeoutError:  # an OSError too: must not be retried as a refused connection
            raise OperationTimeoutError(
                f"connecting to {host}:{port} took more than {self._config.connect_timeout_s:g} s"
            ) from None
        except _CONNECTION_ERRORS as exc:
            raise _Dropped(f"cannot connect to {host}:{port}: {exc}") from None

    async def _drop(self) -> None:
        for conn in (self._conn, self._jump):
            if conn is not None:
                conn.abort()
        self._conn = self._jump = None

    async def aclose(self) -> None:
        self._closed = True  # before the lock: a retry waiting for it must not reconnect
        async with self._connect_lock:
            for conn in (self._conn, self._jump):
                if conn is not None:
                    conn.close()
                    with anyio.move_on_after(5):
                        await conn.wait_closed()
            self._conn = self._jump = None

    # --- commands --------------------------------------------------------------------------

    async def run(
        self,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call limit, part of the contract
        idempotent: bool = True,
        stdout_limit: int | None = None,
        sink: Sink | None = None,
    ) -> CommandResult:
        self._check_open()
        limit = self._config.command_timeout_s if timeout is None else timeout
        command = shlex.join(argv)
        self.round_trips += 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._config.reconnect_attempts),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception_type(_Dropped),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._run_once(
                        command, stdin, limit, idempotent and sink is None, stdout_limit, sink
                    )
        except _Dropped as exc:
            raise ResourceUnavailableError(
                f"{self.resource}: {exc} (after {self._config.reconnect_attempts} attempts)"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        _log.debug(
            "%s: connection dropped (%s); retry %d of %d",
            self.resource,
            error,
            state.attempt_number,
            self._config.reconnect_attempts - 1,
        )

    async def _run_once(
        self,
        command: str,
        stdin: bytes | None,
        limit: float,
        idempotent: bool,
        stdout_limit: int | None,
        sink: Sink | None,
    ) -> CommandResult:
        async with self._channels:
            conn = await self._connection()
            started = False
            try:
                with anyio.fail_after(limit if math.isfinite(limit) else None):
                    process = await self._open_channel(conn, command)
                    started = True
                    try:
                        return await _exchange(process, stdin, StdoutCollector(stdout_limit, sink))
                    finally:
                        process.close()
            except TimeoutError:
                _log.debug("%s: a command timed out after %g s", self.resource, limit)
                raise OperationTimeoutError(
                    f"{self.resource}: command did not finish within {limit:g} s"
                ) from None
            except OutputLimitError:
                # An OSError by inheritance, but the connection is fine: neither drop it nor
                # run the command again.
                raise
            except (asyncssh.ChannelOpenError, *_CONNECTION_ERRORS) as exc:
                await self._forget(conn)
                if started and not idempotent:
                    raise ResourceUnavailableError(
                        f"{self.resource}: connection lost while a non-repeatable command "
                        f"ran; it may or may not have taken effect ({exc})"
                    ) from None
                raise _Dropped(str(exc) or type(exc).__name__) from None

    async def _open_channel(
        self, conn: asyncssh.SSHClientConnection, command: str
    ) -> asyncssh.SSHClientProcess[bytes]:
        """A new channel; refused while the connection is up (the server's ``MaxSessions``,
        shared with other clients of the account), ask again after a pause until the
        command's deadline, without touching the connection other commands run on."""
        pause, longest = _CHANNEL_BACKOFF_S
        while True:
            try:
                return await conn.create_process(command, encoding=None)
            except asyncssh.ChannelOpenError:
                if conn.is_closed():
                    raise
                self.channel_retries += 1
                await anyio.sleep(pause)
                pause = min(pause * 2, longest)

    async def _forget(self, conn: asyncssh.SSHClientConnection) -> None:
        async with self._connect_lock:
            if self._conn is conn:
                await self._drop()


async def _exchange(
    process: asyncssh.SSHClientProcess[bytes], stdin: bytes | None, out: StdoutCollector
) -> CommandResult:
    async def feed() -> None:
        try:
            if stdin:
                process.stdin.write(stdin)
                await process.stdin.drain()
            process.stdin.write_eof()
        except (BrokenPipeError, asyncssh.ChannelOpenError, asyncssh.DisconnectError):
            pass  # the command stopped reading: its exit code says why

    async def wait() -> int | None:
        await process.wait_closed()
        return process.returncode

    return await exchange(feed, _chunks(process.stdout), _chunks(process.stderr), wait, out)


async def _chunks(stream: asyncssh.SSHReader[bytes]) -> AsyncIterator[bytes]:
    while chunk := await stream.read(_READ_SIZE):
        yield chunk
