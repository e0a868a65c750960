"""DIRAC consumer scenarios: DIRAC's own agents, utilities and scripts against the cluster.

Each scenario is a module of :mod:`harness.dirac`, run in the DIRAC environment (the pinned
``dirac`` release from ``just dirac-env``) as its own process, against a CS file rendered for
the stack by :mod:`harness.dirac_cs`; the queues are ``CEType = InterCEde`` and DIRAC's
``ComputingElementFactory`` builds the CE. Only DIRAC's services are replaced (see
:mod:`harness.dirac._services`). Run one with ``SCENARIOS[name](ctx)``, all with
:func:`run_all`; each returns a :class:`ScenarioResult` naming the DIRAC code paths it ran.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._context import ClusterLike, ScenarioContext
from ._dirac import DiracScenario, dirac_python
from ._result import Check, ScenarioFailed, ScenarioResult

__all__ = [
    "SCENARIOS",
    "Check",
    "ClusterLike",
    "DiracScenario",
    "ScenarioContext",
    "ScenarioFailed",
    "ScenarioResult",
    "dirac_python",
    "run_all",
]

SCENARIOS: Mapping[str, DiracScenario] = {
    scenario.name: scenario
    for scenario in (
        DiracScenario("site_director", "harness.dirac.site_director"),
        # the same agent provisioning the login node's Host CE (no batch system)
        DiracScenario(
            "site_director_host",
            "harness.dirac.site_director",
            with_host=True,
            env=(("HARNESS_SD_BATCH_SYSTEM", "Host"),),
        ),
        DiracScenario("push_job_agent", "harness.dirac.push_job_agent"),
        DiracScenario("remote_runner", "harness.dirac.remote_runner"),
        DiracScenario("wms_utilities", "harness.dirac.wms_utilities"),
        DiracScenario("pilot_output", "harness.dirac.pilot_output"),
        # every queue of the CS, the login node's Host CE included
        DiracScenario("dirac_admin_debug_ce", "harness.dirac.debug_ce", with_host=True),
    )
}


def run_all(ctx: ScenarioContext, names: list[str] | None = None) -> list[ScenarioResult]:
    """Run the named scenarios (all by default) one after another; never stops early."""
    unknown = sorted(set(names or ()) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    return [SCENARIOS[name](ctx) for name in (names or list(SCENARIOS))]
