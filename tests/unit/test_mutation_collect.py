"""Output collection, pinned where mutation testing found the other tests blind: the exact
listing request, the parser's edge records, the planner's defaults, the transfer cap's
arithmetic, the unpacker's staging and limits, and the exact reasons a job is refused.

Only the module's public functions are called (``listing_input``, ``parse_listing``,
``plan_collection``, ``transfer_cap``, ``Unpacker``, ``unpack``, ``check_listing``), with tar
streams built here or produced by the real ``tar`` over a directory laid out like a work root.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from intercede import JobOutput, OpOutcome
from intercede._batch import collect
from intercede._batch.collect import Entry, Plan
from intercede._batch.layout import JobLocation
from intercede.errors import ResourceUnavailableError
from tests.unit.fakes import local_job

BATCH = "cd" * 16
OTHER = "ef" * 16


def _job(index: int, batch: str = BATCH, array: str = "9") -> JobLocation:
    return local_job(index, batch, array)


def _tar(members: dict[str, bytes], *, links: dict[str, str] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    buffer.seek(0)
    return buffer


def _reason(result: JobOutput | OpOutcome | Plan) -> str:
    assert isinstance(result, OpOutcome), result
    assert result.ok is False
    return result.reason or ""


# --- the listing request and its answer --------------------------------------------------


def test_the_listing_input_names_each_batch_once_then_every_job_directory_and_log() -> None:
    jobs = [_job(1), _job(0), _job(2, batch=OTHER)]
    assert (
        collect.listing_input(jobs)
        == (
            f"B {BATCH}\nB {OTHER}\n"
            f"P {BATCH}/1\nP {BATCH}/logs/9_1.log\n"
            f"P {BATCH}/0\nP {BATCH}/logs/9_0.log\n"
            f"P {OTHER}/2\nP {OTHER}/logs/9_2.log\n"
        ).encode()
    )


def test_the_listing_script_is_bound_to_its_work_root(tmp_path: Path) -> None:
    root = tmp_path / "w o"
    (root / BATCH / "0").mkdir(parents=True)
    script = collect.listing_script(str(root))
    assert script.startswith(f"set -- '{root}'\n")
    listed = subprocess.run(
        ["sh", "-c", script],
        input=collect.listing_input([_job(0)]),
        capture_output=True,
        check=True,
    ).stdout
    _, entries = collect.parse_listing(listed)
    assert entries == {f"{BATCH}/0": Entry("d", entries[f"{BATCH}/0"].size, "")}


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "message"),
    [
        (0, b"nothing\n", b"", "cannot list /w: exit code 0"),
        (
            3,
            b"@@find\n",
            b"  sh: cd: /w: No such file  \n",
            "cannot list /w: sh: cd: /w: No such file",
        ),
        (4, b"", b"", "cannot list /w: exit code 4"),
        (0, b"", b"bad \xff\n", "cannot list /w: bad \ufffd"),
    ],
)
def test_a_listing_without_its_marker_or_with_an_error_code_is_refused(
    rc: int, stdout: bytes, stderr: bytes, message: str
) -> None:
    with pytest.raises(ResourceUnavailableError) as caught:
        collect.check_listing(rc, stdout, stderr, "/w")
    assert str(caught.value) == message


def test_a_complete_listing_passes() -> None:
    collect.check_listing(0, b"@@manifest x\n@@end\n@@find\n", b"warning\n", "/w")


def test_only_well_formed_json_object_manifests_are_kept() -> None:
    raw = (
        b"@@manifest good\n"
        b'{"members": ["a"],\n'
        b' "include_unlisted": false}\n'
        b"@@end\n"
        b"@@manifest empty\n\n@@end\n"
        b"@@manifest broken\n{not json\n@@end\n"
        b"@@manifest alist\n[1, 2]\n@@end\n"
        b"@@chunks good\n@@chunk 0 1 9\n@@end\n"
        b"@@find\n"
    )
    manifests, entries = collect.parse_listing(raw)
    assert manifests == {"good": {"members": ["a"], "include_unlisted": False}}
    assert entries == {}


def test_the_manifest_text_is_read_line_by_line_without_separators() -> None:
    """A manifest spread over lines is joined as it was written (a string spanning lines
    keeps no separator: the JSON writer never splits one)."""
    raw = b'@@manifest b\n{"members": ["a\n", "b"]}\n@@end\n@@find\n'
    manifests, _ = collect.parse_listing(raw)
    assert manifests == {"b": {"members": ["a", "b"]}}


def test_find_records_with_spaces_odd_kinds_and_bad_sizes() -> None:
    raw = (
        b"@@find\n"
        b"f 12 b/0/work/with space/and more\0\0"
        b"l 4 b/0/work/l\0x y\0"
        b"\xff 1 b/0/work/odd\0\0"
        b"f 1x b/0/work/badsize\0\0"
        b"f 7\0\0"  # no path
        b"f 2 b/0/work/after the bad ones\0\0"
        b"f 5 b/0/work/x\n@@find\ny\0\0"  # a payload's name spelling the marker
        b"f 3 b/0/work/last"  # cut short: no link field
    )
    _, entries = collect.parse_listing(raw)
    assert entries == {
        "b/0/work/with space/and more": Entry("f", 12, ""),
        "b/0/work/l": Entry("l", 4, "x y"),
        "b/0/work/odd": Entry("\ufffd", 1, ""),
        "b/0/work/after the bad ones": Entry("f", 2, ""),
        "b/0/work/x\n@@find\ny": Entry("f", 5, ""),
    }


def test_a_listing_with_nothing_after_its_marker_has_no_entries() -> None:
    assert collect.parse_listing(b"@@manifest b\n{}\n@@end\n@@find\n") == ({"b": {}}, {})
    assert collect.parse_listing(b"no marker at all f 1 b/0\0\0") == ({}, {})


def test_chunk_records_are_read_from_a_listing_with_binary_find_records() -> None:
    raw = (
        f"@@manifest {BATCH}\n{{}}\n@@end\n@@chunks {BATCH}\n@@chunk 0 2 9\n@@chunk 2 1 10\n@@end\n"
    ).encode() + b"@@find\nf 1 \xff\xfe\0\0"
    assert collect.chunk_records(raw) == {BATCH: ((0, 2, "9"), (2, 1, "10"))}


# --- planning --------------------------------------------------------------------------------


def _entries(job: JobLocation, work: dict[str, Entry], *, streams: bool = True) -> dict[str, Entry]:
    entries = {job.job_dir: Entry("d", 0, "")}
    if streams:
        entries |= {job.stdout: Entry("f", 1, ""), job.stderr: Entry("f", 2, "")}
        entries[job.log] = Entry("f", 3, "")
    entries |= {f"{job.work_dir}/{name}": entry for name, entry in work.items()}
    return entries


def test_a_job_whose_directory_is_not_a_directory_is_gone() -> None:
    job = _job(0)
    for entries in ({}, {job.job_dir: Entry("f", 0, "")}, {job.job_dir: Entry("l", 0, "x")}):
        plans = collect.plan_collection([job], {}, entries, max_bytes=9, max_files=9)
        assert _reason(plans["9_0"]) == (
            "output is gone: the job directory does not exist (purged?)"
        )


def test_without_a_manifest_only_the_streams_are_collected() -> None:
    job = _job(0)
    entries = _entries(job, {"a": Entry("f", 1, "")})
    cases: list[dict[str, dict[str, object]]] = [
        {},
        {BATCH: {}},
        {BATCH: {"members": "a"}},
        {BATCH: {"members": [1]}},
    ]
    for manifests in cases:
        plan = collect.plan_collection([job], manifests, entries, max_bytes=99, max_files=9)
        assert isinstance(plan["9_0"], Plan)
        assert plan["9_0"].files == {
            job.stdout: "9_0.out",
            job.stderr: "9_0.err",
            job.log: "9_0.log",
        }


def test_streams_that_are_not_regular_files_are_not_collected() -> None:
    job = _job(0)
    entries = _entries(job, {}, streams=False)
    entries[job.stdout] = Entry("l", 10, "/etc/passwd")
    entries[job.stderr] = Entry("d", 10, "")
    plan = collect.plan_collection([job], {}, entries, max_bytes=99, max_files=9)["9_0"]
    assert isinstance(plan, Plan)
    assert plan.files == {}
    assert plan.links == {}


def test_a_plan_holds_files_links_and_exact_skip_reasons() -> None:
    job, sibling = _job(0), _job(1)
    work = {
        "f": Entry("f", 5, ""),
        "d": Entry("d", 4096, ""),
        "p": Entry("p", 0, ""),
        "in": Entry("l", 1, "f"),
        "out": Entry("l", 1, "../../1/work/secret"),
        "abs": Entry("l", 1, "/etc"),
    }
    entries = _entries(job, work) | _entries(sibling, {"secret": Entry("f", 50, "")})
    manifests = {BATCH: {"include_unlisted": True}}
    plans = collect.plan_collection([job], manifests, entries, max_bytes=11, max_files=2)
    plan = plans["9_0"]
    assert list(plans) == ["9_0"]
    assert isinstance(plan, Plan)
    assert plan.job == job
    assert plan.files == {
        job.stdout: "9_0.out",
        job.stderr: "9_0.err",
        job.log: "9_0.log",
        f"{job.work_dir}/f": "9_0/f",
    }
    assert plan.links == {f"{job.work_dir}/in": "f"}
    assert plan.skipped == {
        "abs": "link to '/etc', outside the working directory",
        "out": "link to '../../1/work/secret', outside the working directory",
    }


def test_every_job_in_a_call_gets_its_own_plan_from_its_own_manifest() -> None:
    first, second = _job(0), _job(1, batch=OTHER, array="12")
    entries = _entries(first, {"a.txt": Entry("f", 1, ""), "b.dat": Entry("f", 1, "")})
    entries |= _entries(second, {"a.txt": Entry("f", 1, ""), "b.dat": Entry("f", 1, "")})
    manifests = {BATCH: {"members": ["*.txt"]}, OTHER: {"members": ["*.dat"]}}
    plans = collect.plan_collection([first, second], manifests, entries, max_bytes=99, max_files=9)
    one, two = plans["9_0"], plans["12_1"]
    assert isinstance(one, Plan)
    assert isinstance(two, Plan)
    assert [n for n in one.files.values() if "/" in n] == ["9_0/a.txt"]
    assert [n for n in two.files.values() if "/" in n] == ["12_1/b.dat"]


def test_entries_outside_a_work_directory_are_never_planned() -> None:
    job = _job(0)
    entries = _entries(job, {"a": Entry("f", 1, "")})
    entries[f"{BATCH}/0/env"] = Entry("f", 1, "")
    entries[f"{BATCH}/0/secrets/TOKEN"] = Entry("f", 1, "")
    entries[f"{BATCH}/0/workx/b"] = Entry("f", 1, "")
    entries[f"{BATCH}/0/work"] = Entry("d", 1, "")
    plan = collect.plan_collection(
        [job], {BATCH: {"include_unlisted": True}}, entries, max_bytes=99, max_files=9
    )["9_0"]
    assert isinstance(plan, Plan)
    assert sorted(plan.files.values()) == ["9_0.err", "9_0.log", "9_0.out", "9_0/a"]


def test_links_count_as_files_but_not_as_bytes() -> None:
    job = _job(0)
    work = {"a": Entry("f", 4, ""), "l1": Entry("l", 900, "a"), "l2": Entry("l", 900, "a")}
    entries = _entries(job, work)
    manifests = {BATCH: {"include_unlisted": True}}
    fits = collect.plan_collection([job], manifests, entries, max_bytes=10, max_files=3)["9_0"]
    assert isinstance(fits, Plan)
    over = collect.plan_collection([job], manifests, entries, max_bytes=10, max_files=2)["9_0"]
    assert _reason(over) == "3 output files, more than output_max_files=2"
    bytes_over = collect.plan_collection([job], manifests, entries, max_bytes=9, max_files=3)["9_0"]
    assert _reason(bytes_over) == "10 bytes of output, more than output_max_bytes=9"


def test_skipped_members_do_not_count_against_the_file_limit() -> None:
    job = _job(0)
    work = {"a": Entry("f", 1, ""), "x": Entry("l", 1, "/etc"), "..": Entry("f", 1, "")}
    plan = collect.plan_collection(
        [job], {BATCH: {"include_unlisted": True}}, _entries(job, work), max_bytes=99, max_files=1
    )["9_0"]
    assert isinstance(plan, Plan)
    assert set(plan.skipped) == {"x", ".."}


# --- the transfer cap ------------------------------------------------------------------------


def test_the_transfer_cap_is_every_job_at_its_limit_plus_tar_overhead() -> None:
    one, two = _job(0), _job(1)
    plans = {
        "9_0": Plan(one, files={"a": "x", "b": "y"}, links={"l": "a"}),
        "9_1": Plan(two, files={"c": "z"}),
    }
    assert collect.transfer_cap(plans, 1000) == 2 * 1000 + (3 * 3 + 64) * 512 + 20 * 512
    assert collect.transfer_cap({}, 1000) == 84 * 512


# --- unpacking -------------------------------------------------------------------------------


def test_the_unpacker_stages_privately_inside_dest_and_close_removes_it(tmp_path: Path) -> None:
    dest = tmp_path / "new" / "dest"
    unpacker = collect.Unpacker({}, dest, max_bytes=10)
    staged = list(dest.iterdir())
    assert len(staged) == 1
    assert staged[0].is_dir()
    assert staged[0].name.startswith(".")
    assert stat.S_IMODE(staged[0].stat().st_mode) == 0o700
    assert unpacker.expects_data is False
    unpacker.close()
    assert list(dest.iterdir()) == []
    unpacker.close()  # twice is harmless
    second = collect.Unpacker({}, dest, max_bytes=10)  # dest exists already: fine
    assert len(list(dest.iterdir())) == 1
    second.close()


def test_a_plan_with_only_links_expects_no_data(tmp_path: Path) -> None:
    job = _job(0)
    unpacker = collect.Unpacker(
        {"9_0": Plan(job, links={f"{job.work_dir}/l": "x"})}, tmp_path, max_bytes=10
    )
    try:
        assert unpacker.expects_data is False
    finally:
        unpacker.close()
    with_file = collect.Unpacker(
        {"9_0": Plan(job, files={f"{job.work_dir}/a": "9_0/a"})}, tmp_path, max_bytes=10
    )
    try:
        assert with_file.expects_data is True
    finally:
        with_file.close()


def test_nested_files_of_one_job_all_arrive_and_exactly_at_the_limit(tmp_path: Path) -> None:
    job = _job(0)
    names = ["d/e/one", "d/e/two", "d/three"]
    plan = Plan(job, files={f"{job.work_dir}/{n}": f"9_0/{n}" for n in names})
    plan.files[job.stdout] = "9_0.out"
    data = {f"{job.work_dir}/{n}": n.encode() for n in names} | {job.stdout: b"0123"}
    limit = sum(len(v) for v in data.values())
    dest = tmp_path / "dest"
    result = collect.unpack(_tar(data), {"9_0": plan}, dest, max_bytes=limit)
    out = result["9_0"]
    assert isinstance(out, JobOutput), out
    assert out.stdout == dest / "9_0.out"
    assert out.stderr is None
    assert out.log is None
    assert out.root == dest / "9_0"
    assert [p.relative_to(dest).as_posix() for p in out.files] == [
        "9_0/d/e/one",
        "9_0/d/e/two",
        "9_0/d/three",
    ]
    assert (dest / "9_0" / "d" / "e" / "two").read_bytes() == b"d/e/two"
    assert sorted(p.name for p in dest.iterdir()) == ["9_0", "9_0.out"]


def test_one_byte_over_the_limit_on_arrival_refuses_only_that_job(tmp_path: Path) -> None:
    one, two = _job(0), _job(1)
    plans = {
        "9_0": Plan(one, files={f"{one.work_dir}/a": "9_0/a", f"{one.work_dir}/b": "9_0/b"}),
        "9_1": Plan(two, files={f"{two.work_dir}/c": "9_1/c"}),
    }
    stream = _tar(
        {f"{one.work_dir}/a": b"12345", f"{one.work_dir}/b": b"123456", f"{two.work_dir}/c": b"ok"}
    )
    result = collect.unpack(stream, plans, tmp_path, max_bytes=10)
    assert _reason(result["9_0"]) == (
        "more than output_max_bytes=10 bytes arrived (the job is still writing?)"
    )
    assert isinstance(result["9_1"], JobOutput)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["9_1"]


def test_a_requested_name_that_arrives_as_a_link_is_not_written(tmp_path: Path) -> None:
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    stream = _tar({}, links={f"{job.work_dir}/a": "/etc/passwd"})
    result = collect.unpack(stream, {"9_0": plan}, tmp_path, max_bytes=100)
    assert _reason(result["9_0"]) == (
        "output incomplete, nothing kept: they were not in the stream; missing 'work/a'"
    )
    assert list(tmp_path.iterdir()) == []


def test_why_an_incomplete_job_failed_says_tar_rc_or_the_first_message(tmp_path: Path) -> None:
    job, log_job = _job(0), _job(1)
    plans = {
        "9_0": Plan(job, files={f"{job.work_dir}/a": "9_0/a"}),
        "9_1": Plan(log_job, files={log_job.log: "9_1.log"}),
    }
    stream = _tar({f"{job.work_dir}/a": b"A", log_job.log: b"L"})
    messages = (
        f"tar: {job.work_dir}/a: file changed as we read it\n"
        f"tar: {job.work_dir}/a: second complaint\n"
        f"tar: {log_job.log}: File shrank by 1 bytes; padding with zeros\n"
        "tar: Exiting with failure status due to previous errors\n"
    )
    result = collect.unpack(stream, plans, tmp_path, max_bytes=100, tar_rc=1, tar_messages=messages)
    assert _reason(result["9_0"]) == (
        f"output incomplete, nothing kept: tar reported '{job.work_dir}/a: file changed as we "
        "read it'"
    )
    assert _reason(result["9_1"]) == (
        f"output incomplete, nothing kept: tar reported '{log_job.log}: File shrank by 1 bytes; "
        "padding with zeros'"
    )
    # without tar's words: its exit code, or that the files never came
    missing = collect.unpack(_tar({}), plans, tmp_path, max_bytes=100, tar_rc=2)
    assert _reason(missing["9_0"]) == (
        "output incomplete, nothing kept: tar ended with exit code 2; missing 'work/a'"
    )
    default = collect.unpack(_tar({}), plans, tmp_path, max_bytes=100)
    assert _reason(default["9_1"]) == (
        f"output incomplete, nothing kept: they were not in the stream; missing '{log_job.log}'"
    )
    assert _reason(default["9_0"]) == (
        "output incomplete, nothing kept: they were not in the stream; missing 'work/a'"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_message_about_another_directory_blames_no_job(tmp_path: Path) -> None:
    job = _job(1)
    plans = {"9_1": Plan(job, files={f"{job.work_dir}/a": "9_1/a"})}
    messages = (
        f"tar: {BATCH}/10/work/a: file changed as we read it\n"
        f"tar: {BATCH}/logs/9_10.log: File shrank\n"
        f"tar: {BATCH}/1: Cannot stat\n"
    )
    result = collect.unpack(
        _tar({f"{job.work_dir}/a": b"A"}), plans, tmp_path, max_bytes=9, tar_messages=messages
    )
    assert isinstance(result["9_1"], JobOutput)


def test_the_exact_reasons_of_a_stopped_and_of_a_broken_stream(tmp_path: Path) -> None:
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    cap = collect.transfer_cap({"9_0": plan}, 10)
    junk = {f"junk{i}": b"j" * 1000 for i in range(60)}
    result = collect.unpack(_tar(junk), {"9_0": plan}, tmp_path, max_bytes=10)
    assert _reason(result["9_0"]) == (
        f"output incomplete, nothing kept: the transfer was stopped after more than {cap} "
        "bytes; missing 'work/a'"
    )
    result = collect.unpack(io.BytesIO(b"x" * 700), {"9_0": plan}, tmp_path, max_bytes=10)
    assert _reason(result["9_0"]).startswith(
        "output incomplete, nothing kept: the output stream broke off ("
    )
    assert _reason(result["9_0"]).endswith("); missing 'work/a'")
    empty = collect.unpack(io.BytesIO(b""), {"9_0": plan}, tmp_path, max_bytes=10)
    assert _reason(empty["9_0"]).startswith(
        "output incomplete, nothing kept: the output stream broke off ("
    )


def test_a_broken_stream_with_no_message_is_named_by_its_type(tmp_path: Path) -> None:
    class Silent(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError  # no message: the reason must still say what broke

    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    result = collect.unpack(Silent(), {"9_0": plan}, tmp_path, max_bytes=10)  # type: ignore[arg-type]
    assert _reason(result["9_0"]) == (
        "output incomplete, nothing kept: the output stream broke off (OSError); missing 'work/a'"
    )


def test_a_stream_exactly_at_the_cap_is_read_whole(tmp_path: Path) -> None:
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    stream = _tar({f"{job.work_dir}/a": b"A"})
    size = len(stream.getvalue())
    cap = collect.transfer_cap({"9_0": plan}, 10)
    padded = io.BytesIO(stream.getvalue() + b"\0" * (cap - size))
    result = collect.unpack(padded, {"9_0": plan}, tmp_path, max_bytes=10)
    assert isinstance(result["9_0"], JobOutput)
    assert padded.tell() == cap
    over = io.BytesIO(stream.getvalue() + b"\0" * (cap - size + 1))
    result = collect.unpack(over, {"9_0": plan}, tmp_path / "2", max_bytes=10)
    assert _reason(result["9_0"]) == (
        f"output incomplete, nothing kept: the transfer was stopped after more than {cap} "
        "bytes; missing 'work/a'"
    )


def test_the_skipped_report_lists_every_member_sorted_with_its_reason(tmp_path: Path) -> None:
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    plan.skipped = {"z\udcff": "not a path inside the working directory", "b": "why b"}
    plan.links = {f"{job.work_dir}/sub/up": "../../.."}
    result = collect.unpack(_tar({f"{job.work_dir}/a": b"A"}), {"9_0": plan}, tmp_path, max_bytes=9)
    out = result["9_0"]
    assert isinstance(out, JobOutput)
    assert out.skipped == {
        "b": "why b",
        "sub/up": "link to '../../..' resolves outside the working directory",
        "z\udcff": "not a path inside the working directory",
    }
    assert list(out.skipped) == ["b", "sub/up", "z\udcff"]
    assert (tmp_path / "9_0.skipped").read_text() == (
        "'b': why b\n"
        "'sub/up': link to '../../..' resolves outside the working directory\n"
        "'z\\udcff': not a path inside the working directory\n"
    )


def test_links_are_made_parents_first_and_a_link_under_an_escaping_link_is_refused(
    tmp_path: Path,
) -> None:
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    plan.links = {
        f"{job.work_dir}/x/y/z/deep": "../../../a",  # needs x/y/z made first
        f"{job.work_dir}/out": "..",  # leaves the job's directory
        f"{job.work_dir}/out/inner": "a",  # its directory is the escaping link
        f"{job.work_dir}/a/under_a_file": "x",  # cannot be made: a is a file
    }
    result = collect.unpack(_tar({f"{job.work_dir}/a": b"A"}), {"9_0": plan}, tmp_path, max_bytes=9)
    out = result["9_0"]
    assert isinstance(out, JobOutput)
    assert os.readlink(tmp_path / "9_0" / "x" / "y" / "z" / "deep") == "../../../a"
    assert (tmp_path / "9_0" / "x" / "y" / "z" / "deep").read_bytes() == b"A"
    assert out.skipped == {
        "a/under_a_file": "cannot be recreated (File exists)",
        "out": "link to '..' resolves outside the working directory",
        "out/inner": "its directory leads outside the working directory",
    }
    assert not (tmp_path / "inner").exists()
    assert not (tmp_path / "9_0" / "out").is_symlink()


def test_a_link_to_the_job_directory_itself_is_kept(tmp_path: Path) -> None:
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"}, links={f"{job.work_dir}/self": "."})
    result = collect.unpack(_tar({f"{job.work_dir}/a": b"A"}), {"9_0": plan}, tmp_path, max_bytes=9)
    out = result["9_0"]
    assert isinstance(out, JobOutput)
    assert out.skipped == {}
    assert os.readlink(tmp_path / "9_0" / "self") == "."
    assert (tmp_path / "9_0" / "self" / "a").read_bytes() == b"A"


def test_publishing_replaces_every_stale_name_of_the_job(tmp_path: Path) -> None:
    job = _job(0)
    dest = tmp_path / "dest"
    (dest / "9_0" / "old").mkdir(parents=True)
    (dest / "9_0.out").write_text("old out")
    (dest / "9_0.err").symlink_to("nowhere")
    (dest / "9_0.log").mkdir()
    (dest / "9_0.skipped").write_text("old report")
    (dest / "9_01.out").write_text("another job")
    plan = Plan(job, files={job.stdout: "9_0.out"})
    result = collect.unpack(_tar({job.stdout: b"new"}), {"9_0": plan}, dest, max_bytes=9)
    assert result["9_0"] == JobOutput(
        root=dest / "9_0", stdout=dest / "9_0.out", stderr=None, log=None, files=()
    )
    assert sorted(p.name for p in dest.iterdir()) == ["9_0.out", "9_01.out"]
    assert (dest / "9_0.out").read_text() == "new"
    assert (dest / "9_01.out").read_text() == "another job"


def test_the_broken_stream_reason_quotes_the_readers_own_message(tmp_path: Path) -> None:
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    garbage = collect.unpack(io.BytesIO(b"x" * 700), {"9_0": plan}, tmp_path, max_bytes=10)
    assert _reason(garbage["9_0"]) == (
        "output incomplete, nothing kept: the output stream broke off (invalid header); "
        "missing 'work/a'"
    )


def test_the_total_cap_counts_every_chunk_read_not_only_the_largest(tmp_path: Path) -> None:
    """With a cap above the read size, only the running total can exceed it."""
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    cap = collect.transfer_cap({"9_0": plan}, 100_000)
    assert cap > 1 << 16
    junk = {f"junk{i}": b"j" * 10_000 for i in range(30)}  # 300 kB in 64 KiB reads
    result = collect.unpack(_tar(junk), {"9_0": plan}, tmp_path, max_bytes=100_000)
    assert _reason(result["9_0"]) == (
        f"output incomplete, nothing kept: the transfer was stopped after more than {cap} "
        "bytes; missing 'work/a'"
    )


def test_the_stream_is_read_to_its_end_past_the_tar_archive(tmp_path: Path) -> None:
    """The sender must never block on a reader that stopped at tar's end-of-archive mark."""
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/a": "9_0/a"})
    whole = _tar({f"{job.work_dir}/a": b"A"}).getvalue() + b"\0" * 300_000
    stream = io.BytesIO(whole)
    result = collect.unpack(stream, {"9_0": plan}, tmp_path, max_bytes=1 << 20)
    assert isinstance(result["9_0"], JobOutput)
    assert stream.tell() == len(whole)


