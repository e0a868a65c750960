"""The reference DIRAC adapter over the real sync facade wrapping an in-memory async backend.

The fake backend is the only stand-in: the facade (``intercede.sync.wrap``), the models and
the adapter are the real ones, so these tests pin the DIRAC-visible shapes (``S_OK`` keys,
``Errno`` values, ref formats) the migration doc promises.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import pytest
from hypothesis import given
from hypothesis import strategies as st

import intercede.sync
from docs.examples.dirac_adapter import (
    S_ERROR,
    InterCEdeComputingElement,
    available_slots,
    getCE,
    returns,
    split_reference,
    translate,
)
from docs.examples.dirac_adapter.output import Stream
from docs.examples.dirac_adapter.parameters import CETranslation
from intercede import (
    ConfigurationError,
    CopyVars,
    CredentialRequirements,
    Diagnostics,
    FileCredentials,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    LoadCounts,
    OpOutcome,
    ResourceUnavailableError,
    SpecificationRejectedError,
    SSHBatchConfig,
    StaticCredentials,
    Submission,
    SubmissionSpec,
)

LOCAL = {
    "CEType": "Local",
    "BatchSystem": "SLURM",
    "Queue": "main",
    "SharedArea": "/shared/dirac",
    "WorkArea": "work",
    "MaxTotalJobs": "10",
    "MaxWaitingJobs": "5",
    "NumberOfProcessors": "4",
    "MaxRAM": "2048",
}


class FakeBackend:
    """An async JobBackend with every optional capability, keeping its jobs in memory."""

    def __init__(self) -> None:
        self.specs: list[SubmissionSpec] = []
        self.copies: list[list[CopyVars]] = []
        self.status_calls: list[list[JobHandle]] = []
        self.status: dict[JobID, JobStatus] = {}
        self.refuse: set[int] = set()
        self.failure: BaseException | None = None
        self.counts_value = LoadCounts(running=0, waiting=0)
        self.kill_reasons: dict[JobID, str] = {}
        self.purged: list[JobID] = []
        self.payload: dict[str, bytes] = {"result.json": b"{}", "sub/data.txt": b"data"}
        self.log: bytes | None = b"slurm log\n"
        self.output_calls = 0
        self.closed = 0
        self._next = 100

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.closed += 1

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        self._check()
        given_copies = [CopyVars()] * copies if isinstance(copies, int) else list(copies)
        self.specs.append(spec)
        self.copies.append(given_copies)
        handles: dict[int, JobHandle] = {}
        failures: dict[int, str] = {}
        for index in range(len(given_copies)):
            if index in self.refuse:
                failures[index] = "partition is draining"
                continue
            self._next += 1
            job_id = f"{self._next}_0"
            handles[index] = JobHandle(
                backend="slurm+ssh",
                resource="submit@ce.example.org:22",
                id=job_id,
                routing=f"{'a' * 32}/{index}",
            )
            self.status[job_id] = JobStatus.WAITING
        return Submission(handles=handles, failures=failures)

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        self._check()
        self.status_calls.append(list(handles))
        return {h.id: self.status.get(h.id, JobStatus.UNKNOWN) for h in handles}

    async def get_output(
        self, handles: Sequence[JobHandle], dest: Path
    ) -> Mapping[JobID, JobOutput | OpOutcome]:
        self._check()
        self.output_calls += 1
        out: dict[JobID, JobOutput | OpOutcome] = {}
        for h in handles:
            if h.id not in self.status:
                out[h.id] = OpOutcome(ok=False, reason="no such job")
                continue
            files = []
            # a layout of its own: callers must follow JobOutput.root, not guess dest/<id>/
            root = dest / f"payload-of-{h.id}"
            for name, content in self.payload.items():
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                files.append(path)
            (dest / f"{h.id}.out").write_text(f"stdout of {h.id}\n")
            (dest / f"{h.id}.err").write_text(f"stderr of {h.id}\n")
            log = None
            if self.log is not None:
                log = dest / f"{h.id}.log"
                log.write_bytes(self.log)
            out[h.id] = JobOutput(
                root=root,
                stdout=dest / f"{h.id}.out",
                stderr=dest / f"{h.id}.err",
                log=log,
                files=tuple(sorted(files)),
            )
        return out

    async def kill(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        self._check()
        out = {}
        for h in handles:
            reason = self.kill_reasons.get(h.id)
            out[h.id] = OpOutcome(ok=reason is None, reason=reason)
            if reason is None:
                self.status[h.id] = JobStatus.ABORTED
        return out

    async def purge(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        self._check()
        self.purged.extend(h.id for h in handles)
        return {h.id: OpOutcome(ok=True) for h in handles}

    async def counts(self) -> LoadCounts:
        self._check()
        return self.counts_value


class DiagnosableFake(FakeBackend):
    """Also serves files by name while the job runs; ``@stderr``/``@log`` stand for a backend
    that names its streams (interCEde's Slurm backend names only stdout)."""

    def __init__(self) -> None:
        super().__init__()
        self.diagnostic_calls: list[str | None] = []
        self.truncated = False

    async def get_diagnostics(
        self, handles: Sequence[JobHandle], name: str | None = None
    ) -> Mapping[JobID, Diagnostics | OpOutcome]:
        self._check()
        self.diagnostic_calls.append(name)
        out: dict[JobID, Diagnostics | OpOutcome] = {}
        for h in handles:
            if name is None:
                content: bytes | None = f"stdout of {h.id}\n".encode()
            elif name == "@stderr":
                content = f"stderr of {h.id}\n".encode()
            else:
                content = self.log if name == "@log" else None
            out[h.id] = (
                Diagnostics(name=name or "stdout", content=content, truncated=self.truncated)
                if content is not None
                else OpOutcome(ok=False, reason=f"no {name}")
            )
        return out


ALL_STREAMS_BY_NAME: Mapping[Stream, str | None] = {
    "stdout": None,
    "stderr": "@stderr",
    "log": "@log",
}


class Essential:
    """Only the essential contract: submit, status, lifecycle."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        raise AssertionError("not used")

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        return {}


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()


def serving(backend: Any) -> Callable[[CETranslation], intercede.sync.JobBackend]:
    """A backend factory handing out a fresh facade over ``backend`` on every setParameters."""
    return lambda _translation: intercede.sync.wrap(backend)


@pytest.fixture
def ce(fake: FakeBackend) -> Iterator[InterCEdeComputingElement]:
    element = InterCEdeComputingElement.fromParameters(
        "ce.example.org", LOCAL, backend_factory=serving(fake)
    )
    yield element
    element.close()


def ssh_parameters(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("[ce.example.org]:2222 ssh-ed25519 AAAA\n")
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    return {
        "CEType": "SSH",
        "BatchSystem": "SLURM",
        "SSHHost": "ce.example.org",
        "SSHUser": "dirac",
        "SSHPort": "2222",
        "SSHKey": str(key),
        "SSHKnownHosts": str(known_hosts),
        "Queue": "main",
        "SharedArea": "/home/dirac",
        "WorkArea": "pilots",
        "SubmitOptions": "--qos=short --comment 'two words'",
        "Preamble": "module load x",
        "Account": "lhcb",
        "NumberOfNodes": "2-4",
        "WholeNode": "yes",
        "NumberOfGPUs": "1",
        "WaitingToRunningRatio": "0.5",  # ignored, as DIRAC ignores it
        **extra,
    }


# -- ParametersDict translation --------------------------------------------------------------


def test_ssh_parameters_translate_key_by_key(tmp_path: Path) -> None:
    translation = translate(ssh_parameters(tmp_path))
    config = translation.config
    assert isinstance(config, SSHBatchConfig)
    assert (config.host, config.port, config.user, config.queue) == (
        "ce.example.org",
        2222,
        "dirac",
        "main",
    )
    assert config.work_root == "/home/dirac/pilots"
    assert config.submit_extra == ("--qos=short", "--comment", "two words")
    assert (config.preamble, config.account, config.auth) == ("module load x", "lhcb", "key")
    assert config.known_hosts == tmp_path / "known_hosts"
    assert isinstance(translation.credentials, FileCredentials)
    assert translation.resources.nodes == "2-4"
    assert translation.resources.whole_node is True
    assert translation.resources.gpus == 1
    assert (translation.max_total_jobs, translation.max_waiting_jobs) == (1, 1)


def test_password_goes_to_the_provider_never_the_config(tmp_path: Path) -> None:
    params = ssh_parameters(tmp_path, SSHPassword="hunter2-secret")
    del params["SSHKey"]
    translation = translate(params)
    assert isinstance(translation.credentials, StaticCredentials)
    assert translation.config.auth == "password"  # type: ignore[union-attr]
    assert "hunter2-secret" not in translation.config.model_dump_json()
    assert "hunter2-secret" not in repr(translation)
    element = InterCEdeComputingElement.fromParameters(
        "ce", params, backend_factory=serving(FakeBackend())
    )
    with element:
        assert "SSHPassword" not in element.ceParameters


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"SSHPort": "not-a-port"}, "SSHPort"),
        ({"SSHPort": "70000"}, "SSHPort"),
        ({"SSHHost": None}, "SSHHost"),
        ({"SSHUser": None}, "SSHUser"),
        ({"SSHKnownHosts": None}, "SSHKnownHosts"),
        ({"SSHKnownHosts": "/nonexistent/known_hosts"}, "SSHKnownHosts"),
        ({"SSHKey": None, "SSHPassword": None}, "SSHKey"),
        ({"SSHKey": "/nonexistent/key"}, "SSHKey"),
        ({"CEType": None}, "CEType"),
        ({"CEType": "HTCondorCE"}, "CEType"),
        ({"BatchSystem": "Condor"}, "BatchSystem"),
        ({"BatchSystem": None}, "BatchSystem"),
        ({"SharedArea": None}, "SharedArea"),
        ({"SharedArea": "relative/dir"}, "SharedArea"),
        ({"WorkArea": "../../etc"}, "WorkArea"),
        ({"SSHHost": "a.example.org/10,b.example.org/5"}, "SSHHost"),
        ({"SSHTunnel": "ssh -W %h:%p gateway"}, "SSHTunnel"),
        ({"SSHOptions": "-o StrictHostKeyChecking=no"}, "SSHOptions"),
        ({"SSHType": "gsissh"}, "SSHType"),
        ({"MaxTotalJobs": "lots"}, "MaxTotalJobs"),
        ({"MaxWaitingJobs": "-1"}, "MaxWaitingJobs"),
        ({"NumberOfProcessors": "0"}, "NumberOfProcessors"),
        ({"NumberOfNodes": "4-2"}, "NumberOfNodes"),
        ({"MaxRAM": "lots"}, "MaxRAM"),
        ({"WholeNode": "maybe"}, "WholeNode"),
        ({"ContainerLauncher": "apptainer run"}, "ContainerLauncher"),
        ({"CommandTimeout": "0"}, "CommandTimeout"),
    ],
)
def test_bad_or_missing_key_is_named_by_its_dirac_name(
    tmp_path: Path, change: dict[str, Any], key: str
) -> None:
    params = ssh_parameters(tmp_path, SSHPassword="hunter2-secret")
    for name, value in change.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    with pytest.raises(ConfigurationError) as caught:
        translate(params)
    assert caught.value.field == key
    assert str(caught.value).startswith(f"{key}: ")
    assert "hunter2-secret" not in str(caught.value)


def test_factory_returns_s_error_naming_the_key(tmp_path: Path) -> None:
    result = getCE("ce.example.org", ssh_parameters(tmp_path, SSHPort="abc"))
    assert result["OK"] is False
    assert result["Errno"] == 1003
    assert result["Message"].startswith("Configuration error ( 1003 : ce.example.org: SSHPort: ")


def test_local_ce_refuses_an_ssh_host() -> None:
    with pytest.raises(ConfigurationError) as caught:
        translate({**LOCAL, "SSHHost": "ce.example.org"})
    assert caught.value.field == "SSHHost"


# -- S_OK / S_ERROR ----------------------------------------------------------------------------


def test_s_error_reproduces_dirac_formatting() -> None:
    plain = S_ERROR("boom")
    assert (plain["OK"], plain["Errno"], plain["Message"]) == (False, 0, "boom")
    coded = S_ERROR(1503, "no pilot submitted")
    assert coded["Message"] == "Job submission error ( 1503 : no pilot submitted)"
    assert isinstance(coded["CallStack"], list)


# -- submitJob ---------------------------------------------------------------------------------


def test_submit_returns_refs_and_one_fresh_stamp_per_pilot(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    result = ce.submitJob("/tmp/pilot.sh", "", numberOfJobs=3)
    assert result["OK"] is True
    refs = result["Value"]
    assert len(refs) == 3
    assert set(result["PilotStampDict"]) == set(refs)
    stamps = [result["PilotStampDict"][ref] for ref in refs]
    assert all(re.fullmatch(r"[0-9a-f]{32}", s) for s in stamps)
    assert len(set(stamps)) == 3
    # copy i carries stamp i, and ref i is copy i's job
    sent = [dict(c.environment) for c in fake.copies[0]]
    assert sent == [{"DIRAC_PILOT_STAMP": s} for s in stamps]
    assert all(not c.secrets for c in fake.copies[0])
    assert all(len(ref) <= 255 and JobHandle.parse(ref) for ref in refs)
    assert "ExecutableToKeep" not in result
    spec = fake.specs[0]
    assert spec.executable == "/tmp/pilot.sh"
    assert (spec.resources.cpus, spec.resources.memory_mb) == (4, 2048)
    assert ce.getCEStatus()["SubmittedJobs"] == 3


def test_submit_stages_the_proxy_as_a_secret_not_in_the_environment(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    pem = "-----BEGIN CERTIFICATE-----proxy"
    assert ce.submitJob("/tmp/pilot.sh", pem, numberOfJobs=2)["OK"]
    for copy in fake.copies[0]:
        assert copy.secrets["PROXY"].get_secret_value() == pem.encode()
        assert pem not in str(dict(copy.environment))
    assert pem not in repr(fake.copies[0])


def test_submit_maps_inputs_and_slash_output(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    ce.submitJob("/w/wrapper.py", None, inputs=["/w/job/a.json", "/w/job/b.cfg"], outputs=["/"])
    spec = fake.specs[0]
    assert [(f.name, f.source) for f in spec.inputs] == [
        ("a.json", "/w/job/a.json"),
        ("b.cfg", "/w/job/b.cfg"),
    ]
    assert spec.outputs.include_unlisted is True
    ce.submitJob("/w/wrapper.py", None, outputs=["result.json", "logs/*.txt"])
    assert [m.pattern for m in fake.specs[1].outputs.members] == ["result.json", "logs/*.txt"]
    assert fake.specs[1].outputs.include_unlisted is False


def test_submit_refuses_a_bad_spec_naming_the_field(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    result = ce.submitJob("/w/wrapper.py", None, inputs=["/a/x.txt", "/b/x.txt"])
    assert (result["OK"], result["Errno"]) == (False, 1501)
    assert "duplicate names" in result["Message"]
    assert fake.specs == []
    assert ce.submitJob("/w/wrapper.py", None, numberOfJobs=0)["Errno"] == 1503


def test_partial_submission_reports_every_refused_copy(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    fake.refuse = {1}
    result = ce.submitJob("/tmp/pilot.sh", "", numberOfJobs=3)
    assert result["OK"] is True
    assert len(result["Value"]) == 2
    assert result["FailedCopies"] == {1: "partition is draining"}
    # the surviving refs still carry the stamps of their own copies
    stamps = [c.environment["DIRAC_PILOT_STAMP"] for c in fake.copies[0]]
    assert sorted(result["PilotStampDict"].values()) == sorted([stamps[0], stamps[2]])
    fake.refuse = {0, 1}
    none_left = ce.submitJob("/tmp/pilot.sh", "", numberOfJobs=2)
    assert (none_left["OK"], none_left["Errno"]) == (False, 1503)
    assert "copy 0: partition is draining" in none_left["Message"]


@pytest.mark.parametrize(
    ("error", "errno"),
    [
        (ResourceUnavailableError("ssh: connection refused"), 2001),
        (SpecificationRejectedError("no launcher", field="container_image"), 1501),
        (intercede.AuthenticationError("key rejected"), 1111),
        (intercede.OperationTimeoutError("too slow"), 2001),
        (intercede.InterCEdeError("sbatch said no"), 1503),
    ],
)
def test_whole_submission_failures_become_s_error_with_the_documented_errno(
    ce: InterCEdeComputingElement, fake: FakeBackend, error: Exception, errno: int
) -> None:
    fake.failure = error
    result = ce.submitJob("/tmp/pilot.sh", "", numberOfJobs=2)
    assert (result["OK"], result["Errno"]) == (False, errno)
    assert str(error) in result["Message"]


# -- getJobStatus ------------------------------------------------------------------------------


def test_status_is_keyed_by_each_ref_as_passed(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    submitted = ce.submitJob("/tmp/pilot.sh", "", numberOfJobs=2)
    first, second = submitted["Value"]
    stamped = f"{first}:::{submitted['PilotStampDict'][first]}"
    fake.status[JobHandle.parse(first).id] = JobStatus.RUNNING
    result = ce.getJobStatus([first, stamped, second, "garbage"])
    assert result["Value"] == {
        first: "Running",
        stamped: "Running",
        second: "Waiting",
        "garbage": "Unknown",
    }
    assert "not an interCEde pilot reference" in result["Failed"]["garbage"]
    # the bare and the stamped ref are one job: asked once
    assert len(fake.status_calls[-1]) == 2


def test_status_of_an_unknown_job_is_unknown_not_missing(ce: InterCEdeComputingElement) -> None:
    ref = str(JobHandle(backend="slurm+ssh", resource="x", id="999_0", routing="r"))
    assert ce.getJobStatus([ref])["Value"] == {ref: "Unknown"}


def test_status_outage_is_a_status_error(ce: InterCEdeComputingElement, fake: FakeBackend) -> None:
    ref = ce.submitJob("/tmp/pilot.sh", "")["Value"][0]
    fake.failure = ResourceUnavailableError("ssh: host unreachable")
    result = ce.getJobStatus([ref])
    assert (result["OK"], result["Errno"]) == (False, 2001)
    assert result["Message"] == "Resource not available ( 2001 : ssh: host unreachable)"


def test_split_reference_keeps_the_stamp_apart() -> None:
    handle = JobHandle(backend="slurm+ssh", resource="u@h:22", id="5_1", routing="b/1")
    assert split_reference(f"{handle}:::abc") == (handle, "abc")
    assert split_reference(str(handle)) == (handle, None)
    with pytest.raises(ValueError, match="not an interCEde pilot reference"):
        split_reference("1234:::abc")
    with pytest.raises(ValueError, match="stamp is not a plain identifier"):
        split_reference(f"{handle}:::../../etc/passwd")
    # a pre-migration DIRAC ref parses, but names another backend: the backend says Unknown
    assert split_reference("sshslurm://ce/1234")[0].backend == "sshslurm"


# -- output and logs ---------------------------------------------------------------------------


def test_output_without_local_dir_is_the_two_streams(ce: InterCEdeComputingElement) -> None:
    ref = ce.submitJob("/tmp/pilot.sh", "")["Value"][0]
    job_id = JobHandle.parse(ref).id
    assert ce.getJobOutput(ref)["Value"] == (f"stdout of {job_id}\n", f"stderr of {job_id}\n")


def test_output_into_local_dir_places_payload_and_stamped_streams(
    ce: InterCEdeComputingElement, tmp_path: Path
) -> None:
    submitted = ce.submitJob("/tmp/pilot.sh", "", outputs=["/"])
    ref = submitted["Value"][0]
    stamp = submitted["PilotStampDict"][ref]
    for _ in range(2):  # collecting twice is safe
        result = ce.getJobOutput(f"{ref}:::{stamp}", str(tmp_path))
        assert result["OK"] is True
        assert result["Value"] == (str(tmp_path / f"{stamp}.out"), str(tmp_path / f"{stamp}.err"))
    assert (tmp_path / "result.json").read_bytes() == b"{}"
    assert (tmp_path / "sub" / "data.txt").read_bytes() == b"data"
    job_id = JobHandle.parse(ref).id
    assert (tmp_path / f"{stamp}.out").read_text() == f"stdout of {job_id}\n"
    # without a stamp the streams are named after the job id
    bare = ce.getJobOutput(ref, str(tmp_path / "bare"))["Value"]
    assert bare[0] == str(tmp_path / "bare" / f"{job_id}.out")


def test_payload_file_named_like_a_stream_is_refused_not_overwritten(
    ce: InterCEdeComputingElement, fake: FakeBackend, tmp_path: Path
) -> None:
    submitted = ce.submitJob("/tmp/pilot.sh", "", outputs=["/"])
    ref = submitted["Value"][0]
    stamp = submitted["PilotStampDict"][ref]
    fake.payload = {f"{stamp}.out": b"payload"}
    result = ce.getJobOutput(f"{ref}:::{stamp}", str(tmp_path))
    assert (result["OK"], result["Errno"]) == (False, 1504)
    assert "collides" in result["Message"]


def test_output_failure_names_the_ref(ce: InterCEdeComputingElement) -> None:
    ref = str(JobHandle(backend="slurm+ssh", resource="x", id="999_0", routing="r"))
    result = ce.getJobOutput(ref)
    assert (result["OK"], result["Errno"]) == (False, 1504)
    assert ref in result["Message"]
    assert "no such job" in result["Message"]
    assert ce.getJobOutput("garbage")["Errno"] == 1504


def test_job_log_is_the_scheduler_log(ce: InterCEdeComputingElement, fake: FakeBackend) -> None:
    ref = ce.submitJob("/tmp/pilot.sh", "")["Value"][0]
    assert ce.getJobLog(ref)["Value"] == "slurm log\n"
    fake.log = None
    assert "no scheduler log" in ce.getJobLog(ref)["Message"]


# -- kill and clean ----------------------------------------------------------------------------


def test_kill_attempts_every_ref_and_reports_each(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    first, second = ce.submitJob("/tmp/pilot.sh", "", numberOfJobs=2)["Value"]
    fake.kill_reasons[JobHandle.parse(second).id] = "already finished"
    result = ce.killJob([first, second, "garbage"])
    assert result["OK"] is True
    assert result["Value"] == 1
    assert result["Successful"] == {first: True}
    assert set(result["Failed"]) == {second, "garbage"}
    assert result["Failed"][second] == "already finished"
    assert ce.getJobStatus([first])["Value"][first] == "Aborted"


def test_clean_purges(ce: InterCEdeComputingElement, fake: FakeBackend) -> None:
    ref = ce.submitJob("/tmp/pilot.sh", "")["Value"][0]
    result = ce.cleanJob(ref)
    assert (result["OK"], result["Value"]) == (True, 1)
    assert fake.purged == [JobHandle.parse(ref).id]


def test_missing_capabilities_are_enomethod_not_attribute_errors() -> None:
    with InterCEdeComputingElement.fromParameters(
        "ce", LOCAL, backend_factory=serving(Essential())
    ) as element:
        for result in (
            element.killJob(["x"]),
            element.cleanJob("x"),
            element.getCEStatus(),
            element.available(),
        ):
            assert (result["OK"], result["Errno"]) == (False, 1002)
        assert (
            element.getJobOutput(str(JobHandle(backend="b", resource="r", id="1")))["Errno"] == 1504
        )


# -- load and slots ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("running", "waiting", "slots"), [(3, 2, 3), (7, 1, 2), (8, 2, 0), (0, 5, 0), (0, 0, 5)]
)
def test_available_applies_dirac_slot_math_to_counts(
    ce: InterCEdeComputingElement, fake: FakeBackend, running: int, waiting: int, slots: int
) -> None:
    fake.counts_value = LoadCounts(running=running, waiting=waiting)
    result = ce.available()
    assert result["OK"] is True
    assert result["Value"] == slots
    assert (result["RunningJobs"], result["WaitingJobs"]) == (running, waiting)
    # DIRAC's base class: a copy of the getCEStatus result plus the limits
    assert result["CEInfoDict"] == {
        "OK": True,
        "Value": None,
        "RunningJobs": running,
        "WaitingJobs": waiting,
        "SubmittedJobs": 0,
        "MaxTotalJobs": 10,
        "MaxWaitingJobs": 5,
    }


def test_available_propagates_a_status_failure(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    fake.failure = ResourceUnavailableError("squeue: timed out")
    assert ce.available()["Errno"] == 2001


def test_available_processors_caps_the_slots() -> None:
    assert available_slots(0, 0, 10, 10, available_processors=4) == 4
    with pytest.raises(ValueError, match="running"):
        available_slots(-1, 0, 10, 10)


@given(
    running=st.integers(0, 200),
    waiting=st.integers(0, 200),
    max_total=st.integers(0, 200),
    max_waiting=st.integers(0, 200),
)
def test_slots_never_overfill_either_limit(
    running: int, waiting: int, max_total: int, max_waiting: int
) -> None:
    slots = available_slots(running, waiting, max_total, max_waiting)
    assert slots >= 0
    if slots:
        assert running + waiting + slots <= max_total
        assert waiting + slots <= max_waiting
        # and it fills one of them exactly
        assert running + waiting + slots == max_total or waiting + slots == max_waiting


# -- lifetime ----------------------------------------------------------------------------------


def test_closed_ce_answers_resource_unavailable(fake: FakeBackend) -> None:
    element = InterCEdeComputingElement.fromParameters("ce", LOCAL, backend_factory=serving(fake))
    element.close()
    element.close()  # idempotent
    assert fake.closed == 1
    result = element.submitJob("/tmp/pilot.sh", "")
    assert (result["OK"], result["Errno"]) == (False, 2001)


def test_call_from_a_running_event_loop_is_refused(ce: InterCEdeComputingElement) -> None:
    async def inside() -> dict[str, Any]:
        return ce.getCEStatus()

    result = asyncio.run(inside())
    assert (result["OK"], result["Errno"]) == (False, 1005)
    assert "event loop" in result["Message"]


def test_real_facade_is_built_from_the_parameters_without_io(tmp_path: Path) -> None:
    element = InterCEdeComputingElement.fromParameters(
        "ce.example.org", {**LOCAL, "SharedArea": str(tmp_path)}
    )
    try:
        assert isinstance(element._ready.backend, intercede.sync.JobBackend)
        assert isinstance(element._ready.backend, intercede.sync.Killable)
    finally:
        element.close()


# -- DIRAC's factory: ceClass(ceName), then setParameters(dict) ---------------------------------


def test_factory_protocol_constructs_by_name_then_sets_parameters(fake: FakeBackend) -> None:
    built: list[CETranslation] = []

    def factory(translation: CETranslation) -> intercede.sync.JobBackend:
        built.append(translation)
        return intercede.sync.wrap(fake)

    element = InterCEdeComputingElement("ce.example.org", backend_factory=factory)
    assert (element.ceName, element.ceType, element.ceParameters) == (
        "ce.example.org",
        "InterCEde",
        {},
    )
    assert built == []  # nothing is built before the parameters arrive
    result = element.setParameters({"CEType": "InterCEde", **LOCAL})
    assert result == {"OK": True, "Value": None}
    assert len(built) == 1
    assert element.ceParameters["Queue"] == "main"
    assert element.submitJob("/tmp/pilot.sh", "")["OK"] is True
    element.close()


def test_a_ce_used_before_set_parameters_says_so() -> None:
    element = InterCEdeComputingElement("ce.example.org")
    for result in (
        element.submitJob("/tmp/pilot.sh", ""),
        element.getJobStatus(["x"]),
        element.getJobOutput("x"),
        element.getJobLog("x"),
        element.killJob(["x"]),
        element.cleanJob(["x"]),
        element.getCEStatus(),
        element.available(),
    ):
        assert (result["OK"], result["Errno"]) == (False, returns.ECONF)
        assert "setParameters" in result["Message"]
    element.close()  # closing an unconfigured CE is harmless


def test_set_parameters_merges_rebuilds_and_closes_the_previous_facade() -> None:
    backends = [FakeBackend(), FakeBackend()]
    element = InterCEdeComputingElement.fromParameters(
        "ce", LOCAL, backend_factory=lambda _t: intercede.sync.wrap(backends.pop(0))
    )
    first = element._ready.backend
    assert element.available()["CEInfoDict"]["MaxTotalJobs"] == 10
    assert element.setParameters({"MaxTotalJobs": "20"})["OK"] is True
    assert element._ready.backend is not first
    # the earlier keys are kept: only MaxTotalJobs changed
    assert element.ceParameters["Queue"] == "main"
    info = element.available()["CEInfoDict"]
    assert (info["MaxTotalJobs"], info["MaxWaitingJobs"]) == (20, 5)
    element.close()


def test_previous_facade_is_closed_when_replaced() -> None:
    old, new = FakeBackend(), FakeBackend()
    queue = [old, new]
    element = InterCEdeComputingElement.fromParameters(
        "ce", LOCAL, backend_factory=lambda _t: intercede.sync.wrap(queue.pop(0))
    )
    assert element.setParameters({"MaxWaitingJobs": "7"})["OK"] is True
    assert (old.closed, new.closed) == (1, 0)
    element.close()
    assert new.closed == 1


def test_bad_set_parameters_names_the_key_and_keeps_the_working_ce(fake: FakeBackend) -> None:
    element = InterCEdeComputingElement.fromParameters(
        "ce.example.org", LOCAL, backend_factory=serving(fake)
    )
    before = element._ready
    result = element.setParameters({"MaxRAM": "lots"})
    assert (result["OK"], result["Errno"]) == (False, returns.ECONF)
    assert result["Message"].startswith("Configuration error ( 1003 : ce.example.org: MaxRAM: ")
    assert element._ready is before
    assert element.ceParameters["MaxRAM"] == "2048"
    assert element.submitJob("/tmp/pilot.sh", "")["OK"] is True
    assert fake.closed == 0
    element.close()


def test_password_survives_a_later_set_parameters_but_never_shows(tmp_path: Path) -> None:
    params = ssh_parameters(tmp_path, SSHPassword="hunter2-secret")
    del params["SSHKey"]
    translations: list[CETranslation] = []

    def factory(translation: CETranslation) -> intercede.sync.JobBackend:
        translations.append(translation)
        return intercede.sync.wrap(FakeBackend())

    with InterCEdeComputingElement.fromParameters("ce", params, backend_factory=factory) as element:
        assert element.setParameters({"MaxTotalJobs": "3"})["OK"] is True
        assert [t.config.auth for t in translations] == ["password", "password"]  # type: ignore[union-attr]
        assert "SSHPassword" not in element.ceParameters
        assert "hunter2-secret" not in repr(vars(element))


# -- credentials DIRAC sets on every CE (setProxy / setToken) -----------------------------------


class FakeChain:
    """The two methods of DIRAC's ``X509Chain`` that SiteDirector and the adapter use."""

    def __init__(self, pem: str, seconds_left: int = 86400) -> None:
        self._pem = pem
        self._left = seconds_left

    def getRemainingSecs(self) -> dict[str, Any]:
        return {"OK": True, "Value": self._left}

    def dumpAllToString(self) -> dict[str, Any]:
        return {"OK": True, "Value": self._pem}


def test_site_director_credential_cycle_works_on_the_adapter(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    # SiteDirector._setCredentials: no proxy yet → fetch one and set it; then a token
    assert not ce.proxy
    chain = FakeChain("-----BEGIN CERTIFICATE-----pilot")
    assert ce.setProxy(chain)["OK"] is True
    assert ce.proxy.getRemainingSecs()["Value"] == 86400  # next cycle's validity check
    assert ce.setProxy(chain, valid=3600)["OK"] is True
    assert ce.valid == 3600
    assert ce.setToken({"access_token": "tok"})["OK"] is True
    assert ce.token == {"access_token": "tok"}
    # SiteDirector bundles ce.proxy into the pilot itself and passes "": no secret is staged
    assert ce.submitJob("/tmp/pilot.sh", "", numberOfJobs=2)["OK"] is True
    assert all(not c.secrets for c in fake.copies[-1])


def test_remote_runner_passes_the_chain_and_it_is_staged_as_pem(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    pem = "-----BEGIN CERTIFICATE-----payload"
    ce.setProxy(FakeChain(pem))
    assert ce.submitJob("/w/workloadExec.sh", ce.proxy, outputs=["/"])["OK"] is True
    (copy,) = fake.copies[-1]
    assert copy.secrets["PROXY"].get_secret_value() == pem.encode()
    assert pem not in repr(copy)


def test_a_proxy_that_is_not_pem_is_refused_naming_the_argument(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    result = ce.submitJob("/tmp/pilot.sh", 12345)
    assert (result["OK"], result["Errno"]) == (False, returns.EWMSSUBM)
    assert "proxy: expected PEM text or an X509Chain, got int" in result["Message"]

    class Broken(FakeChain):
        def dumpAllToString(self) -> dict[str, Any]:
            return {"OK": False, "Message": "chain not loaded"}

    broken = ce.submitJob("/tmp/pilot.sh", Broken("secret-pem-text"))
    assert "chain not loaded" in broken["Message"]
    assert "secret-pem-text" not in broken["Message"]
    assert fake.specs == []


# -- SSHKey / SSHPassword ------------------------------------------------------------------------


def test_key_and_password_use_the_key_never_the_password_as_passphrase(tmp_path: Path) -> None:
    translation = translate(ssh_parameters(tmp_path, SSHPassword="hunter2-secret"))
    assert translation.config.auth == "key"  # type: ignore[union-attr]
    assert isinstance(translation.credentials, FileCredentials)
    wanted = CredentialRequirements(resource="ce", kinds=("ssh_private_key",))
    found = asyncio.run(translation.credentials.get(wanted)).get(intercede.SSHPrivateKey)
    assert found is not None
    assert found.passphrase is None
    assert "hunter2-secret" not in repr(translation)


def test_password_alone_is_password_auth(tmp_path: Path) -> None:
    params = ssh_parameters(tmp_path, SSHPassword="hunter2-secret")
    del params["SSHKey"]
    translation = translate(params)
    wanted = CredentialRequirements(resource="ce", kinds=("ssh_password",))
    found = asyncio.run(translation.credentials.get(wanted)).get(intercede.SSHPassword)
    assert found is not None
    assert found.value.get_secret_value() == "hunter2-secret"


# -- reading streams without fetching the payload ----------------------------------------------


def diagnosable_ce(backend: DiagnosableFake) -> InterCEdeComputingElement:
    return InterCEdeComputingElement.fromParameters("ce", LOCAL, backend_factory=serving(backend))


def test_slurm_names_only_stdout_so_both_streams_are_collected() -> None:
    backend = DiagnosableFake()
    with diagnosable_ce(backend) as element:
        # a backend that names only stdout (interCEde's Slurm backend now names all three)
        assert set(element.streamDiagnosticNames) == {"stdout", "stderr", "log"}
        element.streamDiagnosticNames = {"stdout": None}
        ref = element.submitJob("/tmp/pilot.sh", "")["Value"][0]
        job_id = JobHandle.parse(ref).id
        assert element.getJobOutput(ref)["Value"] == (
            f"stdout of {job_id}\n",
            f"stderr of {job_id}\n",
        )
        assert element.getJobLog(ref)["Value"] == "slurm log\n"
        # stderr and the log have no diagnostics name on Slurm: no half-way diagnostics call
        assert (backend.diagnostic_calls, backend.output_calls) == ([], 2)


def test_named_streams_are_read_without_collecting_the_payload() -> None:
    backend = DiagnosableFake()
    with diagnosable_ce(backend) as element:
        element.streamDiagnosticNames = ALL_STREAMS_BY_NAME
        ref = element.submitJob("/tmp/pilot.sh", "")["Value"][0]
        job_id = JobHandle.parse(ref).id
        assert element.getJobOutput(ref)["Value"] == (
            f"stdout of {job_id}\n",
            f"stderr of {job_id}\n",
        )
        assert element.getJobLog(ref)["Value"] == "slurm log\n"
        assert backend.diagnostic_calls == [None, "@stderr", "@log"]
        assert backend.output_calls == 0


def test_a_tail_or_a_refusal_falls_back_to_collecting() -> None:
    backend = DiagnosableFake()
    with diagnosable_ce(backend) as element:
        element.streamDiagnosticNames = ALL_STREAMS_BY_NAME
        ref = element.submitJob("/tmp/pilot.sh", "")["Value"][0]
        backend.truncated = True  # only the last MiB: not the whole stream
        assert element.getJobOutput(ref)["OK"] is True
        assert backend.output_calls == 1
        backend.truncated = False
        backend.log = None  # diagnostics refuses; collection says there is no log
        assert "no scheduler log" in element.getJobLog(ref)["Message"]
        assert backend.output_calls == 2


def test_output_outage_names_the_job_and_keeps_the_errno(
    ce: InterCEdeComputingElement, fake: FakeBackend
) -> None:
    ref = ce.submitJob("/tmp/pilot.sh", "")["Value"][0]
    fake.failure = ResourceUnavailableError("ssh: host unreachable")
    for result in (ce.getJobOutput(ref), ce.getJobLog(ref)):
        assert (result["OK"], result["Errno"]) == (False, returns.ERESUNA)
        assert result["Message"] == f"Resource not available ( 2001 : {ref}: ssh: host unreachable)"
