"""The batch backend with the local transport, run INSIDE the cluster's login node.

This is DIRAC's Local CE situation: interCEde installed next to the Slurm CLI. The project is
built into a wheel on the host, its dependencies are downloaded for the container's Python,
the wheelhouse is copied in, and a venv there runs a small submit/poll/fetch script.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys, time
from pathlib import Path
import anyio
import intercede
from intercede import CopyVars, JobStatus, OutputSpec, SubmissionSpec

work_root, exe = sys.argv[1], sys.argv[2]

async def main():
    config = {"kind": "batch", "transport": "local", "work_root": work_root,
              "queue": "main", "job_name": "local-e2e"}
    async with intercede.backend(config) as backend:
        trips = {}

        async def counted(op, call):
            before = backend.transport.round_trips
            value = await call
            trips.setdefault(op, set()).add(backend.transport.round_trips - before)
            return value

        spec = SubmissionSpec(executable=exe, arguments=("a b", "$X"),
                              outputs=OutputSpec.everything())
        copies = [CopyVars(environment={"STAMP": f"s{i}"}, secrets={"TOKEN": f"t{i}".encode()})
                  for i in range(3)]
        sub = await counted("submit", backend.submit(spec, copies))
        handles = [sub.handles[i] for i in range(3)]
        seen = []
        deadline = time.monotonic() + 120
        while True:
            status = await counted("get_status", backend.get_status(handles))
            seen.append({k: v.value for k, v in status.items()})
            if all(s.is_final for s in status.values()) or time.monotonic() > deadline:
                break
            await anyio.sleep(0.5)
        dest = Path(work_root) / "collected"
        outputs = await counted("get_output", backend.get_output(handles, dest))
        again = await counted("get_output", backend.get_output(handles, dest))
        purged = await counted("purge", backend.purge(handles))
        report = {
            "handles": [str(h) for h in handles],
            "final": seen[-1],
            "stdout": {h.id: outputs[h.id].stdout.read_text() for h in handles},
            "files": {h.id: sorted(p.name for p in outputs[h.id].files) for h in handles},
            "repeatable": outputs == again,
            "trips": {op: sorted(counts) for op, counts in trips.items()},
            "connections": backend.transport.connections_opened,
            "purge": {k: v.ok for k, v in purged.items()},
        }
        print("@@report " + json.dumps(report))

anyio.run(main)
"""


RUNNING_SCRIPT = r"""
import json, sys, time
import anyio
import intercede
from intercede import CopyVars, JobStatus, SubmissionSpec

work_root, exe, job_name = sys.argv[1], sys.argv[2], sys.argv[3]

async def main():
    config = {"kind": "batch", "transport": "local", "work_root": work_root,
              "queue": "main", "job_name": job_name}
    async with intercede.backend(config) as backend:
        spec = SubmissionSpec(executable=exe)
        copies = [CopyVars(secrets={"TOKEN": f"secret-{i}".encode()}) for i in range(2)]
        sub = await backend.submit(spec, copies)
        handles = [sub.handles[i] for i in range(2)]
        ids = [h.id for h in handles]
        deadline = time.monotonic() + 120
        while True:
            status = await backend.get_status(handles)
            diag = await backend.get_diagnostics(handles)
            started = all(
                getattr(diag[i], "content", b"").startswith(b"mode ") for i in ids
            )
            if all(s is JobStatus.RUNNING for s in status.values()) and started:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"never both running: {status} {diag}")
            await anyio.sleep(0.5)
        counts = await backend.counts()
        diag = await backend.get_diagnostics(handles)
        log = await backend.get_diagnostics(handles, ":log")
        killed = await backend.kill(handles[:1])
        deadline = time.monotonic() + 60
        while True:
            after = await backend.get_status(handles)
            if after[ids[0]].is_final or time.monotonic() > deadline:
                break
            await anyio.sleep(0.5)
        # a cancelled job stays COMPLETING in squeue for a moment after sacct has its end
        deadline = time.monotonic() + 30
        while True:
            counts_after = await backend.counts()
            if counts_after.running < 2 or time.monotonic() > deadline:
                break
            await anyio.sleep(0.5)
        await backend.kill(handles[1:])
        report = {
            "ids": ids,
            "counts": [counts.running, counts.waiting],
            "counts_after": [counts_after.running, counts_after.waiting],
            "diag": {k: [v.name, v.content.decode(), v.truncated] for k, v in diag.items()},
            "log": {k: v.content.decode() for k, v in log.items()},
            "killed": {k: v.ok for k, v in killed.items()},
            "after": {k: v.value for k, v in after.items()},
        }
        print("@@report " + json.dumps(report))

anyio.run(main)
"""


