"""DIRAC's real ``WMSUtilities.killPilotsInQueues``: one bulk kill across two queues.

Pilots (``sleep``) go to both partitions through InterCEde CEs built by DIRAC's factory, so
that some run and some wait (the cluster has four CPUs for ten pilots). Then
``killPilotsInQueues`` gets one ``pilotRefDict`` naming, per queue, running pilots and
pending ones, among them pending copies of one ``submitJob`` whose siblings are left alone
(Slurm array tasks cancelled from inside the pending array record). DIRAC builds its own CE
per queue from the CS (``getQueue`` + ``QueueCECache``) and sets the pilot proxy
(``setPilotCredentials``, ProxyManager replaced), as PilotStatusAgent or DiracAdmin would in
another process. Statuses are then read again through another CE: the killed pilots
Aborted, the others still live.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.dirac._agent import Report, main
from harness.dirac._services import ProxyManagerStandIn

SCENARIO = "wms-utilities"
DC_IDS = ("DC-20", "DC-21")
LIVE = {"Running", "Waiting", "Submitted"}


def _ces() -> dict[str, tuple[str, Any]]:
    """One InterCEde CE per queue, built the way SiteDirector builds them."""
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues
    from DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities import getQueuesResolved

    sites = getQueues(community="harness")["Value"]
    queues = getQueuesResolved(siteDict=sites, vo="harness", instantiateCEs=True)["Value"]
    found: dict[str, tuple[str, Any]] = {}
    for info in queues.values():
        key = "@@@".join(("harness", info["Site"], info["CEName"], info["QueueName"]))
        found[info["QueueName"]] = (key, info["CE"])
    return found


def _statuses(ce: Any, refs: list[str]) -> dict[str, str]:
    result = ce.getJobStatus(refs)
    if not result["OK"]:
        raise RuntimeError(f"getJobStatus: {result['Message']}")
    return dict(result["Value"])


def _wait(ce: Any, refs: list[str], ready: Any, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = _statuses(ce, refs)
        if ready(statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(1)


def run(cs: Path, report: Report) -> None:
    from DIRAC.FrameworkSystem.Client.ProxyManagerClient import gProxyManager
    from DIRAC.WorkloadManagementSystem.Service import WMSUtilities

    proxies = ProxyManagerStandIn()
    gProxyManager.getPilotProxyFromVOMSGroup = proxies.getPilotProxyFromVOMSGroup
    timeout = float(os.environ.get("HARNESS_TIMEOUT", "240"))
    ces = _ces()
    main_key, main_ce = ces["main"]
    second_key, second_ce = ces["second"]
    with_pilot = Path(tempfile.mkdtemp(prefix="harness-kill-"), "pilot.sh")
    with_pilot.write_text("#!/bin/sh\nsleep 300\n")
    submitted = {}
    for name, ce, copies in (("main", main_ce, 6), ("second", second_ce, 4)):
        result = ce.submitJob(str(with_pilot), "", copies)
        if not report.check(
            f"submit {copies} pilots to {name}", result["OK"], result.get("Message", "")
        ):
            return
        submitted[name] = list(result["Value"])
    shutil.rmtree(with_pilot.parent)
    everything = submitted["main"] + submitted["second"]
    try:
        statuses = _wait(
            main_ce,
            everything,
            lambda s: any(s[r] == "Running" for r in submitted["main"]),
            timeout,
        )
        running = [r for r in submitted["main"] if statuses[r] == "Running"]
        waiting = {
            q: [r for r in refs if statuses[r] == "Waiting"] for q, refs in submitted.items()
        }
        report.check(
            "pilots running and pending on both queues",
            len(running) >= 1 and len(waiting["main"]) >= 2 and len(waiting["second"]) >= 3,
            f"running {len(running)}, pending main {len(waiting['main'])}, "
            f"second {len(waiting['second'])}",
        )
        doomed = {
            main_key: running[:2] + waiting["main"][:1],
            second_key: waiting["second"][:2],  # two pending tasks of one four-task submit
        }
        pilot_ref_dict = {
            key: {"GridType": "InterCEde", "PilotList": refs} for key, refs in doomed.items()
        }
        report.ran("DIRAC.WorkloadManagementSystem.Service.WMSUtilities.killPilotsInQueues")
        started = time.monotonic()
        result = WMSUtilities.killPilotsInQueues(pilot_ref_dict)
        report.measurements["kill_s"] = round(time.monotonic() - started, 3)
        report.check("killPilotsInQueues", result["OK"], result.get("Message", "both queues ok"))
        killed = [ref for refs in doomed.values() for ref in refs]
        spared = [ref for ref in everything if ref not in killed]
        after = _wait(
            second_ce,
            everything,
            lambda s: all(s[r] == "Aborted" for r in killed),
            30,
        )
        report.check(
            "the killed pilots read Aborted",
            all(after[r] == "Aborted" for r in killed),
            str({r.rsplit("/", 2)[-2]: after[r] for r in killed}),
        )
        report.check(  # a freed slot may start a pending one: live is what matters
            "the other pilots are untouched",
            all(after[r] in LIVE for r in spared),
            str({r.rsplit("/", 2)[-2]: f"{statuses[r]}->{after[r]}" for r in spared}),
        )
        report.check(
            "kill used the pilot proxy from the replaced ProxyManager",
            "getPilotProxyFromVOMSGroup" in proxies.calls,
            f"{len(proxies.calls)} proxy requests",
        )
    finally:
        for ce, refs in ((main_ce, submitted["main"]), (second_ce, submitted["second"])):
            ce.killJob(refs)
            ce.cleanJob(refs)
            ce.shutdown()


if __name__ == "__main__":
    raise SystemExit(main(run, SCENARIO, DC_IDS))
