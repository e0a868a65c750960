"""A real multi-node Slurm cluster in containers, for interCEde's end-to-end tests.

Why containers and not a mock: a backend is only finished when it works against the real
daemons (IC-ADR-002). The stack is database (MariaDB), dbd (slurmdbd), controller (slurmctld),
workers (slurmd) and a login node (sshd), on one user network, with the submit user's home on a
shared volume like a site's shared filesystem.

:class:`Cluster` is the one handle tests and the CLI hold. It composes the parts, each in its
own module: :mod:`harness.stack` (which stack, its containers), :mod:`harness.lifecycle` (up,
reuse, down), :mod:`harness.readiness` (the probes "ready" is made of), :mod:`harness.nodes`
(exec, ssh, logs), :mod:`harness.provision` (secrets, containers, client files) and
:mod:`harness.faults` (breaking it on purpose).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Self, Unpack

from harness.config import DEFAULT_PARTITIONS, Partition, StackSpec, state_dir
from harness.lifecycle import Lifecycle
from harness.nodes import ExecOptions, NodeAccess
from harness.readiness import Problem
from harness.stack import (
    DEFAULT_STACK,
    Log,
    NodeStatus,
    Stack,
    StackError,
    default_stack_name,
    log_to_stderr,
)

__all__ = ["DEFAULT_STACK", "Cluster", "NodeStatus", "StackError", "default_stack_name"]


class Cluster(Stack):
    """Lifecycle and access to one named stack; usable as a context manager.

    It is the :class:`Stack` (name, spec, files, containers) and hands the rest to its parts:
    ``lifecycle`` (up, reuse, down, readiness) and ``nodes_access`` (exec, ssh, logs).
    Construction does no I/O. Several processes may hold a ``Cluster`` for the same name: all
    state lives in Docker (labels) and in the stack's state directory.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        variant: str | None = None,
        workers: int = 2,
        partitions: Sequence[str] = DEFAULT_PARTITIONS,
        image: str | None = None,
        slurmd_timeout: int = 30,
        ready_timeout: float = 300.0,
        state_root: Path | None = None,
        keep_on_exit: bool = False,
        log: Log = log_to_stderr,
    ) -> None:
        name = name or default_stack_name()
        spec = StackSpec(
            name=name,
            variant=variant or os.environ.get("SLURM_VARIANT", "bookworm"),
            workers=workers,
            partitions=tuple(Partition(p, default=(i == 0)) for i, p in enumerate(partitions)),
            slurmd_timeout=slurmd_timeout,
        )
        super().__init__(
            spec,
            state_dir=state_dir(name, state_root),
            image=image or os.environ.get("INTERCEDE_STACK_IMAGE") or None,
            log=log,
        )
        self.nodes_access = NodeAccess(self)
        self.lifecycle = Lifecycle(self, self.nodes_access, ready_timeout)
        self.keep_on_exit = keep_on_exit

    @property
    def ssh_port(self) -> int:
        return self.nodes_access.ssh_port

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.keep_on_exit:
            self.down()

    def up(self) -> bool:
        """Bring the stack up or reuse a running healthy one; True when it was reused."""
        return self.lifecycle.up()

    def down(self) -> None:
        self.lifecycle.down()

    def is_running(self) -> bool:
        return self.lifecycle.is_running()

    def ensure_image(self) -> str:
        return self.lifecycle.ensure_image()

    def leftovers(self) -> dict[str, list[str]]:
        return self.lifecycle.leftovers()

    def readiness_problem(self) -> Problem | None:
        return self.lifecycle.readiness_problem()

    def wait_ready(self, timeout: float | None = None) -> None:
        self.lifecycle.wait_ready(timeout)

    # ---------------------------------------------------------------- node access

    def exec(
        self, node: str, argv: Sequence[str], **options: Unpack[ExecOptions]
    ) -> tuple[int, str]:
        """Run a command inside a node's container; returns (exit code, stdout+stderr)."""
        return self.nodes_access.exec(node, argv, **options)

    def ssh_argv(self, *remote: str, batch: bool = True) -> list[str]:
        return self.nodes_access.ssh_argv(*remote, batch=batch)

    def ssh(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        return self.nodes_access.ssh(command, timeout)

    def status(self) -> list[NodeStatus]:
        return self.nodes_access.status()

    def logs(self, node: str | None = None, tail: int | None = None) -> dict[str, str]:
        return self.nodes_access.logs(node, tail)

    def dump_logs(self, directory: Path | None = None) -> Path:
        return self.nodes_access.dump_logs(directory)
