"""Output collection: listing parser, per-job plans (limits, containment), safe unpacking.

The listing is produced here by running the backend's own listing script with the local
``sh``/``find`` over a directory laid out like a real work root, so the parser sees real
``find -printf`` output.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from intercede import JobOutput, OpOutcome
from intercede._batch import collect
from intercede._batch.layout import JobLocation
from intercede._batch.transport import tar_command, tar_input
from tests.unit.fakes import local_job

BATCH = "ab" * 16


def _job(index: int, array: str = "9") -> JobLocation:
    return local_job(index, BATCH, array)


def _lay_out(root: Path, manifest: dict[str, object], jobs: dict[int, dict[str, bytes]]) -> None:
    batch = root / BATCH
    (batch / "logs").mkdir(parents=True)
    (batch / "manifest.json").write_text(json.dumps(manifest))
    for index, files in jobs.items():
        job = batch / str(index)
        (job / "work").mkdir(parents=True)
        (job / "stdout").write_bytes(b"out %d\n" % index)
        (job / "stderr").write_bytes(b"")
        (batch / "logs" / f"9_{index}.log").write_text("log\n")
        for name, data in files.items():
            path = job / "work" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if data.startswith(b"->"):
                path.symlink_to(data[2:].decode())
            else:
                path.write_bytes(data)


def _listing(root: Path, jobs: list[JobLocation]) -> bytes:
    script = collect.listing_script(str(root))
    return subprocess.run(
        ["sh", "-c", script], input=collect.listing_input(jobs), capture_output=True, check=True
    ).stdout


def _fetch(root: Path, plans: dict[str, collect.Plan]) -> subprocess.CompletedProcess[bytes]:
    """What the remote ``tar -c --null -T -`` sends, run the same way."""
    paths = [p for plan in plans.values() for p in plan.files]
    return subprocess.run(tar_command(str(root)), input=tar_input(paths), capture_output=True)


def _collect(
    root: Path,
    dest: Path,
    jobs: list[JobLocation],
    *,
    max_bytes: int = 1 << 20,
    max_files: int = 100,
    between: Callable[[], None] = lambda: None,
) -> dict[str, JobOutput | OpOutcome]:
    listing = _listing(root, jobs)
    manifests, entries = collect.parse_listing(listing)
    plans = collect.plan_collection(
        jobs,
        manifests,
        entries,
        max_bytes=max_bytes,
        max_files=max_files,
        not_started=collect.not_started(listing, jobs),
    )
    ready = {k: v for k, v in plans.items() if isinstance(v, collect.Plan)}
    result: dict[str, JobOutput | OpOutcome] = {
        k: v for k, v in plans.items() if isinstance(v, OpOutcome)
    }
    between()  # the payload changes its files between the listing and the transfer
    fetched = _fetch(root, ready)
    result.update(
        collect.unpack(
            io.BytesIO(fetched.stdout),
            ready,
            dest,
            max_bytes=max_bytes,
            tar_rc=fetched.returncode,
            tar_messages=fetched.stderr.decode(errors="replace"),
        )
    )
    return result


def test_everything_twice_identical(tmp_path: Path) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(
        root,
        {"members": [], "include_unlisted": True},
        {0: {"a.txt": b"A", "sub/b.bin": b"\x00B", "stdout": b"payload", "link": b"->a.txt"}},
    )
    jobs = [_job(0)]
    first = _collect(root, dest, jobs)
    tree = sorted((str(p.relative_to(dest)), p.is_symlink()) for p in dest.rglob("*"))
    second = _collect(root, dest, jobs)
    assert first == second
    assert sorted((str(p.relative_to(dest)), p.is_symlink()) for p in dest.rglob("*")) == tree
    out = first["9_0"]
    assert isinstance(out, JobOutput)
    assert out.stdout == dest / "9_0.out"
    assert out.stdout.read_bytes() == b"out 0\n"
    assert out.stderr == dest / "9_0.err"
    assert out.log == dest / "9_0.log"
    assert [str(p.relative_to(dest / "9_0")) for p in out.files] == [
        "a.txt",
        "link",
        "stdout",
        "sub/b.bin",
    ]
    assert (dest / "9_0" / "stdout").read_bytes() == b"payload"
    assert os.readlink(dest / "9_0" / "link") == "a.txt"


def test_members_select_only_what_was_asked(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _lay_out(
        root,
        {"members": ["*.json", "res"], "include_unlisted": False},
        {0: {"a.json": b"1", "b.txt": b"2", "res/deep/c": b"3", "sub/d.json": b"4"}},
    )
    out = _collect(root, tmp_path / "dest", [_job(0)])["9_0"]
    assert isinstance(out, JobOutput)
    assert [str(p.relative_to(tmp_path / "dest" / "9_0")) for p in out.files] == [
        "a.json",
        "res/deep/c",
    ]


@pytest.mark.parametrize(
    ("files", "limits", "reason"),
    [
        ({"a": b"1", "b": b"2", "c": b"3"}, {"max_files": 2}, "output_max_files=2"),
        ({"big": b"x" * 5000}, {"max_bytes": 4096}, "output_max_bytes=4096"),
    ],
)
def test_refused_job_leaves_nothing_and_others_proceed(
    tmp_path: Path, files: dict[str, bytes], limits: dict[str, int], reason: str
) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(root, {"members": [], "include_unlisted": True}, {0: files, 1: {"ok": b"fine"}})
    result = _collect(root, dest, [_job(0), _job(1)], **limits)  # type: ignore[arg-type]
    refused = result["9_0"]
    assert isinstance(refused, OpOutcome)
    assert reason in (refused.reason or "")
    assert isinstance(result["9_1"], JobOutput)
    assert sorted(p.name for p in dest.iterdir()) == ["9_1", "9_1.err", "9_1.log", "9_1.out"]


def test_purged_job_is_gone_and_unstarted_job_has_no_streams(tmp_path: Path) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(root, {"members": [], "include_unlisted": True}, {})
    (root / BATCH / "3").mkdir()  # staged, never started: no work/, no streams
    result = _collect(root, dest, [_job(2), _job(3)])
    gone = result["9_2"]
    assert isinstance(gone, OpOutcome)
    assert "gone" in (gone.reason or "")
    assert result["9_3"] == JobOutput(
        root=dest / "9_3", stdout=None, stderr=None, log=None, files=()
    )


def test_a_copy_without_a_directory_is_not_started_unless_purged_or_not_the_batch_s(
    tmp_path: Path,
) -> None:
    """The batch's records decide: copies 0 and 1 of 3 never started (no directory: pending,
    or cancelled before they ran), copy 1 was purged since, and copy 5 is not the batch's."""
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(root, {"members": [], "include_unlisted": True}, {2: {"r": b"ran"}})
    (root / BATCH / "copies").write_text("a\nb\nc\n")
    (root / BATCH / "purged").write_text("1\n")
    result = _collect(root, dest, [_job(0), _job(1), _job(2), _job(5)])
    assert result["9_0"] == JobOutput(
        root=dest / "9_0", stdout=None, stderr=None, log=None, files=()
    )
    for purged_or_foreign in ("9_1", "9_5"):
        gone = result[purged_or_foreign]
        assert isinstance(gone, OpOutcome)
        assert "gone" in (gone.reason or "")
    ran = result["9_2"]
    assert isinstance(ran, JobOutput)
    assert [p.name for p in ran.files] == ["r"]