HOST_SCRIPT = r"""
import json, pathlib, sys, time
import anyio
import intercede
from intercede import CopyVars, JobStatus, SubmissionSpec

work_root, exe = sys.argv[1], sys.argv[2]
gate = pathlib.Path(work_root).parent / "gate"

async def wait(backend, handles, done):
    deadline = time.monotonic() + 60
    while True:
        status = await backend.get_status(handles)
        if done(status) or time.monotonic() > deadline:
            return status
        await anyio.sleep(0.3)

async def main():
    config = {"kind": "batch", "transport": "local", "scheduler": "host", "slots": 2,
              "work_root": work_root}
    async with intercede.backend(config) as backend:
        copies = [CopyVars(environment={"GATE": str(gate), "STAMP": f"s{i}"},
                           secrets={"TOKEN": f"t{i}".encode()}) for i in range(3)]
        before = backend.transport.round_trips
        sub = await backend.submit(SubmissionSpec(executable=exe), copies)
        submit_trips = backend.transport.round_trips - before
        handles = [sub.handles[i] for i in range(3)]
        two = await wait(backend, handles,
                         lambda s: list(s.values()).count(JobStatus.RUNNING) == 2)
        counts = await backend.counts()
        killed = await backend.kill([h for h in handles if two[h.id] is JobStatus.WAITING])
        gate.touch()
        final = await wait(backend, handles, lambda s: all(v.is_final for v in s.values()))
        outputs = await backend.get_output(handles, pathlib.Path(work_root).parent / "out")
        purged = await backend.purge(handles)
        report = {
            "handles": [str(h) for h in handles],
            "submit_trips": submit_trips,
            "two": sorted(v.value for v in two.values()),
            "counts": [counts.running, counts.waiting],
            "killed": [o.ok for o in killed.values()],
            "final": {h.id: final[h.id].value for h in handles},
            "stdout": {h.id: getattr(outputs[h.id], "stdout", None) and
                       outputs[h.id].stdout.read_text() for h in handles},
            "purge": [o.ok for o in purged.values()],
        }
        print("@@report " + json.dumps(report))

anyio.run(main)
"""


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel plus its dependencies for the login node's CPython 3.11."""
    house = tmp_path_factory.mktemp("wheelhouse")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(house), str(REPO)], check=True)
    subprocess.run(
        [
            *pip,
            "download",
            "-d",
            str(house),
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            # pyproject.toml's own list, so a new dependency cannot be forgotten here
            *tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"],
        ],
        check=True,
    )
    return house


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 2000, 2000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _run_in_login_venv(
    cluster: Any,
    remote_workdir: str,
    wheelhouse: Path,
    script: str,
    payload: bytes,
    *extra: str,
) -> tuple[dict[str, Any], str]:
    """Stage the wheelhouse, ``script`` and ``payload`` on the login node, install interCEde
    into a venv there and run ``script``; returns its ``@@report`` JSON and its whole output."""
    files = {f"wheelhouse/{p.name}": (p.read_bytes(), 0o644) for p in wheelhouse.iterdir()}
    files["run.py"] = (script.encode(), 0o644)
    files["payload.sh"] = (payload, 0o755)
    stage = f"{remote_workdir}/stage"
    assert cluster.exec("login", ["mkdir", "-p", stage], user="submit")[0] == 0
    assert cluster.container("login").put_archive(stage, _tar(files))

    def run(*argv: str) -> str:
        code, out = cluster.exec("login", list(argv), user="submit")
        assert code == 0, out
        return str(out)

    venv = f"{stage}/venv"
    run("python3", "-m", "venv", venv)
    run(
        f"{venv}/bin/pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        f"{stage}/wheelhouse",
        "intercede",
    )
    out = run(
        f"{venv}/bin/python",
        f"{stage}/run.py",
        f"{remote_workdir}/jobs",
        f"{stage}/payload.sh",
        *extra,
    )
    line = next(x for x in out.splitlines() if x.startswith("@@report "))
    return json.loads(line.removeprefix("@@report ")), out


