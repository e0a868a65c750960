"""A failed run leaves every container's log in the run's report folder, saved before teardown.

The workflows upload the report folder when a job fails, so this is what a CI post-mortem sees.
One test runs `python -m harness e2e` (`just e2e`; `just regress` runs the same code per
variant) on a throwaway stack with a scenario that fails on purpose; the other runs
`python -m harness logs --save`, which `just test` calls when anything failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import harness.e2e
from harness.__main__ import main as harness_main
from harness.cluster import Cluster
from harness.config import REPO_ROOT
from harness.scenarios import ScenarioContext, ScenarioResult
from harness.scenarios._result import Check

pytestmark = pytest.mark.e2e


def _fails_on_purpose(ctx: ScenarioContext) -> ScenarioResult:
    return ScenarioResult(
        name="fails-on-purpose",
        dc_ids=(),
        checks=[Check("deliberate", False, "this scenario always fails")],
    )


@pytest.mark.xdist_group("throwaway-stack")
def test_failed_e2e_run_saves_every_container_log_before_teardown(
    slurm_cluster: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m harness e2e` (what `just e2e` runs), in process so one scenario can be
    swapped for one that fails; everything else, the stack included, is real."""
    name = f"{slurm_cluster.name}-fail{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "run"
    monkeypatch.setitem(harness.e2e.SCENARIOS, "fails-on-purpose", _fails_on_purpose)
    argv = ["e2e", "--name", name, "--variant", slurm_cluster.variant_name]
    argv += ["--scenario", "fails-on-purpose", "--timeout", "120", "--report-dir", str(folder)]
    assert harness_main(argv) == 1
    err = capsys.readouterr().err
    logs = folder / "logs"
    stack = Cluster(name, variant=slurm_cluster.variant_name)
    assert sorted(p.name for p in logs.iterdir()) == sorted(f"{n}.log" for n in stack.nodes)
    # Real container output, captured while the containers still ran.
    for node in stack.nodes:
        text = (logs / f"{node}.log").read_text()
        assert text.strip(), f"{node}.log is empty"
        assert "(no container)" not in text
    assert "ready for connections" in (logs / "database.log").read_text()
    assert "slurmctld version" in (logs / "controller.log").read_text()
    assert "[entrypoint:login] started" in (logs / "login.log").read_text()
    # Saved before the teardown, in the same folder as the run's report.
    assert err.index(f"container logs saved to {logs}") < err.index(f"tearing down stack {name}")
    assert (folder / "report.json").is_file()
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}


def test_logs_save_writes_every_node_log_to_the_report_folder(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "logs", "--save", "--name", slurm_cluster.name],
        cwd=REPO_ROOT,
        env={**os.environ, "INTERCEDE_REPORT_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "logs" / slurm_cluster.name
    assert f"saved to {target}" in proc.stdout
    for node in slurm_cluster.nodes:
        assert (target / f"{node}.log").read_text().strip(), node
