"""The pure parts of the DIRAC consumer scenarios and of the e2e runner's report."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.e2e import E2EReport, debug_ce_result, render_summary
from harness.scenarios import SCENARIOS, ScenarioContext, ScenarioFailed, ScenarioResult
from harness.scenarios._context import History, record_history
from harness.scenarios._digests import tree_digests, verify_md5_lines, verify_sha256_manifest
from harness.scenarios._place import place_output
from harness.scenarios._refs import handle_of, stamp_of, stamped_ref
from harness.scenarios._result import Check, run_scenario
from harness.scenarios.pilot_manager import get_pilot_output
from harness.scenarios.push_job_agent import build_inputs, check_payload_result
from harness.scenarios.remote_runner import result_code, workload_script
from harness.scenarios.site_director import (
    FailedQueues,
    MonitorPolicy,
    available_slots,
    check_progression,
    monitor_queue,
    parse_pilot_report,
    update_statuses,
)
from harness.scenarios.site_director import PilotRecord as DirectorRow
from harness.scenarios.wms_utilities import (
    PilotRecord,
    group_pilots,
    kill_pilots_in_queues,
    queue_of,
)
from intercede import sync
from intercede._cli._report import CheckState, QueueReport, RunReport
from intercede.errors import ResourceUnavailableError
from intercede.models import (
    CopyVars,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    OpOutcome,
    Submission,
    SubmissionSpec,
)

# --- SiteDirector: DIRAC's available() (DC-23) ---------------------------------------------


@pytest.mark.parametrize(
    ("running", "waiting", "max_total", "max_waiting", "slots"),
    [
        (3, 2, 10, 5, 3),  # DC-23's worked examples
        (7, 1, 10, 5, 2),
        (0, 0, 1, 1, 1),  # DIRAC's defaults
        (0, 0, 4, 3, 3),
        (10, 0, 10, 5, 0),  # total reached
        (2, 5, 10, 5, 0),  # enough waiting
        (1, 0, 4, 3, 3),
        (3, 0, 4, 3, 1),  # capped by MaxTotalJobs
    ],
)
def test_available_slots_matches_dirac(
    running: int, waiting: int, max_total: int, max_waiting: int, slots: int
) -> None:
    assert available_slots(running, waiting, max_total, max_waiting) == slots


@given(st.integers(0, 200), st.integers(0, 200), st.integers(0, 200), st.integers(0, 200))
def test_available_slots_never_overfills(r: int, w: int, max_total: int, max_waiting: int) -> None:
    slots = available_slots(r, w, max_total, max_waiting)
    assert slots >= 0
    if slots:
        assert r + w + slots <= max_total
        assert w + slots <= max_waiting


def test_available_slots_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        available_slots(-1, 0, 4, 3)


@pytest.mark.parametrize(
    ("seen", "problem"),
    [
        ([JobStatus.WAITING, JobStatus.RUNNING, JobStatus.DONE], None),
        ([JobStatus.RUNNING, JobStatus.DONE], None),
        ([], "no status observed"),
        ([JobStatus.RUNNING, JobStatus.WAITING, JobStatus.DONE], "went backwards"),
        ([JobStatus.DONE, JobStatus.FAILED], "went backwards"),
        ([JobStatus.RUNNING, JobStatus.UNKNOWN, JobStatus.DONE], "went through Unknown"),
    ],
)
def test_check_progression(seen: list[JobStatus], problem: str | None) -> None:
    found = check_progression(seen)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


def test_parse_pilot_report_reads_key_value_lines_only() -> None:
    text = "stamp=abc\nsecret_mode=600\nnoise line\npilot done on worker1\nbad key=1\n"
    assert parse_pilot_report(text) == {"stamp": "abc", "secret_mode": "600"}


# --- WMSUtilities.killPilotsInQueues (DC-21) ------------------------------------------------


def _pilot(queue: str, ref: str, grid: str = "SSH") -> PilotRecord:
    return PilotRecord("dteam", "LCG.Site.org", "ce.site.org", queue, ref, grid)


def test_group_pilots_builds_dirac_keys_in_order() -> None:
    grouped = group_pilots([_pilot("main", "a"), _pilot("second", "b"), _pilot("main", "c")])
    assert grouped == {
        "dteam@@@LCG.Site.org@@@ce.site.org@@@main": {"PilotList": ["a", "c"], "GridType": "SSH"},
        "dteam@@@LCG.Site.org@@@ce.site.org@@@second": {"PilotList": ["b"], "GridType": "SSH"},
    }
    assert queue_of(next(iter(grouped))) == "main"


def test_group_pilots_refuses_ambiguous_keys_and_mixed_grid_types() -> None:
    with pytest.raises(ValueError, match="'@@@'"):
        group_pilots([_pilot("ma@@@in", "a")])
    with pytest.raises(ValueError, match="GridType HTCondorCE differs"):
        group_pilots([_pilot("main", "a"), _pilot("main", "b", "HTCondorCE")])
    with pytest.raises(ValueError, match="not a vo@@@site"):
        queue_of("dteam@@@site@@@main")


class _Killable:
    """An async backend that knows some job ids; kill answers per id."""

    def __init__(self, known: set[str], *, down: bool = False) -> None:
        self.known = known
        self.down = down
        self.calls: list[list[str]] = []

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        raise NotImplementedError

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        return {h.id: JobStatus.UNKNOWN for h in handles}

    async def kill(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        self.calls.append([h.id for h in handles])
        if self.down:
            raise ResourceUnavailableError("connection refused")
        return {
            h.id: OpOutcome(ok=True)
            if h.id in self.known
            else OpOutcome(ok=False, reason="unknown")
            for h in handles
        }

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def _ref(job_id: str) -> str:
    return str(JobHandle(backend="slurm+ssh", resource="submit@ce:22", id=job_id))


def test_kill_pilots_reports_every_ref_and_never_stops_at_a_bad_queue() -> None:
    backends = {
        "main": _Killable({"1_0", "1_1"}),
        "second": _Killable(set(), down=True),
        "third": _Killable({"3_0"}),
    }
    facades = {q: sync.wrap(b) for q, b in backends.items()}
    pilots = [
        _pilot("main", _ref("1_0")),
        _pilot("main", "garbage"),
        _pilot("main", _ref("999_0")),
        _pilot("main", _ref("1_1")),
        _pilot("second", _ref("2_0")),
        _pilot("gone", _ref("4_0")),
        _pilot("third", _ref("3_0")),
    ]

    def facade_for(queue: str) -> sync.Killable | None:
        facade = facades.get(queue)
        assert facade is None or isinstance(facade, sync.Killable)
        return facade

    try:
        results = kill_pilots_in_queues(group_pilots(pilots), facade_for)
    finally:
        for facade in facades.values():
            facade.close()
    flat = {ref: o for per_queue in results.values() for ref, o in per_queue.items()}
    assert sorted(flat) == sorted(p.ref for p in pilots)  # nobody dropped
    assert flat[_ref("1_0")].ok
    assert flat[_ref("1_1")].ok
    assert flat[_ref("3_0")].ok  # after a failing queue: still killed
    assert not flat["garbage"].ok
    assert "not a pilot reference" in str(flat["garbage"].reason)
    assert flat[_ref("999_0")].reason == "unknown"
    assert "ResourceUnavailableError: connection refused" in str(flat[_ref("2_0")].reason)
    assert "no CE for" in str(flat[_ref("4_0")].reason)
    # One bulk kill per queue, bad refs filtered out before the call.
    assert backends["main"].calls == [["1_0", "999_0", "1_1"]]


# --- RemoteRunner (DC-35) -----------------------------------------------------------------


def test_result_codes_cover_aborted_without_key_error() -> None:
    assert result_code(JobStatus.DONE) == 0
    assert result_code(JobStatus.FAILED) == -1
    assert result_code(JobStatus.ABORTED) == -2
    for status in (JobStatus.RUNNING, JobStatus.WAITING, JobStatus.UNKNOWN):
        with pytest.raises(ValueError, match=f"{status.value} is not final"):
            result_code(status)


def test_workload_script_ends_with_the_checksum_line() -> None:
    assert workload_script("echo hi").splitlines() == [
        "#!/bin/bash",
        "echo hi",
        "md5sum * > md5Checksum.txt",
    ]


def test_md5_lines_from_real_md5sum_verify_and_catch_tampering(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b b.txt").write_text("with a space\n")
    text = subprocess.run(
        ["md5sum", "a.txt", "b b.txt"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert verify_md5_lines(text, tmp_path) == []
    (tmp_path / "a.txt").write_text("tampered\n")
    (tmp_path / "b b.txt").unlink()
    assert verify_md5_lines(text, tmp_path) == ["a.txt: md5 mismatch", "b b.txt: missing"]
    assert verify_md5_lines("", tmp_path) == ["the checksum file is empty"]
    assert verify_md5_lines("nonsense\n", tmp_path)[0].startswith("line 1: not an md5sum line")
    evil = f"{hashlib.md5(b'').hexdigest()}  ../outside\n"
    assert verify_md5_lines(evil, tmp_path) == ["../outside: escapes the output directory"]


# --- PushJobAgent (DC-34) -----------------------------------------------------------------


def test_sha256_manifest(tmp_path: Path) -> None:
    nested = tmp_path / "results" / "deep"
    nested.mkdir(parents=True)
    (nested / "x.bin").write_bytes(b"\x00\x01")
    good = {"results/deep/x.bin": hashlib.sha256(b"\x00\x01").hexdigest()}
    assert verify_sha256_manifest(good, tmp_path) == []
    bad = {
        "results/deep/x.bin": hashlib.sha256(b"other").hexdigest(),
        "missing.txt": "00",
        "../escape": "00",
        "weird": 7,
    }
    assert verify_sha256_manifest(bad, tmp_path) == [
        "../escape: escapes the output directory",
        "missing.txt: missing",
        "results/deep/x.bin: sha256 mismatch",
        "weird: checksum is not a string: 7",
    ]
    assert verify_sha256_manifest({}, tmp_path) == ["the manifest lists no file"]


def test_tree_digests_compare_two_fetches(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "f").write_text("same")
    assert tree_digests(tmp_path / "one") == tree_digests(tmp_path / "two")
    (tmp_path / "two" / "sub" / "f").write_text("different")
    assert tree_digests(tmp_path / "one") != tree_digests(tmp_path / "two")


def test_payload_result_must_be_s_ok_with_the_stamp(tmp_path: Path) -> None:
    path = tmp_path / "payloadResult.json"
    assert check_payload_result(path, "s") == "payloadResult.json missing"
    path.write_text(json.dumps({"OK": True, "Value": {"stamp": "s"}}))
    assert check_payload_result(path, "s") is None
    assert "wrong stamp" in str(check_payload_result(path, "t"))
    path.write_text(json.dumps({"OK": False, "Message": "boom", "Errno": 0}))
    assert "did not return S_OK" in str(check_payload_result(path, "s"))
    path.write_text("{not json")
    assert "not JSON" in str(check_payload_result(path, "s"))


def test_build_inputs_takes_every_job_file_plus_wrapper(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "b.txt").write_text("b")
    (tmp_path / "job" / "a.json").write_text("{}")
    (tmp_path / "job" / "subdir").mkdir()
    wrapper = tmp_path / "cfg.json"
    wrapper.write_text("{}")
    names = [ref.name for ref in build_inputs(tmp_path / "job", [wrapper])]
    assert names == ["a.json", "b.txt", "cfg.json"]


# --- results and the e2e summary ------------------------------------------------------------


def _raise(exc: Exception) -> None:
    """Raise where the checker must not conclude the code after the call is unreachable."""
    raise exc


def test_run_scenario_keeps_checks_and_turns_a_crash_into_an_error() -> None:
    def body(rec: object) -> None:
        from harness.scenarios._result import Recorder

        assert isinstance(rec, Recorder)
        rec.passed("first", "fine")
        with rec.step("second"):
            _raise(KeyError("oops"))
        rec.check("third", True, "went on after the failed step")
        raise RuntimeError("cluster vanished")

    result = run_scenario("demo", ("DC-00",), body)
    assert [c.name for c in result.checks] == ["first", "second", "third"]
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("RuntimeError: cluster vanished (at ")
    with pytest.raises(ScenarioFailed, match="second: KeyError: 'oops'"):
        result.raise_for_failure()


def test_empty_scenario_is_not_a_pass() -> None:
    result = ScenarioResult("nothing", ())
    assert not result.ok
    with pytest.raises(ScenarioFailed, match="no check was recorded"):
        result.raise_for_failure()


def test_debug_ce_report_becomes_a_scenario_where_skips_fail() -> None:
    main = QueueReport(queue="main", config="client.toml")
    main.record("submit", CheckState.PASSED, "1 job(s)")
    main.record("purge", CheckState.SKIPPED, "--keep")
    down = QueueReport(queue="second", config="client.toml", error="ResourceUnavailableError: x")
    result = debug_ce_result(RunReport(queues=[main, down], duration_s=3.0))
    assert [(c.name, c.ok) for c in result.checks] == [
        ("main:submit", True),
        ("main:purge", False),
        ("second", False),
    ]
    assert result.dc_ids == ("DC-37",)
    assert result.duration_s == 3.0


def test_render_summary_fits_one_screen_and_lists_failures() -> None:
    good = ScenarioResult("PushJobAgent", ("DC-34",), [Check("fetch", True, "ok")], 4.2)
    bad = ScenarioResult("RemoteRunner", ("DC-35",), [Check("aborted→-2", False, "code None")], 9.0)
    report = E2EReport("bookworm", "intercede", [good, bad], cluster_s=1.5, reused=True)
    text = render_summary(report)
    assert "PushJobAgent" in text
    assert "1/1" in text
    assert "RemoteRunner: aborted→-2: code None" in text
    assert "2 scenarios, 1 failed" in text
    assert "cluster left running" in text
    assert len(text.splitlines()) <= 24
    assert not report.ok
    assert json.loads(json.dumps(report.to_dict()))["scenarios"][1]["ok"] is False


def _locked(name: str) -> bool:
    """Whether someone holds stack ``name``'s lock (flock conflicts between open files even
    within one process)."""
    import fcntl

    from harness._lock import stack_lock_path

    path = stack_lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


class _FakeCluster:
    """Stands in for harness.cluster.Cluster: records lifecycle calls, runs nothing."""

    instances: ClassVar[list[_FakeCluster]] = []
    running_before = False
    up_error: ClassVar[Exception | None] = None
    on_up: ClassVar[Any] = None

    def __init__(self, name: str, *, variant: str, image: str | None = None) -> None:
        self.name = name
        self.variant = variant
        self.calls: list[str] = []
        self.queues = ("main", "second")
        self.client_config_path = Path("unused.toml")
        _FakeCluster.instances.append(self)

    def is_running(self) -> bool:
        return self.running_before

    def up(self) -> bool:
        self.calls.append("up" + (" (locked)" if _locked(self.name) else ""))
        hook = type(self).on_up  # through the class: a plain function, not a bound method
        if hook is not None:
            hook(self)
        if self.up_error is not None:
            raise self.up_error
        return self.running_before

    def down(self) -> None:
        self.calls.append("down" + (" (locked)" if _locked(self.name) else ""))


@pytest.fixture
def fake_e2e(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[_FakeCluster]:
    import harness.cluster
    import harness.config
    import harness.e2e

    _FakeCluster.instances = []
    monkeypatch.setattr(_FakeCluster, "running_before", False)
    monkeypatch.setattr(_FakeCluster, "up_error", None)
    monkeypatch.setattr(_FakeCluster, "on_up", None)
    monkeypatch.setattr(harness.cluster, "Cluster", _FakeCluster)
    monkeypatch.setattr(harness.config, "REPO_ROOT", tmp_path)
    ok = ScenarioResult("spike", ("DC-37",), [Check("x", True, "ok")])
    monkeypatch.setattr(harness.e2e, "_run_spike", lambda cluster, timeout: ok)

    def scenario(ctx: object) -> ScenarioResult:
        return ScenarioResult("one", ("DC-33",), [Check("y", True, "ok")])

    monkeypatch.setattr(harness.e2e, "SCENARIOS", {"one": scenario})
    return _FakeCluster


@pytest.mark.parametrize(
    ("running_before", "keep", "torn_down"),
    [(False, False, True), (False, True, False), (True, False, False), (True, True, False)],
)
def test_run_e2e_tears_down_only_a_stack_it_started(
    fake_e2e: type[_FakeCluster], running_before: bool, keep: bool, torn_down: bool
) -> None:
    from harness.e2e import run_e2e

    fake_e2e.running_before = running_before
    report = run_e2e(stack="s", keep=keep, log=lambda _: None)
    (cluster,) = fake_e2e.instances
    locked = ["up (locked)", "down (locked)"]
    assert cluster.calls == (locked if torn_down else locked[:1])
    assert report.torn_down is torn_down
    assert report.reused is running_before
    assert [r.name for r in report.results] == ["spike", "one"]
    assert report.ok
    assert not (harness_state(fake_e2e) / "s.session").exists()  # no claim left behind


def harness_state(_: object) -> Path:
    import harness.config

    return Path(harness.config.REPO_ROOT) / ".intercede"


@pytest.mark.parametrize(("running_before", "torn_down"), [(False, True), (True, False)])
def test_run_e2e_removes_a_stack_whose_start_failed_partway(
    fake_e2e: type[_FakeCluster], running_before: bool, torn_down: bool
) -> None:
    from harness.e2e import run_e2e

    fake_e2e.running_before = running_before
    fake_e2e.up_error = RuntimeError("worker2 never became healthy")
    with pytest.raises(RuntimeError, match="worker2 never became healthy"):
        run_e2e(stack="s", log=lambda _: None)
    (cluster,) = fake_e2e.instances
    assert cluster.calls == (["up (locked)", "down (locked)"] if torn_down else ["up (locked)"])


def test_run_e2e_spares_a_stack_someone_else_took_over(fake_e2e: type[_FakeCluster]) -> None:
    from harness.e2e import run_e2e

    def taken_over(cluster: _FakeCluster) -> None:
        # Someone ran `harness down` and a pytest session started the stack again.
        (harness_state(cluster) / f"{cluster.name}.session").write_text("pytest-session")

    fake_e2e.on_up = taken_over
    report = run_e2e(stack="s", log=lambda _: None)
    (cluster,) = fake_e2e.instances
    assert cluster.calls == ["up (locked)"]
    assert not report.torn_down
    assert (harness_state(cluster) / "s.session").read_text() == "pytest-session"


def test_e2e_main_exit_status_and_json(
    fake_e2e: type[_FakeCluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import io

    import harness.e2e

    fake_e2e.running_before = True
    parser = argparse.ArgumentParser()
    harness.e2e.configure(parser)
    target = tmp_path / "out" / "e2e.json"
    args = parser.parse_args(["--keep", "--json", str(target)])
    out = io.StringIO()
    assert harness.e2e.main(args, out) == 0
    assert json.loads(target.read_text())["ok"] is True
    assert "2 scenarios, 0 failed" in out.getvalue()

    def broken(ctx: object) -> ScenarioResult:
        return ScenarioResult("one", ("DC-33",), [Check("y", False, "bad")])

    monkeypatch.setattr(harness.e2e, "SCENARIOS", {"one": broken})
    assert harness.e2e.main(parser.parse_args([]), io.StringIO()) == 1


# --- DIRAC's "<ref>:::<stamp>" (DC-10) and placing output (DC-34, DC-35) ------------------


def test_stamped_refs_strip_back_to_the_handle() -> None:
    handle = JobHandle(backend="slurm+ssh", resource="submit@ce:22", id="7_0", routing="ab/0")
    ref = stamped_ref(str(handle), "f" * 32)
    assert ref == f"{handle}:::{'f' * 32}"
    assert handle_of(ref) == handle
    assert handle_of(str(handle)) == handle
    assert stamp_of(ref) == "f" * 32
    assert stamp_of(str(handle)) is None
    with pytest.raises(ValueError, match="empty"):
        stamped_ref(str(handle), "")
    with pytest.raises(ValueError, match="already carries a stamp"):
        stamped_ref(ref, "x")
    with pytest.raises(ValueError, match="no '://'"):
        handle_of("garbage:::x")


def _fetched(tmp_path: Path, names: list[str]) -> JobOutput:
    root = tmp_path / "fetch" / "7_0"
    files = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}")
        files.append(path)
    (tmp_path / "fetch" / "7_0.out").write_text("the stdout stream")
    (tmp_path / "fetch" / "7_0.err").write_text("the stderr stream")
    return JobOutput(
        root=root,
        stdout=tmp_path / "fetch" / "7_0.out",
        stderr=tmp_path / "fetch" / "7_0.err",
        files=tuple(files),
    )


def test_place_output_moves_files_from_root_and_names_streams_by_stem(tmp_path: Path) -> None:
    got = _fetched(tmp_path, ["stdout", "results/deep/x.txt"])
    cwd = tmp_path / "cwd"
    (cwd / "results").mkdir(parents=True)
    out, err = place_output(got, cwd, "stamp1")
    assert (out, err) == (cwd / "stamp1.out", cwd / "stamp1.err")
    assert out.read_text() == "the stdout stream"
    assert err.read_text() == "the stderr stream"
    assert (cwd / "stdout").read_text() == "content of stdout"  # a payload file, not the stream
    assert (cwd / "results" / "deep" / "x.txt").read_text() == "content of results/deep/x.txt"


def test_place_output_refuses_before_moving_anything(tmp_path: Path) -> None:
    got = _fetched(tmp_path, ["a.txt", "stamp1.out"])
    with pytest.raises(FileExistsError, match=r"stamp1\.out collides"):
        place_output(got, tmp_path / "cwd", "stamp1")
    assert all(p.is_file() for p in got.files)  # nothing moved
    assert not (tmp_path / "cwd").exists()
    outside = got.model_copy(update={"files": (tmp_path / "elsewhere.txt",)})
    with pytest.raises(ValueError, match="outside the output root"):
        place_output(outside, tmp_path / "cwd", "stamp1")


# --- SiteDirector monitoring: DC-12 missing keys, DC-15 Unknown ageing --------------------


def _db(refs: dict[str, JobStatus], at: float = 0.0) -> dict[str, DirectorRow]:
    return {ref: DirectorRow("main", status, at, [(status, at)]) for ref, status in refs.items()}


def test_update_statuses_keeps_a_missing_key_unchanged_and_reports_it() -> None:
    a, b = _ref("1_0"), _ref("2_0")
    pilots = _db({a: JobStatus.WAITING, b: JobStatus.RUNNING})
    update = update_statuses(pilots, {"1_0": JobStatus.RUNNING}, now=5.0, abort_after_s=10)
    assert update.changed == {a: JobStatus.RUNNING}
    assert update.missing == [b]
    assert update.aborted == []


def test_update_statuses_ages_unknown_into_aborted_only_past_the_threshold() -> None:
    ref = _ref("9_0")
    pilots = _db({ref: JobStatus.SUBMITTED})
    first = update_statuses(pilots, {"9_0": JobStatus.UNKNOWN}, now=100.0, abort_after_s=60)
    assert first.changed == {ref: JobStatus.UNKNOWN}  # a change: recorded, not aged
    pilots = _db({ref: JobStatus.UNKNOWN}, at=100.0)
    young = update_statuses(pilots, {"9_0": JobStatus.UNKNOWN}, now=160.0, abort_after_s=60)
    assert young.changed == {}
    old = update_statuses(pilots, {"9_0": JobStatus.UNKNOWN}, now=160.5, abort_after_s=60)
    assert old.changed == {ref: JobStatus.ABORTED}
    assert old.aborted == [ref]
    # A pilot Running for ages is not aged: only a repeated Unknown is.
    running = _db({ref: JobStatus.RUNNING}, at=0.0)
    assert update_statuses(running, {"9_0": JobStatus.RUNNING}, 1e9, 60).changed == {}


@pytest.mark.parametrize(
    ("count", "allowed"), [(0, True), (1, False), (2, False), (3, True), (4, False)]
)
def test_failed_queues_pause_like_dirac(count: int, allowed: bool) -> None:
    failed = FailedQueues(cycle_factor=3)
    for _ in range(count):
        failed.record_failure("queue1")
    assert failed.may_submit("queue1") is allowed
    assert failed.counts.get("queue1", 0) == count + (0 if allowed else 1)
    assert failed.may_submit("queue2")  # other queues are not paused


def test_monitor_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="negative"):
        MonitorPolicy(unknown_abort_after_s=-1)
    with pytest.raises(ValueError, match="at least 1"):
        MonitorPolicy(failed_queue_cycle_factor=0)
    assert MonitorPolicy().unknown_abort_after_s == 3600  # DIRAC's hour by default


class _Answers(_Killable):
    """Answers get_status from a table (ids absent from it are left out, as DIRAC's CEs may)."""

    def __init__(self, answers: dict[str, JobStatus]) -> None:
        super().__init__(set())
        self.answers = answers
        self.asked: list[list[str]] = []

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        self.asked.append([h.id for h in handles])
        return {h.id: self.answers[h.id] for h in handles if h.id in self.answers}


def test_monitor_queue_ages_a_stale_ref_and_pauses_the_queue() -> None:
    real, stale, other = _ref("1_0"), _ref("999999_0"), _ref("5_0")
    pilot_db = _db({real: JobStatus.SUBMITTED, stale: JobStatus.SUBMITTED})
    pilot_db[other] = DirectorRow("second", JobStatus.SUBMITTED, 0.0)
    backend = _Answers({"1_0": JobStatus.RUNNING, "999999_0": JobStatus.UNKNOWN})
    policy = MonitorPolicy(unknown_abort_after_s=2.0)
    failed = FailedQueues(policy.failed_queue_cycle_factor)
    facade = sync.wrap(backend)
    try:
        first = monitor_queue(facade, "main", pilot_db, policy, failed, now=1.0)
        assert first.changed == {real: JobStatus.RUNNING, stale: JobStatus.UNKNOWN}
        assert monitor_queue(facade, "main", pilot_db, policy, failed, now=3.0).changed == {}
        backend.answers["1_0"] = JobStatus.DONE
        third = monitor_queue(facade, "main", pilot_db, policy, failed, now=3.5)
        assert third.changed == {real: JobStatus.DONE, stale: JobStatus.ABORTED}
        # Both final: nothing transient is left to ask about in this queue.
        assert monitor_queue(facade, "main", pilot_db, policy, failed, now=9.0).answers == {}
    finally:
        facade.close()
    assert backend.asked == [["1_0", "999999_0"]] * 3  # only this queue's transient pilots
    assert [s for s, _ in pilot_db[stale].changes] == [
        JobStatus.SUBMITTED,
        JobStatus.UNKNOWN,
        JobStatus.ABORTED,
    ]
    assert pilot_db[stale].last_update == 3.5
    assert pilot_db[other].status is JobStatus.SUBMITTED  # another queue's pilot untouched
    assert failed.counts == {"main": 1}
    assert not failed.may_submit("main")


def test_monitor_queue_keeps_the_status_of_a_pilot_missing_from_the_answer() -> None:
    kept = _ref("3_0")
    pilot_db = _db({kept: JobStatus.RUNNING})
    facade = sync.wrap(_Answers({}))
    try:
        update = monitor_queue(facade, "main", pilot_db, MonitorPolicy(), FailedQueues(), 1e6)
    finally:
        facade.close()
    assert update.missing == [kept]
    assert pilot_db[kept].status is JobStatus.RUNNING  # DC-12: unchanged, not Unknown


def test_record_history_collapses_repeats() -> None:
    history: History = {}
    for answer in (JobStatus.WAITING, JobStatus.WAITING, JobStatus.RUNNING, JobStatus.DONE):
        record_history(history, {"1_0": answer})
    assert history == {"1_0": [JobStatus.WAITING, JobStatus.RUNNING, JobStatus.DONE]}


# --- PilotManagerHandler: pilot output on demand (DC-36) ----------------------------------


class _Outputs(_Killable):
    """Returns stdout/stderr for known ids, a per-job failure for the others."""

    def __init__(self, *, down: bool = False) -> None:
        super().__init__(set(), down=down)
        self.fetched: list[tuple[list[str], Path]] = []

    async def get_output(
        self, handles: Sequence[JobHandle], dest: Path
    ) -> Mapping[JobID, JobOutput | OpOutcome]:
        if self.down:
            raise ResourceUnavailableError("connection refused")
        self.fetched.append(([h.id for h in handles], dest))
        out: dict[JobID, JobOutput | OpOutcome] = {}
        for h in handles:
            if h.id.startswith("999"):
                out[h.id] = OpOutcome(ok=False, reason="output is gone")
                continue
            (dest / f"{h.id}.out").write_text(f"out of {h.id}")
            (dest / f"{h.id}.err").write_text(f"err of {h.id}")
            out[h.id] = JobOutput(
                root=dest / h.id, stdout=dest / f"{h.id}.out", stderr=dest / f"{h.id}.err"
            )
        return out


def test_pilot_output_uses_a_fresh_facade_and_a_removed_directory(tmp_path: Path) -> None:
    backends: list[_Outputs] = []
    facades: list[sync.Facade] = []

    def fresh() -> sync.Facade:
        backends.append(_Outputs())
        facades.append(sync.wrap(backends[-1]))
        return facades[-1]

    result, workdir = get_pilot_output(
        fresh, stamped_ref(_ref("4_0"), "s" * 32), scratch_root=tmp_path
    )
    assert result == ("out of 4_0", "err of 4_0")
    assert not workdir.exists()
    assert list(tmp_path.iterdir()) == []
    assert backends[0].fetched == [(["4_0"], workdir)]  # the stamp was stripped
    assert facades[0].closed
    result, second_dir = get_pilot_output(fresh, _ref("999_0"), scratch_root=tmp_path)
    assert result == OpOutcome(ok=False, reason="output is gone")
    assert not second_dir.exists()
    assert second_dir != workdir
    assert len(facades) == 2  # one per call
    assert all(f.closed for f in facades)


def test_pilot_output_failures_still_remove_the_directory(tmp_path: Path) -> None:
    built: list[sync.Facade] = []

    def down() -> sync.Facade:
        built.append(sync.wrap(_Outputs(down=True)))
        return built[-1]

    with pytest.raises(ResourceUnavailableError):
        get_pilot_output(down, _ref("4_0"), scratch_root=tmp_path)
    assert built[0].closed
    result, workdir = get_pilot_output(down, "garbage", scratch_root=tmp_path)
    assert isinstance(result, OpOutcome)
    assert "not a pilot reference" in str(result.reason)
    assert len(built) == 1  # a malformed ref never builds a CE
    assert list(tmp_path.iterdir()) == []
    assert not workdir.exists()


def test_pilot_manager_is_registered_with_the_others() -> None:
    assert set(SCENARIOS) == {
        "site_director",
        "push_job_agent",
        "remote_runner",
        "wms_utilities",
        "pilot_manager",
    }


# --- ScenarioContext --------------------------------------------------------------------


class _ConfigOnly:
    def __init__(self, path: Path) -> None:
        self.client_config_path = path

    def exec(self, node: str, argv: Sequence[str], user: str | None = None) -> tuple[int, str]:
        raise AssertionError("not used")


def test_context_removes_only_the_scratch_it_created(tmp_path: Path) -> None:
    with ScenarioContext(_ConfigOnly(tmp_path / "c.toml")) as ctx:
        owned = ctx.local_dir("a", "b c")
        assert owned.is_dir()
        assert owned.name == "b_c"
    assert ctx.local_root is not None
    assert not ctx.local_root.exists()
    ctx.close()  # idempotent
    given = tmp_path / "mine"
    with ScenarioContext(_ConfigOnly(tmp_path / "c.toml"), local_root=given) as ctx:
        ctx.local_dir("x")
    assert (given / "x").is_dir()


def test_context_facade_uses_queue_config_with_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import intercede.sync

    path = tmp_path / "client.toml"
    path.write_text(
        '[defaults]\nkind = "batch"\ntransport = "local"\nwork_root = "/srv/jobs"\n'
        '[queues.main]\nqueue = "main"\n'
    )
    seen: list[Any] = []
    monkeypatch.setattr(intercede.sync, "backend", lambda config, creds: seen.append(config))
    ctx = ScenarioContext(_ConfigOnly(path), local_root=tmp_path, work_root="/srv/test-1")
    ctx.facade("main", job_name="sd1")
    assert seen == [ctx.queue_config("main", job_name="sd1")]
    assert seen[0].work_root == "/srv/test-1"
    assert seen[0].job_name == "sd1"
    assert ctx.queue_config("main").work_root == "/srv/test-1"
