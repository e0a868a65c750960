"""Which stack: its name, its spec, its files on the host, and its containers as Docker lists them.

Every other part of the harness (lifecycle, node access, readiness, faults) starts from a
:class:`Stack`. It does no I/O when built; the Docker client is made on first use and never
starts an engine (only :meth:`harness.lifecycle.Lifecycle.up` does that).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import engine
from harness.config import StackSpec, cluster_name, report_dir

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker
    from docker.models.containers import Container

__all__ = [
    "CONFIG_MOUNT",
    "DEFAULT_STACK",
    "LABEL_IMAGE",
    "LABEL_NODE",
    "LABEL_PARTITIONS",
    "LABEL_ROLE",
    "LABEL_STACK",
    "LABEL_VARIANT",
    "LABEL_WORKERS",
    "Log",
    "NodeStatus",
    "Stack",
    "StackError",
    "default_stack_name",
    "log_to_stderr",
    "reuse_mismatch",
    "role",
]

LABEL_STACK = "org.intercede.stack"
LABEL_NODE = "org.intercede.node"
LABEL_ROLE = "org.intercede.role"
LABEL_VARIANT = "org.intercede.variant"
LABEL_WORKERS = "org.intercede.workers"
LABEL_IMAGE = "org.intercede.image"
LABEL_PARTITIONS = "org.intercede.partitions"
DEFAULT_STACK = "intercede"
CONFIG_MOUNT = "/etc/intercede"

Log = Callable[[str], None]


def default_stack_name() -> str:
    return os.environ.get("INTERCEDE_STACK", DEFAULT_STACK)


def log_to_stderr(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


def role(node: str) -> str:
    return "worker" if node.startswith("worker") else node


class StackError(RuntimeError):
    """The stack could not be brought up or used; the message names the failing service."""

    def __init__(self, message: str, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


@dataclass(frozen=True)
class NodeStatus:
    """One container's state as Docker sees it, for ``status`` and for diagnostics."""

    node: str
    container: str
    state: str
    health: str


def reuse_mismatch(
    labels: Mapping[str, str],
    *,
    image: str,
    partitions: Sequence[str],
    running_image: str | None = None,
    running_partitions: Sequence[str] | None = None,
) -> str | None:
    """Why a running stack is not the one asked for, or None when it may be reused.

    Labels written at creation are the record. Stacks from before those labels fall back to
    what Docker and Slurm report (the container's image reference, ``sinfo``'s partitions);
    when neither source knows, the stack is not trusted: recreating costs seconds, a
    ``client.toml`` naming partitions that do not exist costs an afternoon.
    """
    have_image = labels.get(LABEL_IMAGE) or running_image
    if have_image != image:
        return f"it runs image {have_image or '(unknown)'}, not {image}"
    label = labels.get(LABEL_PARTITIONS)
    have = tuple(label.split(",")) if label else running_partitions
    if have is None or tuple(have) != tuple(partitions):
        shown = ",".join(have) if have is not None else "(unknown)"
        return f"it has partitions {shown}, not {','.join(partitions)}"
    return None


class Stack:
    """One named stack's identity and containers; shared by every part that acts on it.

    The name and what follows from it are fixed at construction. ``spec`` may be replaced (a
    reused stack keeps the worker count it was created with), so what depends on it is read
    through it each time and the parts hold the ``Stack``, never a copy of its spec.
    """

    def __init__(
        self,
        spec: StackSpec,
        *,
        state_dir: Path,
        image: str | None,
        log: Log,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.variant_name = spec.variant
        self.state_dir = state_dir
        self.client_config_path = state_dir / "client.toml"
        self.key_path = state_dir / "id_ed25519"
        self.known_hosts_path = state_dir / "known_hosts"
        self.cluster_name = cluster_name(spec.name)
        self.network_name = f"{spec.name}-net"
        self.image = image
        self.log = log
        self._cli: docker.DockerClient | None = None

    @property
    def logs_dir(self) -> Path:
        """Where a failed run saves every container's log: ``<report folder>/logs/<stack>/``.

        Read when asked: the report folder follows ``INTERCEDE_REPORT_DIR`` at that moment.
        """
        return report_dir() / "logs" / self.name

    @property
    def queues(self) -> tuple[str, ...]:
        return self.spec.queues

    @property
    def user(self) -> str:
        return self.spec.submit_user

    @property
    def home(self) -> str:
        return self.spec.home

    @property
    def work_root(self) -> str:
        return self.spec.work_root

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.spec.nodes

    @property
    def workers(self) -> tuple[str, ...]:
        return tuple(n for n in self.nodes if n.startswith("worker"))

    def container_name(self, node: str) -> str:
        return f"{self.name}-{node}"

    @property
    def docker(self) -> docker.DockerClient:
        """A client for the engine that answers; never installs or starts one.

        Read-only commands (status, logs, down, ssh) must not turn a machine without Docker
        into one with a daemon running: only ``up`` calls :func:`engine.ensure_engine`.
        """
        if self._cli is None:
            self._cli = engine.client()
        return self._cli

    def labels(self, **extra: str) -> dict[str, str]:
        return {LABEL_STACK: self.name, **extra}

    def filters(self) -> dict[str, Any]:
        return {"label": f"{LABEL_STACK}={self.name}"}

    def containers(self) -> dict[str, Container]:
        found = self.docker.containers.list(all=True, filters=self.filters())
        return {str(c.labels.get(LABEL_NODE, c.name)): c for c in found}

    def container(self, node: str) -> Container:
        import docker.errors

        try:
            return self.docker.containers.get(self.container_name(node))
        except docker.errors.NotFound as exc:
            raise StackError(f"stack {self.name}: no container for {node}", node) from exc
