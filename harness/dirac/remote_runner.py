"""DIRAC's real ``RemoteRunner`` running a command on the cluster through ``CEType = InterCEde``.

``RemoteRunner(site, ce, queue).execute(command, ".", numberOfProcessors)`` runs whole, as a
workflow module calls it on a site without outbound connectivity: ``_setUpWorkloadCE`` reads
the queue with ``getQueue`` (``NumberOfProcessors`` is a string in the CS; DIRAC's
``setParameters`` makes it an int), builds the CE through ``ComputingElementFactory``, compares
the payload's processors with the CE's and writes the payload's value back into
``ceParameters`` after the CE was built, and sets the proxy ``getProxyInfo`` reads from
``$X509_USER_PROXY``. ``_wrapCommand`` writes ``workloadExec.sh`` (absolute paths rewritten to
the working directory), ``submitJob(..., inputs=<every file>, outputs=["/"])`` stages them,
``getJobStatus`` is polled to a final status, ``getJobOutput(f"{ref}:::{stamp}", cwd)`` brings
everything back, ``_checkOutputIntegrity`` verifies the md5 lines and ``cleanJob`` purges the
job's directory on the cluster.

Nothing on the CE path is replaced. The proxy is a real ``X509Chain`` proxy written to a file
(what ``gProxyManager`` would have handed out). Site, CE and queue come from ``/LocalSite``
(``Site``, ``GridCE``, ``CEQueue``), where a job's local configuration carries them.
``RemoteRunner`` waits 120 s between status polls and between retries; the scenario caps
``time.sleep`` inside that module only to ``HARNESS_POLL_S`` so a run takes seconds, not minutes
(the number of polls and retries is unchanged).

What ``execute`` returns as ``(status, output, error)``: the InterCEde CE's ``getJobOutput``
with a ``localDir`` answers with the paths of ``<stamp>.out``/``<stamp>.err``, as DIRAC's SSH CE
does (AREX answers with their texts), and RemoteRunner deletes those two files before returning,
so ``output``/``error`` name files that no longer exist. The scenario reads what the command
wrote into files instead.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from harness.dirac._agent import Report, main, make_proxy
from harness.dirac.login import login_run

SCENARIO = "remote-runner"
DC_IDS = ("DC-04", "DC-08", "DC-10", "DC-16", "DC-18", "DC-35", "DC-38")
POLL_S = float(os.environ.get("HARNESS_POLL_S", "2"))
CS_PROCESSORS = "2"  # every worker has 2 CPUs (sinfo); the queue's NumberOfProcessors
SCRIPT = """#!/bin/bash
set -eu
echo "cpus_on_node=${SLURM_CPUS_ON_NODE:-unset}" > cpus.txt
echo "nproc=$(nproc)" >> cpus.txt
echo "remote_dir=$PWD" >> cpus.txt
sort "$1" > sorted.txt
echo "command ran on $(hostname)"
"""
WORDS = "pear\napple\nfig\n"


def _cs_queue(cs_site: str) -> tuple[str, str, str]:
    """The CE and queue a job would target: the site's CE and its first queue."""
    from DIRAC import gConfig

    ce = str(gConfig.getValue(f"/Resources/Sites/DIRAC/{cs_site}/CE", ""))
    queues = gConfig.getSections(f"/Resources/Sites/DIRAC/{cs_site}/CEs/{ce}/Queues")["Value"]
    return cs_site, ce, sorted(queues)[0]


def _execute(runner: Any, work: Path, processors: int) -> tuple[dict[str, Any], dict[str, str]]:
    """``runner.execute`` from inside ``work`` (RemoteRunner lists and writes the cwd)."""
    (work / "job.sh").write_text(SCRIPT)
    (work / "words.txt").write_text(WORDS)
    before = Path.cwd()
    os.chdir(work)
    try:
        # Absolute paths inside the working directory: _wrapCommand rewrites them to ./name.
        result = runner.execute(
            f"bash {work}/job.sh {work}/words.txt", ".", numberOfProcessors=processors
        )
    finally:
        os.chdir(before)
    files = {p.name: p.read_text(errors="replace") for p in work.iterdir() if p.is_file()}
    return result, files


