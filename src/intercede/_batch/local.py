"""Run the scheduler's commands on this host (DIRAC's Local CE), with anyio subprocesses."""

from __future__ import annotations

import math
import subprocess
from collections.abc import AsyncIterator

import anyio
from anyio.abc import ByteReceiveStream, Process

from ..errors import BackendClosedError, OperationTimeoutError, ResourceUnavailableError
from .transport import CommandResult, OutputLimitError, Sink, StdoutCollector, exchange

__all__ = ["LocalTransport"]


class LocalTransport:
    """Same interface as ``SSHTransport``; a "connection" is free, so none is ever opened."""

    kind = "local"
    resource = "localhost"

    def __init__(self, *, command_timeout_s: float) -> None:
        self._timeout = command_timeout_s
        self._closed = False
        self.connections_opened = 0
        self.round_trips = 0

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
        if self._closed:
            raise BackendClosedError("the local transport is closed")
        limit = self._timeout if timeout is None else timeout
        self.round_trips += 1
        try:
            with anyio.fail_after(limit if math.isfinite(limit) else None):
                process = await anyio.open_process(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                try:
                    return await _exchange(process, stdin, StdoutCollector(stdout_limit, sink))
                finally:
                    if process.returncode is None:
                        process.kill()
                    with anyio.CancelScope(shield=True):
                        await process.aclose()
        except TimeoutError:
            raise OperationTimeoutError(f"{argv[0]} did not finish within {limit:g} s") from None
        except OutputLimitError:
            raise  # an OSError by inheritance, but the command did run
        except OSError as exc:
            raise ResourceUnavailableError(f"cannot run {argv[0]}: {exc.strerror}") from None

    async def aclose(self) -> None:
        self._closed = True


async def _exchange(process: Process, stdin: bytes | None, out: StdoutCollector) -> CommandResult:
    async def feed() -> None:
        pipe = process.stdin
        if pipe is None:
            return
        try:
            if stdin:
                await pipe.send(stdin)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the command stopped reading: its exit code says why
        finally:
            await pipe.aclose()

    return await exchange(feed, _stream(process.stdout), _stream(process.stderr), process.wait, out)


async def _stream(stream: ByteReceiveStream | None) -> AsyncIterator[bytes]:
    if stream is not None:
        async for chunk in stream:
            yield chunk
