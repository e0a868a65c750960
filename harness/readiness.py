"""Readiness: small probes, each naming what it waits for, and the wait that runs them.

Readiness is judged from what Slurm itself reports (``sinfo``, ``sacctmgr``), never from how
long we waited. A probe answers one question ("is every worker usable in sinfo?") with a
:class:`Problem` or None; :func:`wait_for` asks a list of them in order until none has a
problem, a problem is fatal (a dead container does not come back) or time runs out. Probes
reach the stack only through the callables they are given, so unit tests drive them with canned
answers; the parsers below pin down the odd cases: state suffixes such as ``idle*``, a node
listed once per partition, Slurm versions that spell states differently.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "SINFO_FORMAT",
    "USABLE_STATES",
    "AccountingReady",
    "ContainersUp",
    "NotReady",
    "Probe",
    "Problem",
    "SlurmNodesUsable",
    "SshLogin",
    "accounting_problem",
    "first_problem",
    "node_problems",
    "parse_sacctmgr_column",
    "parse_sinfo",
    "wait_for",
]

# One line per node and partition: "<node>|<long state>".
SINFO_FORMAT = "%N|%T"

# States in which a node is up and schedulable. A busy shared stack is still ready.
USABLE_STATES = frozenset({"idle", "mixed", "allocated", "completing", "planned"})


@dataclass(frozen=True)
class Problem:
    """Why the stack is not ready yet, and which service to blame in the error."""

    service: str
    detail: str
    fatal: bool = False
    """True when waiting cannot help (a container that exited does not restart itself)."""


def parse_sinfo(text: str) -> dict[str, str]:
    """Map node -> lowercase state; the trailing flag characters stay (``idle*``)."""
    states: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or "|" not in line:
            continue
        node, _, state = line.partition("|")
        states[node.strip()] = state.strip().lower()
    return states


def _base_state(state: str) -> tuple[str, bool]:
    """Split Slurm's decorations: '*' not responding, '~' powered off, '#' powering up, etc."""
    responding = not state.endswith("*")
    base = state.rstrip("*~#!%$@^-")
    # Compound states such as "idle+drain" or "mixed+planned"; the first word is the base.
    return base.split("+")[0], responding


def node_problems(states: Mapping[str, str], expected: Iterable[str]) -> list[Problem]:
    problems: list[Problem] = []
    for node in expected:
        state = states.get(node)
        if state is None:
            problems.append(Problem(node, "not listed by sinfo"))
            continue
        base, responding = _base_state(state)
        drained = "drain" in state
        if not responding or drained or base not in USABLE_STATES:
            problems.append(Problem(node, f"sinfo state {state!r}"))
    return problems


def parse_sacctmgr_column(text: str) -> list[str]:
    """``sacctmgr -n -P`` prints one value per line; blank lines carry no meaning."""
    return [line.strip().split("|")[0] for line in text.splitlines() if line.strip()]


def accounting_problem(
    clusters_out: str, assoc_out: str, cluster: str, user: str
) -> Problem | None:
    if cluster not in parse_sacctmgr_column(clusters_out):
        return Problem("dbd", f"cluster {cluster!r} not registered in accounting")
    if user not in parse_sacctmgr_column(assoc_out):
        return Problem("dbd", f"user {user!r} has no association on cluster {cluster!r}")
    return None


# ---------------------------------------------------------------- probes

Run = Callable[[Sequence[str]], tuple[int, str]]
"""A command on one node: argv in, (exit code, stdout+stderr) out."""


class Probe(Protocol):
    """One readiness question; ``waits_for`` says in words what a pass means."""

    @property
    def waits_for(self) -> str: ...

    def problem(self) -> Problem | None: ...


@dataclass(frozen=True)
class ContainersUp:
    """Every node's container exists, runs and is not unhealthy (no health check counts)."""

    containers: Callable[[], Mapping[str, Any]]
    nodes: Sequence[str]

    @property
    def waits_for(self) -> str:
        return "every node's container running and healthy"

    def problem(self) -> Problem | None:
        containers = self.containers()
        for node in self.nodes:
            c = containers.get(node)
            if c is None:
                return Problem(node, "container missing", fatal=True)
            if c.status != "running":
                return Problem(node, f"container {c.status}", fatal=True)
            health = (c.attrs.get("State", {}).get("Health") or {}).get("Status", "none")
            if health not in ("healthy", "none"):
                return Problem(node, f"health {health}")
        return None


@dataclass(frozen=True)
class SlurmNodesUsable:
    """``sinfo`` on the controller lists every worker in a schedulable state."""

    controller: Run
    workers: Sequence[str]

    @property
    def waits_for(self) -> str:
        return f"workers {', '.join(self.workers)} usable in sinfo"

    def problem(self) -> Problem | None:
        code, out = self.controller(["sinfo", "-h", "-N", "-o", SINFO_FORMAT])
        if code != 0:
            return Problem("controller", f"sinfo failed: {out.strip()}")
        problems = node_problems(parse_sinfo(out), self.workers)
        return problems[0] if problems else None


@dataclass(frozen=True)
class AccountingReady:
    """slurmdbd knows the cluster and the submit user's association on it."""

    controller: Run
    cluster: str
    user: str

    @property
    def waits_for(self) -> str:
        return f"cluster {self.cluster} and user {self.user} registered in accounting"

    def problem(self) -> Problem | None:
        code, clusters = self.controller(["sacctmgr", "-n", "-P", "list", "cluster"])
        if code != 0:
            return Problem("dbd", f"sacctmgr failed: {clusters.strip()}")
        _, assoc = self.controller(
            [
                "sacctmgr",
                "-n",
                "-P",
                "list",
                "assoc",
                f"cluster={self.cluster}",
                f"user={self.user}",
                "format=User",
            ]
        )
        return accounting_problem(clusters, assoc, self.cluster, self.user)


@dataclass(frozen=True)
class SshLogin:
    """The submit user logs in to the login node over SSH and Slurm answers there."""

    ssh: Callable[[str, float], tuple[int, str]]
    user: str
    timeout: float = 20.0

    @property
    def waits_for(self) -> str:
        return f"ssh login as {self.user}"

    def problem(self) -> Problem | None:
        try:
            code, out = self.ssh("sinfo -h -o %P", self.timeout)
        except subprocess.TimeoutExpired:
            return Problem("login", "ssh timed out")
        if code != 0:
            return Problem("login", f"ssh as {self.user} failed ({code}): {out.strip()}")
        return None


def first_problem(probes: Iterable[Probe]) -> Problem | None:
    """The first probe's problem, in order; later probes are not asked (they would fail too)."""
    for probe in probes:
        problem = probe.problem()
        if problem is not None:
            return problem
    return None


class NotReady(Exception):
    """The wait ended on ``problem``: fatal at once, or still there at the deadline."""

    def __init__(self, problem: Problem, timeout: float | None) -> None:
        super().__init__(problem.detail)
        self.problem = problem
        self.timeout = timeout
        """None when the problem was fatal; else the deadline that passed, in seconds."""


def wait_for(
    probes: Sequence[Probe],
    timeout: float,
    interval: float = 0.5,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Ask ``probes`` until none has a problem; raise :class:`NotReady` otherwise."""
    deadline = clock() + timeout
    while True:
        problem = first_problem(probes)
        if problem is None:
            return
        if problem.fatal:
            raise NotReady(problem, None)
        if clock() >= deadline:
            raise NotReady(problem, timeout)
        sleep(interval)