def run(cs: Path, report: Report) -> None:
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueue
    from DIRAC.Core.Utilities import DErrno
    from DIRAC.WorkloadManagementSystem.Utilities import RemoteRunner as module

    site = str(gConfig.getValue("/LocalSite/Site", ""))
    site, ce_name, queue = _cs_queue(site)
    queue_path = f"/Resources/Sites/DIRAC/{site}/CEs/{ce_name}/Queues/{queue}"
    gConfig.setOptionValue(f"{queue_path}/NumberOfProcessors", CS_PROCESSORS)
    gConfig.setOptionValue("/LocalSite/GridCE", ce_name)
    gConfig.setOptionValue("/LocalSite/CEQueue", queue)
    parameters = getQueue(site, ce_name, queue)["Value"]
    report.check(
        "queue's NumberOfProcessors is a string in the CS",
        parameters.get("NumberOfProcessors") == CS_PROCESSORS,
        f"getQueue -> {parameters.get('NumberOfProcessors')!r}",
    )

    real_sleep = time.sleep
    module.time = types.SimpleNamespace(sleep=lambda s: real_sleep(min(float(s), POLL_S)))
    scratch = Path(tempfile.mkdtemp(prefix="harness-remote-runner-"))
    proxy_file = scratch / "proxy.pem"
    proxy_file.write_text(make_proxy().dumpAllToString()["Value"])
    proxy_file.chmod(0o600)
    os.environ["X509_USER_PROXY"] = str(proxy_file)

    runner = module.RemoteRunner(
        gConfig.getValue("/LocalSite/Site"),
        gConfig.getValue("/LocalSite/GridCE"),
        gConfig.getValue("/LocalSite/CEQueue"),
    )
    report.ran(
        "DIRAC.WorkloadManagementSystem.Utilities.RemoteRunner.RemoteRunner._setUpWorkloadCE"
    )
    result = runner._setUpWorkloadCE(1)
    ce = result.get("Value")
    report.check(
        "factory built the InterCEde CE; NumberOfProcessors an int RemoteRunner can compare",
        result["OK"]
        and type(ce).__name__ == "InterCEdeComputingElement"
        and ce.ceParameters.get("NumberOfProcessors") == 1,
        f"{type(ce).__name__}; written back: {ce.ceParameters.get('NumberOfProcessors')!r}"
        if result["OK"]
        else result["Message"],
    )
    if ce is not None:
        report.check(
            "proxy from getProxyInfo set on the CE",
            ce.proxy is not None and ce.proxy.getRemainingSecs()["OK"],
            type(ce.proxy).__name__,
        )
        ce.shutdown()

    # More processors than the queue has: refused before anything is submitted.
    report.ran("DIRAC.WorkloadManagementSystem.Utilities.RemoteRunner.RemoteRunner.execute")
    result = runner.execute("true", ".", numberOfProcessors=int(CS_PROCESSORS) + 1)
    report.check(
        "more processors than the queue's NumberOfProcessors is refused (ERESUNA)",
        not result["OK"]
        and result.get("Errno") == DErrno.ERESUNA
        and "Not enough processors" in result["Message"],
        result.get("Message", "accepted"),
    )

    report.ran("DIRAC.WorkloadManagementSystem.Utilities.RemoteRunner.RemoteRunner._wrapCommand")
    report.ran(
        "DIRAC.WorkloadManagementSystem.Utilities.RemoteRunner.RemoteRunner._checkOutputIntegrity"
    )
    for processors in (1, int(CS_PROCESSORS)):
        work = scratch / f"cpus{processors}"
        work.mkdir()
        started = time.monotonic()
        result, files = _execute(runner, work, processors)
        report.measurements[f"execute_{processors}cpu_s"] = round(time.monotonic() - started, 3)
        if not report.check(
            f"execute with {processors} processor(s) returned exit code 0",
            result["OK"] and result["Value"][0] == 0,
            str(result.get("Value", result.get("Message")))[:300],
        ):
            continue
        cpus = dict(line.split("=", 1) for line in files.get("cpus.txt", "").split())
        report.check(
            f"job got {processors} CPU(s): the value RemoteRunner wrote into ceParameters",
            cpus.get("cpus_on_node") == str(processors),
            f"SLURM_CPUS_ON_NODE={cpus.get('cpus_on_node')} nproc={cpus.get('nproc')}"
            f" (CS says {CS_PROCESSORS})",
        )
        report.check(
            f"command's output file came back ({processors} cpu run)",
            files.get("sorted.txt") == "".join(sorted(WORDS.splitlines(keepends=True))),
            repr(files.get("sorted.txt")),
        )
        remote = cpus.get("remote_dir", "")
        gone = login_run(
            parameters, f"test -e {shlex.quote(remote)} && echo present || echo gone"
        ).strip()
        report.check(
            f"cleanJob removed the job's directory on the cluster ({processors} cpu run)",
            bool(remote) and gone == "gone",
            f"{remote}: {gone}",
        )
        cleaned = not ({"workloadExec.sh", "md5Checksum.txt"} & files.keys()) and not any(
            name.endswith((".out", ".err")) for name in files
        )
        report.check(
            f"RemoteRunner deleted executable, checksums and streams ({processors} cpu run)",
            cleaned,
            f"left in the working directory: {sorted(files)}",
        )

    shutil.rmtree(scratch, ignore_errors=True)  # the proxy file with it


if __name__ == "__main__":
    raise SystemExit(main(run, SCENARIO, DC_IDS))
