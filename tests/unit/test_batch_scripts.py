"""The backend's remote scripts run for real (local ``sh``, awk, xargs, find, tar) against a
scripted Slurm CLI: ``squeue``/``sacct``/``scancel`` stand-ins whose answers and failures each
test sets, so outages, missing accounting and foreign jobs can be shown without a cluster.
"""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from intercede import (
    CredentialRequirements,
    CredentialSet,
    Diagnostics,
    JobHandle,
    JobStatus,
    OpOutcome,
    ResourceUnavailableError,
    SpecificationRejectedError,
    SSHBatchConfig,
    SSHPrivateKey,
)
from intercede._batch.backend import BatchBackend
from intercede._batch.local import LocalTransport
from intercede._batch.slurm import SlurmScheduler
from intercede._batch.transport import CommandResult

pytestmark = pytest.mark.anyio

RESOURCE = "submit@ce.example.org:22"
BATCH = "cd" * 16
ME = getpass.getuser()
ARG_MAX_SINGLE = 128 * 1024

_FAKE = """#!/bin/sh
S={state}
echo "$*" >> "$S/{name}.args"
if [ -e "$S/{name}_fail" ]; then echo "{name}: error: Unable to contact slurm controller" >&2
  exit 1; fi
{extra}
cat "$S/{name}.txt" 2>/dev/null
exit 0
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Provider:
    async def get(self, requirements: CredentialRequirements) -> CredentialSet:
        return CredentialSet([SSHPrivateKey(pem=SecretStr("k"))])

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class FakeCluster:
    """The local transport with the scripted Slurm CLI first on PATH; records argv sizes."""

    kind = "ssh"
    resource = RESOURCE
    connections_opened = 0

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self._local = LocalTransport(command_timeout_s=60)
        self.longest_arg = 0
        self.scripts: list[str] = []

    @property
    def round_trips(self) -> int:
        return self._local.round_trips

    async def run(self, argv: list[str], **kw: Any) -> CommandResult:
        self.longest_arg = max(self.longest_arg, *(len(a.encode()) for a in argv))
        self.scripts.append(argv[-1])
        script = f'PATH="{self._bin}:$PATH"; export PATH\n' + argv[-1]
        return await self._local.run([*argv[:-1], script], **kw)

    async def aclose(self) -> None:
        await self._local.aclose()


class Slurm:
    """Answers of the stand-in commands; ``after`` replaces squeue's answer once scancel ran."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def answer(self, command: str, text: str) -> None:
        (self.state / f"{command}.txt").write_text(text)

    def fail(self, command: str) -> None:
        (self.state / f"{command}_fail").touch()

    def after_cancel(self, squeue: str) -> None:
        (self.state / "after.txt").write_text(squeue)

    def args(self, command: str) -> list[str]:
        path = self.state / f"{command}.args"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def slurm_cli(tmp_path: Path) -> Slurm:
    state, bin_dir = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    after = '[ -e "$S/after.txt" ] && cp "$S/after.txt" "$S/squeue.txt"'
    # squeue without -r answers with the array records (squeue_records.txt), when given
    records = (
        'case " $* " in *" -r "*) ;; *) [ -e "$S/squeue_records.txt" ]'
        ' && cat "$S/squeue_records.txt" && exit 0 ;; esac'
    )
    for name, extra in (("squeue", records), ("sacct", ""), ("scancel", after)):
        path = bin_dir / name
        path.write_text(_FAKE.format(state=state, name=name, extra=extra))
        path.chmod(0o755)
    return Slurm(state)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def backend(tmp_path: Path, root: Path, slurm_cli: Slurm) -> BatchBackend:
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = SSHBatchConfig(
        transport="ssh",
        host="ce.example.org",
        user="submit",
        known_hosts=known,
        work_root=str(root),
        job_name="intercede",
    )
    return BatchBackend(FakeCluster(tmp_path / "bin"), SlurmScheduler(), config, Provider())


def _handle(job_id: str, index: int = 0, batch: str = BATCH) -> JobHandle:
    return JobHandle(backend="slurm+ssh", resource=RESOURCE, id=job_id, routing=f"{batch}/{index}")


