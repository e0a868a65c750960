"""Fault injection on a running stack, for reliability tests.

A backend's error handling is only believable when tested against real failures: a dead
slurmctld, a frozen login node, a worker cut off the network. These hooks act on the stack's
containers through Docker; they do not wait for Slurm to notice (tests decide what to wait for,
e.g. with :func:`wait_node_state`).
"""

from __future__ import annotations

from collections.abc import Iterable

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.cluster import Cluster, StackError
from harness.readiness import SINFO_FORMAT, parse_sinfo

__all__ = [
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


def wait_node_state(
    cluster: Cluster, node: str, accept: Iterable[str], timeout: float = 120.0
) -> str:
    """Wait until Slurm reports ``node`` in a state whose text contains one of ``accept``."""
    wanted = tuple(accept)
    last = [""]

    def probe() -> str:
        last[0] = node_state(cluster, node)
        return last[0]

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(1),
        retry=retry_if_result(lambda s: not any(w in s for w in wanted)),
    )
    try:
        return str(retrying(probe))
    except RetryError:
        raise StackError(
            f"node {node} did not reach {wanted} within {timeout:.0f}s (last: {last[0]!r})",
            node,
        ) from None
