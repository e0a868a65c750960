"""DIRAC's own agent code provisioning N pilots: InterCEde's CE against DIRAC's SSH CEs.

One CS per CE type, rendered by :func:`harness.dirac_cs.render_cs` and differing only in
``CEType``: ``InterCEde`` against the incumbents ``SSH`` and ``SSHBatch`` (both with
``BatchSystem = SLURM``, DIRAC's ``SLURM.py``). Every CS has one queue (the partition, default
``main``), ``SubmitOptions = --hold`` (pilots stay pending: nothing starts or finishes during
the measurement; the incumbent also needs SubmitOptions set, or SLURM.py runs ``sbatch ...
None``) and its own ``SharedArea`` below the stack's work root, removed afterwards. For each
type, :mod:`harness.dirac.bench_site_director` runs in the DIRAC environment (``.venv-dirac``)
and times, on the same cluster, one after the other:

- submit: ``SiteDirector._submitPilotsToQueue`` of N pilots (inside one real
  ``_submitPilotsPerQueue`` cycle, timed as a whole too);
- status: ``SiteDirector.monitorPilots`` with the PilotAgentsDB recorder holding the N refs;
- kill: ``WMSUtilities.killPilotsInQueues`` of the N refs (a fresh CE, as DIRAC builds one).

Targets: InterCEde at least 20x faster than each incumbent for submit and kill, 10x for
status. The incumbents run first, InterCEde last (it then meets the most job records left in
slurmctld by the earlier runs). Slurm keeps finished jobs ``MinJobAge`` (300 s on the harness
cluster): leave five minutes between two runs.

    python benchmarks/dirac_site_director.py [--stack NAME] [--pilots 1000]

Prints a table and writes ``benchmarks/results/dirac_site_director.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

# Run as a script (`just bench-dirac`): the harness lives at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.cluster import Cluster
from harness.dirac.login import login_run
from harness.dirac_cs import StackAccess, render_cs

ROOT = Path(__file__).resolve().parent.parent
CANDIDATE = "InterCEde"
INCUMBENTS = ("SSH", "SSHBatch")
OPS = (
    # (row, measurement key, DIRAC code timed, target speed-up or None)
    ("submit", "submit", "SiteDirector._submitPilotsToQueue", 20.0),
    ("status", "status", "SiteDirector.monitorPilots", 10.0),
    ("kill", "kill", "WMSUtilities.killPilotsInQueues", 20.0),
    ("submit cycle", "cycle", "SiteDirector._submitPilotsPerQueue", None),
    ("begin", "begin", "SiteDirector.beginExecution", None),
    # the CE's own share of submit and status (the rest is DIRAC's agent code, the same for all)
    ("  ce.submitJob", "submit_ce", "ce.submitJob inside _submitPilotsToQueue", None),
    ("  ce.getJobStatus", "status_ce", "ce.getJobStatus inside monitorPilots", None),
)
RESULTS = Path(__file__).parent / "results" / "dirac_site_director.json"


def _run_one(
    access: StackAccess, stack: str, ce_type: str, pilots: int, python: Path, scratch: Path
) -> dict[str, Any]:
    """One DIRAC process for one CE type; its report (checks, measurements)."""
    run_dir = f"{access.work_root}/bench-dirac-{uuid.uuid4().hex[:12]}"
    cs = scratch / f"{ce_type}.cfg"
    cs.write_text(
        render_cs(
            access,
            stack=stack,
            ce_type=ce_type,
            extra_ce={"SharedArea": run_dir, "SubmitOptions": "--hold"},
        )
    )
    result, log = scratch / f"{ce_type}.json", scratch / f"{ce_type}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_PILOTS": str(pilots)}
    print(f"{ce_type}: {pilots} pilots (DIRAC log: {log})", file=sys.stderr, flush=True)
    argv = [str(python), "-m", "harness.dirac.bench_site_director"]
    with log.open("w") as out:
        done = subprocess.run(
            [*argv, "--cs", str(cs), "--result", str(result)],
            cwd=scratch,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    report: dict[str, Any] = json.loads(result.read_text()) if result.exists() else {}
    if done.returncode != 0 or report.get("error"):
        failed = [c for c in report.get("checks", []) if not c["ok"]]
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(
            f"{ce_type} run failed (exit {done.returncode}): {failed}\n"
            f"{report.get('error') or ''}\n{tail}"
        )
    return report


def _rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    mine = runs[CANDIDATE]["measurements"]
    for op, key, code, target in OPS:
        row: dict[str, Any] = {
            "op": op,
            "dirac_code": code,
            "target_speedup": target,
            "seconds": {ce: runs[ce]["measurements"][f"{key}_s"] for ce in runs},
            "round_trips": {ce: runs[ce]["measurements"][f"{key}_trips"] for ce in runs},
        }
        row["speedup"] = {
            ce: round(runs[ce]["measurements"][f"{key}_s"] / mine[f"{key}_s"], 1)
            for ce in runs
            if ce != CANDIDATE
        }
        row["met"] = None if target is None else min(row["speedup"].values()) >= target
        rows.append(row)
    return rows


def _print(rows: list[dict[str, Any]], incumbents: list[str]) -> None:
    head = f"{'operation':<18}{CANDIDATE + ' s':>13}"
    for ce in incumbents:
        head += f"{ce + ' s':>12}{'ratio':>8}"
    print(head + f"{'target':>8}{'met?':>6}   round trips")
    for row in rows:
        line = f"{row['op']:<18}{row['seconds'][CANDIDATE]:>13.3f}"
        for ce in incumbents:
            line += f"{row['seconds'][ce]:>12.3f}{row['speedup'][ce]:>7.1f}x"
        target = f"{row['target_speedup']:.0f}x" if row["target_speedup"] else "-"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
        trips = " / ".join(str(row["round_trips"][ce]) for ce in [CANDIDATE, *incumbents])
        print(line + f"{target:>8}{met:>6}   {trips}")


def main(stack: str, pilots: int, queue: str, ce_types: list[str], python: Path) -> None:
    client = Cluster(stack).client_config_path
    if not client.exists():
        raise SystemExit(f"no client config at {client}: bring the stack up (`just stack-up`)")
    access = StackAccess.from_client_config(client)
    if queue not in access.queues:
        raise SystemExit(f"--queue {queue!r}: the stack's queues are {access.queues}")
    access = replace(access, queues=(queue,))
    incumbents = [ce for ce in ce_types if ce != CANDIDATE]
    runs: dict[str, dict[str, Any]] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-dirac-"))  # kept: CS files, DIRAC logs, reports
    for ce_type in [*incumbents, CANDIDATE]:
        runs[ce_type] = _run_one(access, stack, ce_type, pilots, python, logs)
    rows = _rows(runs)
    _print(rows, incumbents)
    login = {
        "SSHHost": access.host,
        "SSHPort": access.port,
        "SSHUser": access.user,
        "SSHKey": access.key,
        "SSHKnownHosts": access.known_hosts,
    }
    dirac = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('DIRAC'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "dirac_site_director",
                "pilots": pilots,
                "queue": queue,
                "submit_options": "--hold",
                "order": [*incumbents, CANDIDATE],
                "dirac": dirac,
                "slurm": login_run(login, "sbatch --version").strip(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "rows": rows,
                "runs": {ce: run["measurements"] for ce, run in runs.items()},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    missed = [row["op"] for row in rows if row["met"] is False]
    if missed:
        raise SystemExit(f"targets missed: {missed}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default=os.environ.get("INTERCEDE_STACK", "intercede"))
    parser.add_argument("--pilots", type=int, default=1000, help="pilots per CE type (N)")
    parser.add_argument("--queue", default="main", help="the partition pilots go to")
    parser.add_argument(
        "--ce-types",
        default=",".join(INCUMBENTS),
        help=f"incumbent CE types to compare {CANDIDATE} with (comma-separated)",
    )
    parser.add_argument(
        "--dirac-python",
        type=Path,
        default=ROOT / ".venv-dirac" / "bin" / "python",
        help="the DIRAC environment's interpreter (tools/dirac-env.sh)",
    )
    args = parser.parse_args()
    types = [t for t in args.ce_types.split(",") if t and t != CANDIDATE]
    main(args.stack, args.pilots, args.queue, types, args.dirac_python)
