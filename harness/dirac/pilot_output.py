"""Pilot output and logging on demand, as DIRAC 9.1.22 serves them to the web portal (DC-36).

In 9.1.22 it is ``MonitoringSystem/Service/WebAppHandler`` (no longer PilotManagerHandler, as
the consumer analysis has it) that turns a PilotAgentsDB row into a *fresh* CE for one call:
``export_getPilotOutput`` → ``_getPilotOutput`` → ``WMSUtilities.getPilotCE`` (DIRAC's factory
with a temporary ``WorkingDirectory``), ``setPilotCredentials``, ``getPilotRef`` (``ref:::stamp``)
and ``ce.getJobOutput(ref)``; ``export_getPilotLoggingInfo`` does the same with
``ce.getJobLog``. The handler's class methods run as they are; only its PilotAgentsDB (a MySQL
database) is the in-memory recorder. Pilots are submitted by a CE built from the same CS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from harness.dirac._agent import Report, main
from harness.dirac._services import PilotAgentsDBRecorder, ProxyManagerStandIn

SCENARIO = "pilot-output"
DC_IDS = ("DC-36", "DC-10", "DC-16", "DC-17")
PILOT = """#!/bin/sh
echo "pilot stdout $DIRAC_PILOT_STAMP"
echo "pilot stderr $DIRAC_PILOT_STAMP" >&2
"""


def run(cs: Path, report: Report) -> None:
    from DIRAC import gLogger
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues
    from DIRAC.FrameworkSystem.Client.ProxyManagerClient import gProxyManager
    from DIRAC.MonitoringSystem.Service.WebAppHandler import WebAppHandler
    from DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities import getQueuesResolved

    proxies = ProxyManagerStandIn()
    gProxyManager.getPilotProxyFromVOMSGroup = proxies.getPilotProxyFromVOMSGroup
    queues = getQueuesResolved(
        siteDict=getQueues(community="harness")["Value"], vo="harness", instantiateCEs=True
    )
    info = next(q for q in queues["Value"].values() if q["QueueName"] == "main")
    ce = info["CE"]
    scratch = Path(tempfile.mkdtemp(prefix="harness-pilot-output-"))
    (scratch / "pilot.sh").write_text(PILOT)
    submitted = ce.submitJob(str(scratch / "pilot.sh"), "", 2)
    shutil.rmtree(scratch)
    if not report.check("submit 2 pilots", submitted["OK"], submitted.get("Message", "")):
        return
    refs, stamps = submitted["Value"], submitted["PilotStampDict"]
    db = PilotAgentsDBRecorder()
    db.addPilotReferences(refs, "harness", "InterCEde", stamps)
    for ref in refs:
        db.setPilotStatus(ref, "Submitted", info["CEName"], "", info["Site"], info["QueueName"])
    deadline = time.monotonic() + float(os.environ.get("HARNESS_TIMEOUT", "240"))
    while time.monotonic() < deadline:
        statuses = ce.getJobStatus(refs)["Value"]
        if all(s in ("Done", "Failed") for s in statuses.values()):
            break
        time.sleep(1)
    report.check(
        "pilots finished",
        all(s == "Done" for s in statuses.values()),
        str(sorted(statuses.values())),
    )
    ce.shutdown()

    WebAppHandler.pilotAgentsDB = db
    WebAppHandler.log = gLogger.getSubLogger("WebAppHandler")  # set by the service framework
    report.ran("DIRAC.MonitoringSystem.Service.WebAppHandler.WebAppHandler.export_getPilotOutput")
    report.ran("DIRAC.WorkloadManagementSystem.Service.WMSUtilities.getPilotCE")
    for attempt in ("first", "again"):
        for ref in refs:
            db.pilots[ref].pop("Output", None)  # not cached: each call builds a fresh CE
            got = WebAppHandler.export_getPilotOutput(ref)
            stamp = stamps[ref]
            value = got.get("Value", {}) if got["OK"] else {}
            report.check(
                f"{attempt}: output of {ref.rsplit('/', 2)[-2]}",
                got["OK"]
                and value.get("StdOut", "").strip() == f"pilot stdout {stamp}"
                and value.get("StdErr", "").strip() == f"pilot stderr {stamp}",
                got.get("Message", "") or repr(value.get("StdOut", ""))[:80],
            )
    report.check(
        "output stored in PilotAgentsDB as the handler does",
        all(db.pilots[ref].get("Output") for ref in refs),
        f"{sum(1 for ref in refs if db.pilots[ref].get('Output'))} stored",
    )
    report.ran(
        "DIRAC.MonitoringSystem.Service.WebAppHandler.WebAppHandler.export_getPilotLoggingInfo"
    )
    log = WebAppHandler.export_getPilotLoggingInfo(refs[0])
    report.check(
        "pilot logging info is the scheduler's log of the job",
        log["OK"] and "intercede: exit code 0" in log["Value"],
        log.get("Message", "") or log["Value"][-120:],
    )
    stale = refs[0].replace("/0", "/9").rsplit("?", 1)[0] + "?" + "0" * 32 + "/9"
    db.addPilotReferences([stale], "harness", "InterCEde", {stale: "f" * 32})
    db.setPilotStatus(stale, "Done", info["CEName"], "", info["Site"], info["QueueName"])
    # the CE path alone: on its failure export_getPilotOutput falls back to the remote pilot
    # logging plugin, a server-side service this harness does not run
    got = WebAppHandler._getPilotOutput(stale, db.getPilotInfo(stale)["Value"][stale])
    report.check(
        "a stale reference fails on its own, with the reason",
        not got["OK"] and bool(got.get("Message")),
        got.get("Message", "unexpectedly OK")[:160],
    )


if __name__ == "__main__":
    raise SystemExit(main(run, SCENARIO, DC_IDS))
