"""One measured cycle of interCEde's batch backend and of the floor, over any transport.

The same code runs on the host over SSH (``benchmarks/bulk_ops.py``) and inside the login node
over the local transport (``benchmarks/peers/login_node.py``): the backend's own transport runs
the floor's commands too, so both sides of a ratio pay the same connection or process spawn.

The floor is what the resource alone costs for the same request, never our own layout:

- submit: ``sbatch --array`` of the same N tasks, chunked at ``MaxArraySize`` as Slurm forces,
  all chunks in one command (one round trip);
- status: ``squeue -h -r`` for the same array ids;
- kill: ``scancel`` of the same arrays;
- get_output: a bare ``tar -c`` of the same files (stdout, stderr, one result file per job);
- purge: a bare ``rm -rf`` of the same files.

Everything is submitted held, so the numbers measure the control path, not two container
workers running thousands of jobs. Before a submission the cycle waits, untimed, until
``MaxJobCount`` has room (cancelled jobs linger ``MinJobAge``), and before a status it waits,
untimed, until ``sacct`` lists the new jobs, so every tool is measured in the same state.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

import intercede
from intercede import CopyVars, SubmissionSpec

T = TypeVar("T")

ROUND_TRIPS = {"submit": 1, "status": 1, "kill": 1, "get_output": 2, "purge": 2}
"""What each operation costs today, for any N (the run fails on a change; constant in N)."""
JOB_COUNT_MARGIN = 500
"""Records kept free below MaxJobCount (other users of the stack, Slurm's own accounting)."""


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Shell:
    """The floor's and the bookkeeping's commands, on the backend's own transport."""

    def __init__(self, backend: Any) -> None:
        self.transport = backend.transport

    async def __call__(self, script: str, stdin: bytes | None = None) -> tuple[str, float]:
        started = time.perf_counter()
        result = await self.transport.run(["sh", "-c", script], stdin=stdin, timeout=900)
        elapsed = time.perf_counter() - started
        if result.rc != 0:
            raise RuntimeError(f"{script[:80]!r} failed: {result.stderr.decode()[-400:]}")
        return result.stdout.decode(), elapsed

    async def limits(self) -> dict[str, int]:
        out, _ = await self(
            "scontrol show config | grep -E '^(MaxArraySize|MaxJobCount|MinJobAge) '"
        )
        return {line.split()[0]: int(line.split()[2]) for line in out.splitlines()}

    async def wait_for_room(self, n: int, timeout_s: float = 900) -> float:
        """Seconds waited until ``n`` more job records fit under MaxJobCount."""
        limit = (await self.limits())["MaxJobCount"]
        started = time.monotonic()
        while True:
            out, _ = await self("squeue -h -r -t all -o %i | wc -l")
            if int(out) + n <= limit - JOB_COUNT_MARGIN:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"no room for {n} jobs after {timeout_s} s ({out.strip()})")
            await anyio.sleep(5)

    async def wait_for_sacct(self, array_ids: list[str], timeout_s: float = 120) -> float:
        """Seconds until ``sacct`` lists every one of ``array_ids`` (slurmdbd lags)."""
        started = time.monotonic()
        want = set(array_ids)
        while True:
            out, _ = await self(f"sacct -X -n -P -o JobID -j {','.join(sorted(want))} || true")
            seen = {line.split("_")[0] for line in out.split()}
            if want <= seen:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"sacct misses {len(want - seen)} of {len(want)} jobs")
            await anyio.sleep(1)


def array_chunks(n: int, max_array_size: int) -> list[int]:
    """Task counts of the arrays Slurm needs for ``n`` tasks (indices stay below the limit)."""
    return [min(max_array_size, n - start) for start in range(0, n, max_array_size)]


async def floor_cycle(sh: Shell, n: int, work_root: str, payload_root: str) -> dict[str, float]:
    """The resource alone, for the same N: sbatch arrays, squeue, scancel, tar -c, rm -rf."""
    limits = await sh.limits()
    await sh.wait_for_room(n)
    sbatch = "; ".join(
        f"sbatch --parsable --hold -J floor -o /dev/null --array=0-{k - 1} --wrap true"
        for k in array_chunks(n, limits["MaxArraySize"])
    )
    out, t_submit = await sh(sbatch)
    arrays = [line.split(";")[0] for line in out.split()]
    await sh.wait_for_sacct(arrays)
    ids = ",".join(arrays)
    out, t_status = await sh(f"squeue -h -r -t all -j {ids} -o '%i|%T'")
    if len(out.split()) != n:
        raise RuntimeError(f"the floor's squeue listed {len(out.split())} of {n} tasks")
    _, t_kill = await sh(f"scancel {' '.join(arrays)}")
    batch = f"{payload_root}/floor-{uuid.uuid4().hex}"
    await payload_left(sh, batch, n)
    _, t_output = await sh(
        f"cd {batch} && tar -c -f - [0-9]*/stdout [0-9]*/stderr [0-9]*/work | wc -c"
    )
    _, t_purge = await sh(f"rm -rf {batch}")
    return {
        "submit": t_submit,
        "status": t_status,
        "kill": t_kill,
        "get_output": t_output,
        "purge": t_purge,
    }


