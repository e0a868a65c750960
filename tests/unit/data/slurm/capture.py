"""Record real Slurm output for the parser tests (run by hand against a harness stack).

    PYTHONPATH=. python tests/unit/data/slurm/capture.py --stack intercede --variant bookworm

It submits small arrays in every state it can reach in a few minutes (held, running,
completed, failed, cancelled while running, cancelled while pending, timed out, and one running
under another job name), then saves the exact stdout of the backend's own remote scripts
(``status_script``, ``cancel_script``, ``counts_script``, the submit script's ``scontrol``
query) fed with the same stdin the backend sends (``status_input``), plus raw squeue/sacct
views, and ``cases.json`` naming which job is in which intended state. The tests parse the
files with the same functions the backend uses and assert the mapping. Nothing here is needed
at test time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from harness.cluster import Cluster
from intercede._batch import slurm

JOB_NAME = "capture"
OTHER_NAME = "notours"
FORGOTTEN = "999990_0"
"""An id Slurm never had, given the log of a real finished job: what a job looks like once
both squeue (MinJobAge) and sacct (no accounting) forgot it."""
NEVER = "999999_0"
"""An id Slurm never had and with no log: must stay unknown."""
OUTAGE = (
    "c=$(mktemp) && printf 'ClusterName=down\\nSlurmctldHost=localhost(127.0.0.1)\\n"
    'SlurmctldPort=1\\nMessageTimeout=2\\n\' > "$c" && export SLURM_CONF="$c"\n'
)
"""Prepended to the status script: Slurm's CLI then talks to a controller that is not there
and fails for real (as in an outage) without disturbing a shared stack."""


UNRESOLVABLE = (
    "c=$(mktemp) && printf 'ClusterName=down\\nSlurmctldHost=no-such-controller.invalid\\n"
    'MessageTimeout=2\\n\' > "$c" && export SLURM_CONF="$c"\n'
)
"""Prepended to sbatch: the controller's name does not resolve (a DNS outage, a moved host)."""


