"""Fault injection on a running stack, for reliability tests.

A backend's error handling is only believable when tested against real failures: a dead
slurmctld, a frozen login node, a worker cut off the network. These hooks act on the stack's
containers through Docker; they do not wait for Slurm to notice (tests decide what to wait for,
e.g. with :func:`wait_node_state`, whose :class:`NodeInState` is a readiness probe like the
stack's own).
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.cluster import Cluster, StackError
from harness.readiness import SINFO_FORMAT, NotReady, Problem, parse_sinfo, wait_for

__all__ = [
    "NodeInState",
    "disconnect",
    "drop_ssh_sessions",
    "kill",
    "node_state",
    "pause",
    "reconnect",
    "restart",
    "start",
    "stop",
    "unpause",
    "wait_node_state",
]


def stop(cluster: Cluster, node: str, timeout: int = 10) -> None:
    """Graceful stop (SIGTERM, then SIGKILL after ``timeout``)."""
    cluster.container(node).stop(timeout=timeout)


def start(cluster: Cluster, node: str) -> None:
    cluster.container(node).start()


def kill(cluster: Cluster, node: str, signal: str = "SIGKILL") -> None:
    """Abrupt death: the daemons get no chance to tell anyone."""
    cluster.container(node).kill(signal=signal)


def pause(cluster: Cluster, node: str) -> None:
    """Freeze every process (cgroup freezer): connections hang instead of being refused."""
    cluster.container(node).pause()


def unpause(cluster: Cluster, node: str) -> None:
    cluster.container(node).unpause()


def restart(cluster: Cluster, node: str, timeout: int = 10) -> None:
    """Restart keeps the container's writable layer, so Slurm state files survive."""
    cluster.container(node).restart(timeout=timeout)


def disconnect(cluster: Cluster, node: str) -> None:
    """Cut a node off the stack network (it keeps running; peers see timeouts)."""
    network = cluster.docker.networks.get(cluster.network_name)
    network.disconnect(cluster.container(node), force=True)


def reconnect(cluster: Cluster, node: str) -> None:
    """Undo :func:`disconnect`; the alias is restored so the node name resolves again."""
    network = cluster.docker.networks.get(cluster.network_name)
    network.connect(cluster.container(node), aliases=[node])


def drop_ssh_sessions(cluster: Cluster, user: str | None = None) -> int:
    """Kill every sshd process serving ``user`` (default: the submit user) on the login node:
    what a site's idle-session reaper, an sshd restart or a network blip does to a client's
    long-lived connection, while sshd itself keeps accepting new ones. Returns how many
    processes were killed; raises when there was none (the test's premise would be wrong).
    """
    who = user or cluster.user
    code, out = cluster.exec(
        "login", ["pkill", "-KILL", "-e", "-f", f"^sshd(-session)?: {who}[@ ]"]
    )
    killed = sum(1 for line in out.splitlines() if "killed" in line)
    if code != 0 or killed == 0:
        raise StackError(f"no sshd session of {who} to drop on login (pkill: {code}, {out!r})")
    return killed


def node_state(cluster: Cluster, node: str) -> str:
    """Slurm's view of a worker (``idle``, ``down*``, ...), from the controller."""
    code, out = cluster.exec("controller", ["sinfo", "-h", "-N", "-n", node, "-o", SINFO_FORMAT])
    if code != 0:
        raise StackError(f"sinfo failed on controller: {out.strip()}", "controller")
    return parse_sinfo(out).get(node, "")


class NodeInState:
    """Probe: Slurm reports ``node`` in a state whose text contains one of ``accept``."""

    def __init__(self, cluster: Cluster, node: str, accept: Iterable[str]) -> None:
        self.cluster, self.node, self.accept = cluster, node, tuple(accept)
        self.last = ""

    @property
    def waits_for(self) -> str:
        return f"{self.node} in a state with {' or '.join(self.accept)}"

    def problem(self) -> Problem | None:
        self.last = node_state(self.cluster, self.node)
        if any(w in self.last for w in self.accept):
            return None
        return Problem(self.node, f"sinfo state {self.last!r}")


def wait_node_state(
    cluster: Cluster, node: str, accept: Iterable[str], timeout: float = 120.0
) -> str:
    """Wait until Slurm reports ``node`` in a state whose text contains one of ``accept``."""
    probe = NodeInState(cluster, node, accept)
    try:
        wait_for([probe], timeout, interval=1.0)
    except NotReady:
        raise StackError(
            f"node {node} did not reach {probe.accept} within {timeout:.0f}s "
            f"(last: {probe.last!r})",
            node,
        ) from None
    return probe.last