def test_four_missing_files_name_three_and_count_the_fourth(tmp_path: Path) -> None:
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/{n}": f"9_0/{n}" for n in "abcd"})
    result = collect.unpack(_tar({}), {"9_0": plan}, tmp_path, max_bytes=10)
    assert _reason(result["9_0"]) == (
        "output incomplete, nothing kept: they were not in the stream; "
        "missing 'work/a', 'work/b', 'work/c' and 1 more"
    )


def test_a_link_through_a_linked_directory_is_made_after_that_link(tmp_path: Path) -> None:
    """``l`` -> ``d/.`` must exist before ``l/x`` is made through it, whatever order the plan
    lists them in and however many slashes their targets hold."""
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/d/f": "9_0/d/f"})
    plan.links = {f"{job.work_dir}/l/x": "f", f"{job.work_dir}/l": "d/."}
    result = collect.unpack(
        _tar({f"{job.work_dir}/d/f": b"F"}), {"9_0": plan}, tmp_path, max_bytes=10
    )
    out = result["9_0"]
    assert isinstance(out, JobOutput)
    assert out.skipped == {}
    assert os.readlink(tmp_path / "9_0" / "l") == "d/."
    assert os.readlink(tmp_path / "9_0" / "d" / "x") == "f"
    assert (tmp_path / "9_0" / "l" / "x").read_bytes() == b"F"


def test_removing_one_escaping_link_is_checked_again_for_the_links_through_it(
    tmp_path: Path,
) -> None:
    """``y`` resolves inside only through ``x``, which leaves: once ``x`` is removed, ``y``
    leads outside too and must go in a second pass."""
    job = _job(0)
    plan = Plan(job, files={f"{job.work_dir}/f": "9_0/f"})
    plan.links = {
        f"{job.work_dir}/x": "../elsewhere/a/b/c",
        f"{job.work_dir}/y": "x/../../../../9_0/f",
    }
    result = collect.unpack(_tar({f"{job.work_dir}/f": b"F"}), {"9_0": plan}, tmp_path, max_bytes=9)
    out = result["9_0"]
    assert isinstance(out, JobOutput)
    assert out.skipped == {
        "x": "link to '../elsewhere/a/b/c' resolves outside the working directory",
        "y": "link to 'x/../../../../9_0/f' resolves outside the working directory",
    }
    assert sorted(p.name for p in (tmp_path / "9_0").iterdir()) == ["f"]
