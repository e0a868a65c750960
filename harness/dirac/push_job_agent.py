"""DIRAC's real ``PushJobAgent`` (``SubmissionPolicy = JobWrapper``) pushing a job through
``CEType = InterCEde`` and collecting it, in two whole agent cycles.

DIRAC code that runs, unchanged: ``initialize``; ``beginExecution`` (``_buildQueueDict`` →
``getQueuesResolved`` → ``QueueCECache`` → ``ComputingElementFactory``; ``DIRACInstallLocation``
and ``ce.preamble = "source <CVMFSLocation>/Linux-x86_64/diracosrc"`` per queue); ``execute``
twice. The first cycle runs ``_checkCEAvailability`` (``ce.available()``), ``_getCEDict``
(the CE's inherited ``getDescription()``), ``_matchAJob``, the JDL helpers, and
``_submitJobWrapper`` whole: ``getJobWrapper`` (a real ``JobWrapper``), ``preProcessJob`` under
``executeWithUserProxy``, ``dumpRemoteCFGToFile``, ``createJobWrapper`` (the
``JobWrapperOfflineTemplate``), then ``ce.submitJob(executableFile=..., proxy=None,
inputs=[every file of the job directory + the wrapper and its JSON], outputs=["/"])`` and the
``TaskID``/``Stamp`` job parameters. The second cycle runs ``_checkSubmittedJobWrappers`` whole:
``ce.getJobStatus``, a real ``JobWrapper.initialize``, ``ce.getJobOutput(f"{taskID}:::{stamp}",
job.jobIDPath)``, ``_checkOutputIntegrity`` over ``checksums.json``, reading
``payloadResult.json``, ``postProcessJob`` (``JobWrapper.postProcess`` and ``finalize``) and
``ce.cleanJob(taskID)``. ``finalize()`` ends the agent; each CE is then ``shutdown()``.

Replaced, all DIRAC services: ``gProxyManager`` (one real ``X509Chain`` proxy), the Matcher
(hands out one job, then no match), JobStateUpdate (what ``JobReport`` and ``JobWrapper`` send is
recorded: statuses and parameters), JobMonitoring (``getJobs``/``getJobJDL`` answered from that
record), ``getJobParametersUtility`` (JobParametersDB/JobDB, answered from the same record),
JobManager (``rescheduleJob``, only on failure paths) and the accounting ``DataStoreClient``.

Replaced on the worker nodes: DIRAC itself. The wrapper ``createJobWrapper`` writes is
``python ./Wrapper_<id> ... dirac.cfg``, and ``Wrapper_<id>`` (the offline template) imports
DIRAC's ``JobWrapper`` to run the payload: it needs the DIRACOS installation
``<CVMFSLocation>/Linux-x86_64`` provides, and the cluster has no CVMFS. The scenario makes a
``CVMFSLocation`` on the shared home (over its own SSH session) whose ``diracosrc`` exports a
marker variable and puts a stand-in ``python`` first on ``PATH``. The stand-in does what the
offline template does with ``JobWrapper.process``: runs the payload command with the variables
the agent's ``JobWrapper`` prepared (``JOBID``, ``DIRAC*``), writes ``payloadResult.json`` in
the template's format and ``checksums.json`` (sha256 of every file in the job directory). So the
job sees the preamble the agent set, and everything the agent does with the result is DIRAC's.

The preamble runs as the agent wrote it (``source <file>``): interCEde's batch script is bash,
as DIRAC's own SLURM.py batch scripts are.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.dirac._agent import Report, main, make_proxy
from harness.dirac.login import login_run

SCENARIO = "push-job-agent"
DC_IDS = ("DC-04", "DC-09", "DC-10", "DC-12", "DC-16", "DC-18", "DC-25", "DC-28", "DC-34", "DC-38")
AGENT = "WorkloadManagement/PushJobAgent"
JOB_ID = 4242
OWNER = "pilot"
GROUP = "harness_user"
PAYLOAD_FILE = "payload.txt"
TIMEOUT_S = float(os.environ.get("HARNESS_TIMEOUT", "240"))

# The stand-in for DIRACOS's python running the offline JobWrapper template on the worker.
STAND_IN = r"""#!/usr/bin/env python3
import hashlib, json, os, subprocess, sys
wrapper = sys.argv[1]
with open(os.path.realpath(wrapper) + ".json") as f:
    arguments = json.load(f)
