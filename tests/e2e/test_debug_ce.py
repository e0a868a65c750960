"""``intercede-debug-ce`` as an operator runs it: a subprocess against the live cluster."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import intercede
import intercede.sync
from harness.cluster import Cluster
from harness.config import HOST_QUEUE
from intercede import JobStatus

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).with_name("intercede-debug-ce")


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    assert CLI.is_file(), f"{CLI} missing: install the project (pip install -e .)"
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_debug_ce_passes_on_every_partition_and_the_host(slurm_cluster: Cluster) -> None:
    done = _run(str(slurm_cluster.client_config_path), "--json", "--timeout", "180")
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is True
    expected = [*slurm_cluster.queues, HOST_QUEUE]
    assert [q["queue"] for q in document["queues"]] == expected
    code, login = slurm_cluster.exec("login", ["hostname"], user=slurm_cluster.user)
    assert code == 0, login
    for queue in document["queues"]:
        assert {n: c["state"] for n, c in queue["checks"].items()} == dict.fromkeys(
            ("load", "submit", "status", "output", "kill", "purge"), "passed"
        ), queue
        # Slurm runs the probe on a worker; the host queue on the login node itself
        node = re.escape(str(login).strip()) if queue["queue"] == HOST_QUEUE else r"worker\d+"
        probe, sleeper = queue["jobs"]
        assert re.fullmatch(r"[0-9a-f]{32}", probe["stamp"])
        assert f"DIRAC_PILOT_STAMP={probe['stamp']}" in probe["stdout"]
        assert re.search(rf"^hostname: {node}$", probe["stdout"], re.MULTILINE)
        assert probe["status"] == "Done"
        # The scheduler log (DIRAC's getJobLog): the wrapper's own lines for this job.
        job_id = probe["ref"].split("/")[3].split("?")[0]
        assert re.search(rf"job {job_id}, started on {node}", probe["log"]), probe["log"]
        assert "exit code 0" in probe["log"]
        assert sleeper["status"] == "Aborted"
    assert document["schema_version"] == 2
    assert (
        document["summary"][2]
        == "- 100% of the queues correctly submitted a job. Issues with 0 queue(s):"
    )


def test_debug_ce_text_output_with_copies_and_keep(slurm_cluster: Cluster) -> None:
    done = _run(
        str(slurm_cluster.client_config_path), "--queue", "second", "--copies", "2", "--keep"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "- 100% of the queues correctly fetched job output. Issues with 0 queue(s):" in done.stdout
    )
    assert "- no queue was asked to purged their jobs (skipped on every queue)." in done.stdout
    assert "[second] submitting 2 job(s)" in done.stdout  # plain progress: not a TTY
    assert done.stdout.count("     scheduler log (tail):") == 2  # one per probe copy
    assert "\x1b[" not in done.stdout
    # --keep lists the jobs with the command that removes them; that command works.
    command = shlex.split(done.stdout.split("remove them with:\n")[1].splitlines()[0])
    assert command[0] == "intercede-debug-ce"
    assert "--purge" in command
    refs = command[command.index("--purge") + 1 :]
    assert len(refs) == 3  # two probes and the kill target
    removed = _run(*command[1:], timeout=120)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert removed.stdout.count(": purged") == 3


def test_check_connects_and_counts_every_queue_without_submitting(
    slurm_cluster: Cluster,
) -> None:
    done = _run(str(slurm_cluster.client_config_path), "--check", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    expected = [*slurm_cluster.queues, HOST_QUEUE]
    assert [line.split(":")[0] for line in lines] == [f"- {q}" for q in expected]
    for line in lines[:-1]:
        assert re.fullmatch(r"- \w+: running \d+, waiting \d+, queue UP", line), line
    # a host has no partition whose state could be asked
    assert re.fullmatch(
        rf"- {HOST_QUEUE}: running \d+, waiting \d+, queue state unknown", lines[-1]
    )


def test_version_names_the_installed_version() -> None:
    import intercede

    done = _run("--version", timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"intercede-debug-ce {intercede.__version__}"


def test_invalid_config_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "client.toml"
    bad.write_text('[queues.main]\nkind = "batch"\ntransport = "ssh"\nwork_root = "/x"\n')
    done = _run(str(bad), timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == "intercede-debug-ce: error: invalid configuration:"
    # every problem at once, one per line, each naming its key
    assert {line.strip().split(":")[0] for line in lines[1:]} == {
        "queues.main.host",
        "queues.main.user",
        "queues.main.known_hosts",
    }
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


def _live(cluster: Cluster, document: dict[str, object]) -> dict[str, str]:
    """The report's jobs that are still waiting or running, asked through the public API of
    each job's own queue (Slurm and host queues alike): nothing should be."""
    site = intercede.load_config(cluster.client_config_path)
    queues = document["queues"]
    assert isinstance(queues, list)
    live: dict[str, str] = {}
    for queue in queues:
        handles = [intercede.JobHandle.parse(job["ref"]) for job in queue["jobs"]]
        if not handles:
            continue
        name = queue["queue"]
        with intercede.sync.backend(site.queues[name], site.credentials_for(name)) as ce:
            for job_id, status in ce.get_status(handles).items():
                if status in (JobStatus.SUBMITTED, JobStatus.WAITING, JobStatus.RUNNING):
                    live[job_id] = status.value
    return live