def test_unpack_ignores_members_nobody_asked_for(tmp_path: Path) -> None:
    job = _job(0)
    plan = collect.Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in ((f"{job.work_dir}/a", b"A"), ("../../evil", b"E"), ("/abs", b"X")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    result = collect.unpack(buffer, {"9_0": plan}, tmp_path / "dest", max_bytes=100)
    assert isinstance(result["9_0"], JobOutput)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "dest/9_0/a"
    ]


def test_bytes_beyond_the_limit_while_unpacking_refuse_the_job(tmp_path: Path) -> None:
    """The payload grew between the listing and the transfer."""
    job = _job(0)
    plan = collect.Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(f"{job.work_dir}/a")
        info.size = 500
        tar.addfile(info, io.BytesIO(b"x" * 500))
    buffer.seek(0)
    result = collect.unpack(buffer, {"9_0": plan}, tmp_path / "dest", max_bytes=100)
    assert isinstance(result["9_0"], OpOutcome)
    assert list((tmp_path / "dest").iterdir()) == []


def test_parse_listing_handles_newlines_in_names() -> None:
    raw = (
        b"@@manifest " + BATCH.encode() + b'\n{"members":[],"include_unlisted":true}\n\n@@end\n'
        b"@@find\nd 4096 " + BATCH.encode() + b"/0\0\0f 3 " + BATCH.encode() + b"/0/work/a\nb\0\0"
        b"l 5 " + BATCH.encode() + b"/0/work/l\0target\0"
    )
    manifests, entries = collect.parse_listing(raw)
    assert manifests[BATCH]["include_unlisted"] is True
    assert entries[f"{BATCH}/0/work/a\nb"] == collect.Entry(kind="f", size=3, link="")
    assert entries[f"{BATCH}/0/work/l"].link == "target"


