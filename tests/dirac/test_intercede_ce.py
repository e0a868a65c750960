"""The InterCEde Computing Element inside the real DIRAC 9.1.22 (runs in ``.venv-dirac``).

DIRAC's own classes build and drive the CE: the CS (``gConfig.loadCFG``), ``getQueue``,
``ComputingElementFactory``, ``QueueCECache`` and the inherited ``ComputingElement`` methods.
Only the interCEde backend is replaced, at the one seam the CE has: the module's
``sync.backend(config, credentials)`` returns the real sync facade (``intercede.sync.wrap``)
over an in-memory async backend that records what it was asked.
"""

from __future__ import annotations

import itertools
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import pytest
from DIRAC import gConfig
from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueue
from DIRAC.Core.Utilities import DErrno
from DIRAC.Resources.Computing.ComputingElement import ComputingElement
from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory
from DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities import QueueCECache
from diraccfg import CFG
from InterCEdeDIRAC.Resources.Computing import InterCEdeComputingElement as module
from InterCEdeDIRAC.Resources.Computing.InterCEdeComputingElement import (
    InterCEdeComputingElement,
)

import intercede.sync
from intercede import (
    BackendConfig,
    CopyVars,
    Diagnostics,
    JobHandle,
    JobID,
    JobStatus,
    LoadCounts,
    OpOutcome,
    Submission,
    SubmissionSpec,
)

SITE = "DIRAC.InterCEdeTest.ch"
CE_NAME = "ce.intercede.test"
QUEUE = "debug"
QUEUE_OPTIONS = {
    "CEType": "InterCEde",
    "BatchSystem": "SLURM",
    "SharedArea": "/shared/dirac",
    "WorkArea": "pilots",
    "NumberOfProcessors": "2",
    "MaxTotalJobs": "10",
    "MaxWaitingJobs": "5",
}


