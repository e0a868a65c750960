"""Bulk operations of the Slurm batch backend over SSH, against the harness cluster.

For N = 10, 100, 1000 copies: wall time and transport round trips of ``submit`` (every copy
with its own environment and secret), ``get_status``, ``kill``, ``get_output`` and ``purge``,
next to the floor: the resource's own cost of the same work over the same open SSH connection
(``sbatch --array`` plus unpacking the same per-copy files, ``squeue``, ``scancel``, one
``tar -c`` of the same files). Jobs are
submitted held (``--hold``) so the numbers measure the control path, not the two container
workers running a thousand jobs; before ``get_output`` one remote command writes what a
payload would have left (stdout, stderr, a result file) into every job's directory. Round
trips must be exactly what the design says (1 per operation; 2 for ``get_output``: listing,
then the tar; 2 for ``purge``: the live check, then the removal) or the run fails. Also:
staging 1000 small files as one tar stream versus SFTP over the same connection.

Slurm's ``MaxJobCount`` counts array tasks and finished ones linger ``MinJobAge`` (300 s on the
harness cluster): leave five minutes between two runs.

    python benchmarks/bulk_ops.py [--stack NAME] [--repeat 3]

Prints a table and writes ``benchmarks/results/bulk_ops.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

# Run as a script (`just bench-bulk`): the harness lives at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import intercede
from intercede import CopyVars, SSHBatchConfig, SubmissionSpec
from intercede._batch.backend import BatchBackend
from intercede._batch.staging import build_batch_archive
from intercede._batch.transport import put_tar, shell

T = TypeVar("T")
SIZES = (10, 100, 1000)
OPS = ("submit", "status", "kill", "get_output", "purge")
TARGETS_S = {("submit", 1000): 1.0, ("status", 1000): 0.5, ("kill", 1000): 1.0}
ROUND_TRIPS = {"submit": 1, "status": 1, "kill": 1, "get_output": 2, "purge": 2}
"""Exactly what each operation costs, for any N (a regression fails the run)."""
RESULTS = Path(__file__).parent / "results" / "bulk_ops.json"


async def _timed(backend: BatchBackend, call: Callable[[], Awaitable[T]]) -> tuple[T, float, int]:
    trips = backend.transport.round_trips
    started = time.perf_counter()
    value = await call()
    return value, time.perf_counter() - started, backend.transport.round_trips - trips


async def _floor(backend: BatchBackend, script: str) -> tuple[str, float]:
    started = time.perf_counter()
    result = await backend.transport.run(shell(script))
    elapsed = time.perf_counter() - started
    if result.rc != 0:
        raise RuntimeError(f"floor command failed: {result.stderr.decode()}")
    return result.stdout.decode().strip(), elapsed


async def _payload_left(backend: BatchBackend, n: int, handle: intercede.JobHandle) -> None:
    """What n finished payloads would have left: stdout, stderr and a result file each."""
    work_root = backend._config.work_root
    batch = handle.routing.split("/")[0]
    script = (
        f"mkdir -p {work_root}/{batch} && cd {work_root}/{batch} && i=0;"
        f" while [ $i -lt {n} ]; do mkdir -p $i/work"
        " && echo out $i > $i/stdout && : > $i/stderr"
        " && echo '{\"ok\": true}' > $i/work/result.json; i=$((i + 1)); done"
    )
    result = await backend.transport.run(shell(script))
    if result.rc != 0:
        raise RuntimeError(f"could not fake the payload output: {result.stderr.decode()}")


async def _one_round(
    backend: BatchBackend, spec: SubmissionSpec, n: int, dest: Path
) -> dict[str, Any]:
    copies = [
        CopyVars(
            environment={"DIRAC_PILOT_STAMP": uuid.uuid4().hex},
            secrets={"TOKEN": os.urandom(32).hex().encode()},
        )
        for _ in range(n)
    ]
    submission, t_submit, r_submit = await _timed(backend, lambda: backend.submit(spec, copies))
    assert not submission.failures, submission.failures
    handles = list(submission.handles.values())
    status, t_status, r_status = await _timed(backend, lambda: backend.get_status(handles))
    assert len(status) == n
    assert set(status.values()) == {intercede.JobStatus.WAITING}, set(status.values())
    killed, t_kill, r_kill = await _timed(backend, lambda: backend.kill(handles))
    assert all(o.ok for o in killed.values()), [o for o in killed.values() if not o.ok][:3]
    await _payload_left(backend, n, handles[0])
    shutil.rmtree(dest, ignore_errors=True)
    outputs, t_output, r_output = await _timed(backend, lambda: backend.get_output(handles, dest))
    assert len(outputs) == n
    for handle in handles:
        out = outputs[handle.id]
        assert isinstance(out, intercede.JobOutput), out
        assert [p.name for p in out.files] == ["result.json"], out.files
        assert out.stdout is not None
    purged, t_purge, r_purge = await _timed(backend, lambda: backend.purge(handles))
    assert purged == dict.fromkeys(purged, intercede.OpOutcome(ok=True)), [
        o for o in purged.values() if o != intercede.OpOutcome(ok=True)
    ][:3]
    assert len(purged) == n

    array, f_sbatch = await _floor(
        backend, f"sbatch --parsable --hold -J floor -o /dev/null --array=0-{n - 1} --wrap true"
    )
    array = array.split(";")[0]
    # The submit floor is the resource's own cost of the same work: that sbatch, plus unpacking
    # the very same per-copy files (env, secrets, dirs) on the shared area. Creating thousands
    # of small files is the disk's business, and it varies a lot between machines.
    archive = build_batch_archive(spec, copies, batch_dir="floor", script="#!/bin/sh\n")
    scratch = f"{backend._config.work_root}/floor-{uuid.uuid4().hex}"
    started = time.perf_counter()
    unpacked = await backend.transport.run(
        shell(f"umask 077 && mkdir -p {scratch} && tar -x -f - -C {scratch}"), stdin=archive
    )
    f_submit = f_sbatch + time.perf_counter() - started
    assert unpacked.rc == 0, unpacked.stderr
    await _floor(backend, f"rm -rf {scratch}")
    _, f_status = await _floor(backend, f"squeue -h -r -t all -j {array} -o '%i|%T'")
    _, f_kill = await _floor(backend, f"scancel {array}")
    # the output floor: one tar of the same three files per job, read over the same connection
    work_root = backend._config.work_root
    batch = handles[0].routing.split("/")[0]
    await _payload_left(backend, n, handles[0])
    started = time.perf_counter()
    tarred = await backend.transport.run(
        shell(f"cd {work_root}/{batch} && tar -c -f - [0-9]*/stdout [0-9]*/stderr [0-9]*/work")
    )
    f_output = time.perf_counter() - started
    assert tarred.rc == 0, tarred.stderr
    _, f_purge = await _floor(backend, f"rm -rf {work_root}/{batch} && echo gone")
    return {
        "submit": (t_submit, r_submit, f_submit),
        "status": (t_status, r_status, f_status),
        "kill": (t_kill, r_kill, f_kill),
        "get_output": (t_output, r_output, f_output),
        "purge": (t_purge, r_purge, f_purge),
    }


async def _staging(backend: BatchBackend, remote_root: str, files: int) -> dict[str, float]:
    """1000 small files: one tar stream vs SFTP puts, over the same connection."""
    blobs = {f"f{i:04d}.txt": os.urandom(256) for i in range(files)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in blobs.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    started = time.perf_counter()
    await put_tar(backend.transport, buffer.getvalue(), f"{remote_root}/tar", timeout=120)
    t_tar = time.perf_counter() - started

    conn = await backend.transport._connection()  # type: ignore[attr-defined]
    await backend.transport.run(shell(f"mkdir -p {remote_root}/sftp"))
    started = time.perf_counter()
    async with conn.start_sftp_client() as sftp:
        for name, data in blobs.items():
            async with sftp.open(f"{remote_root}/sftp/{name}", "wb") as handle:
                await handle.write(data)
    t_sftp = time.perf_counter() - started
    count = await backend.transport.run(
        shell(f"ls {remote_root}/tar | wc -l; ls {remote_root}/sftp | wc -l")
    )
    assert count.stdout.decode().split() == [str(files), str(files)], count.stdout
    return {"files": files, "tar_s": t_tar, "sftp_s": t_sftp}


async def main(stack: str, repeat: int) -> None:
    from harness.cluster import Cluster

    cluster = Cluster(stack)
    cluster.up()
    loaded = intercede.load_config(cluster.client_config_path)
    base = loaded.queues["main"]
    assert isinstance(base, SSHBatchConfig)
    run_root = f"{cluster.work_root}/bench/{uuid.uuid4().hex[:8]}"
    config = base.model_copy(
        update={"work_root": run_root, "job_name": "bench", "submit_extra": ("--hold",)}
    )
    scratch = Path(tempfile.mkdtemp(prefix="bulk-ops-"))
    exe = scratch / "pilot.sh"
    exe.write_text('#!/bin/sh\necho "$DIRAC_PILOT_STAMP"\n')
    spec = SubmissionSpec(executable=str(exe), outputs=intercede.OutputSpec.everything())
    backend = intercede.backend(config, loaded.credentials())
    assert isinstance(backend, BatchBackend)
    async with backend:
        await backend.counts()  # connect (and warm up) outside the measurements
        try:
            rows, staging = await _measure(backend, spec, run_root, repeat, scratch / "out")
        finally:
            await backend.transport.run(shell(f"rm -rf {run_root}"))
            shutil.rmtree(scratch, ignore_errors=True)
        connections = backend.transport.connections_opened
    _report(cluster, rows, staging, connections, repeat)


async def _measure(
    backend: BatchBackend, spec: SubmissionSpec, run_root: str, repeat: int, dest: Path
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    rows: list[dict[str, Any]] = []
    for n in SIZES:
        rounds = [await _one_round(backend, spec, n, dest) for _ in range(repeat)]
        for op in OPS:
            wall = statistics.median(r[op][0] for r in rounds)
            floor = statistics.median(r[op][2] for r in rounds)
            rows.append(
                {
                    "op": op,
                    "n": n,
                    "wall_s": round(wall, 4),
                    "round_trips": sorted({r[op][1] for r in rounds}),
                    "floor_s": round(floor, 4),
                    "ratio_to_floor": round(wall / floor, 2),
                    "target_s": TARGETS_S.get((op, n)),
                }
            )
    staging = await _staging(backend, f"{run_root}/staging", 1000)
    return rows, staging


def _report(
    cluster: Any,
    rows: list[dict[str, Any]],
    staging: dict[str, float],
    connections: int,
    repeat: int,
) -> None:
    print(f"{'op':<11}{'N':>6}{'wall s':>10}{'trips':>7}{'floor s':>10}{'ratio':>8}{'target':>9}")
    for row in rows:
        target = f"{row['target_s']:.1f}" if row["target_s"] else "-"
        print(
            f"{row['op']:<11}{row['n']:>6}{row['wall_s']:>10.3f}"
            f"{','.join(map(str, row['round_trips'])):>7}"
            f"{row['floor_s']:>10.3f}{row['ratio_to_floor']:>8.2f}{target:>9}"
        )
    print(
        f"staging {staging['files']} small files: tar stream {staging['tar_s']:.3f} s, "
        f"SFTP {staging['sftp_s']:.3f} s ({staging['sftp_s'] / staging['tar_s']:.0f}x slower)"
    )
    print(f"SSH connections opened for the whole run: {connections}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "bulk_ops",
                "repeat": repeat,
                "statistic": "median",
                "slurm": cluster.exec("login", ["sbatch", "--version"])[1].strip(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "connections_opened": connections,
                "rows": rows,
                "staging": staging,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    failed = [r for r in rows if r["target_s"] and r["wall_s"] > r["target_s"]]
    failed += [r for r in rows if r["round_trips"] != [ROUND_TRIPS[r["op"]]]]
    if failed:
        raise SystemExit(f"targets missed: {failed}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default=os.environ.get("INTERCEDE_STACK", "intercede"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    anyio.run(main, args.stack, args.repeat)
