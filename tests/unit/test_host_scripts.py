"""The host scheduler's remote scripts run for real on this machine (``sh``, ``bash``, ``flock``,
``setsid``, ``ps``): batches staged by the real archive builder, copies started detached,
bounded by slots, their states read from their own files, killed by process group.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from intercede import CopyVars, SubmissionSpec
from intercede._batch import host, remote
from intercede._batch.layout import BATCH_SCRIPT
from intercede._batch.staging import build_batch_archive
from intercede.config import LocalBatchConfig


def source(name: str) -> str:
    return remote.source(name)


def run(name: str, *args: str, stdin: bytes = b"", timeout: float = 30) -> str:
    """One script as the backend runs it: ``sh -c`` with its arguments bound by ``set --``."""
    script = remote.script(name, *args)
    done = subprocess.run(
        ["sh", "-c", script], input=stdin, capture_output=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


class Site:
    """A work root on this machine and the batches submitted into it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gate = root.parent / "gate"
        self.batches: list[str] = []

    def submit(
        self, body: str, copies: list[CopyVars], *, slots: int, batch: str | None = None
    ) -> list[str]:
        batch = batch or os.urandom(16).hex()
        self.batches.append(batch)
        exe = self.root.parent / f"payload-{batch}.sh"
        exe.write_text("#!/bin/sh\n" + body)
        exe.chmod(0o755)
        spec = SubmissionSpec(executable=str(exe))
        batch_dir = f"{self.root}/{batch}"
        config = LocalBatchConfig(transport="local", work_root=str(self.root), scheduler="host")
        script = host.host_batch_script(spec, config, batch_dir, exe.name, has_inputs=False)
        archive = build_batch_archive(spec, copies, script=script)
        started = time.monotonic()
        out = run(
            "host_submit.sh",
            str(self.root),
            batch,
            str(len(copies)),
            str(slots),
            source("host_launch.sh"),
            stdin=archive,
        )
        # detached: the submit's pipes closed although its copies still run
        assert time.monotonic() - started < 10
        assert remote.marks(out, "slots") == [str(slots)]
        assert remote.marks(out, "started")
        return [f"{batch}_{i}" for i in range(len(copies))]

    def lines(self, ids: list[str]) -> bytes:
        return "".join(f"{i} {i.split('_')[0]} {i.split('_')[1]}\n" for i in ids).encode()

    def states(self, ids: list[str]) -> dict[str, str]:
        out = run("host_status.sh", str(self.root), stdin=self.lines(ids))
        assert out.endswith("@@end\n")
        return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()[:-1]}

    def kill(self, ids: list[str]) -> dict[str, str]:
        out = run("host_kill.sh", str(self.root), stdin=self.lines(ids))
        assert out.endswith("@@end\n")
        return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()[:-1]}

    def counts(self) -> tuple[int, int]:
        word, running, waiting = run("host_counts.sh", str(self.root)).split()
        assert word == "@@counts"
        return int(running), int(waiting)

    def pid(self, job_id: str) -> int:
        batch, index = job_id.split("_")
        return int((self.root / batch / index / "pid").read_text())

    def wait(
        self, ids: list[str], done: Callable[[dict[str, str]], bool], limit: float = 20
    ) -> dict[str, str]:
        deadline = time.monotonic() + limit
        while True:
            states = self.states(ids)
            if done(states) or time.monotonic() > deadline:
                return states
            time.sleep(0.1)

    def stop_everything(self) -> None:
        for batch in self.batches:
            for pid_file in (self.root / batch).glob("*/pid"):
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            launcher = self.root / batch / "launcher.pid"
            if launcher.exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(launcher.read_text()), signal.SIGKILL)


@pytest.fixture
def site(tmp_path: Path) -> object:
    s = Site(tmp_path / "root")
    yield s
    s.stop_everything()