class MemoryBackend:
    """An interCEde async backend in memory; ``refuse`` names copy indexes it will not place."""

    counter = itertools.count(100)

    def __init__(self, config: object) -> None:
        self.config = config
        self.submitted: list[tuple[SubmissionSpec, list[CopyVars]]] = []
        self.statuses: dict[JobID, JobStatus] = {}
        self.refuse: dict[int, str] = {}
        self.streams: dict[str, bytes] = {}
        self.load = LoadCounts(running=0, waiting=0)
        self.closed = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.closed += 1

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        listed = [CopyVars() for _ in range(copies)] if isinstance(copies, int) else list(copies)
        self.submitted.append((spec, listed))
        batch = next(self.counter)
        handles = {}
        for index in range(len(listed)):
            if index not in self.refuse:
                handle = JobHandle(
                    backend="slurm+mem",
                    resource="mem",
                    id=f"{batch}_{index}",
                    routing=f"{batch}/{index}",
                )
                handles[index] = handle
                self.statuses[handle.id] = JobStatus.WAITING
        return Submission(handles=handles, failures=dict(self.refuse))

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        return {h.id: self.statuses.get(h.id, JobStatus.UNKNOWN) for h in handles}

    async def kill(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        outcomes = {}
        for h in handles:
            status = self.statuses.get(h.id)
            if status is None or status.is_final:
                outcomes[h.id] = OpOutcome(ok=False, reason=f"already {status or 'unknown'}")
            else:
                self.statuses[h.id] = JobStatus.ABORTED
                outcomes[h.id] = OpOutcome(ok=True)
        return outcomes

    async def purge(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        return {h.id: OpOutcome(ok=True) for h in handles}

    async def get_diagnostics(
        self, handles: Sequence[JobHandle], name: str | None = None
    ) -> Mapping[JobID, Diagnostics | OpOutcome]:
        key = name or ":stdout"
        return {h.id: Diagnostics(name=key, content=self.streams.get(key, b"")) for h in handles}

    async def counts(self) -> LoadCounts:
        return self.load


class Seam:
    """Stands in for the module's ``intercede.sync``: builds real facades over memory backends."""

    def __init__(self) -> None:
        self.built: list[tuple[BackendConfig, object, MemoryBackend]] = []
        self.refuse: dict[int, str] = {}

    def backend(self, config: BackendConfig, credentials: object) -> intercede.sync.Facade:
        memory = MemoryBackend(config)
        memory.refuse = self.refuse
        self.built.append((config, credentials, memory))
        return intercede.sync.wrap(memory)

    @property
    def last(self) -> MemoryBackend:
        assert self.built, "the CE never built a backend"
        return self.built[-1][2]


@pytest.fixture
def seam(monkeypatch: pytest.MonkeyPatch) -> Seam:
    fake = Seam()
    monkeypatch.setattr(module, "sync", types.SimpleNamespace(backend=fake.backend))
    return fake


def load_cs(site: str, ce: str, queue: str, options: Mapping[str, str]) -> None:
    """Merge one site/CE/queue into DIRAC's in-process CS, as DIRAC's agent tests do."""
    cfg = CFG()
    cfg.loadFromDict(
        {
            "Resources": {
                "Sites": {
                    "DIRAC": {
                        site: {
                            "CEs": {
                                ce: {
                                    "CEType": options.get("CEType", "InterCEde"),
                                    "Queues": {queue: dict(options)},
                                }
                            }
                        }
                    }
                }
            }
        }
    )
    gConfig.loadCFG(cfg)


def build(options: Mapping[str, str] = QUEUE_OPTIONS, ce: str = CE_NAME) -> dict[str, Any]:
    """The CE as RemoteRunner builds it: ``getQueue`` from the CS, then DIRAC's factory."""
    load_cs(SITE, ce, QUEUE, options)
    queue = getQueue(SITE, ce, QUEUE)
    assert queue["OK"], queue
    return ComputingElementFactory().getCE(
        ceType=queue["Value"]["CEType"], ceName=ce, ceParametersDict=queue["Value"]
    )


@pytest.fixture
def ce(seam: Seam) -> InterCEdeComputingElement:
    result = build()
    assert result["OK"], result
    return result["Value"]


def test_factory_loads_the_extension_from_the_cs_cetype(
    ce: InterCEdeComputingElement, seam: Seam
) -> None:
    assert type(ce) is InterCEdeComputingElement
    assert isinstance(ce, ComputingElement)
    assert ce.ceType == "InterCEde"
    assert ce.ceName == CE_NAME
    assert ce.isValid()["OK"]
    # The CS's strings, converted by the base class's setParameters (INTEGER_PARAMETERS).
    assert ce.ceParameters["NumberOfProcessors"] == 2
    assert ce.config.queue == QUEUE
    assert ce.config.work_root == "/shared/dirac/pilots"
    assert ce.config.transport == "local"
    assert not seam.built, "building the CE must do no I/O: the backend opens on first use"


def test_is_valid_names_a_missing_mandatory_parameter(seam: Seam) -> None:
    ce = InterCEdeComputingElement("bare")
    result = ce.isValid()
    assert not result["OK"]
    assert "Queue" in result["Message"]


KNOWN_HOSTS = "<an existing known_hosts file>"
BAD_INPUT = [
    pytest.param(
        {"SSHHost": "login.example.org", "SSHKnownHosts": KNOWN_HOSTS},
        "SSHKey",
        id="missing-SSHKey",
    ),
    pytest.param({"SharedArea": None}, "SharedArea", id="missing-SharedArea"),
    pytest.param({"SharedArea": "relative/dir"}, "SharedArea", id="relative-SharedArea"),
    pytest.param(
        {"SSHHost": "login.example.org", "SSHPort": "twenty-two"},
        "SSHPort",
        id="wrong-type-SSHPort",
    ),
    pytest.param({"SSHHost": "login.example.org"}, "SSHKnownHosts", id="ssh-without-known-hosts"),
    pytest.param(
        {"NumberOfProcessors": "two"}, "NumberOfProcessors", id="wrong-type-NumberOfProcessors"
    ),
    pytest.param({"MaxRAM": "lots"}, "MaxRAM", id="wrong-type-MaxRAM"),
    pytest.param({"BatchSystem": "PBS"}, "BatchSystem", id="unknown-BatchSystem"),
    pytest.param({"Slots": "4"}, "Slots", id="Slots-without-Host"),
    pytest.param({"BatchSystem": "Host", "Slots": "0"}, "Slots", id="Host-zero-Slots"),
    pytest.param({"BatchSystem": "Host", "Slots": "many"}, "Slots", id="Host-wrong-type-Slots"),
    pytest.param({"BatchSystem": "Host", "Account": "lhcb"}, "Account", id="Host-with-Account"),
    pytest.param(
        {"BatchSystem": "Host", "SubmitOptions": "--qos=x"}, "SubmitOptions", id="Host-with-sbatch"
    ),
    pytest.param(
        {"BatchSystem": "Host", "MaxArraySize": "10"}, "MaxArraySize", id="Host-with-MaxArraySize"
    ),
    pytest.param({"SSHTunnel": "ssh -W %h:%p bastion"}, "SSHTunnel", id="refused-SSHTunnel"),
    pytest.param(
        {"SSHOptions": "-o StrictHostKeyChecking=no"}, "SSHOptions", id="refused-SSHOptions"
    ),
]


@pytest.mark.parametrize(("change", "key"), BAD_INPUT)
def test_bad_cs_input_is_econf_naming_the_dirac_key(
    seam: Seam,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    change: dict[str, str | None],
    key: str,
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("login.example.org ssh-ed25519 AAAA\n")
    change = {k: str(known_hosts) if v == KNOWN_HOSTS else v for k, v in change.items()}
    options = {
        k: v for k, v in {**QUEUE_OPTIONS, "Queue": QUEUE, **change}.items() if v is not None
    }
    # Through the factory directly: getQueue would always supply Queue from the section name.
    result = ComputingElementFactory().getCE(
        ceType="InterCEde", ceName=f"bad-{key}", ceParametersDict=options
    )
    assert not result["OK"], result
    assert result["Errno"] == DErrno.ECONF, result
    assert f"{key}:" in result["Message"], result["Message"]
    assert "Traceback" not in "".join(capfd.readouterr()), "the factory logged an exception"
    assert not seam.built


def test_bad_resource_written_late_is_econf_at_submit(
    ce: InterCEdeComputingElement, seam: Seam
) -> None:
    ce.ceParameters["WholeNode"] = "perhaps"
    result = ce.submitJob("/bin/true", "", 1)
    assert not result["OK"], result
    assert result["Errno"] == DErrno.ECONF, result
    assert "WholeNode" in result["Message"]


def test_string_number_of_processors_written_late_is_used_at_the_next_submit(
    ce: InterCEdeComputingElement, seam: Seam
) -> None:
    assert ce.submitJob("/bin/true", "", 1)["OK"]
    assert seam.last.submitted[-1][0].resources.cpus == 2
    ce.ceParameters["NumberOfProcessors"] = "3"  # a caller writing a CS string after construction
    assert ce.submitJob("/bin/true", "", 1)["OK"]
    assert seam.last.submitted[-1][0].resources.cpus == 3
    ce.ceParameters["NumberOfProcessors"] = 1  # RemoteRunner writes the payload's int
    assert ce.submitJob("/bin/true", "", 1)["OK"]
    assert seam.last.submitted[-1][0].resources.cpus == 1
    assert len(seam.built) == 1, "a resource change must not rebuild the backend"


def test_remote_runner_comparison_works_on_the_converted_value(
    ce: InterCEdeComputingElement,
) -> None:
    # RemoteRunner._setUpWorkloadCE compares ceParameters["NumberOfProcessors"] with < 1.
    assert not ce.ceParameters.get("NumberOfProcessors", 1) < 1


def test_preamble_set_after_construction_reaches_the_backend_config(
    ce: InterCEdeComputingElement, seam: Seam
) -> None:
    assert ce.submitJob("/bin/true", "", 1)["OK"]
    first = seam.last
    assert first.config.preamble == ""
    ce.preamble = "source /cvmfs/dirac.example.org/Linux-x86_64/diracosrc"  # as PushJobAgent does
    assert ce.submitJob("/bin/true", "", 1)["OK"]
    assert seam.last.config.preamble == "source /cvmfs/dirac.example.org/Linux-x86_64/diracosrc"
    assert first.closed == 1, "the backend of the old preamble must be closed"
    assert ce.submitJob("/bin/true", "", 1)["OK"]
    assert len(seam.built) == 2, "an unchanged preamble reuses the backend"


def test_preamble_from_the_cs(seam: Seam) -> None:
    result = build({**QUEUE_OPTIONS, "Preamble": "module load dirac"}, ce="ce.preamble.test")
    assert result["OK"], result
    assert result["Value"].submitJob("/bin/true", "", 1)["OK"]
    assert seam.last.config.preamble == "module load dirac"


def test_shutdown_closes_the_facade(ce: InterCEdeComputingElement, seam: Seam) -> None:
    assert ce.submitJob("/bin/true", "", 1)["OK"]
    result = ce.shutdown()
    assert result["OK"], result
    assert seam.last.closed == 1
    assert ce.backend is None
    assert ce.shutdown()["OK"], "a second shutdown is harmless"
    assert seam.last.closed == 1


def test_queue_ce_cache_drop_shuts_the_ce_down(seam: Seam) -> None:
    load_cs(SITE, "ce.cache.test", QUEUE, QUEUE_OPTIONS)
    params = getQueue(SITE, "ce.cache.test", QUEUE)["Value"]
    cache = QueueCECache()
    built = cache.getCE("ce.cache.test_debug", "InterCEde", "ce.cache.test", params)
    assert built["OK"], built
    assert (
        cache.getCE("ce.cache.test_debug", "InterCEde", "ce.cache.test", params)["Value"]
        is built["Value"]
    )
    assert built["Value"].getCEStatus()["OK"]
    rebuilt = cache.getCE(
        "ce.cache.test_debug", "InterCEde", "ce.cache.test", {**params, "MaxTotalJobs": "20"}
    )
    assert rebuilt["OK"]
    assert rebuilt["Value"] is not built["Value"]
    assert seam.last.closed == 1, "QueueCECache evicted the CE without shutting it down"


def test_get_description_and_available_are_dirac_s_own(
    ce: InterCEdeComputingElement, seam: Seam
) -> None:
    assert ce.getCEStatus()["OK"]
    seam.last.load = LoadCounts(running=3, waiting=1)
    description = ce.getDescription()
    assert description["OK"], description
    assert description["Value"]["CEType"] == "InterCEde"
    assert description["Value"]["Queue"] == QUEUE
    assert "DIRACVersion" in description["Value"]
    available = ce.available()
    assert available["OK"], available
    # DIRAC's formula: MaxWaitingJobs - W = 4, and R + W + 4 < MaxTotalJobs.
    assert available["Value"] == 4
    info = available["CEInfoDict"]
    assert (
        info["RunningJobs"],
        info["WaitingJobs"],
        info["MaxTotalJobs"],
        info["MaxWaitingJobs"],
    ) == (3, 1, 10, 5)


def test_set_cpu_time_left_and_credentials_are_inherited(ce: InterCEdeComputingElement) -> None:
    assert ce.setCPUTimeLeft("3600")["Value"] == 3600
    assert ce.ceParameters["CPUTime"] == 3600
    ce.setProxy("PEM")
    ce.setToken({"access_token": "t"})
    assert (ce.proxy, ce.token) == ("PEM", {"access_token": "t"})


def test_submit_returns_refs_and_stamps_of_each_copy(
    ce: InterCEdeComputingElement, seam: Seam
) -> None:
    result = ce.submitJob("/bin/true", "", 3)
    assert result["OK"], result
    refs = result["Value"]
    assert len(refs) == 3
    assert "FailedCopies" not in result
    copies = seam.last.submitted[-1][1]
    for index, ref in enumerate(refs):
        assert result["PilotStampDict"][ref] == copies[index].environment["DIRAC_PILOT_STAMP"]
        assert JobHandle.parse(ref).id.endswith(f"_{index}")
    assert ce.getCEStatus()["SubmittedJobs"] == 3


def test_failed_copies_are_keyed_by_copy_index(ce: InterCEdeComputingElement, seam: Seam) -> None:
    seam.refuse.update({1: "sbatch: array chunk refused", 3: "sbatch: array chunk refused"})
    result = ce.submitJob("/bin/true", "", 5)
    assert result["OK"], result
    assert result["FailedCopies"] == {
        1: "sbatch: array chunk refused",
        3: "sbatch: array chunk refused",
    }
    assert len(result["Value"]) == 3
    copies = seam.last.submitted[-1][1]
    placed = {copies[i].environment["DIRAC_PILOT_STAMP"] for i in (0, 2, 4)}
    assert set(result["PilotStampDict"].values()) == placed


def test_no_copy_placed_is_s_error(ce: InterCEdeComputingElement, seam: Seam) -> None:
    seam.refuse.update({0: "partition down", 1: "partition down"})
    result = ce.submitJob("/bin/true", "", 2)
    assert not result["OK"]
    assert result["Errno"] == DErrno.EWMSSUBM
    assert "copy 0: partition down" in result["Message"]


def test_get_job_status_is_keyed_by_the_refs_as_passed(
    ce: InterCEdeComputingElement, seam: Seam
) -> None:
    submitted = ce.submitJob("/bin/true", "", 2)
    first, second = submitted["Value"]
    seam.last.statuses[JobHandle.parse(second).id] = JobStatus.RUNNING
    stamped = f"{second}:::{submitted['PilotStampDict'][second]}"
    result = ce.getJobStatus([first, stamped, "not-a-reference"])
    assert result["OK"], result
    assert result["Value"] == {first: "Waiting", stamped: "Running", "not-a-reference": "Unknown"}
    assert list(result["Failed"]) == ["not-a-reference"]


def test_kill_of_a_finished_pilot_is_a_failed_entry(
    ce: InterCEdeComputingElement, seam: Seam
) -> None:
    done, waiting = ce.submitJob("/bin/true", "", 2)["Value"]
    seam.last.statuses[JobHandle.parse(done).id] = JobStatus.DONE
    result = ce.killJob([done, waiting])
    assert result["OK"], result
    assert result["Value"] == 1
    assert result["Successful"] == {waiting: True}
    assert result["Failed"] == {done: "already Done"}
    assert ce.getJobStatus([done, waiting])["Value"] == {done: "Done", waiting: "Aborted"}


def test_stdout_and_stderr_come_from_diagnostics(ce: InterCEdeComputingElement, seam: Seam) -> None:
    (ref,) = ce.submitJob("/bin/true", "", 1)["Value"]
    seam.last.streams.update({":stdout": b"out\n", ":stderr": b"err\n", ":log": b"slurm log\n"})
    assert ce.getJobOutput(ref)["Value"] == ("out\n", "err\n")
    assert ce.getJobLog(ref)["Value"] == "slurm log\n"


def test_clean_job_answers_per_ref(ce: InterCEdeComputingElement) -> None:
    (ref,) = ce.submitJob("/bin/true", "", 1)["Value"]
    result = ce.cleanJob(ref)
    assert result["OK"]
    assert result["Successful"] == {ref: True}
    assert result["Failed"] == {}


def test_submit_before_valid_parameters_is_econf(seam: Seam, tmp_path: Path) -> None:
    result = InterCEdeComputingElement("unset").submitJob(str(tmp_path / "pilot.sh"), "", 1)
    assert not result["OK"]
    assert result["Errno"] == DErrno.ECONF


def test_ssh_queue_translates_every_cs_option(seam: Seam, tmp_path: Path) -> None:
    known_hosts, key = tmp_path / "known_hosts", tmp_path / "id_ed25519"
    known_hosts.write_text("login.example.org ssh-ed25519 AAAA\n")
    key.write_text("not read before the first connection\n")
    options = {
        **QUEUE_OPTIONS,
        "SSHHost": "login.example.org",
        "SSHPort": "2222",
        "SSHUser": "dirac",
        "SSHKey": str(key),
        "SSHKnownHosts": str(known_hosts),
        "SSHJumpHost": "jump@bastion.example.org:22",
        "SSHConnectTimeout": "7.5",
        "SSHKeepAliveInterval": "20",
        "SSHReconnectAttempts": "5",
        "CredentialRefreshMargin": "120",
        "Account": "lhcb",
        "SubmitOptions": "--qos=pilot --comment 'a b'",
        "JobName": "dirac-pilot",
        "MaxArraySize": "500",
    }
    result = build(options, ce="ce.ssh.test")
    assert result["OK"], result
    config = result["Value"].config
    assert config.transport == "ssh"
    assert (config.host, config.port, config.user) == ("login.example.org", 2222, "dirac")
    assert config.known_hosts == known_hosts
    assert config.jump_host == "jump@bastion.example.org:22"
    assert (config.connect_timeout_s, config.keepalive_interval_s) == (7.5, 20.0)
    assert (config.reconnect_attempts, config.credential_refresh_margin_s) == (5, 120.0)
    assert config.account == "lhcb"
    assert config.submit_extra == ("--qos=pilot", "--comment", "a b")
    assert (config.job_name, config.max_array_size) == ("dirac-pilot", 500)
    assert config.auth == "key"
    assert not seam.built


@pytest.mark.parametrize("system", ["Host", "host", "HOST"])
def test_host_batch_system_is_the_host_scheduler(seam: Seam, tmp_path: Path, system: str) -> None:
    """DIRAC's SSH CE with ``BatchSystem = Host``: the queue's name is DIRAC's only (a host
    has no partitions), ``Slots`` bounds the copies running at once."""
    known_hosts, key = tmp_path / "known_hosts", tmp_path / "id_ed25519"
    known_hosts.write_text("vm.example.org ssh-ed25519 AAAA\n")
    key.write_text("not read before the first connection\n")
    options = {
        **QUEUE_OPTIONS,
        "BatchSystem": system,
        "SSHHost": "vm.example.org",
        "SSHUser": "dirac",
        "SSHKey": str(key),
        "SSHKnownHosts": str(known_hosts),
        "Slots": "3",
        "JobName": "dirac-pilot",
    }
    result = build(options, ce=f"ce.host-{system}.test")
    assert result["OK"], result
    config = result["Value"].config
    assert (config.scheduler, config.slots, config.queue) == ("host", 3, None)
    assert (config.transport, config.host, config.work_root) == (
        "ssh",
        "vm.example.org",
        "/shared/dirac/pilots",
    )


def test_host_without_slots_and_without_ssh_is_a_local_host(seam: Seam) -> None:
    result = build({**QUEUE_OPTIONS, "BatchSystem": "Host"}, ce="ce.localhost.test")
    assert result["OK"], result
    config = result["Value"].config
    assert (config.scheduler, config.slots, config.transport) == ("host", None, "local")


def test_host_pilots_are_submitted_and_counted_through_the_backend(seam: Seam) -> None:
    result = build({**QUEUE_OPTIONS, "BatchSystem": "Host", "Slots": "2"}, ce="ce.hostrun.test")
    assert result["OK"], result
    ce = result["Value"]
    submitted = ce.submitJob(str(Path(__file__)), None, numberOfJobs=2)
    assert submitted["OK"], submitted
    assert seam.last.config.scheduler == "host"
    assert len(seam.last.submitted[0][1]) == 2
    seam.last.load = LoadCounts(running=2, waiting=1)
    status = ce.getCEStatus()
    assert (status["RunningJobs"], status["WaitingJobs"]) == (2, 1)


def slot_examples() -> list[tuple[int, ...]]:
    """The rows of the mapping doc's slot-example table."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "migration" / "dirac.md").read_text()
    match = re.search(
        r"<!-- slot-examples:begin -->\n(.*?)<!-- slot-examples:end -->", doc, re.DOTALL
    )
    assert match, "docs/migration/dirac.md has no slot-examples table"
    lines = [line for line in match.group(1).splitlines() if line.startswith("|")][2:]
    return [tuple(int(cell) for cell in line.strip().strip("|").split("|")) for line in lines]


def test_the_doc_s_slot_examples_are_what_dirac_s_available_computes(seam: Seam) -> None:
    examples = slot_examples()
    assert (10, 5, 3, 2, 3) in examples  # DIRAC's own worked examples (DC-23)
    assert (10, 5, 7, 1, 2) in examples
    for max_total, max_waiting, running, waiting, slots in examples:
        options = {
            **QUEUE_OPTIONS,
            "MaxTotalJobs": str(max_total),
            "MaxWaitingJobs": str(max_waiting),
        }
        ce = build(options, ce=f"ce.slots-{max_total}-{max_waiting}.test")["Value"]
        assert ce.getCEStatus()["OK"]
        seam.last.load = LoadCounts(running=running, waiting=waiting)
        got = ce.available()
        assert got["OK"], got
        assert got["Value"] == slots, (
            f"MaxTotal={max_total} MaxWaiting={max_waiting} R={running} W={waiting}"
        )