payload, job = arguments["Payload"], arguments["Job"]
env = dict(os.environ)
env.update({k: v for k, v in payload["env"].items() if k == "JOBID" or k.startswith("DIRAC")})
before = os.times()
stdout, stderr = job.get("StdOutput", "std.out"), job.get("StdError", "std.err")
with open(stdout, "w") as out, open(stderr, "w") as err:
    run = subprocess.run(payload["command"], shell=True, env=env, stdout=out, stderr=err)
status = run.returncode
after = os.times()
with open(stdout) as f:
    output = "\n".join(f.read().splitlines()[-20:])
result = {"OK": True, "Value": {
    "payloadStatus": status, "payloadOutput": output, "payloadExecutorError": None,
    "cpuTimeConsumed": [b - a for a, b in zip(before, after)],
    "watchdogError": None, "watchdogStats": {}, "gracefulStopSignal": 0}}
with open(job["PayloadResults"], "w") as f:
    json.dump(result, f)
checksums = {}
for name in os.listdir("."):
    if os.path.isfile(name):
        with open(name, "rb") as f:
            checksums[name] = hashlib.file_digest(f, "sha256").hexdigest()
with open(job["Checksum"], "w") as f:
    json.dump(checksums, f)
"""


def _ok(value: Any = None) -> dict[str, Any]:
    from DIRAC import S_OK

    return dict(S_OK(value))


class WMSRecorder:
    """JobStateUpdate, JobMonitoring and the job-parameter lookup over one in-memory job table."""

    def __init__(self, jdl: str, site: str) -> None:
        self.jdl = jdl
        self.site = site
        self.status: dict[int, dict[str, str]] = {}
        self.parameters: dict[int, dict[str, Any]] = {}
        self.history: dict[int, list[str]] = {}
        self.heartbeats = 0
        self.reschedules: list[int] = []

    # JobStateUpdateClient
    def setJobStatusBulk(
        self, jobID: Any, statusDict: Mapping[str, Any], force: bool = False
    ) -> dict[str, Any]:
        current = self.status.setdefault(int(jobID), {})
        for _, entry in sorted(statusDict.items()):
            for key in ("Status", "MinorStatus", "ApplicationStatus"):
                if entry.get(key):
                    current[key] = entry[key]
            if entry.get("Status"):
                self.history.setdefault(int(jobID), []).append(entry["Status"])
        return _ok()

    def setJobParameters(self, jobID: Any, parameters: Iterable[Any]) -> dict[str, Any]:
        self.parameters.setdefault(int(jobID), {}).update(dict(parameters))
        return _ok()

    def setJobParameter(self, jobID: Any, name: str, value: Any) -> dict[str, Any]:
        self.parameters.setdefault(int(jobID), {})[name] = value
        return _ok()

    def sendHeartBeat(self, *_: Any, **__: Any) -> dict[str, Any]:
        self.heartbeats += 1
        return _ok()

    # JobMonitoringClient
    def getJobs(self, condDict: Mapping[str, Any], *_: Any, **__: Any) -> dict[str, Any]:
        wanted = condDict.get("Status")
        return _ok([str(j) for j, s in self.status.items() if s.get("Status") == wanted])

    def getJobJDL(self, jobID: Any, original: bool = False) -> dict[str, Any]:
        return _ok(self.jdl)

    # JobParametersDB via getJobParametersUtility
    def job_parameters(
        self, jobIDs: Iterable[Any], names: Iterable[str], vo: str = ""
    ) -> dict[str, Any]:
        return _ok(
            {
                int(j): {n: v for n, v in self.parameters.get(int(j), {}).items() if n in names}
                for j in jobIDs
            }
        )

    # JobManagerClient
    def rescheduleJob(self, jobID: Any) -> dict[str, Any]:
        self.reschedules.append(int(jobID))
        return _ok()


class OneJobMatcher:
    """The Matcher: one waiting job for the first CE that asks, then ``EWMSNOMATCH``."""

    def __init__(self, jdl: str) -> None:
        self.jdl = jdl
        self.asked: list[dict[str, Any]] = []

    def requestJob(self, ceDict: Mapping[str, Any]) -> dict[str, Any]:
        from DIRAC import S_ERROR
        from DIRAC.Core.Utilities import DErrno

        self.asked.append(dict(ceDict))
        if len(self.asked) > 1:
            return dict(S_ERROR(DErrno.EWMSNOMATCH, "No match found"))
        return _ok(
            {
                "JobID": JOB_ID,
                "JDL": self.jdl,
                "Owner": OWNER,
                "Group": GROUP,
                "CEDict": dict(ceDict),
            }
        )


class ProxyFiles:
    """``gProxyManager``'s calls made by PushJobAgent and ``executeWithUserProxy``."""

    def __init__(self, scratch: Path) -> None:
        self.proxy = make_proxy()
        self.scratch = scratch
        self.calls: list[str] = []

    def _file(self, path: Any = None) -> dict[str, Any]:
        target = Path(path) if path else self.scratch / f"proxy-{uuid.uuid4().hex}"
        target.write_text(self.proxy.dumpAllToString()["Value"])
        target.chmod(0o600)
        return _ok(str(target))

    def install(self, manager: Any) -> None:
        def pilot(*_: Any, **__: Any) -> dict[str, Any]:
            self.calls.append("getPilotProxyFromDIRACGroup")
            return _ok(self.proxy)

        def has(*_: Any, **__: Any) -> dict[str, Any]:
            self.calls.append("userHasProxy")
            return _ok(True)

        def dump(_chain: Any, destinationFile: Any = None, **__: Any) -> dict[str, Any]:
            self.calls.append("dumpProxyToFile")
            return self._file(destinationFile)

        def download(*_: Any, filePath: Any = None, **__: Any) -> dict[str, Any]:
            self.calls.append("downloadProxyToFile")
            return self._file(filePath)

        manager.getPilotProxyFromDIRACGroup = pilot
        manager.userHasProxy = has
        manager.dumpProxyToFile = dump
        manager.downloadProxyToFile = download
        manager.downloadVOMSProxyToFile = download


