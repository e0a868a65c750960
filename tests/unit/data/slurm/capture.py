"""Record real Slurm output for the parser tests (run by hand against a harness stack).

    python tests/unit/data/slurm/capture.py --stack intercede --variant bookworm

It submits small arrays in every state it can reach in a few minutes (held, running,
completed, failed, cancelled while running, cancelled while pending, timed out), then saves the
exact stdout of the backend's own remote scripts (``status_script``, ``cancel_script``,
``counts_script``, the submit script's ``scontrol`` query) plus raw squeue/sacct views, and
``cases.json`` naming which job is in which intended state. The tests parse the files with the
same functions the backend uses and assert the mapping. Nothing here is needed at test time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness.cluster import Cluster
from intercede._batch import slurm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="intercede")
    parser.add_argument("--variant", required=True)
    parser.add_argument("--partition", default="main")
    args = parser.parse_args()
    out_dir = Path(__file__).parent / args.variant
    out_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(args.stack)

    def run(command: str) -> str:
        code, output = cluster.ssh(command, timeout=120)
        if code != 0:
            raise SystemExit(f"{command!r} failed ({code}): {output}")
        return output

    def sbatch(options: str) -> str:
        return run(
            f"sbatch --parsable -p {args.partition} -J capture -o /dev/null {options}"
        ).strip()

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
    arrays = [held, completed, failed, timeout, running, cancel_running, cancel_pending]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        states = run(f"squeue -h -r -t all -j {','.join(arrays)} -o '%i|%T'")
        if f"{running}_1|RUNNING" in states and f"{cancel_running}_0|RUNNING" in states:
            break
        time.sleep(2)
    run(f"scancel {cancel_running}_0 {cancel_pending}")
    while time.monotonic() < deadline:
        states = run(f"squeue -h -r -t all -j {timeout} -o '%i|%T'")
        if "TIMEOUT" in states:
            break
        time.sleep(5)
    time.sleep(3)  # let slurmdbd record the ends
    save["status.txt"] = run(slurm.status_script(arrays))
    save["squeue_collapsed.txt"] = run(f"squeue -h -t all -j {held} -o '%i|%T'")
    save["sacct_collapsed.txt"] = run(f"sacct -n -P -X -j {held},{cancel_pending} -o JobID,State")
    save["counts.txt"] = run(slurm.counts_script("capture", args.partition))
    save["cancel.txt"] = run(
        slurm.cancel_script(
            [running, completed, "999999"],
            [f"{running}_0", f"{running}_1", f"{completed}_0", "999999_0"],
        )
    )
    run(f"scancel {held} {running} {timeout}")
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
    }
    (out_dir / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")
    print(f"saved {len(save)} files to {out_dir}")


if __name__ == "__main__":
    main()