def live_members(group: int) -> list[int]:
    """The processes of a process group that are not zombies (this machine's init may never
    reap the orphans)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


GATED = 'while [ ! -e "$GATE" ]; do sleep 0.1; done\necho "copy $INTERCEDE_COPY_INDEX"\n'


def gated(site: Site, n: int) -> list[CopyVars]:
    return [CopyVars(environment={"GATE": str(site.gate)}) for _ in range(n)]


def test_slots_bound_the_copies_and_the_rest_wait(site: Site) -> None:
    ids = site.submit(GATED, gated(site, 5), slots=2)
    states = site.wait(ids, lambda s: list(s.values()).count("R") == 2)
    assert sorted(states.values()) == ["R", "R", "W", "W", "W"]
    assert site.counts() == (2, 3)
    for _ in range(10):  # the bound holds while they wait
        assert list(site.states(ids).values()).count("R") <= 2
    site.gate.touch()
    final = site.wait(ids, lambda s: all(v.startswith("E") for v in s.values()))
    assert final == dict.fromkeys(ids, "E 0")
    assert site.counts() == (0, 0)
    for i, job_id in enumerate(ids):
        batch = job_id.split("_")[0]
        assert (site.root / batch / str(i) / "stdout").read_text() == f"copy {i}\n"
        log = (site.root / batch / "logs" / f"{job_id}.log").read_text()
        assert "intercede: exit code 0 at " in log


def test_slots_are_shared_by_every_batch_under_the_work_root(site: Site) -> None:
    first = site.submit(GATED, gated(site, 2), slots=2)
    second = site.submit(GATED, gated(site, 2), slots=2)
    both = first + second
    states = site.wait(both, lambda s: list(s.values()).count("R") == 2)
    assert sorted(states.values()) == ["R", "R", "W", "W"]
    assert site.counts() == (2, 2)
    site.gate.touch()
    assert site.wait(both, lambda s: all(v == "E 0" for v in s.values())) == dict.fromkeys(
        both, "E 0"
    )


def test_per_copy_environment_and_secrets(site: Site) -> None:
    body = 'echo "$STAMP"; cat "$INTERCEDE_SECRET_TOKEN"\n'
    copies = [
        CopyVars(environment={"STAMP": f"s{i}"}, secrets={"TOKEN": f"t{i}".encode()})
        for i in range(3)
    ]
    ids = site.submit(body, copies, slots=3)
    site.wait(ids, lambda s: all(v == "E 0" for v in s.values()))
    batch = ids[0].split("_")[0]
    for i in range(3):
        assert (site.root / batch / str(i) / "stdout").read_text() == f"s{i}\nt{i}"
        secret = site.root / batch / str(i) / "secrets" / "TOKEN"
        assert secret.stat().st_mode & 0o777 == 0o600


def test_exit_codes_and_a_dead_pid_without_one(site: Site) -> None:
    ids = site.submit(
        '[ "$INTERCEDE_COPY_INDEX" = 0 ] && exit 3\nsleep 30\n', gated(site, 2), slots=2
    )
    states = site.wait(ids, lambda s: s[ids[0]].startswith("E") and s[ids[1]] == "R")
    assert states[ids[0]] == "E 3"
    # the job script dies without writing its exit code (OOM killer, an admin's kill -9)
    os.killpg(site.pid(ids[1]), signal.SIGKILL)
    assert site.wait(ids, lambda s: s[ids[1]] != "R")[ids[1]] == "X"
    assert site.counts() == (0, 0)


def test_kill_running_and_waiting_copies(site: Site) -> None:
    ids = site.submit(GATED, gated(site, 3), slots=1)
    site.wait(ids, lambda s: s[ids[0]] == "R")
    group = site.pid(ids[0])
    assert site.kill(ids[:2]) == {ids[0]: "killed", ids[1]: "dequeued"}
    assert live_members(group) == []  # the whole process group is gone
    assert site.kill(ids[:2]) == dict.fromkeys(ids[:2], "killed-before")
    site.gate.touch()
    states = site.wait(ids, lambda s: s[ids[2]] == "E 0")
    assert states == {ids[0]: "K", ids[1]: "K", ids[2]: "E 0"}
    batch = ids[1].split("_")[0]
    assert not (site.root / batch / "1" / "pid").exists()  # the dequeued copy never started
    assert site.kill([ids[2]]) == {ids[2]: "ended 0"}


def test_a_copy_whose_launcher_died_is_lost_and_unknown_ids_are_unknown(site: Site) -> None:
    ids = site.submit(GATED, gated(site, 2), slots=1)
    site.wait(ids, lambda s: s[ids[0]] == "R")
    batch = ids[0].split("_")[0]
    os.kill(int((site.root / batch / "launcher.pid").read_text()), signal.SIGKILL)
    states = site.wait(ids, lambda s: s[ids[1]] != "W")
    assert states == {ids[0]: "R", ids[1]: "L"}
    other = f"{'ab' * 16}_0"
    assert site.states([other, f"{batch}_7"]) == {other: "U", f"{batch}_7": "U"}


def test_cleanup_refuses_live_copies_then_removes(site: Site) -> None:
    ids = site.submit(GATED, gated(site, 2), slots=1)
    batch = ids[0].split("_")[0]
    site.wait(ids, lambda s: s[ids[0]] == "R")
    out = run("host_cleanup.sh", str(site.root), batch)
    assert out.splitlines() == [f"@@live {ids[0]} Running", f"@@live {ids[1]} Waiting"]
    assert (site.root / batch).is_dir()
    site.gate.touch()
    site.wait(ids, lambda s: all(v == "E 0" for v in s.values()))
    assert run("host_cleanup.sh", str(site.root), batch) == "@@removed\n"
    assert run("host_cleanup.sh", str(site.root), batch) == "@@gone\n"


def test_staging_failures_leave_nothing(site: Site, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    script = f"set -- {shlex.join([str(blocked / 'root'), 'ab' * 16, '1', '1', 'x'])}\n"
    done = subprocess.run(
        ["sh", "-c", script + source("host_submit.sh")], input=b"", capture_output=True
    )
    assert done.returncode == 90
    root = tmp_path / "r2"
    script = f"set -- {shlex.join([str(root), 'ab' * 16, '1', '1', 'x'])}\n"
    done = subprocess.run(
        ["sh", "-c", script + source("host_submit.sh")], input=b"not a tar", capture_output=True
    )
    assert done.returncode == 92
    assert not (root / ("ab" * 16)).exists()


def test_the_job_script_is_the_staged_one(site: Site) -> None:
    ids = site.submit("exit 0\n", [CopyVars()], slots=1)
    batch = ids[0].split("_")[0]
    assert (site.root / batch / BATCH_SCRIPT).read_text().startswith("#!/bin/bash\n")
