"""``intercede-debug-ce`` as an operator runs it: a subprocess against the live cluster."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cluster import Cluster

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).with_name("intercede-debug-ce")


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    assert CLI.is_file(), f"{CLI} missing: install the project (pip install -e .)"
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_debug_ce_passes_on_every_partition(slurm_cluster: Cluster) -> None:
    done = _run(str(slurm_cluster.client_config_path), "--json", "--timeout", "180")
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is True
    assert [q["queue"] for q in document["queues"]] == list(slurm_cluster.queues)
    for queue in document["queues"]:
        assert {n: c["state"] for n, c in queue["checks"].items()} == dict.fromkeys(
            ("load", "submit", "status", "output", "kill", "purge"), "passed"
        ), queue
        probe, sleeper = queue["jobs"]
        assert re.fullmatch(r"[0-9a-f]{32}", probe["stamp"])
        assert f"DIRAC_PILOT_STAMP={probe['stamp']}" in probe["stdout"]
        assert re.search(r"^hostname: worker\d+$", probe["stdout"], re.MULTILINE)
        assert probe["status"] == "Done"
        # The scheduler log (DIRAC's getJobLog): the wrapper's own lines for this job.
        job_id = probe["ref"].split("/")[3].split("?")[0]
        assert re.search(rf"job {job_id}, started on worker\d+", probe["log"]), probe["log"]
        assert "exit code 0" in probe["log"]
        assert sleeper["status"] == "Aborted"
    assert document["summary"][1] == "100% of the queues correctly submitted"


def test_debug_ce_text_output_with_copies_and_keep(slurm_cluster: Cluster) -> None:
    done = _run(
        str(slurm_cluster.client_config_path), "--queue", "second", "--copies", "2", "--keep"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100% of the queues returned the stamped output" in done.stdout
    assert "purge: skipped on every queue" in done.stdout
    assert "[second] submitting 2 job(s)" in done.stdout  # plain progress: not a TTY
    assert done.stdout.count("     scheduler log (tail):") == 2  # one per probe copy
    assert "\x1b[" not in done.stdout


def test_invalid_config_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "client.toml"
    bad.write_text('[queues.main]\nkind = "batch"\ntransport = "ssh"\nwork_root = "/x"\n')
    done = _run(str(bad), timeout=60)
    assert done.returncode == 2
    assert "intercede-debug-ce: error: invalid configuration: queues.main." in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_resource_exits_2_without_traceback(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    text = slurm_cluster.client_config_path.read_text()
    moved = re.sub(r"(?m)^port = \d+$", f"port = {_closed_port()}", text)
    assert moved != text
    config = tmp_path / "client.toml"
    config.write_text(moved)
    done = _run(str(config), "--queue", "main", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "intercede-debug-ce: error: queue main: ResourceUnavailableError" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
