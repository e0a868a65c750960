"""Benchmark in DIRAC's own terms: N pilots submitted, monitored and killed through one CE type.

The CE type is whatever the CS names (``CEType = InterCEde``, ``SSH`` or ``SSHBatch``); the
harness side (``benchmarks/dirac_site_director.py``) renders one CS per type, differing only
in ``CEType``, and runs this module once per type. Each run times DIRAC's own code:

- ``SiteDirector.beginExecution``: the queue's CE built by ``ComputingElementFactory``;
- one submission cycle, ``SiteDirector._submitPilotsPerQueue`` (``_setCredentials``, the CE's
  ``available()``, the Matcher, ``_submitPilotsToQueue``, ``_addPilotReferences``) with
  ``MaxPilotsToSubmit = N`` and the Matcher reporting 10 N waiting jobs, so exactly N pilots go;
  ``_submitPilotsToQueue`` (pilot wrapper + ``ce.submitJob``) is timed on its own as well;
- ``SiteDirector.monitorPilots`` with the PilotAgentsDB recorder holding the N refs: one
  ``ce.getJobStatus`` of all of them, every pilot moving Submitted -> Waiting;
- ``WMSUtilities.killPilotsInQueues`` of the N refs grouped as ``PilotStatusAgent`` groups
  them, on a fresh ``QueueCECache`` (what the call does without one; passed so the CE it
  builds can be read and closed afterwards).

The CS gives ``SubmitOptions = --hold``: pilots stay pending, so nothing finishes or starts
during the measurement and the numbers are the control path, not the two workers. Between
submission and monitoring the run waits (untimed) until ``sacct`` knows every pilot: DIRAC's
SLURM batch system reads statuses from ``sacct`` only and fails while it prints nothing.

Remote round trips are counted per phase: for InterCEde from its transport's own counter, for
the SSH CEs by counting calls of ``SSHComputingElement._run/_put/_get`` (each one SSH
exchange; the wrapper only counts and calls the original). Afterwards every pilot still in
Slurm whose command lies under the run's own ``SharedArea`` is cancelled and the directory is
removed, checked with the harness's own OpenSSH session (:mod:`harness.dirac.login`).

    PYTHONPATH=<repo> .venv-dirac/bin/python -m harness.dirac.bench_site_director \\
        --cs cs.cfg --result result.json          # HARNESS_PILOTS=N (default 1000)
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.dirac._agent import Report, main
from harness.dirac._services import PilotAgentsDBRecorder
from harness.dirac.login import login_run
from harness.dirac.site_director import build_agent

SCENARIO = "bench-site-director"
DC_IDS: tuple[str, ...] = ()
PILOTS = int(os.environ.get("HARNESS_PILOTS", "1000"))
SETTLE_TIMEOUT_S = float(os.environ.get("HARNESS_SETTLE_TIMEOUT", "120"))
RUN_DIR_MARK = "bench-dirac-"
"""The run's ``SharedArea`` basename starts with this; cleanup refuses any other directory."""