def test_local_transport_inside_the_login_node(
    slurm_cluster: Any, remote_workdir: str, wheelhouse: Path
) -> None:
    payload = (
        b'#!/bin/sh\nprintf "%s|" "$@"; echo "$STAMP $(cat "$INTERCEDE_SECRET_TOKEN")"\n'
        b"echo done > result.txt\n"
    )
    report, _ = _run_in_login_venv(slurm_cluster, remote_workdir, wheelhouse, SCRIPT, payload)

    handles = report["handles"]
    assert all(h.startswith("slurm+local://localhost/") for h in handles)
    assert set(report["final"].values()) == {"Done"}
    ids = list(report["final"])
    for i, job_id in enumerate(ids):
        assert report["stdout"][job_id] == f"a b|$X|s{i} t{i}\n"
        assert report["files"][job_id] == ["result.txt"]
    assert report["repeatable"] is True
    assert report["purge"] == dict.fromkeys(ids, True)
    # round trips per call, whatever N: the design's 1 (2 for get_output: listing + tar;
    # 2 for purge: live check + removal); the local transport opens no connection
    assert report["trips"] == {"submit": [1], "get_status": [1], "get_output": [2], "purge": [2]}
    assert report["connections"] == 0


def test_kill_counts_diagnostics_and_secret_mode_over_the_local_transport(
    slurm_cluster: Any, remote_workdir: str, wheelhouse: Path
) -> None:
    # the job reports its secret file's mode (not its value), then stays running
    payload = b'#!/bin/sh\necho "mode $(stat -c %a "$INTERCEDE_SECRET_TOKEN")"\nexec sleep 300\n'
    # a job name of its own, so counts() sees only this test's jobs
    job_name = "lk" + uuid.uuid4().hex[:10]
    report, out = _run_in_login_venv(
        slurm_cluster, remote_workdir, wheelhouse, RUNNING_SCRIPT, payload, job_name
    )

    first, second = report["ids"]
    assert report["counts"] == [2, 0]
    # diagnostics of running jobs: their stdout so far, showing the secret file is 0600
    assert report["diag"] == {
        first: ["stdout", "mode 600\n", False],
        second: ["stdout", "mode 600\n", False],
    }
    assert "secret-" not in out
    assert all(f"job {job_id}, started on" in report["log"][job_id] for job_id in report["ids"])
    assert report["killed"] == {first: True}
    assert report["after"] == {first: "Aborted", second: "Running"}
    assert report["counts_after"] == [1, 0]


def test_host_scheduler_over_the_local_transport_inside_the_login_node(
    slurm_cluster: Any, remote_workdir: str, wheelhouse: Path
) -> None:
    """``scheduler = "host"`` where interCEde runs on the host itself (DIRAC's Local CE with
    ``BatchSystem = Host``): two slots, a third copy waiting and killed there, per-copy values."""
    payload = (
        b'#!/bin/sh\nwhile [ ! -e "$GATE" ]; do sleep 0.2; done\n'
        b'echo "$STAMP $(cat "$INTERCEDE_SECRET_TOKEN")"\n'
    )
    report, _ = _run_in_login_venv(slurm_cluster, remote_workdir, wheelhouse, HOST_SCRIPT, payload)
    assert all(h.startswith("host+local://localhost/") for h in report["handles"])
    assert report["submit_trips"] == 1
    assert report["two"] == ["Running", "Running", "Waiting"]
    assert report["counts"] == [2, 1]
    assert report["killed"] == [True]
    finals = sorted(report["final"].values())
    assert finals == ["Aborted", "Done", "Done"]
    for job_id, status in report["final"].items():
        index = int(job_id.rsplit("_", 1)[1])
        expected = f"s{index} t{index}\n" if status == "Done" else None
        assert report["stdout"][job_id] == expected
    assert report["purge"] == [True, True, True]