def test_one_ctrl_c_stops_cleans_up_and_reports_partially(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    """SIGINT while every queue waits for a long job: within 2 s each queue stops, then kills
    and purges what it sent; the partial report is printed and the exit status is 130."""
    script = tmp_path / "long.sh"
    script.write_text('#!/bin/sh\necho "$DIRAC_PILOT_STAMP"\nsleep 600\n')
    script.chmod(0o755)
    proc = subprocess.Popen(
        [str(CLI), str(slurm_cluster.client_config_path), "--json", "--script", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)
    assert proc.poll() is None
    sent = time.monotonic()
    sent_at = dt.datetime.now(dt.UTC)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    took = time.monotonic() - sent
    assert proc.returncode == 130, out + err
    document = json.loads(out)
    assert document["interrupted"] is True
    assert document["exit_code"] == 130
    for queue in document["queues"]:
        assert queue["interrupted"] is True
        assert queue["checks"]["status"]["message"] == "interrupted (Ctrl-C)"
        assert queue["checks"]["purge"]["state"] == "passed", queue["checks"]["purge"]
        stopped = dt.datetime.fromisoformat(queue["interrupted_at"])
        assert (stopped - sent_at).total_seconds() < 2.0
        assert [job["role"] for job in queue["jobs"]] == ["probe"]  # no second job
    assert "interrupted: stopping every queue" in err
    assert "Traceback" not in err
    # Cancelled within 2 s; the cleanup (kill, settle, purge over SSH) takes the rest.
    assert took < 30, took
    assert _live(slurm_cluster, document) == {}


def test_a_probe_that_times_out_is_killed_and_purged(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    script = tmp_path / "long.sh"
    script.write_text('#!/bin/sh\necho "$DIRAC_PILOT_STAMP"\nsleep 600\n')
    script.chmod(0o755)
    started = time.monotonic()
    done = _run(
        str(slurm_cluster.client_config_path),
        "--queue",
        "main",
        "--script",
        str(script),
        "--timeout",
        "8",
        "--json",
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 60  # one deadline for the queue, not one per wait
    document = json.loads(done.stdout)
    queue = document["queues"][0]
    assert queue["checks"]["status"]["message"].startswith("not final after 8 s: ")
    assert queue["checks"]["kill"]["message"] == "not reached: --timeout 8 s"
    assert queue["checks"]["purge"] == {
        "state": "passed",
        "message": "1 job(s) purged (1 killed first)",
    }
    assert [job["left"] for job in queue["jobs"]] == [False]
    assert _live(slurm_cluster, document) == {}


def test_a_second_ctrl_c_exits_at_once(slurm_cluster: Cluster, tmp_path: Path) -> None:
    script = tmp_path / "long.sh"
    script.write_text("#!/bin/sh\nsleep 600\n")
    script.chmod(0o755)
    # The probe it leaves behind is removed by its own job name: tests run side by side on
    # this cluster, and a cancel by user and partition would take their jobs too.
    name = f"dce-sigint-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "client.toml"
    config.write_text(
        slurm_cluster.client_config_path.read_text()
        + f'\n[queues.{name}]\nqueue = "main"\njob_name = "{name}"\n'
    )
    proc = subprocess.Popen(
        [
            str(CLI),
            str(config),
            "--queue",
            name,
            "--script",
            str(script),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 2
    assert proc.returncode == 130
    assert "interrupted again: exiting now" in err
    # It left its probe behind (that is what a second Ctrl-C means): remove it here.
    _, _ = slurm_cluster.ssh(f'scancel -u "$(id -un)" -n {name} || true')


@pytest.fixture
def partition_state(slurm_cluster: Cluster) -> Iterator[Callable[[str], None]]:
    """Set partition ``second``'s state on the controller; restored to UP afterwards."""

    def set_state(state: str) -> None:
        code, out = slurm_cluster.exec(
            "controller", ["scontrol", "update", "PartitionName=second", f"State={state}"]
        )
        assert code == 0, out

    try:
        yield set_state
    finally:
        set_state("UP")


@pytest.mark.faults
@pytest.mark.parametrize("state", ["DOWN", "DRAIN", "INACTIVE", "MISSING"])
def test_a_partition_that_starts_no_jobs_fails_fast_saying_why(
    slurm_cluster: Cluster, partition_state: Callable[[str], None], tmp_path: Path, state: str
) -> None:
    config = slurm_cluster.client_config_path
    queue = "second"
    if state == "MISSING":
        config = tmp_path / "client.toml"
        config.write_text(
            slurm_cluster.client_config_path.read_text() + '\n[queues.nope]\nqueue = "nope"\n'
        )
        queue = "nope"
    else:
        partition_state(state)
    started = time.monotonic()
    done = _run(str(config), "--queue", queue, "--json", timeout=120)
    took = time.monotonic() - started
    assert took < 30, took
    assert done.returncode == 1, done.stdout + done.stderr
    checks = json.loads(done.stdout)["queues"][0]["checks"]
    jobs = json.loads(done.stdout)["queues"][0]["jobs"]
    assert checks["load"] == {
        "state": "failed",
        "message": f"the queue is {state}: running 0, waiting 0",
    }
    assert checks["kill"]["state"] == "failed"
    assert len(jobs) <= 1  # no second job
    if state == "DOWN":
        assert checks["status"]["message"] == (
            "the scheduler will not start it: Waiting (PartitionDown) in second, which is DOWN"
        )
        assert checks["purge"]["message"] == "1 job(s) purged (1 killed first)"
        assert _live(slurm_cluster, json.loads(done.stdout)) == {}
    else:
        assert jobs == []
        assert checks["submit"]["state"] == "failed"
        assert "partition" in checks["submit"]["message"].lower()  # sbatch's own words
