"""DIRAC consumer scenarios: each replays one DIRAC agent's real sequence of CE calls
(DC-21 and DC-33..DC-37 in the consumer analysis) through interCEde's sync facade against the
live Slurm cluster, and returns a :class:`ScenarioResult` (checks, messages, duration).

Run them all with :func:`run_all`, one with ``SCENARIOS[name](ctx)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from . import pilot_manager, push_job_agent, remote_runner, site_director, wms_utilities
from ._context import ClusterLike, MissingCapabilityError, ScenarioContext
from ._result import Check, ScenarioFailed, ScenarioResult

__all__ = [
    "SCENARIOS",
    "Check",
    "ClusterLike",
    "MissingCapabilityError",
    "ScenarioContext",
    "ScenarioFailed",
    "ScenarioResult",
    "run_all",
]

SCENARIOS: Mapping[str, Callable[[ScenarioContext], ScenarioResult]] = {
    "site_director": site_director.run,
    "push_job_agent": push_job_agent.run,
    "remote_runner": remote_runner.run,
    "wms_utilities": wms_utilities.run,
    "pilot_manager": pilot_manager.run,
}


def run_all(ctx: ScenarioContext, names: list[str] | None = None) -> list[ScenarioResult]:
    """Run the named scenarios (all by default) one after another; never stops early."""
    unknown = sorted(set(names or ()) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    return [SCENARIOS[name](ctx) for name in (names or list(SCENARIOS))]
