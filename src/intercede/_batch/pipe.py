"""Feed a command's stdout, as it arrives, to blocking code in a worker thread.

``tarfile`` and the local file system are blocking; the transport is async. A bounded memory
stream sits between them, so a tar of any size crosses with a few chunks in memory at a time
and the reader (the unpacker) applies its limits while bytes arrive, not after.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import IO

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from .transport import CommandResult, Transport, task_group

__all__ = ["run_into"]

_CHUNKS_IN_FLIGHT = 16


class _ChannelReader(io.RawIOBase):
    """A blocking file over the receiving end, read from a worker thread; end of file once
    the command is over (whether it finished or failed)."""

    def __init__(self, receive: MemoryObjectReceiveStream[bytes]) -> None:
        self._receive = receive
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            try:
                self._pending = memoryview(anyio.from_thread.run(self._receive.receive))
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


async def run_into(
    transport: Transport,
    argv: list[str],
    consume: Callable[[IO[bytes]], None],
    *,
    stdin: bytes | None,
    timeout: float,  # noqa: ASYNC109 - per-call limit, as Transport.run
) -> CommandResult | None:
    """Run ``argv`` and ``consume`` its stdout in a thread at the same time.

    ``consume`` must read until end of file or stop early; when it stops early the command is
    stopped and ``None`` is returned (there is no complete result to report). A failure of the
    command (timeout, lost connection) is raised once ``consume`` has seen the end of file.
    """
    send, receive = anyio.create_memory_object_stream[bytes](_CHUNKS_IN_FLIGHT)
    results: list[CommandResult] = []

    async def transfer() -> None:
        # BrokenResourceError: the reader stopped early and closed its end.
        async with send:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                results.append(
                    await transport.run(
                        argv, stdin=stdin, timeout=timeout, idempotent=False, sink=send.send
                    )
                )

    async with task_group() as group:
        group.start_soon(transfer)
        with receive:
            reader: IO[bytes] = _ChannelReader(receive)  # type: ignore[assignment]
            await anyio.to_thread.run_sync(consume, reader)
    return results[0] if results else None
