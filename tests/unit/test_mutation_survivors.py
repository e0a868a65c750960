"""Tests that kill the mutants a hand-made mutation probe of the unit tests left alive
(issue 13): each one fails when the behaviour it names is broken in the way the mutant broke
it. Scripts run for real (``sh``, tar, awk) under stand-ins for Slurm's CLI."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import intercede.sync
from intercede import (
    CredentialRequirements,
    CredentialSet,
    JobHandle,
    JobOutput,
    OpOutcome,
    ResourceUnavailableError,
    SSHBatchConfig,
    SSHPrivateKey,
)
from intercede._batch import collect, slurm
from intercede._batch.backend import BatchBackend
from intercede._batch.collect import Entry
from intercede._batch.layout import JobLocation, locate
from intercede._batch.slurm import SlurmScheduler
from intercede._batch.slurm import submit_error as _submit_error
from intercede._batch.transport import CommandResult
from tests.unit.fakes import Instrumented
from tools import gen_sync

pytestmark = pytest.mark.anyio

BATCH = "ab" * 16
RESOURCE = "submit@ce.example.org:22"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the submit script's --array ranges, run under an sbatch stand-in ----------------------


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("job.sh")
        data = b"#!/bin/sh\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sbatch_stand_in(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir, calls = tmp_path / "bin", tmp_path / "sbatch.calls"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(
        f'#!/bin/sh\necho "$*" >> "{calls}"\nn=$(wc -l < "{calls}"); echo "$((100 + n))"\n'
    )
    fake.chmod(0o755)
    return bin_dir, calls


@pytest.mark.parametrize(
    ("copies", "max_size", "expected"),
    [
        (5, 2, [("0-1", "0"), ("0-1", "2"), ("0-0", "4")]),
        (4, 2, [("0-1", "0"), ("0-1", "2")]),
        (1, 1000, [("0-0", "0")]),
        (3, 3, [("0-2", "0")]),
    ],
)
def test_each_chunk_asks_for_exactly_its_own_tasks(
    tmp_path: Path, copies: int, max_size: int, expected: list[tuple[str, str]]
) -> None:
    bin_dir, calls = _sbatch_stand_in(tmp_path)
    root = tmp_path / "root"
    script = slurm.submit_script(
        work_root=str(root), batch=BATCH, copies=copies, options=["--parsable"],
        max_array_size=max_size,
    )  # fmt: skip
    done = subprocess.run(
        ["sh", "-c", script],
        input=_archive(),
        capture_output=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = []
    for line in calls.read_text().splitlines():
        words = line.split()
        array = next(w for w in words if w.startswith("--array="))
        seen.append((array.removeprefix("--array="), words[-1]))
    assert seen == expected
    reply = slurm.parse_submit(done.stdout.decode())
    assert sum(size for _, size, _ in reply.chunks) == copies
    assert not (root / BATCH / slurm.SUBMITTING).exists()  # the submit is over


def test_a_broken_upload_exits_with_the_unpack_code_and_leaves_no_folder(tmp_path: Path) -> None:
    bin_dir, calls = _sbatch_stand_in(tmp_path)
    root = tmp_path / "root"
    script = slurm.submit_script(
        work_root=str(root), batch=BATCH, copies=2, options=[], max_array_size=10
    )
    done = subprocess.run(
        ["sh", "-c", script],
        input=_archive()[:700],  # cut short, as a dropped connection would
        capture_output=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        check=False,
    )
    assert done.returncode == 92
    assert not (root / BATCH).exists()
    assert not calls.exists()  # sbatch never ran
    error = _submit_error(done.returncode, done.stderr.decode(), str(root), BATCH)
    assert type(error) is ResourceUnavailableError
    assert "cannot unpack the batch" in str(error)


# --- kill and purge decisions from Slurm's answers -----------------------------------------


class _Provider:
    async def get(self, requirements: CredentialRequirements) -> CredentialSet:
        return CredentialSet([SSHPrivateKey(pem=SecretStr("k"))])

    async def __aenter__(self) -> _Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Canned:
    kind = "ssh"
    resource = RESOURCE
    connections_opened = 0
    round_trips = 0

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.scripts: list[str] = []

    async def run(self, argv: list[str], **kw: Any) -> CommandResult:
        self.scripts.append(argv[-1])
        return CommandResult(0, self.replies.pop(0).encode(), b"")

    async def aclose(self) -> None:
        return None


def _backend(tmp_path: Path, transport: _Canned) -> BatchBackend:
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = SSHBatchConfig(
        transport="ssh", host="h", user="u", known_hosts=known, work_root="/w",
        job_name="intercede",
    )  # fmt: skip
    return BatchBackend(transport, SlurmScheduler(), config, _Provider())  # type: ignore[arg-type]


def _handle(job_id: str = "9_0", index: int = 0) -> JobHandle:
    return JobHandle(backend="slurm+ssh", resource=RESOURCE, id=job_id, routing=f"{BATCH}/{index}")


def _section(squeue: str, sacct: str, sacct_rc: int = 0) -> str:
    return f"@@squeue\n{squeue}@@rc squeue 0\n@@sacct\n{sacct}@@rc sacct {sacct_rc}\n"


@pytest.mark.parametrize(
    ("sacct_after", "sacct_rc"),
    [("", 1), ("", 0), ("9_0|RUNNING\n", 0)],  # accounting down, missing, lagging
)
async def test_completing_after_scancel_is_a_successful_kill(
    tmp_path: Path, sacct_after: str, sacct_rc: int
) -> None:
    before = _section("9_0|RUNNING|u|intercede\n", "9_0|RUNNING\n") + "@@ours 9\n"
    after = _section("9_0|COMPLETING|u|intercede\n", sacct_after, sacct_rc) + "@@end\n"
    backend = _backend(tmp_path, _Canned(before + "@@rc scancel 0\n@@after\n" + after))
    outcome = (await backend.kill([_handle()]))["9_0"]
    assert outcome == OpOutcome(ok=True)


@pytest.mark.parametrize("state", ["PENDING", "RUNNING", "REQUEUED", "COMPLETING"])
async def test_purge_refuses_a_job_that_is_not_final(tmp_path: Path, state: str) -> None:
    reply = _section(f"9_0|{state}|u|intercede\n", "") + "@@exits\n@@end\n"
    transport = _Canned(reply)
    outcome = (await _backend(tmp_path, transport).purge([_handle()]))["9_0"]
    assert not outcome.ok
    assert "kill it first" in (outcome.reason or "")
    assert len(transport.scripts) == 1  # nothing was removed


# --- output collection: limits at and one over, crafted names, sibling prefixes ------------


def _job(index: int, array: str = "9") -> JobLocation:
    where = locate(_handle(f"{array}_{index}", index), backend="slurm+ssh", resource=RESOURCE)
    assert isinstance(where, JobLocation)
    return where


def _entries(job: JobLocation, files: Mapping[str, int]) -> dict[str, Entry]:
    entries = {
        job.job_dir: Entry("d", 0, ""),
        job.stdout: Entry("f", 4, ""),
        job.stderr: Entry("f", 3, ""),
        job.log: Entry("f", 3, ""),
    }
    for name, size in files.items():
        entries[f"{job.work_dir}/{name}"] = Entry("f", size, "")
    return entries


def _plan(files: Mapping[str, int], **limits: int) -> collect.Plan | OpOutcome:
    job = _job(0)
    return collect.plan_collection(
        [job], {BATCH: {"include_unlisted": True}}, _entries(job, files), **limits
    )["9_0"]


def test_max_files_is_inclusive() -> None:
    assert isinstance(_plan({"a": 1, "b": 1}, max_files=2, max_bytes=100), collect.Plan)
    over = _plan({"a": 1, "b": 1, "c": 1}, max_files=2, max_bytes=100)
    assert isinstance(over, OpOutcome)
    assert not over.ok
    assert "3 output files, more than output_max_files=2" in (over.reason or "")


def test_max_bytes_is_inclusive_and_counts_the_streams() -> None:
    assert isinstance(_plan({"a": 40, "b": 50}, max_files=9, max_bytes=100), collect.Plan)
    over = _plan({"a": 40, "b": 51}, max_files=9, max_bytes=100)
    assert isinstance(over, OpOutcome)
    assert not over.ok
    assert "101 bytes of output, more than output_max_bytes=100" in (over.reason or "")


def test_crafted_listing_names_with_dot_dot_never_reach_the_transfer() -> None:
    plan = _plan({"ok": 1, "../../../etc/passwd": 5, "a/../../x": 5}, max_files=9, max_bytes=99)
    assert isinstance(plan, collect.Plan)
    job = _job(0)
    assert list(plan.files) == [job.stdout, job.stderr, job.log, f"{job.work_dir}/ok"]
    assert plan.skipped == {
        "../../../etc/passwd": "not a path inside the working directory",
        "a/../../x": "not a path inside the working directory",
    }


def test_members_are_chosen_by_pattern_in_name_order() -> None:
    job = _job(0)
    entries = _entries(job, {"a.log": 1, "b.txt": 2, "c.log": 3, "d/e.log": 4})
    entries[f"{job.work_dir}/a.dir"] = Entry("d", 0, "")  # sorts first; only files count
    plan = collect.plan_collection(
        [job], {BATCH: {"members": ["*.log", "d"]}}, entries, max_bytes=99, max_files=9
    )["9_0"]
    assert isinstance(plan, collect.Plan)
    assert [p.removeprefix(f"{job.work_dir}/") for p in plan.files if "/work/" in p] == [
        "a.log",
        "c.log",
        "d/e.log",
    ]


def test_a_link_resolving_into_a_sibling_job_with_a_longer_id_is_removed(tmp_path: Path) -> None:
    """9_1's "s" -> "." and "l" -> "s/../9_10/f" each stay inside by their text; resolved
    together, l reaches 9_10's file next door (whose name starts with "9_1")."""
    one, ten = _job(1), _job(10)
    plans = {
        "9_1": collect.Plan(one, files={f"{one.work_dir}/g": "9_1/g"}),
        "9_10": collect.Plan(ten, files={f"{ten.work_dir}/f": "9_10/f"}),
    }
    plans["9_1"].links = {f"{one.work_dir}/s": ".", f"{one.work_dir}/l": "s/../9_10/f"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in ((f"{one.work_dir}/g", b"G"), (f"{ten.work_dir}/f", b"secret")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    dest = tmp_path / "dest"
    result = collect.unpack(buffer, plans, dest, max_bytes=1000)
    first = result["9_1"]
    assert isinstance(first, JobOutput)
    assert "l" in first.skipped
    assert not (dest / "9_1" / "l").is_symlink()
    assert (dest / "9_10" / "f").read_bytes() == b"secret"


# --- the sync facade's close() from two threads --------------------------------------------


def test_two_threads_closing_at_once_both_wait_for_the_loop_thread() -> None:
    backend = Instrumented(close_delay=0.5)
    facade = intercede.sync.wrap(backend)
    loop_thread = facade._runtime._thread
    alive_at_return: list[bool] = []
    start = threading.Barrier(2)

    def close() -> None:
        start.wait()
        facade.close()
        alive_at_return.append(loop_thread.is_alive())

    threads = [threading.Thread(target=close) for _ in range(2)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert alive_at_return == [False, False]
    assert time.monotonic() - began >= 0.5  # both waited for the slow aclose
    assert backend.acloses == 1


# --- the generator's check ------------------------------------------------------------------


def test_gen_sync_check_fails_when_the_output_file_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "absent" / "_generated.py"
    assert gen_sync.check(gen_sync.DEFAULT_INPUT, missing) is not None
    done = subprocess.run(
        [sys.executable, "-m", "tools.gen_sync", "--check", "--output", str(missing)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(gen_sync.__file__).resolve().parents[1],
    )
    assert done.returncode == 1
    assert not missing.exists()


# --- what staging writes ----------------------------------------------------------------------


def test_the_manifest_is_exactly_what_get_output_reads_back() -> None:
    from intercede import OutputMember, OutputSpec, SubmissionSpec
    from intercede._batch.staging import manifest_bytes

    spec = SubmissionSpec(
        executable="/bin/true",
        outputs=OutputSpec(
            members=(
                OutputMember(pattern="a/*.txt"),
                OutputMember(pattern="up", destination="https://se.example/x"),
            ),
            include_unlisted=True,
        ),
    )
    data = manifest_bytes(spec)
    assert data == b'{"members":["a/*.txt"],"include_unlisted":true}'
    listing = f"@@manifest {BATCH}\n".encode() + data + b"\n@@end\n@@find\n"
    manifests, _ = collect.parse_listing(listing)
    assert manifests == {BATCH: {"members": ["a/*.txt"], "include_unlisted": True}}


def test_the_batch_archive_holds_exactly_the_layout_with_private_modes(tmp_path: Path) -> None:
    from pydantic import SecretBytes

    from intercede import CopyVars, FileRef, SubmissionSpec
    from intercede._batch.staging import build_batch_archive

    exe = tmp_path / "pilot.sh"
    exe.write_text("#!/bin/sh\n")
    data = tmp_path / "in.txt"
    data.write_text("input\n")
    spec = SubmissionSpec(executable=str(exe), inputs=(FileRef(name="in.txt", source=str(data)),))
    copies = [
        CopyVars(environment={"STAMP": "s0"}, secrets={"TOKEN": SecretBytes(b"t0")}),
        CopyVars(environment={"STAMP": "s1"}),
    ]
    raw = build_batch_archive(spec, copies, script="#!/bin/sh\n")
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: (m.type, m.mode) for m in tar.getmembers()}
        records = tar.extractfile("copies").read()  # type: ignore[union-attr]
        secrets = tar.extractfile("secrets").read()  # type: ignore[union-attr]
    file, directory = tarfile.REGTYPE, tarfile.DIRTYPE
    assert members == {
        "job.sh": (file, 0o700),
        "manifest.json": (file, 0o600),
        "logs": (directory, 0o700),
        "bin": (directory, 0o700),
        "bin/pilot.sh": (file, 0o700),
        "inputs": (directory, 0o700),
        "inputs/in.txt": (file, 0o600),
        "copies": (file, 0o600),
        "secrets": (file, 0o600),
    }
    lines = records.split(b"\n")
    assert lines[2:] == [b""]
    assert [base64.b64decode(line) for line in lines[:2]] == [
        b"export STAMP=s0\n",
        b"export STAMP=s1\n",
    ]
    assert secrets == b"TOKEN:" + base64.b64encode(b"t0") + b"\n\n"


def test_an_archive_without_any_secret_has_no_secrets_file_and_the_same_members_for_any_n(
    tmp_path: Path,
) -> None:
    from intercede import CopyVars, SubmissionSpec
    from intercede._batch.staging import build_batch_archive

    exe = tmp_path / "pilot.sh"
    exe.write_text("#!/bin/sh\n")
    spec = SubmissionSpec(executable=str(exe))

    def names(n: int) -> list[str]:
        copies = [CopyVars(environment={"STAMP": f"s{i}"}) for i in range(n)]
        raw = build_batch_archive(spec, copies, script="#!/bin/sh\n")
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            return tar.getnames()

    assert (
        names(1)
        == names(5000)
        == ["job.sh", "manifest.json", "logs", "bin", "bin/pilot.sh", "copies"]
    )


def test_an_incomplete_collection_says_why_and_names_what_is_missing() -> None:
    from intercede._batch.collect import _incomplete

    job = _job(0)
    plan = collect.Plan(job)
    missing = [f"{job.job_dir}/work/{name}" for name in ("a", "b", "c", "d", "e")]
    assert _incomplete(plan, "x: file changed as we read it", missing, None, 1) == (
        "output incomplete, nothing kept: tar reported 'x: file changed as we read it'; "
        "missing 'work/a', 'work/b', 'work/c' and 2 more"
    )
    assert _incomplete(plan, None, missing[:1], "the stream broke off", None) == (
        "output incomplete, nothing kept: the stream broke off; missing 'work/a'"
    )
    assert _incomplete(plan, None, missing[:3], None, 2) == (
        "output incomplete, nothing kept: tar ended with exit code 2; "
        "missing 'work/a', 'work/b', 'work/c'"
    )
    assert _incomplete(plan, None, [], None, 0) == (
        "output incomplete, nothing kept: they were not in the stream"
    )