class TripCounter:
    """SSH exchanges made by DIRAC's SSH CEs (counted) and by InterCEde CEs (their transport's
    own counter), summed over the CEs a phase used."""

    def __init__(self) -> None:
        self.ssh_calls = 0

    @contextmanager
    def counting_ssh_ce(self) -> Iterator[None]:
        from DIRAC.Resources.Computing.SSHComputingElement import SSHComputingElement

        originals = {name: getattr(SSHComputingElement, name) for name in ("_run", "_put", "_get")}

        def counted(method: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(method)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                self.ssh_calls += 1
                return method(*args, **kwargs)

            return wrapper

        for name, method in originals.items():
            setattr(SSHComputingElement, name, counted(method))
        try:
            yield
        finally:
            for name, method in originals.items():
                setattr(SSHComputingElement, name, method)

    def total(self, ces: Iterable[Any]) -> int:
        return self.ssh_calls + sum(_intercede_trips(ce) for ce in ces)


def _intercede_trips(ce: Any) -> int:
    facade = getattr(ce, "backend", None)
    if facade is None or not hasattr(facade, "_backend"):
        return 0
    return int(facade._backend.transport.round_trips)


def slurm_ids(refs: Iterable[str]) -> list[str]:
    """The Slurm job ids behind pilot refs of any of the three CE types
    (``sshslurm://ce/123``, ``sshbatchslurm://ce/host/123``, ``slurm+ssh://u@h:p/123_7?...``)."""
    return [posixpath.basename(urlparse(ref.split(":::")[0]).path) for ref in refs]


def _wait_for_sacct(ce_parameters: dict[str, Any], ids: list[str], timeout_s: float) -> float:
    """Seconds until ``sacct`` lists every job (or array) of ``ids``; raises on timeout."""
    bases = sorted({job.split("_")[0] for job in ids})
    started = time.monotonic()
    while True:
        out = login_run(
            ce_parameters, f"sacct -X -n -P -o JobID -j {','.join(bases)} | cut -d_ -f1 | sort -u"
        )
        if set(out.split()) >= set(bases):
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            missing = len(set(bases) - set(out.split()))
            raise RuntimeError(
                f"sacct still misses {missing} of {len(bases)} jobs after {timeout_s} s"
            )
        time.sleep(1)


def _ours_in_slurm(ce_parameters: dict[str, Any], run_dir: str) -> list[str]:
    """Job ids (array tasks expanded) of this run still in Slurm: their command is a file
    under the run's own directory (both CE types stage the pilot there)."""
    out = login_run(ce_parameters, "squeue -h -r -u \"$USER\" -o '%i|%o'")
    lines = (line.partition("|") for line in out.splitlines())
    return [job for job, _, command in lines if command.startswith(run_dir + "/")]


def cleanup(ce_parameters: dict[str, Any]) -> dict[str, Any]:
    """Cancel whatever of this run is left in Slurm and remove the run's directory."""
    run_dir = str(ce_parameters["SharedArea"])
    if not posixpath.basename(run_dir).startswith(RUN_DIR_MARK):
        raise RuntimeError(f"SharedArea {run_dir!r} is not a benchmark run directory")
    left = _ours_in_slurm(ce_parameters, run_dir)
    for start in range(0, len(left), 500):
        login_run(ce_parameters, "scancel " + " ".join(left[start : start + 500]))
    login_run(ce_parameters, f"rm -rf '{run_dir}'")
    gone = login_run(ce_parameters, f"test -e '{run_dir}' && echo present || echo gone").strip()
    return {"cancelled_at_cleanup": len(left), "run_dir": gone}


def run(cs: Path, report: Report) -> None:
    agent, db, _, _ = build_agent(10 * PILOTS)
    counter = TripCounter()
    ce_parameters: dict[str, Any] = {}  # filled once the CE exists: cleanup needs it
    try:
        with counter.counting_ssh_ce():
            _measure(agent, db, counter, report, ce_parameters)
    finally:
        for queue in getattr(agent, "queueDict", {}).values():
            queue["CE"].shutdown()
        if ce_parameters:
            done = cleanup(ce_parameters)
            report.check(
                "cluster left as found",
                done["run_dir"] == "gone"
                and not _ours_in_slurm(ce_parameters, ce_parameters["SharedArea"]),
                json.dumps(done),
            )


def _timed(report: Report, name: str, trips: Callable[[], int], call: Callable[[], Any]) -> Any:
    before, started = trips(), time.perf_counter()
    value = call()
    report.measurements[f"{name}_s"] = round(time.perf_counter() - started, 4)
    report.measurements[f"{name}_trips"] = trips() - before
    return value


def _timing(
    report: Report, name: str, trips: Callable[[], int], method: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(method)
    def timed(*args: Any) -> Any:
        return _timed(report, name, trips, lambda: method(*args))

    return timed


def _measure(
    agent: Any,
    db: PilotAgentsDBRecorder,
    counter: TripCounter,
    report: Report,
    ce_parameters: dict[str, Any],
) -> None:
    from DIRAC.WorkloadManagementSystem.Service import WMSUtilities
    from DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities import QueueCECache

    report.measurements["pilots"] = PILOTS
    report.ran("DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector.beginExecution")
    result = _timed(report, "begin", lambda: counter.total([]), agent.beginExecution)
    if not report.check("beginExecution", result["OK"], result.get("Message", "queues built")):
        return
    agent.sendSubmissionAccounting = False  # defaults to True after beginExecution
    agent.maxPilotsToSubmit = PILOTS
    (queue,) = agent.queueDict  # the CS has one queue
    ce = agent.queueDict[queue]["CE"]
    ce_parameters.update(ce.ceParameters)
    report.check("CE built", True, f"{type(ce).__name__} ({ce.ceType}) for {queue}")

    def trips() -> int:
        return counter.total([ce])

    # Time _submitPilotsToQueue inside the cycle, and the CE's own calls inside DIRAC's:
    # instance attributes that call the originals (the rest is DIRAC's agent code).
    inner = agent._submitPilotsToQueue
    agent._submitPilotsToQueue = lambda *a: _timed(report, "submit", trips, lambda: inner(*a))
    for method, name in ((ce.submitJob, "submit_ce"), (ce.getJobStatus, "status_ce")):
        setattr(ce, method.__name__, _timing(report, name, trips, method))
    report.ran(
        "DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector._submitPilotsPerQueue"
    )
    report.ran(
        "DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector._submitPilotsToQueue"
    )
    result = _timed(report, "cycle", trips, lambda: agent._submitPilotsPerQueue(queue))
    del agent._submitPilotsToQueue
    refs = list(db.pilots)
    ok = result["OK"] and result["Value"] == PILOTS == len(refs)
    detail = f"{len(refs)} refs" if result["OK"] else result["Message"]
    if not report.check(f"{PILOTS} pilots submitted in one cycle", ok, detail):
        return
    report.check(
        "every ref recorded with a stamp, status Submitted",
        all(p["PilotStamp"] and p["Status"] == "Submitted" for p in db.pilots.values()),
        f"e.g. {refs[0]}",
    )

    report.measurements["sacct_settle_s"] = round(
        _wait_for_sacct(ce_parameters, slurm_ids(refs), SETTLE_TIMEOUT_S), 2
    )

    report.ran("DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector.monitorPilots")
    report.ran(
        "DIRAC.WorkloadManagementSystem.Agent.SiteDirector.SiteDirector._monitorPilotsPerQueue"
    )
    updates = db.status_calls
    result = _timed(report, "status", trips, agent.monitorPilots)
    statuses = sorted({p["Status"] for p in db.pilots.values()})
    report.check(
        "monitorPilots: every pilot Waiting (held)",
        result["OK"] and statuses == ["Waiting"] and db.status_calls - updates == PILOTS,
        f"{result.get('Message', 'ok')}; statuses {statuses}",
    )

    by_queue: dict[str, dict[str, Any]] = {}
    for ref, pilot in db.pilots.items():
        key = "@@@".join([pilot["VO"], pilot["GridSite"], pilot["DestinationSite"], pilot["Queue"]])
        by_queue.setdefault(key, {"GridType": pilot["GridType"], "PilotList": []})[
            "PilotList"
        ].append(ref)
    cache = QueueCECache()
    report.ran("DIRAC.WorkloadManagementSystem.Service.WMSUtilities.killPilotsInQueues")

    def kill_trips() -> int:
        return counter.total(entry["CE"] for entry in cache._cache.values())

    result = _timed(
        report, "kill", kill_trips, lambda: WMSUtilities.killPilotsInQueues(by_queue, ceCache=cache)
    )
    for entry in list(cache._cache.values()):
        entry["CE"].shutdown()
    left = _ours_in_slurm(ce_parameters, ce_parameters["SharedArea"])
    report.check(
        "killPilotsInQueues: no pilot left pending",
        result["OK"] and not left,
        f"{result.get('Message', 'ok')}; {len(left)} of ours still in squeue",
    )


if __name__ == "__main__":
    raise SystemExit(main(run, SCENARIO, DC_IDS))