def _skipped(dest: Path, job_id: str) -> str:
    return (dest / f"{job_id}{collect.SKIPPED_SUFFIX}").read_text()


@pytest.mark.parametrize(
    ("files", "left_out"),
    [
        ({"leak": b"->/etc/passwd", "fine.txt": b"ok"}, "leak"),
        ({"up": b"->../../../x", "fine.txt": b"ok"}, "up"),
        # each link passes a textual check; together x resolves above the directory
        ({"a/b/l": b"->../..", "a/b/x": b"->l/../..", "fine.txt": b"ok"}, "a/b/x"),
    ],
)
def test_escaping_links_are_skipped_and_reported_the_rest_is_delivered(
    tmp_path: Path, files: dict[str, bytes], left_out: str
) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(root, {"members": [], "include_unlisted": True}, {0: files})
    out = _collect(root, dest, [_job(0)])["9_0"]
    assert isinstance(out, JobOutput), out
    assert out.stdout is not None
    assert out.stdout.read_bytes() == b"out 0\n"
    assert (dest / "9_0" / "fine.txt").read_bytes() == b"ok"
    assert not (dest / "9_0" / left_out).is_symlink()
    assert repr(left_out) in _skipped(dest, "9_0")
    # the typed result names the same member, relative to the working directory
    assert list(out.skipped) == [left_out]
    assert "outside the working directory" in out.skipped[left_out]
    base = os.path.realpath(dest / "9_0")
    for path in (dest / "9_0").rglob("*"):
        assert os.path.realpath(path).startswith(base)
    # collected again without the offender: the stale report goes too
    os.unlink(root / BATCH / "0" / "work" / left_out)
    again = _collect(root, dest, [_job(0)])["9_0"]
    assert isinstance(again, JobOutput)
    assert again.skipped == {}
    assert not (dest / f"9_0{collect.SKIPPED_SUFFIX}").exists()


def test_inner_chained_links_are_kept(tmp_path: Path) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    files = {"a/b/f": b"F", "a/b/l": b"->..", "a/x": b"->b/l/b/f"}
    _lay_out(root, {"members": [], "include_unlisted": True}, {0: files})
    out = _collect(root, dest, [_job(0)])["9_0"]
    assert isinstance(out, JobOutput)
    assert out.skipped == {}
    assert (dest / "9_0" / "a" / "x").read_bytes() == b"F"
    assert not (dest / f"9_0{collect.SKIPPED_SUFFIX}").exists()


def test_hard_linked_files_both_arrive(tmp_path: Path) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(root, {"members": [], "include_unlisted": True}, {0: {"a": b"same"}})
    work = root / BATCH / "0" / "work"
    os.link(work / "a", work / "b")
    out = _collect(root, dest, [_job(0)])["9_0"]
    assert isinstance(out, JobOutput)
    assert (dest / "9_0" / "a").read_bytes() == b"same"
    assert (dest / "9_0" / "b").read_bytes() == b"same"


