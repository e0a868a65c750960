"""DIRAC's own agents, utilities and scripts (DIRAC 9.1.22 from ``just dirac-env``) driving the
InterCEde CE against the live Slurm cluster: SiteDirector, PushJobAgent, RemoteRunner,
``killPilotsInQueues``, pilot output on demand and ``dirac-admin-debug-ce``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cluster import Cluster
from harness.scenarios import SCENARIOS, ScenarioContext

# One worker runs them one after another: each sizes its pilots to the cluster's four CPUs.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dirac-scenarios")]

# What each scenario must have run of DIRAC's own code (a subset: the load-bearing paths).
EXPECTED_CODE = {
    "site_director": {
        "DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector._submitPilotsToQueue",
        "DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector.monitorPilots",
        "DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities.QueueCECache.drop",
    },
    "wms_utilities": {"DIRAC.WorkloadManagementSystem.Service.WMSUtilities.killPilotsInQueues"},
    "pilot_output": {
        "DIRAC.MonitoringSystem.Service.WebAppHandler.WebAppHandler.export_getPilotOutput",
    },
    "dirac_admin_debug_ce": {
        "DIRAC.WorkloadManagementSystem.scripts.dirac_admin_debug_ce.main",
    },
}


@pytest.fixture
def ctx(slurm_cluster: Cluster, remote_workdir: str, tmp_path: Path) -> ScenarioContext:
    work_area = remote_workdir.removeprefix(slurm_cluster.work_root).strip("/")
    return ScenarioContext(slurm_cluster, timeout_s=180, work_area=work_area, scratch=tmp_path)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_dirac_scenario(ctx: ScenarioContext, name: str) -> None:
    result = SCENARIOS[name](ctx)
    result.raise_for_failure()
    assert result.dc_ids
    assert result.code_paths
    assert all(path.startswith("DIRAC.") for path in result.code_paths)
    assert EXPECTED_CODE.get(name, set()) <= set(result.code_paths)
    if name == "dirac_admin_debug_ce":
        assert result.transcript is not None
        assert "100% of the queues correctly fetched job log" in result.transcript
        # DIRAC's script ran the login node's BatchSystem = Host queue too
        assert any(
            c.name == "a BatchSystem = Host queue is among the queues" for c in result.checks
        )
