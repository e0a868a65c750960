"""The stack itself is a real Slurm cluster: multi-node, accounted, reachable over SSH.

Every later e2e test trusts these properties, so they are checked against the daemons
directly, without interCEde in between.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness import faults
from harness.cluster import Cluster
from harness.config import HOST_QUEUE, HOST_SLOTS

pytestmark = pytest.mark.e2e

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def run(cluster: Cluster, command: str, node: str = "login") -> str:
    code, out = cluster.exec(node, ["bash", "-lc", command], user=cluster.user)
    assert code == 0, f"{command!r} on {node} failed ({code}):\n{out}"
    return out


def wait_job(cluster: Cluster, job_id: str, timeout: float = 120.0) -> dict[str, str]:
    """Poll sacct (the source DIRAC trusts) until the job reaches a terminal state."""

    def probe() -> dict[str, str]:
        out = run(cluster, f"sacct -n -X -P -j {job_id} -o JobID,State,ExitCode,Partition,NodeList")
        for line in out.splitlines():
            fields = line.split("|")
            if fields[0] == job_id:
                return dict(
                    zip(["id", "state", "exit", "partition", "nodes"], fields, strict=False)
                )
        return {}

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.5),
        # slurmdbd may briefly hold a finished job without its start record (empty partition):
        # wait for the complete row, as a careful status poller would.
        retry=retry_if_result(
            lambda r: r.get("state", "").split(" ")[0] not in TERMINAL or not r.get("partition")
        ),
        reraise=True,
    )
    return dict(retrying(probe))


def test_srun_spans_two_distinct_nodes(slurm_cluster: Cluster) -> None:
    out = run(slurm_cluster, "srun --quiet -N2 -p main hostname 2>/dev/null")
    hosts = set(out.split())
    assert len(hosts) == 2, out
    assert hosts <= set(slurm_cluster.workers)


def test_ssh_batch_job_output_lands_on_shared_volume(
    slurm_cluster: Cluster, remote_workdir: str
) -> None:
    marker = uuid.uuid4().hex
    command = (
        f"cd {remote_workdir} && sbatch --parsable -o out.txt "
        f"--wrap 'echo {marker}; hostname; id -un'"
    )
    proc = subprocess.run(
        slurm_cluster.ssh_argv(command), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "StrictHostKeyChecking=yes" in slurm_cluster.ssh_argv()
    job_id = proc.stdout.strip().split(";")[0]
    info = wait_job(slurm_cluster, job_id)
    assert info["state"] == "COMPLETED", info
    assert info["exit"] == "0:0", info
    # Read it from a worker other than the login node: that is what "shared" means.
    code, out = slurm_cluster.exec("worker1", ["cat", f"{remote_workdir}/out.txt"])
    assert code == 0, out
    lines = out.split()
    assert lines[0] == marker
    assert lines[1] in slurm_cluster.workers
    assert lines[2] == slurm_cluster.user


def test_sacct_reports_finished_job_and_partitions_accept_jobs(
    slurm_cluster: Cluster, remote_workdir: str
) -> None:
    assert set(slurm_cluster.queues) >= {"main", "second"}
    jobs = {}
    for queue in slurm_cluster.queues:
        out = run(
            slurm_cluster,
            f"cd {remote_workdir} && sbatch --parsable -p {queue} -o {queue}.out --wrap true",
        )
        jobs[queue] = out.strip().split(";")[0]
    for queue, job_id in jobs.items():
        info = wait_job(slurm_cluster, job_id)
        assert info["state"] == "COMPLETED", info
        assert info["partition"] == queue, info


def test_two_node_batch_job_on_main(slurm_cluster: Cluster, remote_workdir: str) -> None:
    out = run(
        slurm_cluster,
        f"cd {remote_workdir} && sbatch --parsable -N2 -p main -o two.out --wrap 'srun hostname'",
    )
    info = wait_job(slurm_cluster, out.strip().split(";")[0])
    assert info["state"] == "COMPLETED", info
    hosts = set(run(slurm_cluster, f"cat {remote_workdir}/two.out").split())
    assert len(hosts) == 2, hosts


def test_client_files_match_the_stack(slurm_cluster: Cluster) -> None:
    import tomllib

    data = tomllib.loads(slurm_cluster.client_config_path.read_text())
    assert data["defaults"]["port"] == slurm_cluster.ssh_port
    assert data["defaults"]["user"] == slurm_cluster.user
    assert set(data["queues"]) == {*slurm_cluster.queues, HOST_QUEUE}
    assert data["queues"][HOST_QUEUE] == {"scheduler": "host", "slots": HOST_SLOTS}
    assert slurm_cluster.key_path.stat().st_mode & 0o777 == 0o600
    assert f"[127.0.0.1]:{slurm_cluster.ssh_port} " in slurm_cluster.known_hosts_path.read_text()


@pytest.fixture(scope="module")
def throwaway(slurm_cluster: Cluster) -> Iterator[Cluster]:
    """A one-worker stack with a short SlurmdTimeout, shared by every fault test here.

    Faults are injected into it, never into the shared stack, so these tests may run next to
    the others. Each test leaves its worker idle again; teardown checks nothing is left.
    """
    name = f"{slurm_cluster.name}-tmp{uuid.uuid4().hex[:6]}"
    extra = Cluster(
        name, variant=slurm_cluster.variant_name, workers=1, slurmd_timeout=10, log=print
    )
    try:
        assert extra.up() is False
        yield extra
    finally:
        extra.down()
    assert extra.leftovers() == {"containers": [], "networks": [], "volumes": []}


def assert_job_runs_on(cluster: Cluster, node: str) -> None:
    code, out = cluster.exec(
        "login", ["timeout", "120", "srun", "-p", "main", "hostname"], user=cluster.user
    )
    assert code == 0, out
    assert out.strip() == node
    # srun returns before the node leaves "completing"; a fault injected then would strand the
    # job's completion, so hand the next test an idle node, as the fixture promises.
    faults.wait_node_state(cluster, node, ["idle"], timeout=90)


@pytest.mark.xdist_group("throwaway-stack")
def test_killed_worker_goes_down_and_returns(throwaway: Cluster) -> None:
    faults.kill(throwaway, "worker1")
    state = faults.wait_node_state(throwaway, "worker1", ["down"], timeout=90)
    assert "down" in state
    faults.start(throwaway, "worker1")
    faults.wait_node_state(throwaway, "worker1", ["idle"], timeout=90)
    assert_job_runs_on(throwaway, "worker1")


@pytest.mark.xdist_group("throwaway-stack")
def test_disconnected_worker_stops_responding_and_reconnect_brings_it_back(
    throwaway: Cluster,
) -> None:
    """The issue's "cut a node off the network and reconnect it", seen from slurmctld."""
    faults.disconnect(throwaway, "worker1")
    try:
        state = faults.wait_node_state(throwaway, "worker1", ["down"], timeout=90)
        # "*": the controller cannot reach slurmd, as opposed to an admin's "down".
        assert state.startswith("down"), state
        assert state.endswith("*"), state
        # The container itself still runs: only the network is gone.
        assert throwaway.container("worker1").status == "running"
    finally:
        faults.reconnect(throwaway, "worker1")
    state = faults.wait_node_state(throwaway, "worker1", ["idle"], timeout=90)
    assert "*" not in state, state
    assert_job_runs_on(throwaway, "worker1")


@pytest.mark.xdist_group("throwaway-stack")
def test_restarted_worker_returns_idle_and_runs_jobs(throwaway: Cluster) -> None:
    before = throwaway.container("worker1").attrs["State"]["StartedAt"]
    faults.restart(throwaway, "worker1")
    after = throwaway.container("worker1")
    after.reload()
    assert after.attrs["State"]["StartedAt"] != before
    faults.wait_node_state(throwaway, "worker1", ["idle"], timeout=90)
    assert_job_runs_on(throwaway, "worker1")


@pytest.mark.xdist_group("throwaway-stack")
def test_stopped_worker_goes_down_and_start_brings_it_back(throwaway: Cluster) -> None:
    faults.stop(throwaway, "worker1")
    container = throwaway.container("worker1")
    assert container.status == "exited"
    state = faults.wait_node_state(throwaway, "worker1", ["down"], timeout=90)
    assert "down" in state
    faults.start(throwaway, "worker1")
    faults.wait_node_state(throwaway, "worker1", ["idle"], timeout=90)
    assert_job_runs_on(throwaway, "worker1")
