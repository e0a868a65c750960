"""DIRAC's real ``SiteDirector`` provisioning the cluster through ``CEType = InterCEde``.

One agent cycle as DIRAC runs it, minus the services: ``beginExecution`` builds the queues
(``_buildQueueDict`` → ``getQueuesResolved`` → ``QueueCECache`` → ``ComputingElementFactory``),
``_submitPilotsPerQueue`` sizes the submission with ``ce.available()`` and the Matcher and
submits stamped pilots in one ``submitJob``, the PilotAgentsDB recorder receives refs and stamps,
``monitorPilots`` reads their statuses from the cluster until every pilot is final, and a changed
queue definition makes the cache evict the CE, whose ``shutdown()`` closes its SSH connection.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from harness.dirac._agent import Report, main
from harness.dirac._services import (
    FakeMatcher,
    PilotAgentsDBRecorder,
    ProxyManagerStandIn,
    install_site_services,
)
from harness.dirac.login import count_sessions, ssh_connections

SCENARIO = "site-director"
DC_IDS = ("DC-04", "DC-05", "DC-06", "DC-07", "DC-11", "DC-12", "DC-15", "DC-23", "DC-33", "DC-38")
PILOTS = int(os.environ.get("HARNESS_PILOTS", "5"))
FINAL = {"Done", "Failed", "Aborted"}


def build_agent(pilots: int) -> tuple[Any, PilotAgentsDBRecorder, FakeMatcher, ProxyManagerStandIn]:
    """A real SiteDirector with its service handles pointed at recorders."""
    from DIRAC.ConfigurationSystem.Client.Helpers import Registry
    from DIRAC.WorkloadManagementSystem.Agent import SiteDirector as module

    proxies = ProxyManagerStandIn()
    install_site_services(module, proxies)
    agent = module.SiteDirector(
        "WorkloadManagement/SiteDirector", "WorkloadManagement/SiteDirector"
    )
    result = agent.initialize()
    if not result["OK"]:
        raise RuntimeError(f"SiteDirector.initialize: {result['Message']}")
    db = PilotAgentsDBRecorder()
    matcher = FakeMatcher(pilots, owner_group=Registry.getDefaultUserGroup() or "harness_user")
    agent.pilotAgentsDB, agent.matcherClient = db, matcher
    return agent, db, matcher, proxies


def serve_only(batch_system: str | None, report: Report) -> None:
    """With ``batch_system``, the agent's ``CEs`` option names the CEs of that batch system
    only (DIRAC's own filter: ``SiteDirector.beginExecution`` reads it)."""
    from DIRAC import gConfig

    if not batch_system:
        return
    site = f"/Resources/Sites/DIRAC/{gConfig.getValue('/LocalSite/Site')}/CEs"
    names = [
        name
        for name in gConfig.getSections(site)["Value"]
        if gConfig.getValue(f"{site}/{name}/BatchSystem") == batch_system
    ]
    report.check(f"the CS has a {batch_system} CE", bool(names), str(names))
    gConfig.setOptionValue("/Systems/WorkloadManagement/Agents/SiteDirector/CEs", ",".join(names))


def run(cs: Path, report: Report) -> None:
    from DIRAC import gConfig
    from DIRAC.WorkloadManagementSystem.Agent.SiteDirector import SiteDirector

    serve_only(os.environ.get("HARNESS_SD_BATCH_SYSTEM"), report)
    agent, db, matcher, _ = build_agent(PILOTS)
    report.ran("DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector.beginExecution")
    result = agent.beginExecution()
    if not report.check("beginExecution", result["OK"], result.get("Message", "queues built")):
        return
    agent.sendSubmissionAccounting = False  # defaults to True after beginExecution
    queues = sorted(agent.queueDict)
    first = queues[0]
    ce = agent.queueDict[first]["CE"]
    report.check(
        "factory built the InterCEde CE",
        type(ce).__name__ == "InterCEdeComputingElement" and ce.ceType == "InterCEde",
        f"{len(queues)} queues: {queues}; {type(ce).__module__}",
    )
    report.check("CE is valid", ce.isValid()["OK"], str(ce.isValid()))

    report.ran(
        "DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector._submitPilotsPerQueue"
    )
    report.ran(
        "DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector._submitPilotsToQueue"
    )
    started = time.monotonic()
    result = agent._submitPilotsPerQueue(first)
    report.measurements["submit_s"] = round(time.monotonic() - started, 3)
    submitted = result.get("Value") if result["OK"] else 0
    report.check(
        "pilots submitted in one cycle",
        submitted == PILOTS,
        f"{submitted} of {PILOTS}" if result["OK"] else result["Message"],
    )
    records = db.pilots
    stamps_ok = all(p["PilotStamp"] and len(p["PilotStamp"]) == 32 for p in records.values())
    report.check(
        "PilotAgentsDB got every ref with its stamp",
        len(records) == PILOTS and stamps_ok,
        f"{len(records)} records; e.g. {next(iter(records), '')}",
    )
    report.check(
        "matcher was sent the CE parameters",
        bool(matcher.seen) and matcher.seen[0].get("CEType") == "InterCEde",
        f"{len(matcher.seen)} calls",
    )
    report.check(
        "proxy set on the CE by _setCredentials",
        bool(ce.proxy) and ce.proxy.getRemainingSecs()["OK"],
        type(ce.proxy).__name__,
    )

    report.ran("DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector.monitorPilots")
    seen: set[str] = set()
    deadline = time.monotonic() + float(os.environ.get("HARNESS_TIMEOUT", "240"))
    while time.monotonic() < deadline:
        result = agent.monitorPilots()
        if not result["OK"]:
            report.check("monitorPilots", False, result["Message"])
            break
        statuses = {p["Status"] for p in db.pilots.values()}
        seen |= statuses
        if statuses <= FINAL:
            break
        time.sleep(2)
    final = {ref: p["Status"] for ref, p in db.pilots.items()}
    report.check(
        "monitorPilots read every pilot to a final state",
        all(s in FINAL for s in final.values()),
        f"statuses seen {sorted(seen)}; final {sorted(set(final.values()))}",
    )

    # Change the queue definition: QueueCECache evicts the CE and must shut it down.
    # Our own TCP connections to the login node decide (other tests' sessions come and go on
    # the login node meanwhile); the login node's count of the user's sshd sessions is shown.
    before, sessions_before = ssh_connections(ce.ceParameters), count_sessions(ce.ceParameters)
    path = f"/Resources/Sites/DIRAC/{agent.queueDict[first]['Site']}/CEs/"
    path += f"{agent.queueDict[first]['CEName']}/Queues/{agent.queueDict[first]['QueueName']}"
    gConfig.setOptionValue(f"{path}/MaxWaitingJobs", "9999")
    report.ran("DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities.QueueCECache.drop")
    result = SiteDirector._buildQueueDict(agent)
    rebuilt = agent.queueDict[first]["CE"]
    after, sessions_after = ssh_connections(ce.ceParameters), count_sessions(ce.ceParameters)
    report.check(
        "eviction calls shutdown() and closes the SSH connection",
        result["OK"] and rebuilt is not ce and ce.backend is None and after == before - 1,
        f"this agent's SSH connections {before} -> {after}; the user's sessions on the login "
        f"node {sessions_before} -> {sessions_after}; new CE built: {rebuilt is not ce}",
    )
    unreachable_queue_fails_alone(agent, report)
    for queue in agent.queueDict.values():
        queue["CE"].shutdown()


def unreachable_queue_fails_alone(agent: Any, report: Report) -> None:
    """A second CE whose login node does not answer: one ``submitPilots`` cycle skips it with
    DIRAC's failed-queue pause, and the reachable queues still get their pilots."""
    from DIRAC import gConfig

    first = agent.queueDict[sorted(agent.queueDict)[0]]
    site, ce_name = first["Site"], first["CEName"]
    source = f"/Resources/Sites/DIRAC/{site}/CEs/{ce_name}"
    target = f"/Resources/Sites/DIRAC/{site}/CEs/unreachable.harness"
    for option, value in gConfig.getOptionsDict(source)["Value"].items():
        gConfig.setOptionValue(f"{target}/{option}", value)
    gConfig.setOptionValue(f"{target}/SSHPort", "1")  # nothing listens there
    gConfig.setOptionValue(f"{target}/SSHConnectTimeout", "5")
    queue = first["QueueName"]
    for option, value in gConfig.getOptionsDict(f"{source}/Queues/{queue}")["Value"].items():
        gConfig.setOptionValue(f"{target}/Queues/{queue}/{option}", value)
    ces = gConfig.getValue(f"/Resources/Sites/DIRAC/{site}/CE", [])
    gConfig.setOptionValue(
        f"/Resources/Sites/DIRAC/{site}/CE", ",".join([*ces, "unreachable.harness"])
    )
    result = agent._buildQueueDict()
    bad = [q for q, info in agent.queueDict.items() if info["CEName"] == "unreachable.harness"]
    if not report.check(
        "queue of an unreachable CE is built", result["OK"] and len(bad) == 1, str(bad)
    ):
        return
    before = len(agent.pilotAgentsDB.pilots)
    report.ran("DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector.submitPilots")
    agent.submitPilots()
    submitted = {
        info["QueueName"]: sum(
            1
            for p in agent.pilotAgentsDB.pilots.values()
            if p.get("DestinationSite") == info["CEName"] and p.get("Queue") == info["QueueName"]
        )
        for q, info in agent.queueDict.items()
        if q not in bad
    }
    report.check(
        "an unreachable queue fails alone",
        agent.failedQueues[bad[0]] > 0 and len(agent.pilotAgentsDB.pilots) > before,
        f"failed-queue count {agent.failedQueues[bad[0]]}; pilots per reachable queue {submitted}",
    )


if __name__ == "__main__":
    raise SystemExit(main(run, SCENARIO, DC_IDS))
