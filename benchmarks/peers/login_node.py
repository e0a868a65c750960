"""The tools that run where they run, inside the login node: one tool, one N, one JSON line.

    python login_node.py TOOL N WORK_DIR QUEUE

TOOL is one of:

- ``intercede-local``: interCEde's batch backend with the local transport (DIRAC's Local CE
  situation), then the floor on the same transport (:mod:`cycle`);
- ``psij``: PSI/J's ``slurm`` executor, one ``Job`` per copy (it has no arrays), each with its
  own environment; status is one poll of its queue-polling thread (``squeue`` of every job it
  tracks, what updates ``job.status``); kill is ``executor.cancel(job)`` per job;
- ``submitit``: ``SlurmExecutor`` with ``executor.batch()`` (one array per ``MaxArraySize``
  chunk: submitit does not chunk by itself), each copy its own argument; status is one
  ``watcher.update()`` (its ``sacct`` of every array) and then ``job.state`` for every job;
  kill is ``job.cancel()`` per job (submitit has no bulk cancel).

Peers have no per-copy secret (PSI/J's environment and submitit's pickled arguments carry it)
and no output collection or purge of their own (the files are written in place on the login
node; removing them is the user's ``rm``). Prints ``@@result {json}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

HOLD_UNTIL = "now+1hour"
"""PSI/J renders custom attributes as ``--key="value"``; ``--hold`` takes no value, so its jobs
stay pending by start time instead (same state for status and kill)."""


def _sh(script: str) -> str:
    return subprocess.run(["sh", "-c", script], check=True, capture_output=True, text=True).stdout


def _limits() -> dict[str, int]:
    out = _sh("scontrol show config | grep -E '^(MaxArraySize|MaxJobCount) '")
    return {line.split()[0]: int(line.split()[2]) for line in out.splitlines()}


def _wait_for_room(n: int) -> None:
    from cycle import JOB_COUNT_MARGIN

    limit = _limits()["MaxJobCount"]
    deadline = time.monotonic() + 900
    while int(_sh("squeue -h -r -t all -o %i | wc -l")) + n > limit - JOB_COUNT_MARGIN:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no room for {n} jobs")
        time.sleep(5)


def _wait_for_sacct(ids: set[str]) -> None:
    deadline = time.monotonic() + 180
    while True:
        out = _sh(f"sacct -X -n -P -o JobID -j {','.join(sorted(ids))} || true")
        if ids <= {line.split("_")[0] for line in out.split()}:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("sacct never listed the jobs")
        time.sleep(1)


def _left(ids: set[str]) -> int:
    """How many of ``ids`` (plain or array ids) squeue still shows as not cancelled."""
    out = _sh(f"squeue -h -r -t PD,R,CG -j {','.join(sorted(ids))} -o %i || true")
    return len(out.split())


def run_psij(n: int, work: Path, queue: str) -> dict[str, Any]:
    from psij import Job, JobAttributes, JobExecutor, JobSpec
    from psij.executors.batch.slurm import SlurmExecutorConfig

    config = SlurmExecutorConfig(
        work_directory=work / "psij",
        queue_polling_interval=3600,
        initial_queue_polling_delay=3600,
    )
    executor = JobExecutor.get_instance("slurm", config=config)
    jobs = [
        Job(
            JobSpec(
                executable="/bin/true",
                environment={
                    "DIRAC_PILOT_STAMP": uuid.uuid4().hex,
                    "TOKEN": os.urandom(32).hex(),
                },
                attributes=JobAttributes(
                    queue_name=queue, custom_attributes={"slurm.begin": HOLD_UNTIL}
                ),
            )
        )
        for _ in range(n)
    ]
    _wait_for_room(n)
    started = time.perf_counter()
    for job in jobs:
        executor.submit(job)
    t_submit = time.perf_counter() - started
    ids = {str(job.native_id) for job in jobs}
    _wait_for_sacct(ids)
    poller = executor._queue_poll_thread
    started = time.perf_counter()
    poller._poll()
    states = {str(job.status.state) for job in jobs}
    t_status = time.perf_counter() - started
    if states != {"QUEUED"}:
        raise RuntimeError(f"psij status: {states}")
    started = time.perf_counter()
    for job in jobs:
        executor.cancel(job)
    t_kill = time.perf_counter() - started
    return {
        "submit": {"s": t_submit, "how": "executor.submit(job) per job (no arrays)"},
        "status": {"s": t_status, "how": "one queue poll (squeue of all), then job.status"},
        "kill": {"s": t_kill, "how": "executor.cancel(job) per job", "left": _left(ids)},
    }


def _noop(stamp: str, token: str) -> None:
    """What each submitit copy would call (never runs: the jobs are held)."""


def run_submitit(n: int, work: Path, queue: str) -> dict[str, Any]:
    import submitit

    executor = submitit.SlurmExecutor(folder=str(work / "submitit" / "%j"))
    max_array = _limits()["MaxArraySize"]
    executor.update_parameters(
        partition=queue,
        time=60,
        array_parallelism=max_array,
        additional_parameters={"hold": True},
    )
    args = [(uuid.uuid4().hex, os.urandom(32).hex()) for _ in range(n)]
    _wait_for_room(n)
    started = time.perf_counter()
    jobs: list[Any] = []
    for start in range(0, n, max_array):
        with executor.batch():
            jobs += [executor.submit(_noop, *a) for a in args[start : start + max_array]]
    t_submit = time.perf_counter() - started
    arrays = {job.job_id.split("_")[0] for job in jobs}
    _wait_for_sacct(arrays)
    started = time.perf_counter()
    jobs[0].watcher.update()
    states = {job.state for job in jobs}
    t_status = time.perf_counter() - started
    if states != {"PENDING"}:
        raise RuntimeError(f"submitit status: {states}")
    started = time.perf_counter()
    for job in jobs:
        job.cancel(check=False)
    t_kill = time.perf_counter() - started
    return {
        "submit": {"s": t_submit, "how": "executor.batch() per MaxArraySize chunk (arrays)"},
        "status": {"s": t_status, "how": "watcher.update() (sacct of all), then job.state"},
        "kill": {
            "s": t_kill,
            "how": "job.cancel() per job (no bulk cancel)",
            "left": _left(arrays),
        },
    }


def run_intercede_local(n: int, work: Path, queue: str) -> dict[str, Any]:
    import anyio
    from cycle import Shell, floor_cycle, intercede_cycle, peak_rss_mb, pilot_spec

    import intercede

    async def main() -> dict[str, Any]:
        config = {
            "kind": "batch",
            "transport": "local",
            "work_root": str(work / "intercede"),
            "queue": queue,
            "job_name": "bench",
            "submit_extra": ["--hold"],
        }
        scratch = Path(tempfile.mkdtemp(prefix="bench-"))
        async with intercede.backend(config) as backend:
            ours = await intercede_cycle(backend, pilot_spec(scratch), n, scratch / "out")
            floor = await floor_cycle(Shell(backend), n, str(work), str(work))
        return {"intercede": ours, "floor": floor, "peak_rss_mb": peak_rss_mb()}

    return anyio.run(main)


TOOLS = {"intercede-local": run_intercede_local, "psij": run_psij, "submitit": run_submitit}


def main() -> None:
    tool, n, work, queue = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    work.mkdir(parents=True, exist_ok=True)
    result = TOOLS[tool](n, work, queue)
    print("@@result " + json.dumps(result))


if __name__ == "__main__":
    main()
