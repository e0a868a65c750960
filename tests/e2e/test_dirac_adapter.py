"""The reference DIRAC adapter against the real Slurm cluster: the dirac-admin-debug-ce sequence
(DC-37) through DIRAC's CE method names, plus kill, clean-up and configuration errors.

The ``ParametersDict`` is built the way DIRAC's CS would hold it (strings), from the harness's
attributes, so the translation layer is exercised end to end too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from docs.examples.dirac_adapter import InterCEdeComputingElement, getCE

if TYPE_CHECKING:
    from harness.cluster import Cluster

pytestmark = pytest.mark.e2e

FINAL = {"Done", "Failed", "Aborted"}
PROXY = "-----BEGIN FAKE PROXY-----e2e-not-a-real-proxy"
PILOT = f"""#!/bin/sh
echo "stamp=$DIRAC_PILOT_STAMP"
echo "proxy-mode=$(stat -c %a "$INTERCEDE_SECRET_PROXY")"
[ "$(cat "$INTERCEDE_SECRET_PROXY")" = "{PROXY}" ] && echo "proxy-content=ok"
echo "proxy-in-env=$(env | grep -c 'FAKE PROXY')"
echo "$DIRAC_PILOT_STAMP" > result.txt
mkdir -p sub && echo nested > sub/data.txt
echo "to-stderr" >&2
"""
SLEEPER = "#!/bin/sh\necho started\nsleep 300\n"


def parameters(cluster: Cluster, workdir: str, **extra: str) -> dict[str, Any]:
    return {
        "CEType": "SSH",
        "BatchSystem": "SLURM",
        "SSHHost": "127.0.0.1",
        "SSHPort": str(cluster.ssh_port),
        "SSHUser": cluster.user,
        "SSHKey": str(cluster.key_path),
        "SSHKnownHosts": str(cluster.known_hosts_path),
        "Queue": "main",
        "SharedArea": workdir,
        "WorkArea": "pilots",
        "MaxTotalJobs": "10",
        "MaxWaitingJobs": "5",
        # a name of our own, so getCEStatus counts only this test's pilots
        "JobName": f"dirac-{uuid.uuid4().hex[:8]}",
        **extra,
    }


@pytest.fixture
def ce(slurm_cluster: Cluster, remote_workdir: str) -> Iterator[InterCEdeComputingElement]:
    result = getCE("ce.e2e", parameters(slurm_cluster, remote_workdir))
    assert result["OK"], result.get("Message")
    element: InterCEdeComputingElement = result["Value"]
    yield element
    element.close()


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def wait_for(
    ce: InterCEdeComputingElement, refs: Sequence[str], wanted: set[str], timeout: float = 240
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        result = ce.getJobStatus(refs)
        assert result["OK"], result.get("Message")
        statuses: dict[str, str] = result["Value"]
        assert set(statuses) == set(refs)  # keyed by the refs as passed, none missing
        if all(s in wanted for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            pytest.fail(f"pilots did not reach {sorted(wanted)} in {timeout:g} s: {statuses}")
        time.sleep(2)


def test_debug_ce_lifecycle_through_the_adapter(
    ce: InterCEdeComputingElement, tmp_path: Path
) -> None:
    status = ce.getCEStatus()
    assert status["OK"], status.get("Message")
    assert (status["RunningJobs"], status["WaitingJobs"], status["SubmittedJobs"]) == (0, 0, 0)
    assert ce.available()["Value"] == 5  # MaxWaiting=5 free, MaxTotal=10 not reached

    executable = script(tmp_path, "pilot.sh", PILOT)
    submitted = ce.submitJob(executable, PROXY, numberOfJobs=3, outputs=["/"])
    assert submitted["OK"], submitted.get("Message")
    refs: list[str] = submitted["Value"]
    stamps: dict[str, str] = submitted["PilotStampDict"]
    assert len(refs) == 3
    assert set(stamps) == set(refs)
    assert len(set(stamps.values())) == 3
    assert "FailedCopies" not in submitted
    Path(executable).unlink()  # no ExecutableToKeep: staged during submitJob (DC-07)

    stamped = [f"{ref}:::{stamps[ref]}" for ref in refs]
    final = wait_for(ce, [*refs, *stamped], FINAL)
    assert set(final.values()) == {"Done"}, final

    for ref in refs:
        stamp = stamps[ref]
        output = ce.getJobOutput(f"{ref}:::{stamp}")
        assert output["OK"], output.get("Message")
        stdout, stderr = output["Value"]
        assert f"stamp={stamp}\n" in stdout  # each pilot saw its own stamp (DC-06)
        assert "proxy-mode=600\n" in stdout  # the proxy is a 0600 file (DC-08)
        assert "proxy-content=ok\n" in stdout
        assert "proxy-in-env=0\n" in stdout  # and never in the job's environment
        assert PROXY not in stdout
        assert stderr == "to-stderr\n"

        local = tmp_path / "collected" / stamp
        for _ in range(2):  # repeatable collection into the job's directory (DC-16, DC-34)
            placed = ce.getJobOutput(f"{ref}:::{stamp}", str(local))
            assert placed["OK"], placed.get("Message")
            assert placed["Value"] == (str(local / f"{stamp}.out"), str(local / f"{stamp}.err"))
        assert (local / "result.txt").read_text() == f"{stamp}\n"
        assert (local / "sub" / "data.txt").read_text() == "nested\n"
        assert f"stamp={stamp}" in (local / f"{stamp}.out").read_text()

        log = ce.getJobLog(ref)
        assert log["OK"], log.get("Message")
        assert log["Value"].strip()
        assert PROXY not in log["Value"]

    assert ce.getCEStatus()["SubmittedJobs"] == 3
    cleaned = ce.cleanJob(refs)
    assert cleaned["OK"], cleaned.get("Message")
    assert cleaned["Value"] == 3, cleaned["Failed"]
    gone = ce.getJobOutput(refs[0])
    assert gone["OK"] is False
    assert refs[0] in gone["Message"]


def test_kill_a_running_pilot(ce: InterCEdeComputingElement, tmp_path: Path) -> None:
    submitted = ce.submitJob(script(tmp_path, "sleeper.sh", SLEEPER), "", numberOfJobs=2)
    assert submitted["OK"], submitted.get("Message")
    running, spare = submitted["Value"]
    wait_for(ce, [running, spare], {"Running"})
    status = ce.getCEStatus()
    assert (status["RunningJobs"], status["WaitingJobs"]) == (2, 0)

    killed = ce.killJob([running])
    assert killed["OK"], killed.get("Message")
    assert (killed["Value"], killed["Successful"], killed["Failed"]) == (1, {running: True}, {})
    assert wait_for(ce, [running], {"Aborted"}, timeout=60) == {running: "Aborted"}
    assert ce.getJobStatus([spare])["Value"] == {spare: "Running"}

    # a bulk kill attempts every pilot: the finished one is reported, the live one killed
    again = ce.killJob([running, spare])
    assert again["OK"], again.get("Message")
    assert again["Successful"] == {spare: True}
    assert set(again["Failed"]) == {running}
    wait_for(ce, [spare], {"Aborted"}, timeout=60)
    assert ce.cleanJob([running, spare])["Value"] == 2


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"SSHPort": "not-a-port"}, "SSHPort"),
        ({"SSHKnownHosts": ""}, "SSHKnownHosts"),
        ({"SSHKey": "/nonexistent/id_ed25519"}, "SSHKey"),
        ({"SharedArea": "relative/area"}, "SharedArea"),
        ({"BatchSystem": "LSF"}, "BatchSystem"),
    ],
)
def test_bad_parameters_name_the_dirac_key(
    slurm_cluster: Cluster, remote_workdir: str, change: dict[str, str], key: str
) -> None:
    result = getCE("ce.e2e", parameters(slurm_cluster, remote_workdir, **change))
    assert (result["OK"], result["Errno"]) == (False, 1003)
    assert f"ce.e2e: {key}: " in result["Message"]


def test_unreachable_or_rejecting_ce_is_a_typed_s_error(
    slurm_cluster: Cluster, remote_workdir: str
) -> None:
    wrong_user = parameters(slurm_cluster, remote_workdir, SSHUser="nosuchuser")
    with InterCEdeComputingElement.fromParameters("ce.e2e", wrong_user) as element:
        result = element.getCEStatus()
        assert (result["OK"], result["Errno"]) == (False, 1111), result["Message"]
    closed_port = parameters(slurm_cluster, remote_workdir, SSHPort="1", SSHReconnectAttempts="1")
    with InterCEdeComputingElement.fromParameters("ce.e2e", closed_port) as element:
        result = element.getCEStatus()
        assert (result["OK"], result["Errno"]) == (False, 2001), result["Message"]


def test_site_director_cycle_sets_credentials_and_new_parameters(
    slurm_cluster: Cluster, remote_workdir: str, tmp_path: Path
) -> None:
    """What SiteDirector does to a cached CE each cycle: ``setProxy``/``setToken``, read
    ``ce.proxy``; and a changed queue definition re-applied with ``setParameters``, which must
    replace the connection without losing the pilots already submitted."""
    element = InterCEdeComputingElement("ce.e2e")
    first = element.setParameters(
        {"CEType": "InterCEde", **parameters(slurm_cluster, remote_workdir)}
    )
    assert first["OK"], first.get("Message")
    try:
        assert element.setProxy(PROXY)["OK"]
        assert element.setToken("not-used-by-ssh")["OK"]
        assert element.proxy == PROXY
        submitted = element.submitJob(script(tmp_path, "pilot.sh", "#!/bin/sh\necho hi\n"), "")
        assert submitted["OK"], submitted.get("Message")
        (ref,) = submitted["Value"]

        changed = element.setParameters({"MaxWaitingJobs": "2"})
        assert changed["OK"], changed.get("Message")
        assert element.available()["CEInfoDict"]["MaxWaitingJobs"] == 2
        assert wait_for(element, [ref], FINAL) == {ref: "Done"}
        stdout, _ = element.getJobOutput(ref)["Value"]
        assert stdout == "hi\n"
        assert element.cleanJob(ref)["Value"] == 1
    finally:
        element.close()
