"""How the backend reaches the resource: run an argv, move tar streams.

Only argv and bytes cross a transport; the scheduler logic never knows which one it uses.
Both implementations count what they do (``connections_opened``, ``round_trips``) so tests and
the benchmark can assert connection reuse and round trips constant in the number of jobs.

A command's stdout is either collected (at most ``stdout_limit`` bytes: more raises
``OutputLimitError`` while reading, so memory stays bounded) or handed chunk by chunk to a
``sink`` as it arrives (the output tar is unpacked while it streams).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, Protocol

import anyio
from anyio.abc import TaskGroup

from ..errors import ResourceUnavailableError
from . import remote

__all__ = [
    "STDERR_LIMIT",
    "CommandResult",
    "OutputLimitError",
    "Sink",
    "StdoutCollector",
    "Transport",
    "exchange",
    "put_tar",
    "shell",
    "tar_command",
    "tar_input",
    "task_group",
]

STDERR_LIMIT = 1 << 20
"""stderr beyond this is dropped (only its head is ever shown in an error message)."""

Sink = Callable[[bytes], Awaitable[None]]


class CommandResult(NamedTuple):
    rc: int
    stdout: bytes
    stderr: bytes


class OutputLimitError(ResourceUnavailableError):
    """A command printed more than its caller allowed; the command was stopped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the command printed more than {limit} bytes; stopped reading")


class Transport(Protocol):
    """What a backend needs from the way it reaches the resource."""

    kind: str
    """``"ssh"`` or ``"local"``: the ``+<kind>`` of a handle's backend name."""
    resource: str
    """The endpoint as handles name it: ``user@host:port`` or ``localhost``."""
    connections_opened: int
    round_trips: int

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
        """Run ``argv`` remotely. ``idempotent=False`` forbids a retry once the command may
        have started (a lost ``sbatch`` reply must not submit twice); a command with a
        ``sink`` is never retried once a byte reached it."""
        ...

    async def aclose(self) -> None: ...


class StdoutCollector:
    """Where a command's stdout goes: into memory up to a limit, or chunk by chunk to a sink."""

    def __init__(self, limit: int | None, sink: Sink | None) -> None:
        self._limit = limit
        self._sink = sink
        self._parts: list[bytes] = []
        self.size = 0

    async def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._limit is not None and self.size > self._limit:
            raise OutputLimitError(self._limit)
        if self._sink is not None:
            await self._sink(chunk)
        else:
            self._parts.append(chunk)

    def value(self) -> bytes:
        return b"".join(self._parts)


async def exchange(
    feed: Callable[[], Coroutine[Any, Any, None]],
    stdout: AsyncIterable[bytes],
    stderr: AsyncIterable[bytes],
    wait: Callable[[], Awaitable[int | None]],
    out: StdoutCollector,
) -> CommandResult:
    """Run one command's streams to their end, the same way for every transport: ``feed``
    writes stdin and closes it (ignoring a command that stopped reading: its exit code says
    why) while stdout goes into ``out`` as it comes (bounded) and stderr's head is kept;
    then ``wait`` gives the exit code (``None``: none reported, read as -1)."""
    err: list[bytes] = []

    async def drain_stderr() -> None:
        size = 0
        async for chunk in stderr:
            if size < STDERR_LIMIT:
                err.append(chunk)
            size += len(chunk)

    async with task_group() as group:
        group.start_soon(feed)
        group.start_soon(drain_stderr)
        async for chunk in stdout:
            await out.add(chunk)
    rc = await wait()
    return CommandResult(rc if rc is not None else -1, out.value(), b"".join(err))


def shell(script: str) -> list[str]:
    """A POSIX ``sh`` script as argv, whatever the remote login shell is."""
    return ["sh", "-c", script]


async def put_tar(
    transport: Transport,
    archive: bytes,
    remote_dir: str,
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Unpack a tar stream under ``remote_dir`` in one channel (no per-file round trips)."""
    result = await transport.run(
        shell(remote.script("tar_in.sh", remote_dir)), stdin=archive, timeout=timeout
    )
    if result.rc != 0:
        raise ResourceUnavailableError(
            f"unpacking into {remote_dir} failed: {result.stderr.decode(errors='replace')}"
        )


def tar_command(remote_dir: str) -> list[str]:
    """``tar -c`` of the NUL-separated paths on stdin (relative to ``remote_dir``): see
    ``tar_out.sh`` (hard links stored as content; tar's exit code and messages kept, so a
    file that vanished, shrank or changed while read fails exactly its job)."""
    return shell(remote.script("tar_out.sh", remote_dir))


def tar_input(paths: list[str]) -> bytes:
    """Paths as tar's NUL-separated list; names the payload wrote in any encoding survive
    (``os.fsencode`` undoes the listing's surrogate escapes)."""
    return b"".join(os.fsencode(path) + b"\0" for path in paths)


@asynccontextmanager
async def task_group() -> AsyncIterator[TaskGroup]:
    """A task group that raises its first failure itself, not wrapped in an exception group,
    so callers keep catching ``OSError``, ``TimeoutError`` and interCEde's errors by type."""
    try:
        async with anyio.create_task_group() as group:
            yield group
    except BaseExceptionGroup as exc:
        first: BaseException = exc
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