def _job_dir(root: Path, index: int, *, log: str | None = None, job_id: str = "") -> Path:
    path = root / BATCH / str(index)
    (path / "work").mkdir(parents=True, exist_ok=True)
    (root / BATCH / "logs").mkdir(exist_ok=True)
    if log is not None:
        (root / BATCH / "logs" / f"{job_id}.log").write_text(log)
    return path


def _chunks(root: Path, *lines: str) -> None:
    (root / BATCH).mkdir(parents=True, exist_ok=True)
    (root / BATCH / "chunks").write_text("".join(f"{line}\n" for line in lines))


# --- item: an outage must not look like forgotten jobs ------------------------------------


async def test_status_raises_when_neither_squeue_nor_sacct_answers(
    backend: BatchBackend, slurm_cli: Slurm
) -> None:
    slurm_cli.fail("squeue")
    slurm_cli.fail("sacct")
    with pytest.raises(ResourceUnavailableError, match="not answering"):
        await backend.get_status([_handle("41_0")])


async def test_without_accounting_live_jobs_answer_and_logs_tell_finished_ones(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    slurm_cli.fail("sacct")  # "Slurm accounting storage is disabled"
    slurm_cli.answer("squeue", f"41_0|RUNNING|{ME}|intercede\n")
    start = "intercede: copy {i}, job 41_{i}, started on n1 at 2024-01-01T00:00:00Z\n"
    _job_dir(root, 1, log=start.format(i=1) + "intercede: exit code 0 at x\n", job_id="41_1")
    _job_dir(root, 2, log=start.format(i=2) + "intercede: exit code 3 at x\n", job_id="41_2")
    _job_dir(root, 3, log=start.format(i=3), job_id="41_3")  # killed: no exit line
    handles = [_handle(f"41_{i}", i) for i in range(5)]
    status = await backend.get_status(handles)
    assert status == {
        "41_0": JobStatus.RUNNING,
        "41_1": JobStatus.DONE,
        "41_2": JobStatus.FAILED,
        "41_3": JobStatus.UNKNOWN,
        "41_4": JobStatus.UNKNOWN,
    }
    assert backend.transport.round_trips == 1


async def test_logs_tell_finished_jobs_when_slurm_forgot_every_one_of_them(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    """The fallback must not depend on Slurm knowing at least one of the jobs asked about."""
    slurm_cli.fail("sacct")
    slurm_cli.answer("squeue", "")
    start = "intercede: copy {i}, job 41_{i}, started on n1 at 2024-01-01T00:00:00Z\n"
    _job_dir(root, 1, log=start.format(i=1) + "intercede: exit code 0 at x\n", job_id="41_1")
    _job_dir(root, 2, log=start.format(i=2) + "intercede: exit code 3 at x\n", job_id="41_2")
    status = await backend.get_status([_handle("41_1", 1), _handle("41_2", 2)])
    assert status == {"41_1": JobStatus.DONE, "41_2": JobStatus.FAILED}


async def test_status_answers_from_sacct_while_the_controller_is_down(
    backend: BatchBackend, slurm_cli: Slurm
) -> None:
    slurm_cli.fail("squeue")
    slurm_cli.answer("sacct", "41_0|COMPLETED\n")
    status = await backend.get_status([_handle("41_0"), _handle("41_1", 1)])
    assert status == {"41_0": JobStatus.DONE, "41_1": JobStatus.UNKNOWN}


async def test_purge_deletes_nothing_when_squeue_fails(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    slurm_cli.fail("squeue")
    slurm_cli.answer("sacct", "")
    job = _job_dir(root, 0)
    with pytest.raises(ResourceUnavailableError, match="squeue failed"):
        await backend.purge([_handle("41_0")])
    assert job.is_dir()


async def test_kill_raises_when_squeue_fails(backend: BatchBackend, slurm_cli: Slurm) -> None:
    slurm_cli.fail("squeue")
    with pytest.raises(ResourceUnavailableError):
        await backend.kill([_handle("41_0")])
    assert slurm_cli.args("scancel") == []


# --- purge: finished jobs go, already gone is fine, a mismatched handle is refused --------


async def test_purge_then_purge_again(backend: BatchBackend, slurm_cli: Slurm, root: Path) -> None:
    slurm_cli.answer("sacct", "41_0|COMPLETED\n41_1|RUNNING\n")
    slurm_cli.answer("squeue", f"41_1|RUNNING|{ME}|intercede\n")
    _chunks(root, "@@chunk 0 2 41")
    first, second = _job_dir(root, 0), _job_dir(root, 1)
    purged = await backend.purge([_handle("41_0"), _handle("41_1", 1)])
    assert purged["41_0"] == OpOutcome(ok=True)
    assert not purged["41_1"].ok
    assert "kill it first" in (purged["41_1"].reason or "")
    assert not first.exists()
    assert second.is_dir()
    again = await backend.purge([_handle("41_0")])
    assert again["41_0"] == OpOutcome(ok=True, reason="already gone")
    assert backend.transport.round_trips == 4


async def test_purge_refuses_a_handle_whose_id_is_not_the_batch_s(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    _chunks(root, "@@chunk 0 2 41", "@@chunk 2 2 42")
    kept = _job_dir(root, 2)
    stale = _handle("55_0", 2)  # copy 2 is job 42_0, not 55_0
    outcome = (await backend.purge([stale]))["55_0"]
    assert not outcome.ok
    assert "42_0" in (outcome.reason or "")
    assert kept.is_dir()
    assert (await backend.purge([_handle("42_0", 2)]))["42_0"].ok
    assert not kept.exists()


# --- kill touches only this backend's jobs ------------------------------------------------


async def test_kill_cancels_only_arrays_with_our_user_and_job_name(
    backend: BatchBackend, slurm_cli: Slurm
) -> None:
    slurm_cli.answer(
        "squeue",
        f"41_0|RUNNING|{ME}|intercede\n42_0|RUNNING|someone|intercede\n"
        f"43_0|PENDING|{ME}|other-pilots\n",
    )
    slurm_cli.after_cancel(
        f"41_0|CANCELLED|{ME}|intercede\n42_0|RUNNING|someone|intercede\n"
        f"43_0|PENDING|{ME}|other-pilots\n"
    )
    outcomes = await backend.kill([_handle("41_0"), _handle("42_0"), _handle("43_0")])
    assert outcomes["41_0"] == OpOutcome(ok=True)
    for foreign in ("42_0", "43_0"):
        assert not outcomes[foreign].ok
        assert "another user or job name" in (outcomes[foreign].reason or "")
    assert slurm_cli.args("scancel") == ["41_0"]
    assert backend.transport.round_trips == 1
    assert len(slurm_cli.args("squeue")) == 1  # scancel succeeded: the status is read once


async def test_a_failed_scancel_reads_the_status_again_and_names_what_is_still_live(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    _chunks(root, "@@chunk 0 2 5")
    slurm_cli.answer("squeue", f"5_0|RUNNING|{ME}|intercede\n5_1|PENDING|{ME}|intercede\n")
    slurm_cli.fail("scancel")
    outcomes = await backend.kill([_handle("5_0"), _handle("5_1", 1)])
    assert outcomes == {
        "5_0": OpOutcome(ok=False, reason="still RUNNING after scancel"),
        "5_1": OpOutcome(ok=False, reason="still PENDING after scancel"),
    }
    assert len(slurm_cli.args("squeue")) == 2
    assert backend.transport.round_trips == 1


# --- sacct (a slurmdbd query) only when squeue leaves something out -------------------------


async def test_status_skips_sacct_when_squeue_answers_every_job(
    backend: BatchBackend, slurm_cli: Slurm
) -> None:
    slurm_cli.answer("squeue", f"41_0|RUNNING|{ME}|intercede\n41_1|PENDING|{ME}|intercede\n")
    slurm_cli.answer("sacct", "41_0|RUNNING\n41_1|PENDING\n41_2|COMPLETED\n")
    both = await backend.get_status([_handle("41_0"), _handle("41_1", 1)])
    assert both == {"41_0": JobStatus.RUNNING, "41_1": JobStatus.WAITING}
    assert slurm_cli.args("sacct") == []
    three = await backend.get_status([_handle("41_0"), _handle("41_1", 1), _handle("41_2", 2)])
    assert three["41_2"] is JobStatus.DONE  # squeue forgot it: sacct is asked
    assert len(slurm_cli.args("sacct")) == 1


async def test_status_asks_sacct_when_squeue_says_completing(
    backend: BatchBackend, slurm_cli: Slurm
) -> None:
    slurm_cli.answer("squeue", f"41_0|COMPLETING|{ME}|intercede\n")
    slurm_cli.answer("sacct", "41_0|FAILED\n")
    assert await backend.get_status([_handle("41_0")]) == {"41_0": JobStatus.FAILED}
    assert len(slurm_cli.args("sacct")) == 1


# --- a pending array task cancelled from inside its array record --------------------------


async def test_kill_of_pending_tasks_inside_the_array_record_reads_aborted(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    """Slurm 22.05/24.11: the cancelled pending tasks vanish from squeue and get no sacct row,
    while sacct keeps listing the array's old range as PENDING."""
    _chunks(root, "@@chunk 0 6 7")
    slurm_cli.answer(
        "squeue",
        "".join(f"7_{i}|{'RUNNING' if i < 2 else 'PENDING'}|{ME}|intercede\n" for i in range(6)),
    )
    slurm_cli.answer("sacct", "7_0|RUNNING\n7_1|RUNNING\n7_[2-5]|PENDING\n")
    slurm_cli.after_cancel(
        f"7_0|RUNNING|{ME}|intercede\n7_1|RUNNING|{ME}|intercede\n7_5|PENDING|{ME}|intercede\n"
    )
    doomed = [_handle(f"7_{i}", i) for i in (2, 3, 4)]
    outcomes = await backend.kill(doomed)
    assert outcomes == {f"7_{i}": OpOutcome(ok=True) for i in (2, 3, 4)}
    assert (root / BATCH / "cancelled").read_text().split() == ["7_2", "7_3", "7_4"]
    status = await backend.get_status([_handle(f"7_{i}", i) for i in range(6)])
    assert status == {
        "7_0": JobStatus.RUNNING,
        "7_1": JobStatus.RUNNING,
        "7_2": JobStatus.ABORTED,
        "7_3": JobStatus.ABORTED,
        "7_4": JobStatus.ABORTED,
        "7_5": JobStatus.WAITING,  # still in sacct's range and in squeue: untouched
    }


async def test_a_kill_retried_after_its_cancel_landed_reports_ok(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    """The first attempt cancelled and lost its reply; the retry finds them Aborted."""
    _chunks(root, "@@chunk 0 2 8")
    slurm_cli.answer("squeue", f"8_0|RUNNING|{ME}|intercede\n8_1|PENDING|{ME}|intercede\n")
    slurm_cli.after_cancel(f"8_0|CANCELLED|{ME}|intercede\n")
    handles = [_handle("8_0"), _handle("8_1", 1)]
    assert all(o.ok for o in (await backend.kill(handles)).values())
    again = await backend.kill(handles)  # squeue now answers what it answered after scancel
    assert again == {"8_0": OpOutcome(ok=True), "8_1": OpOutcome(ok=True)}


async def test_kill_records_only_tasks_that_were_live(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    """A task that had finished is not turned into Aborted by the record."""
    _chunks(root, "@@chunk 0 2 9")
    slurm_cli.answer("squeue", f"9_0|COMPLETED|{ME}|intercede\n9_1|PENDING|{ME}|intercede\n")
    slurm_cli.answer("sacct", "9_0|COMPLETED\n9_1|PENDING\n")
    slurm_cli.after_cancel(f"9_0|COMPLETED|{ME}|intercede\n")
    outcomes = await backend.kill([_handle("9_0"), _handle("9_1", 1)])
    assert outcomes["9_0"] == OpOutcome(ok=False, reason="already finished (Done)")
    assert outcomes["9_1"] == OpOutcome(ok=True)
    assert (root / BATCH / "cancelled").read_text().split() == ["9_1"]
    status = await backend.get_status([_handle("9_0"), _handle("9_1", 1)])
    assert status == {"9_0": JobStatus.DONE, "9_1": JobStatus.ABORTED}


async def test_kill_answers_whole_when_the_batch_folder_is_gone(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    """The cancel record cannot be written (the batch folder was removed under live jobs):
    the reply must still be whole, with more records than a pipe holds (84 KB)."""
    ids = [f"10000000_{i}" for i in range(6000)]
    slurm_cli.answer("squeue", "".join(f"{j}|PENDING|{ME}|intercede\n" for j in ids))
    outcomes = await backend.kill([_handle(j, i) for i, j in enumerate(ids)])
    assert len(outcomes) == len(ids)
    assert all(o == OpOutcome(ok=True) for o in outcomes.values())
    assert slurm_cli.args("scancel") == ["10000000_[0-5999]"]
    assert not (root / BATCH).exists()


# --- any N: the command line does not grow ------------------------------------------------


async def test_the_command_line_is_bounded_for_5000_jobs(
    backend: BatchBackend, slurm_cli: Slurm, tmp_path: Path
) -> None:
    n = 5000
    handles = [_handle(f"{10_000_000 + i}_0", i) for i in range(n)]  # 8-digit ids, one per array
    status = await backend.get_status(handles)
    assert len(status) == n
    killed = await backend.kill(handles)
    assert len(killed) == n
    purged = await backend.purge(handles)
    assert all(o.ok for o in purged.values())
    output = await backend.get_output(handles, tmp_path / "out")
    assert len(output) == n
    diagnostics = await backend.get_diagnostics(handles, name="some file.txt")
    assert len(diagnostics) == n
    # status 1, kill 1, purge 2, get_output 1 (every job gone: no tar), diagnostics 1
    assert backend.transport.round_trips == 6
    transport = backend.transport
    assert isinstance(transport, FakeCluster)
    assert transport.longest_arg < 8192  # the scripts themselves (far below 128 KiB), whatever N is
    for command in ("squeue", "sacct"):
        calls = slurm_cli.args(command)
        assert calls
        assert max(len(line.encode()) for line in calls) < ARG_MAX_SINGLE // 8


# --- diagnostics: the streams by reserved name --------------------------------------------


async def test_streams_are_read_by_reserved_names_and_payload_files_by_path(
    backend: BatchBackend, root: Path
) -> None:
    job = _job_dir(root, 0, log="intercede: copy 0, job 41_0\n", job_id="41_0")
    (job / "stdout").write_text("out\n")
    (job / "stderr").write_text("err\n")
    (job / "work" / ":stderr").write_text("a payload file\n")
    odd = "odd 'name'\n%s $x.txt"
    (job / "work" / odd).write_text("odd\n")
    handle = _handle("41_0")

    async def read(name: str | None) -> bytes:
        got = (await backend.get_diagnostics([handle], name))["41_0"]
        assert isinstance(got, Diagnostics), got
        assert got.name == (name or "stdout")
        return got.content

    assert await read(None) == b"out\n"
    assert await read(":stdout") == b"out\n"
    assert await read(":stderr") == b"err\n"
    assert await read(":log") == b"intercede: copy 0, job 41_0\n"
    assert await read("./:stderr") == b"a payload file\n"
    assert await read(odd) == b"odd\n"
    missing = (await backend.get_diagnostics([handle], "absent.txt"))["41_0"]
    assert isinstance(missing, OpOutcome)
    with pytest.raises(SpecificationRejectedError) as info:
        await backend.get_diagnostics([handle], ":nonsense/../../x")
    assert info.value.field == "name"


async def test_diagnostics_raise_when_the_remote_command_fails(
    backend: BatchBackend, root: Path
) -> None:
    root.rmdir()  # the work root is gone: nothing could be read
    with pytest.raises(ResourceUnavailableError, match="cannot read stdout"):
        await backend.get_diagnostics([_handle("41_0")])


# --- purge by the batch's copies record -----------------------------------------------------


def _records(root: Path, copies: int) -> Path:
    """A batch as submit leaves it: one line per copy in ``copies``, no copy directory."""
    batch = root / BATCH
    (batch / "logs").mkdir(parents=True, exist_ok=True)
    (batch / "job.sh").write_text("#!/bin/bash\n")
    (batch / "copies").write_text("\n" * copies)
    (batch / "secrets").write_text("\n" * copies)
    return batch


async def test_purge_records_each_copy_and_removes_the_batch_with_its_last(
    backend: BatchBackend, slurm_cli: Slurm, root: Path
) -> None:
    slurm_cli.answer("sacct", "41_0|COMPLETED\n41_1|CANCELLED by 0\n41_2|FAILED\n")
    slurm_cli.answer("squeue", "")
    batch = _records(root, 3)
    _chunks(root, "@@chunk 0 3 41")
    ran = _job_dir(root, 0, log="ran\n", job_id="41_0")  # copy 1 never started: no directory
    first = await backend.purge([_handle("41_0"), _handle("41_1", 1)])
    assert first == {"41_0": OpOutcome(ok=True), "41_1": OpOutcome(ok=True)}
    assert not ran.exists()
    assert not (batch / "logs" / "41_0.log").exists()
    assert (batch / "purged").read_text().split() == ["0", "1"]
    assert (batch / "job.sh").exists()  # copy 2 is not purged yet: the batch stays
    again = await backend.purge([_handle("41_1", 1)])
    assert again == {"41_1": OpOutcome(ok=True, reason="already gone")}
    assert (batch / "purged").read_text().split() == ["0", "1"]
    last = await backend.purge([_handle("41_2", 2)])
    assert last == {"41_2": OpOutcome(ok=True)}
    assert not batch.exists()  # its script, records, secrets and logs went with the last copy
    trash = root / ".trash"
    for _ in range(50):  # unlinked by a detached rm, which does not hold up the reply
        if not any(trash.iterdir()):
            break
        time.sleep(0.1)
    assert list(trash.iterdir()) == []


def test_purge_sweeps_what_an_unfinished_background_rm_left(root: Path) -> None:
    import subprocess

    from intercede._batch import remote

    stale, fresh = root / ".trash" / "p1", root / ".trash" / "p2"
    for path in (stale, fresh):
        (path / BATCH / "0").mkdir(parents=True)
    old = time.time() - 11 * 60
    os.utime(stale, (old, old))
    done = subprocess.run(
        ["sh", "-c", remote.script("purge.sh", str(root))], input=b"", capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert not stale.exists()
    assert fresh.exists()  # maybe another purge's, still being unlinked
    assert sorted(p.name for p in (root / ".trash").iterdir()) == ["p2"]


def test_an_index_beyond_the_batch_never_counts_towards_removing_it(root: Path) -> None:
    import subprocess

    from intercede._batch import remote

    batch = _records(root, 2)
    stdin = f"{BATCH} 0 {BATCH}/logs/a.log\n{BATCH} 7 {BATCH}/logs/b.log\n".encode()
    done = subprocess.run(
        ["sh", "-c", remote.script("purge.sh", str(root))], input=stdin, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert remote.marks(done.stdout.decode(), "had") == [f"{BATCH}/0"]
    assert (batch / "purged").read_text().split() == ["0"]
    assert (batch / "job.sh").exists()


async def test_a_task_squeue_r_leaves_out_of_a_stepped_range_is_still_waiting(
    backend: BatchBackend, slurm_cli: Slurm
) -> None:
    """Recorded on Slurm 22.05 after cancelling every other task of a pending 1001-task array:
    ``squeue -r`` lists 156_1 ... 156_997 but not 156_999, the record ``156_[1-999:2]``
    holds it, and sacct does not know the array yet."""
    slurm_cli.answer("squeue", "".join(f"156_{i}|PENDING|{ME}|intercede\n" for i in (1, 3, 5)))
    slurm_cli.answer("squeue_records", f"156_[1-7:2]|PENDING|{ME}|intercede\n")
    slurm_cli.answer("sacct", "")
    handles = [_handle(f"156_{i}", i) for i in (1, 3, 5, 7)] + [_handle("156_9", 9)]
    status = await backend.get_status(handles)
    assert status == {
        "156_1": JobStatus.WAITING,
        "156_3": JobStatus.WAITING,
        "156_5": JobStatus.WAITING,
        "156_7": JobStatus.WAITING,
        "156_9": JobStatus.UNKNOWN,
    }
    assert backend.transport.round_trips == 1