def test_a_file_that_vanishes_after_the_listing_fails_only_its_job(tmp_path: Path) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(
        root,
        {"members": [], "include_unlisted": True},
        {0: {"data.bin": b"x" * 4000}, 1: {"ok": b"fine"}},
    )
    victim = root / BATCH / "0" / "work" / "data.bin"

    result = _collect(root, dest, [_job(0), _job(1)], between=victim.unlink)
    failed = result["9_0"]
    assert isinstance(failed, OpOutcome)
    assert "data.bin" in (failed.reason or "")
    assert "incomplete" in (failed.reason or "")
    assert isinstance(result["9_1"], JobOutput)
    assert sorted(p.name for p in dest.iterdir()) == ["9_1", "9_1.err", "9_1.log", "9_1.out"]


def test_a_file_tar_says_shrank_while_read_fails_its_job(tmp_path: Path) -> None:
    """tar pads a file that shrank under it with zeros: only its message tells."""
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(root, {"members": [], "include_unlisted": True}, {0: {"d": b"x" * 10}, 1: {}})
    jobs = [_job(0), _job(1)]
    manifests, entries = collect.parse_listing(_listing(root, jobs))
    plans = collect.plan_collection(jobs, manifests, entries, max_bytes=1 << 20, max_files=10)
    ready = {k: v for k, v in plans.items() if isinstance(v, collect.Plan)}
    message = f"tar: {BATCH}/0/work/d: File shrank by 5 bytes; padding with zeros\n"
    result = collect.unpack(
        io.BytesIO(_fetch(root, ready).stdout),
        ready,
        dest,
        max_bytes=1 << 20,
        tar_rc=1,
        tar_messages=message + "tar: Exiting with failure status due to previous errors\n",
    )
    failed = result["9_0"]
    assert isinstance(failed, OpOutcome)
    assert "File shrank" in (failed.reason or "")
    assert isinstance(result["9_1"], JobOutput)
    assert not (dest / "9_0").exists()


def test_a_truncated_stream_fails_the_jobs_it_cut_short(tmp_path: Path) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(
        root,
        {"members": [], "include_unlisted": True},
        {0: {"a": b"A" * 100}, 1: {"b": b"B" * 100_000}},
    )
    jobs = [_job(0), _job(1)]
    manifests, entries = collect.parse_listing(_listing(root, jobs))
    plans = collect.plan_collection(jobs, manifests, entries, max_bytes=1 << 20, max_files=10)
    ready = {k: v for k, v in plans.items() if isinstance(v, collect.Plan)}
    whole = _fetch(root, ready).stdout
    cut = whole[: whole.index(b"B" * 1000) + 1000]  # in the middle of job 1's file
    result = collect.unpack(io.BytesIO(cut), ready, dest, max_bytes=1 << 20)
    assert isinstance(result["9_0"], JobOutput)
    broken = result["9_1"]
    assert isinstance(broken, OpOutcome)
    assert "broke off" in (broken.reason or "")
    assert not (dest / "9_1").exists()


def test_a_stream_over_the_total_cap_is_stopped(tmp_path: Path) -> None:
    job = _job(0)
    plan = collect.Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for i in range(50):  # members nobody asked for still count against the cap
            info = tarfile.TarInfo(f"junk{i}")
            info.size = 1000
            tar.addfile(info, io.BytesIO(b"j" * 1000))
    buffer.seek(0)
    assert buffer.getbuffer().nbytes > collect.transfer_cap({"9_0": plan}, 100)
    result = collect.unpack(buffer, {"9_0": plan}, tmp_path / "dest", max_bytes=100)
    stopped = result["9_0"]
    assert isinstance(stopped, OpOutcome)
    assert "stopped after more than" in (stopped.reason or "")


def test_names_that_are_not_utf8_are_collected(tmp_path: Path) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    _lay_out(root, {"members": [], "include_unlisted": True}, {0: {"plain": b"p"}})
    raw = os.fsencode(root / BATCH / "0" / "work") + b"/caf\xe9.txt"
    with open(raw, "wb") as handle:
        handle.write(b"latin-1 name")
    out = _collect(root, dest, [_job(0)])["9_0"]
    assert isinstance(out, JobOutput), out
    assert sorted(os.fsencode(p.name) for p in out.files) == [b"caf\xe9.txt", b"plain"]
    with open(os.fsencode(dest / "9_0") + b"/caf\xe9.txt", "rb") as handle:
        assert handle.read() == b"latin-1 name"
