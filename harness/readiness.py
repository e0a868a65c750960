"""Pure parsers and verdicts behind the readiness checks.

Readiness is judged from what Slurm itself reports (``sinfo``, ``sacctmgr``), never from how
long we waited. Keeping the parsing here, away from Docker, lets unit tests pin down the odd
cases: state suffixes such as ``idle*``, a node listed once per partition, Slurm versions that
spell states differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "SINFO_FORMAT",
    "USABLE_STATES",
    "Problem",
    "accounting_problem",
    "node_problems",
    "parse_sacctmgr_column",
    "parse_sinfo",
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