async def payload_left(sh: Shell, batch_dir: str, n: int) -> None:
    """What n finished payloads would have left in interCEde's job directories (the layout of
    ``intercede._batch.layout``: ``<batch>/<index>/{stdout,stderr,work/}``): stdout, stderr and
    one result file each. A layout change must change this function too."""
    await sh(
        f"mkdir -p {batch_dir} && cd {batch_dir} && i=0;"
        f" while [ $i -lt {n} ]; do mkdir -p $i/work"
        " && echo out $i > $i/stdout && : > $i/stderr"
        " && echo '{\"ok\": true}' > $i/work/result.json; i=$((i + 1)); done"
    )


async def _timed(backend: Any, call: Callable[[], Awaitable[T]]) -> tuple[T, float, int]:
    trips = backend.transport.round_trips
    started = time.perf_counter()
    value = await call()
    return value, time.perf_counter() - started, backend.transport.round_trips - trips


async def intercede_cycle(
    backend: Any, spec: SubmissionSpec, n: int, dest: Path
) -> dict[str, dict[str, Any]]:
    """submit (each copy its own environment and secret), status, kill, get_output, purge."""
    sh = Shell(backend)
    await sh.wait_for_room(n)
    copies = [
        CopyVars(
            environment={"DIRAC_PILOT_STAMP": uuid.uuid4().hex},
            secrets={"TOKEN": os.urandom(32).hex().encode()},
        )
        for _ in range(n)
    ]
    submission, t_submit, r_submit = await _timed(backend, lambda: backend.submit(spec, copies))
    if submission.failures:
        raise RuntimeError(f"submit failed: {list(submission.failures.items())[:3]}")
    handles = list(submission.handles.values())
    await sh.wait_for_sacct(sorted({h.id.split("_")[0] for h in handles}))
    status, t_status, r_status = await _timed(backend, lambda: backend.get_status(handles))
    states = {s.value for s in status.values()}
    if len(status) != n or states != {"Waiting"}:
        raise RuntimeError(f"status of {len(status)} of {n} held jobs: {states}")
    killed, t_kill, r_kill = await _timed(backend, lambda: backend.kill(handles))
    not_ok = [o for o in killed.values() if not o.ok]
    batch = handles[0].routing.split("/")[0]
    await payload_left(sh, f"{backend._config.work_root}/{batch}", n)
    shutil.rmtree(dest, ignore_errors=True)
    outputs, t_output, r_output = await _timed(backend, lambda: backend.get_output(handles, dest))
    for handle in handles:
        out = outputs[handle.id]
        if not isinstance(out, intercede.JobOutput) or [p.name for p in out.files] != [
            "result.json"
        ]:
            raise RuntimeError(f"get_output of {handle.id}: {out}")
    shutil.rmtree(dest, ignore_errors=True)
    purged, t_purge, r_purge = await _timed(backend, lambda: backend.purge(handles))
    purge_not_ok = [o for o in purged.values() if not o.ok]
    return {
        "submit": {"s": t_submit, "trips": r_submit},
        "status": {"s": t_status, "trips": r_status},
        "kill": {"s": t_kill, "trips": r_kill, "not_ok": len(not_ok), "e.g.": _first(not_ok)},
        "get_output": {"s": t_output, "trips": r_output},
        "purge": {
            "s": t_purge,
            "trips": r_purge,
            "not_ok": len(purge_not_ok),
            "e.g.": _first(purge_not_ok),
        },
    }


def _first(outcomes: list[Any]) -> str | None:
    return str(outcomes[0]) if outcomes else None


def pilot_spec(scratch: Path) -> SubmissionSpec:
    """A small pilot-like executable: prints its stamp (never runs: the jobs are held)."""
    exe = scratch / "pilot.sh"
    exe.write_text('#!/bin/sh\necho "$DIRAC_PILOT_STAMP"\n')
    exe.chmod(0o755)
    return SubmissionSpec(executable=str(exe), outputs=intercede.OutputSpec.everything())