def record_refusals(cluster: Cluster, out_dir: Path, partition: str) -> None:
    """sbatch's stderr for each refusal the backend classifies, and ``sbatch --help``.

    Munge is made unreachable (its socket directory closed to everyone but root) on the login
    node, then on the controller, rather than stopped: the containers' supervisor would stop
    the whole node when a daemon exits. Each fault is undone before the next case.
    """

    def sbatch(options: str, prefix: str = "") -> str:
        proc = subprocess.run(
            cluster.ssh_argv(f"{prefix}sbatch --parsable -o /dev/null {options} --wrap true"),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if proc.returncode == 0:
            raise SystemExit(f"sbatch {options!r} was accepted: {proc.stdout!r}")
        return proc.stderr.decode()

    def munge_closed(node: str, closed: bool) -> None:
        code, out = cluster.exec(node, ["chmod", "0700" if closed else "0755", "/run/munge"])
        if code != 0:
            raise SystemExit(f"chmod /run/munge on {node} failed: {out}")

    help_proc = subprocess.run(
        cluster.ssh_argv("sbatch --help"), capture_output=True, timeout=60, check=True
    )
    refusals = {
        "invalid_partition": sbatch("-p no-such-partition"),
        "impossible_nodes": sbatch(f"-p {partition} --mem=99999999"),
        "controller_down": sbatch(f"-p {partition}", prefix=OUTAGE),
        "controller_unresolvable": sbatch(f"-p {partition}", prefix=UNRESOLVABLE),
    }
    for case, node in (
        ("munge_down_on_login", "login"),
        ("munge_down_on_controller", "controller"),
    ):
        munge_closed(node, True)
        try:
            refusals[case] = sbatch(f"-p {partition}")
        finally:
            munge_closed(node, False)
    (out_dir / "sbatch_help.txt").write_text(help_proc.stdout.decode())
    (out_dir / "sbatch_refusals.json").write_text(json.dumps(refusals, indent=2) + "\n")
    print(f"saved sbatch --help and {len(refusals)} refusals to {out_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="intercede")
    parser.add_argument("--variant", required=True)
    parser.add_argument("--partition", default="main")
    parser.add_argument(
        "--refusals-only",
        action="store_true",
        help="record only sbatch --help and sbatch's refusals (it disturbs munge for a moment)",
    )
    args = parser.parse_args()
    out_dir = Path(__file__).parent / args.variant
    out_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(args.stack)
    record_refusals(cluster, out_dir, args.partition)
    if args.refusals_only:
        return
    root = cluster.work_root
    batch = f"capture-{int(time.time())}"

    def run(command: str, stdin: bytes = b"", check: bool = True) -> str:
        proc = subprocess.run(
            cluster.ssh_argv(command), input=stdin, capture_output=True, timeout=120, check=False
        )
        if check and proc.returncode != 0:
            raise SystemExit(f"{command!r} failed ({proc.returncode}): {proc.stderr!r}")
        return proc.stdout.decode()

    def sbatch(options: str, name: str = JOB_NAME) -> str:
        return run(
            f"sbatch --parsable -p {args.partition} -J {name} -o /dev/null {options}"
        ).strip()

    run(f"mkdir -p {root}/{batch}/logs")
    save = {
        "sbatch_parsable.txt": "",
        "scontrol_show_config.txt": run("scontrol show config"),
        "version.txt": run("sbatch --version"),
    }
    held = sbatch("--hold --array=0-99 --wrap true")
    save["sbatch_parsable.txt"] = held + "\n"
    completed = sbatch("--array=0-1 --wrap true")
    failed = sbatch("--array=0 --wrap 'exit 3'")
    timeout = sbatch("--array=0 --time=1 --wrap 'sleep 300'")
    running = sbatch("--array=0-1 --wrap 'sleep 600'")
    cancel_running = sbatch("--array=0 --wrap 'sleep 600'")
    cancel_pending = sbatch("--hold --array=0-2 --wrap true")
    other = sbatch("--array=0 --wrap 'sleep 600'", name=OTHER_NAME)
    exit_line = f'echo "{slurm.EXIT_LINE}3 at $(date -u +%Y-%m-%dT%H:%M:%SZ)"; exit 3'
    logged = run(
        f"sbatch --parsable -p {args.partition} -J {JOB_NAME} --array=0"
        f" -o {root}/{batch}/logs/%A_%a.log --wrap '{exit_line}'"
    ).strip()
    arrays = [held, completed, failed, timeout, running, cancel_running, cancel_pending, other]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        states = run(f"squeue -h -r -t all -j {','.join(arrays)} -o '%i|%T'")
        if all(
            f"{job}|RUNNING" in states
            for job in (f"{running}_1", f"{cancel_running}_0", f"{other}_0")
        ):
            break
        time.sleep(2)
    run(f"scancel {cancel_running}_0 {cancel_pending}")
    while time.monotonic() < deadline:
        states = run(f"squeue -h -r -t all -j {timeout} -o '%i|%T'")
        if "TIMEOUT" in states:
            break
        time.sleep(5)
    time.sleep(3)  # let slurmdbd record the ends
    run(f"cp {root}/{batch}/logs/{logged}_0.log {root}/{batch}/logs/{FORGOTTEN}.log")
    tasks = {
        held: 100,
        completed: 2,
        failed: 1,
        timeout: 1,
        running: 2,
        cancel_running: 1,
        cancel_pending: 3,
        other: 1,
    }
    wanted = [f"{a}_{i}" for a, n in tasks.items() for i in range(n)] + [FORGOTTEN, NEVER]
    status_in = slurm.status_input((job, batch) for job in wanted)
    save["status_input.txt"] = status_in.decode()
    save["status.txt"] = run(slurm.status_script(root), stdin=status_in)
    save["status_outage.txt"] = run(OUTAGE + slurm.status_script(root), stdin=status_in)
    save["squeue_collapsed.txt"] = run(f"squeue -h -t all -j {held} -o '%i|%T'")
    save["sacct_collapsed.txt"] = run(f"sacct -n -P -X -j {held},{cancel_pending} -o JobID,State")
    save["counts.txt"] = run(slurm.counts_script(JOB_NAME, args.partition))
    targets = [f"{running}_0", f"{running}_1", f"{completed}_0", f"{other}_0", NEVER]
    cancel_in = slurm.status_input(((job, batch) for job in targets), slurm.compress_ids(targets))
    save["cancel_input.txt"] = cancel_in.decode()
    save["cancel.txt"] = run(slurm.cancel_script(root, JOB_NAME), stdin=cancel_in)
    # kill reads the status again only when scancel failed: the status right after it, read
    # by itself, shows what the cancel did (COMPLETING in squeue, CANCELLED in sacct).
    save["after_cancel.txt"] = run(slurm.status_script(root), stdin=cancel_in)
    run(f"scancel {held} {running} {timeout} {other}")
    run(f"rm -rf {root}/{batch}")
    for name, text in save.items():
        (out_dir / name).write_text(text)
    cases = {
        "held": held,
        "completed": completed,
        "failed": failed,
        "timeout": timeout,
        "running": running,
        "cancel_running": cancel_running,
        "cancel_pending": cancel_pending,
        "other_name": other,
        "forgotten": FORGOTTEN,
        "never": NEVER,
        "batch": batch,
    }
    (out_dir / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")
    print(f"saved {len(save)} files to {out_dir}")


if __name__ == "__main__":
    main()
