"""Run the scheduler's commands on this host (DIRAC's Local CE), with anyio subprocesses."""

from __future__ import annotations

import math
import subprocess

import anyio

from ..errors import OperationTimeoutError, ResourceUnavailableError
from .transport import CommandResult

__all__ = ["LocalTransport"]


class LocalTransport:
    """Same interface as ``SSHTransport``; a "connection" is free, so none is ever opened."""

    kind = "local"
    resource = "localhost"

    def __init__(self, *, command_timeout_s: float) -> None:
        self._timeout = command_timeout_s
        self.connections_opened = 0
        self.round_trips = 0

    async def run(
        self,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call limit, part of the contract
        idempotent: bool = True,
    ) -> CommandResult:
        limit = self._timeout if timeout is None else timeout
        self.round_trips += 1
        try:
            with anyio.fail_after(limit if math.isfinite(limit) else None):
                done = await anyio.run_process(
                    argv,
                    input=stdin if stdin is not None else b"",
                    check=False,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
        except TimeoutError:
            raise OperationTimeoutError(f"{argv[0]} did not finish within {limit:g} s") from None
        except OSError as exc:
            raise ResourceUnavailableError(f"cannot run {argv[0]}: {exc.strerror}") from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    async def aclose(self) -> None:
        return None
