"""Reaching into a running stack: a command in a node's container, ssh to the login node, logs.

Kept apart from the lifecycle so that a test, a fault or a diagnostic can use a stack someone
else started without any of the code that creates or removes one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict, Unpack

from harness.stack import NodeStatus, Stack, StackError

__all__ = ["ExecOptions", "NodeAccess"]


class ExecOptions(TypedDict, total=False):
    """How :meth:`NodeAccess.exec` runs its command; each left out means the image's default."""

    user: str | None
    workdir: str | None
    environment: dict[str, str] | None


class NodeAccess:
    """exec, ssh and logs on one stack's nodes; the SSH port is read from Docker once."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._port: int | None = None

    @property
    def ssh_port(self) -> int:
        if self._port is None:
            self._port = self._read_port()
        return self._port

    def forget_port(self) -> None:
        """The login container was recreated: the next use asks Docker again."""
        self._port = None

    def _read_port(self) -> int:
        login = self.stack.container("login")
        login.reload()
        bindings = (login.attrs.get("NetworkSettings", {}).get("Ports") or {}).get("22/tcp")
        if not bindings:
            raise StackError(f"stack {self.stack.name}: login has no published SSH port", "login")
        return int(bindings[0]["HostPort"])

    def exec(
        self, node: str, argv: Sequence[str], **options: Unpack[ExecOptions]
    ) -> tuple[int, str]:
        """Run a command inside a node's container; returns (exit code, stdout+stderr)."""
        result = self.stack.container(node).exec_run(
            list(argv),
            user=options.get("user") or "",
            workdir=options.get("workdir"),
            environment=options.get("environment"),
            demux=False,
        )
        output = result.output if isinstance(result.output, bytes) else b""
        return int(result.exit_code or 0), output.decode(errors="replace")

    def ssh_argv(self, *remote: str, batch: bool = True) -> list[str]:
        """System ssh with host-key verification on and only our key and known_hosts."""
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.stack.key_path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.stack.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(self.ssh_port),
        ]
        if batch:
            argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        return [*argv, f"{self.stack.user}@127.0.0.1", *remote]

    def ssh(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        proc = subprocess.run(
            self.ssh_argv(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr

    def status(self) -> list[NodeStatus]:
        containers = self.stack.containers()
        rows = []
        for node in self.stack.nodes:
            c = containers.get(node)
            if c is None:
                rows.append(NodeStatus(node, self.stack.container_name(node), "missing", "-"))
                continue
            health = (c.attrs.get("State", {}).get("Health") or {}).get("Status", "-")
            rows.append(NodeStatus(node, str(c.name), str(c.status), str(health)))
        return rows

    def logs(self, node: str | None = None, tail: int | None = None) -> dict[str, str]:
        """Container logs (stdout+stderr) per node; missing nodes are reported, not raised."""
        containers = self.stack.containers()
        out: dict[str, str] = {}
        for name in [node] if node else list(self.stack.nodes):
            c = containers.get(name)
            if c is None:
                out[name] = "(no container)"
                continue
            data = c.logs(stdout=True, stderr=True, tail=tail if tail is not None else "all")
            out[name] = data.decode(errors="replace") if isinstance(data, bytes) else ""
        return out

    def dump_logs(self, directory: Path | None = None) -> Path:
        """Every node's full container log as ``<node>.log`` (default the stack's logs_dir)."""
        target = directory or self.stack.logs_dir
        target.mkdir(parents=True, exist_ok=True)
        for node, text in self.logs().items():
            (target / f"{node}.log").write_text(text)
        return target