class DataStoreRecorder:
    """The accounting ``DataStoreClient``: records are kept, nothing is sent."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def addRegister(self, register: Any) -> dict[str, Any]:
        self.records.append(register)
        return _ok()

    def commit(self) -> dict[str, Any]:
        return _ok()


def _jdl(marker_file: str) -> str:
    # No ";" in a JDL string: DIRAC's JDL reader cuts the value there.
    command = " && ".join(
        [
            f"echo marker=$HARNESS_DIRACOSRC > {marker_file}",
            f"echo JOBID=$JOBID >> {marker_file}",
            "hostname",
        ]
    )
    return "\n".join(
        [
            "[",
            f"  JobID = {JOB_ID};",
            '  JobName = "harness-push";',
            '  JobType = "User";',
            f'  Owner = "{OWNER}";',
            f'  OwnerGroup = "{GROUP}";',
            '  Executable = "/bin/sh";',
            f"  Arguments = {json.dumps('-c ' + shlex.quote(command))};",
            "  CPUTime = 600;",
            "]",
        ]
    )


def _install_worker_dirac(parameters: Mapping[str, Any], marker: str) -> str:
    """A ``CVMFSLocation`` on the shared home: ``Linux-x86_64/diracosrc`` and the stand-in."""
    root = f"{parameters['SharedArea']}/harness-cvmfs-{uuid.uuid4().hex[:12]}"
    arch = f"{root}/Linux-x86_64"
    rc = f"export HARNESS_DIRACOSRC={marker}\nexport PATH={arch}/bin:$PATH\n"
    login_run(
        parameters,
        f"mkdir -p {arch}/bin && printf %s {shlex.quote(rc)} > {arch}/diracosrc"
        f" && printf %s {shlex.quote(STAND_IN)} > {arch}/bin/python && chmod 755 {arch}/bin/python",
    )
    return root


def install_services(
    recorder: WMSRecorder, matcher: OneJobMatcher, proxies: ProxyFiles
) -> DataStoreRecorder:
    """Point every DIRAC service handle the agent and the JobWrapper use at the stand-ins."""
    from DIRAC.AccountingSystem.Client import DataStoreClient
    from DIRAC.FrameworkSystem.Client.ProxyManagerClient import gProxyManager
    from DIRAC.WorkloadManagementSystem.Agent import JobAgent, PushJobAgent
    from DIRAC.WorkloadManagementSystem.Client import JobReport
    from DIRAC.WorkloadManagementSystem.JobWrapper import JobWrapper, JobWrapperUtilities

    proxies.install(gProxyManager)
    JobReport.JobStateUpdateClient = lambda *a, **k: recorder
    JobWrapper.JobStateUpdateClient = lambda *a, **k: recorder
    JobWrapperUtilities.JobManagerClient = lambda *a, **k: recorder
    JobAgent.MatcherClient = lambda *a, **k: matcher
    PushJobAgent.getJobParametersUtility = recorder.job_parameters
    store = DataStoreRecorder()
    DataStoreClient.gDataStoreClient.addRegister = store.addRegister
    DataStoreClient.gDataStoreClient.commit = store.commit
    return store


def run(cs: Path, report: Report) -> None:
    from DIRAC import gConfig
    from DIRAC.WorkloadManagementSystem.Agent.PushJobAgent import PushJobAgent

    site = str(gConfig.getValue("/LocalSite/Site", ""))
    ce_name = str(gConfig.getValue(f"/Resources/Sites/DIRAC/{site}/CE", ""))
    parameters = gConfig.getOptionsDict(f"/Resources/Sites/DIRAC/{site}/CEs/{ce_name}")["Value"]
    marker = uuid.uuid4().hex
    cvmfs = _install_worker_dirac(parameters, marker)
    section = f"/Systems/{AGENT.split('/')[0]}/Agents/{AGENT.split('/')[1]}"
    gConfig.setOptionValue(f"{section}/CVMFSLocation", cvmfs)
    gConfig.setOptionValue(f"{section}/SubmissionDelay", "0")
    # A queue without a match counts as failed and sits out FailedQueueCycleFactor cycles; with
    # 1 the next cycle polls it again (a real agent would collect ten cycles later).
    gConfig.setOptionValue(f"{section}/FailedQueueCycleFactor", "1")
    gConfig.setOptionValue("/LocalSite/GridCE", ce_name)
    # The JobWrapper's DataManager needs a real backend name ("None" has no sender): accounting,
    # which goes to the DataStoreClient recorder.
    gConfig.setOptionValue("/Operations/Defaults/MonitoringBackends/DataOperation", "Accounting")

    scratch = Path(tempfile.mkdtemp(prefix="harness-push-job-agent-"))
    jdl = _jdl(PAYLOAD_FILE)
    recorder, matcher, proxies = WMSRecorder(jdl, site), OneJobMatcher(jdl), ProxyFiles(scratch)
    store = install_services(recorder, matcher, proxies)
    before = Path.cwd()
    os.chdir(scratch)  # the JobWrapper works in <cwd>/<jobID>, createJobWrapper in <cwd>/job
    try:
        _cycles(report, PushJobAgent, recorder, matcher, store, cvmfs, marker, scratch)
    finally:
        os.chdir(before)
        shutil.rmtree(scratch, ignore_errors=True)
        login_run(parameters, f"rm -rf {shlex.quote(cvmfs)}")


def _cycles(
    report: Report,
    agent_class: Any,
    recorder: WMSRecorder,
    matcher: OneJobMatcher,
    store: DataStoreRecorder,
    cvmfs: str,
    marker: str,
    scratch: Path,
) -> None:
    prefix = "DIRAC.WorkloadManagementSystem.Agent.PushJobAgent.PushJobAgent"
    agent = agent_class(AGENT, AGENT)
    report.ran(f"{prefix}.initialize")
    result = agent.initialize()
    if not report.check(
        "initialize", result["OK"], result.get("Message", f"policy {agent.submissionPolicy}")
    ):
        return
    agent.jobMonitoring = recorder  # initialize() made a JobMonitoringClient
    report.ran(f"{prefix}.beginExecution")
    report.ran(f"{prefix}._buildQueueDict")
    report.ran("DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities.getQueuesResolved")
    result = agent.beginExecution()
    if not report.check("beginExecution built the queues", result["OK"], result.get("Message", "")):
        return
    queues = sorted(agent.queueDict)
    ces = [agent.queueDict[q]["CE"] for q in queues]
    report.check(
        "factory built an InterCEde CE per queue",
        bool(ces) and all(type(ce).__name__ == "InterCEdeComputingElement" for ce in ces),
        f"{queues}",
    )
    expected = f"source {cvmfs}/Linux-x86_64/diracosrc"
    report.check(
        "beginExecution set ce.preamble from CVMFSLocation",
        all(ce.preamble == expected for ce in ces),
        f"{ces[0].preamble!r}",
    )
    report.ran("DIRAC.WorkloadManagementSystem.Agent.JobAgent.JobAgent._getCEDict")
    result = agent._getCEDict(ces[0])
    ce_dict = result["Value"][0] if result["OK"] else {}
    report.check(
        "_getCEDict from the CE's inherited getDescription()",
        result["OK"]
        and ce_dict.get("CEType") == "InterCEde"
        and ce_dict.get("GridCE") == ces[0].ceName,
        str({k: ce_dict.get(k) for k in ("CEType", "GridCE", "Queue", "NumberOfProcessors")})
        if result["OK"]
        else result["Message"],
    )

    # Cycle 1: match the job and push its JobWrapper.
    report.ran(f"{prefix}.execute")
    report.ran(f"{prefix}._submitJobWrapper")
    report.ran("DIRAC.WorkloadManagementSystem.JobWrapper.JobWrapperUtilities.getJobWrapper")
    report.ran(f"{prefix}.preProcessJob")
    report.ran("DIRAC.WorkloadManagementSystem.JobWrapper.JobWrapper.JobWrapper.preProcess")
    report.ran("DIRAC.WorkloadManagementSystem.Utilities.Utils.createJobWrapper")
    started = time.monotonic()
    result = agent.execute()
    report.measurements["submit_cycle_s"] = round(time.monotonic() - started, 3)
    params = recorder.parameters.get(JOB_ID, {})
    task, stamp = params.get("TaskID", ""), params.get("Stamp", "")
    report.check(
        "cycle 1 submitted the JobWrapper: TaskID and Stamp recorded",
        result["OK"] and task.startswith("slurm+ssh://") and len(stamp) == 32,
        f"{result.get('Value', result.get('Message'))}; TaskID {task}",
    )
    report.check(
        "job parameters GridCE/CEQueue recorded for the collection cycle",
        params.get("GridCE") == ces[0].ceName and params.get("CEQueue") in queues,
        f"GridCE={params.get('GridCE')} CEQueue={params.get('CEQueue')}",
    )
    report.check(
        "job is Running after submission",
        recorder.status.get(JOB_ID, {}).get("Status") == "Running",
        str(recorder.status.get(JOB_ID)),
    )
    ce = next((agent.queueDict[q]["CE"] for q in queues if q == params.get("CEQueue")), ces[0])
    if not task:
        return

    # Between cycles: the agent polls in its next cycle; wait for the task to be final first.
    deadline = time.monotonic() + TIMEOUT_S
    status = ""
    while time.monotonic() < deadline:
        status = ce.getJobStatus([task])["Value"][task]
        if status in ("Done", "Failed", "Aborted"):
            break
        time.sleep(2)
    report.measurements["task_final_s"] = round(time.monotonic() - started, 3)
    report.check("task reached a final status", status == "Done", status)

    # Look at the output before the agent collects and cleans it: fetched the agent's way.
    peek = scratch / "peek"
    result = ce.getJobOutput(f"{task}:::{stamp}", str(peek))
    report.ran(f"{prefix}._checkOutputIntegrity")
    integrity = agent._checkOutputIntegrity(str(peek)) if result["OK"] else result
    report.check(
        "getJobOutput(ref:::stamp) brought checksums.json; _checkOutputIntegrity passes",
        integrity["OK"] and (peek / agent.checkSumResultsFile).is_file(),
        integrity.get("Message", f"{len(list(peek.iterdir()))} files"),
    )
    payload = (peek / PAYLOAD_FILE).read_text() if (peek / PAYLOAD_FILE).is_file() else ""
    report.check(
        "the job saw the preamble the agent set (diracosrc marker)",
        f"marker={marker}" in payload and f"JOBID={JOB_ID}" in payload,
        payload.strip().replace("\n", "; "),
    )
    results = peek / agent.payloadResultFile
    value = json.loads(results.read_text()) if results.is_file() else {}
    report.check(
        "payloadResult.json readable as the agent reads it",
        value.get("OK") is True and value.get("Value", {}).get("payloadStatus") == 0,
        str(value.get("Value", {}).get("payloadOutput", value))[:200],
    )

    # Cycle 2: the agent collects, verifies, post-processes and cleans the task.
    report.ran(f"{prefix}._checkSubmittedJobWrappers")
    report.ran(f"{prefix}.postProcessJob")
    report.ran("DIRAC.WorkloadManagementSystem.JobWrapper.JobWrapper.JobWrapper.postProcess")
    report.ran("DIRAC.WorkloadManagementSystem.JobWrapper.JobWrapper.JobWrapper.finalize")
    started = time.monotonic()
    result = agent.execute()
    report.measurements["collect_cycle_s"] = round(time.monotonic() - started, 3)
    history = recorder.history.get(JOB_ID, [])
    final = recorder.status.get(JOB_ID, {})
    report.check(
        "cycle 2 collected and post-processed the task: job Done / Execution Complete",
        result["OK"]
        and (final.get("Status"), final.get("MinorStatus")) == ("Done", "Execution Complete")
        and "Completing" in history
        and not recorder.reschedules,
        f"{recorder.status.get(JOB_ID)}; history {history}; reschedules {recorder.reschedules}",
    )
    after = ce.getJobStatus([task])["Value"][task]
    gone = ce.getJobOutput(f"{task}:::{stamp}", str(scratch / "again"))
    report.check(
        "cleanJob(taskID) purged the task on the cluster",
        not gone["OK"],
        f"status after clean {after}; getJobOutput: {gone.get('Message', 'still there')[:160]}",
    )
    report.check(
        "JobWrapper.finalize removed the local job directory; accounting went to the recorder",
        not (scratch / str(JOB_ID)).exists() and bool(store.records),
        f"{len(store.records)} accounting record(s); matcher asked {len(matcher.asked)} time(s)",
    )

    report.ran(f"{prefix}.finalize")
    result = agent.finalize()
    for queue in queues:
        agent.queueDict[queue]["CE"].shutdown()
    report.check(
        "finalize() and every CE's shutdown() close the connections",
        result["OK"] and all(agent.queueDict[q]["CE"].backend is None for q in queues),
        f"{len(queues)} CEs shut down",
    )


if __name__ == "__main__":
    raise SystemExit(main(run, SCENARIO, DC_IDS))
