"""DIRAC's ``SSHComputingElement`` with its ``SLURM`` batch system, driven from the host.

Runs in the DIRAC environment (``.venv-dirac``, the real ``dirac`` package):

    python dirac_ssh_ce.py --cs FILE --n N

The CS (``harness.dirac_cs.render_cs`` with ``CEType = SSH``, ``SubmitOptions = --hold`` so
SLURM.py does not run ``sbatch ... None``, and a ``SharedArea`` of the run's own) gives one
queue; the CE is built by DIRAC's ``ComputingElementFactory`` from ``getQueue``, as
SiteDirector builds it. Timed: ``ce.submitJob(exe, "", N)`` (SLURM.py runs one ``sbatch`` per
pilot, each with its own ``DIRAC_PILOT_STAMP``; DIRAC's pilots carry no per-copy secret),
``ce.getJobStatus(refs)`` (SLURM.py's ``sacct`` of every id), ``ce.killJob(refs)`` (one
``scancel`` per pilot). No ``getJobOutput``/purge row: DIRAC fetches one pilot's output per
call, and the SSH CE has no bulk clean-up. Prints ``@@result {json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.dirac import load_cs
from harness.dirac.login import login_run

JOB_COUNT_MARGIN = 500


def _wait_for_room(params: dict[str, Any], n: int) -> None:
    limit = int(login_run(params, "scontrol show config | awk '/^MaxJobCount /{print $3}'"))
    deadline = time.monotonic() + 900
    while (
        int(login_run(params, "squeue -h -r -t all -o %i | wc -l")) + n > limit - JOB_COUNT_MARGIN
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no room for {n} jobs")
        time.sleep(5)


def _wait_for_sacct(params: dict[str, Any], ids: list[str]) -> None:
    deadline = time.monotonic() + 180
    while True:
        out = login_run(params, f"sacct -X -n -P -o JobID -j {','.join(ids)} | wc -l")
        if int(out) >= len(ids):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("sacct never listed every pilot")
        time.sleep(1)


def _ok(result: dict[str, Any], what: str) -> Any:
    if not result["OK"]:
        raise RuntimeError(f"{what}: {result['Message']}")
    return result["Value"]


def measure(cs: Path, n: int) -> dict[str, Any]:
    load_cs(cs)
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueue
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    site = gConfig.getValue("/LocalSite/Site", "")
    ce_name = str(gConfig.getValue(f"/Resources/Sites/DIRAC/{site}/CE", ""))
    queue = _ok(getQueue(site, ce_name, "main"), "getQueue")
    ce = _ok(
        ComputingElementFactory().getCE(ceName=ce_name, ceType="SSH", ceParametersDict=queue),
        "getCE",
    )
    params = dict(ce.ceParameters)
    with tempfile.TemporaryDirectory(prefix="dirac-bench-") as tmp:
        exe = Path(tmp, "pilot.sh")
        exe.write_text('#!/bin/sh\necho "$DIRAC_PILOT_STAMP"\n')
        exe.chmod(0o755)
        _wait_for_room(params, n)
        started = time.perf_counter()
        result = ce.submitJob(str(exe), "", n)
        t_submit = time.perf_counter() - started
    refs = _ok(result, "submitJob")
    if len(refs) != n:
        raise RuntimeError(f"submitJob gave {len(refs)} of {n} refs")
    ids = [ref.rsplit("/", 1)[-1] for ref in refs]
    _wait_for_sacct(params, ids)
    started = time.perf_counter()
    status = _ok(ce.getJobStatus(refs), "getJobStatus")
    t_status = time.perf_counter() - started
    states = sorted(set(status.values()))
    started = time.perf_counter()
    killed = ce.killJob(refs)
    t_kill = time.perf_counter() - started
    left = login_run(params, f"squeue -h -t PD,R -j {','.join(ids)} -o %i || true").split()
    return {
        "submit": {"s": t_submit, "how": "ce.submitJob(exe, '', N): one sbatch per pilot"},
        "status": {"s": t_status, "how": "ce.getJobStatus(refs): sacct", "states": states},
        "kill": {
            "s": t_kill,
            "how": "ce.killJob(refs): one scancel per pilot",
            "ok": killed["OK"],
            "left": len(left),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cs", type=Path, required=True)
    parser.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    print("@@result " + json.dumps(measure(args.cs, args.n)), flush=True)


if __name__ == "__main__":
    main()
