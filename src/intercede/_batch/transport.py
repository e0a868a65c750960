"""How the backend reaches the resource: run an argv, move tar streams.

Only argv and bytes cross a transport; the scheduler logic never knows which one it uses.
Both implementations count what they do (``connections_opened``, ``round_trips``) so tests and
the benchmark can assert connection reuse and round trips constant in the number of jobs.
"""

from __future__ import annotations

import shlex
from typing import NamedTuple, Protocol

from ..errors import ResourceUnavailableError

__all__ = [
    "CommandResult",
    "Transport",
    "get_tar",
    "put_tar",
    "shell",
]


class CommandResult(NamedTuple):
    rc: int
    stdout: bytes
    stderr: bytes


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
    ) -> CommandResult:
        """Run ``argv`` remotely. ``idempotent=False`` forbids a retry once the command may
        have started (a lost ``sbatch`` reply must not submit twice)."""
        ...

    async def aclose(self) -> None: ...


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
    d = shlex.quote(remote_dir)
    result = await transport.run(
        shell(f"umask 077 && mkdir -p {d} && tar -x -f - -C {d}"), stdin=archive, timeout=timeout
    )
    if result.rc != 0:
        raise ResourceUnavailableError(
            f"unpacking into {remote_dir} failed: {result.stderr.decode(errors='replace')}"
        )


async def get_tar(
    transport: Transport,
    remote_dir: str,
    paths: list[str],
    timeout: float,  # noqa: ASYNC109
) -> bytes:
    """A tar stream of ``paths`` (relative to ``remote_dir``) read over one channel."""
    listing = b"".join(p.encode() + b"\0" for p in paths)
    result = await transport.run(
        shell(
            f"cd {shlex.quote(remote_dir)} && "
            "tar -c -f - --null --no-recursion --ignore-failed-read -T - 2>/dev/null; true"
        ),
        stdin=listing,
        timeout=timeout,
    )
    return result.stdout
