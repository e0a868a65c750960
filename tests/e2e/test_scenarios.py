"""The DIRAC consumer scenarios (DC-21, DC-33..DC-36) against the live Slurm cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cluster import Cluster
from harness.scenarios import SCENARIOS, ScenarioContext

pytestmark = pytest.mark.e2e

# Every check a scenario records when it runs to its end: a scenario that stopped early
# (and so recorded fewer checks) fails here even if what it did record passed.
EXPECTED_CHECKS = {
    "site_director": {
        "slots",
        "submit",
        "PilotStampDict",
        "slots-next-cycle",
        "secret-not-in-scheduler",
        "every-ref-answered",
        "monitoring",
        "transitions",
        "unknown-ageing",
        "queue-paused",
        "pilot-reports",
        "secret-not-in-job-env",
        "purge",
    },
    "push_job_agent": {
        "submit",
        "status",
        "stamped-ref",
        "fetch",
        "checksums",
        "payloadResult",
        "streams-separate",
        "fetch-twice",
        "cleanJob",
        "fetch-after-purge",
    },
    "remote_runner": {
        "submit-ok",
        "submit-failing",
        "submit-killed",
        "kill-running",
        "final",
        "done→0",
        "cleanup",
        "failed→-1",
        "aborted→-2",
        "cleanRemoteJob",
    },
    "wms_utilities": {
        "submit-main",
        "submit-second",
        "grouping",
        "every-ref-answered",
        "bad-refs-reported",
        "real-pilots-killed",
        "aborted-main",
        "aborted-second",
    },
    "pilot_manager": {
        "submit",
        "pilots-done",
        "fresh-facade",
        "pilot-output",
        "unknown-pilot",
        "workdir-removed",
        "purge",
    },
}


@pytest.fixture
def ctx(slurm_cluster: Cluster, remote_workdir: str, tmp_path: Path) -> ScenarioContext:
    return ScenarioContext(
        slurm_cluster, local_root=tmp_path, work_root=remote_workdir, timeout_s=180
    )


def test_every_scenario_is_covered() -> None:
    assert set(EXPECTED_CHECKS) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(ctx: ScenarioContext, name: str) -> None:
    result = SCENARIOS[name](ctx)
    result.raise_for_failure()
    assert {c.name for c in result.checks} == EXPECTED_CHECKS[name]
    assert result.dc_ids
    assert result.duration_s > 0
