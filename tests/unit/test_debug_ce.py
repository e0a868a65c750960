"""intercede-debug-ce against in-memory async backends wrapped by the real sync facade."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from intercede import sync
from intercede._cli import debug_ce
from intercede._cli._progress import LineProgress, LiveProgress, SilentProgress, make_progress
from intercede._cli._queue_check import Options
from intercede._cli._report import (
    CheckState,
    QueueReport,
    RunReport,
    render_json,
    summary_lines,
)
from intercede.errors import ResourceUnavailableError
from intercede.models import (
    CopyVars,
    Explanation,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    LoadCounts,
    OpOutcome,
    Submission,
    SubmissionSpec,
)
from tests.unit.fakes import FakeBackend, as_copies

STAMP = re.compile(r"^[0-9a-f]{32}$")


class _Minimal(FakeBackend):
    """Only the essential JobBackend: submit, get_status, lifecycle."""

    def __init__(
        self,
        *,
        final: JobStatus | None = JobStatus.DONE,
        echo_stamp: bool = True,
        unreachable: bool = False,
    ) -> None:
        super().__init__()
        self.final = final
        self.echo_stamp = echo_stamp
        self.unreachable = unreachable
        self.jobs: dict[JobID, dict[str, Any]] = {}
        self.purged: list[JobID] = []
        self.killed: list[JobID] = []

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        if self.unreachable:
            raise ResourceUnavailableError("cannot connect to ce.example.org:22: refused")
        varied = as_copies(copies)
        self.submits.append((spec, varied))
        handles = {}
        for i, copy in enumerate(varied):
            job_id = f"{len(self.jobs) + 1}_0"
            self.jobs[job_id] = {
                "stamp": copy.environment.get("DIRAC_PILOT_STAMP", ""),
                "sleeper": "sleep" in Path(spec.executable).name,
                "polls": 0,
                "state": JobStatus.WAITING,
            }
            handles[i] = JobHandle(backend="fake", resource="ce", id=job_id)
        return Submission(handles=handles)

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        out = {}
        for handle in handles:
            job = self.jobs.get(handle.id)
            if job is None:
                out[handle.id] = JobStatus.UNKNOWN
                continue
            job["polls"] += 1
            if job["state"] is JobStatus.WAITING and job["polls"] >= 2:
                job["state"] = JobStatus.RUNNING
            elif (
                job["state"] is JobStatus.RUNNING
                and not job["sleeper"]
                and self.final is not None
                and job["polls"] >= 3
            ):
                job["state"] = self.final
            out[handle.id] = job["state"]
        return out


class _Full(_Minimal):
    """Every optional capability the debug-CE probes for."""

    def __init__(self, *, noise: int = 0, log: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.noise = noise
        """Bytes of chatter the probe prints before its stamp."""
        self.log = log
        """The scheduler log's content (``None``: the resource keeps none)."""

    async def counts(self) -> LoadCounts:
        return LoadCounts(running=1, waiting=2)

    async def get_output(
        self, handles: Sequence[JobHandle], dest: Path
    ) -> Mapping[JobID, JobOutput | OpOutcome]:
        dest.mkdir(parents=True, exist_ok=True)
        out: dict[JobID, JobOutput | OpOutcome] = {}
        for handle in handles:
            stamp = self.jobs[handle.id]["stamp"] if self.echo_stamp else "no stamp"
            stdout = dest / f"{handle.id}.out"
            chatter = ("x" * 99 + "\n") * (self.noise // 100)
            stdout.write_text(f"hostname: worker1\n{chatter}DIRAC_PILOT_STAMP={stamp}\n")
            stderr = dest / f"{handle.id}.err"
            stderr.write_text("")
            log = None
            if self.log is not None:
                log = dest / f"{handle.id}.log"
                log.write_text(self.log)
            (dest / handle.id).mkdir(exist_ok=True)
            made = dest / handle.id / "result.txt"
            made.write_text("x")
            out[handle.id] = JobOutput(
                root=dest / handle.id, stdout=stdout, stderr=stderr, log=log, files=(made,)
            )
        return out

    async def kill(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        for handle in handles:
            self.killed.append(handle.id)
            self.jobs[handle.id]["state"] = JobStatus.ABORTED
        return {h.id: OpOutcome(ok=True) for h in handles}

    async def purge(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        self.purged += [h.id for h in handles]
        return {h.id: OpOutcome(ok=True) for h in handles}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "client.toml"
    path.write_text(
        '[defaults]\nkind = "batch"\ntransport = "local"\nwork_root = "/srv/jobs"\n'
        '[queues.main]\nqueue = "main"\n[queues.second]\nqueue = "second"\n'
    )
    return path


def _run(argv: list[str], backends: Mapping[str, _Minimal]) -> tuple[int, str, str]:
    def factory(config: Any, credentials: Any) -> sync.JobBackend:
        return sync.wrap(backends[config.queue])

    out, err = io.StringIO(), io.StringIO()
    code = debug_ce.main(argv, factory=factory, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


class _Crashing(_Full):
    """A backend with a bug: its status call raises something that is no InterCEdeError."""

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        raise KeyError("squeue column 'ST' missing")


def test_every_check_passes_on_a_working_ce(config_file: Path) -> None:
    backends = {"main": _Full(), "second": _Full()}
    code, out, err = _run([str(config_file), "--timeout", "10"], backends)
    assert code == 0, out + err
    assert "- 100% of the queues correctly submitted a job. Issues with 0 queue(s):" in out
    assert "- 100% of the queues correctly killed a running job. Issues with 0 queue(s):" in out
    assert "\n  - " not in out  # no per-queue issue line
    assert err == ""
    for backend in backends.values():
        # Probe and sleeper purged, sleeper killed, facade closed (the async aclose ran).
        assert len(backend.purged) == 2
        assert backend.killed == ["2_0"]
        assert backend.closed


def test_json_is_one_document_with_stamps_and_checks(config_file: Path) -> None:
    backends = {"main": _Full(), "second": _Full()}
    code, out, _ = _run([str(config_file), "--json", "--copies", "3"], backends)
    document = json.loads(out)  # one document, nothing else on stdout
    assert code == 0
    assert document["ok"] is True
    assert document["exit_code"] == 0
    assert document["schema_version"] == 2
    assert document["started_at"] <= document["finished_at"]
    assert [j["role"] for j in document["queues"][0]["jobs"]] == ["probe"] * 3 + ["kill-target"]
    assert [q["queue"] for q in document["queues"]] == ["main", "second"]
    main = document["queues"][0]
    assert set(main["checks"]) == {"load", "submit", "status", "output", "kill", "purge"}
    assert main["checks"]["load"]["message"] == "running 1, waiting 2"
    stamps = [job["stamp"] for job in main["jobs"]]
    assert len(stamps) == 4
    assert len(set(stamps)) == 4
    assert all(STAMP.match(s) for s in stamps)
    assert stamps[0] in main["jobs"][0]["stdout"]
    assert main["jobs"][0]["files"] == ["1_0/result.txt"]
    # The three copies went in ONE bulk submit, each with its own stamp in its environment.
    _spec, copies = backends["main"].submits[0]
    assert [c.environment["DIRAC_PILOT_STAMP"] for c in copies] == stamps[:3]


def test_a_failed_payload_is_a_retrieved_status_reported_apart(config_file: Path) -> None:
    """DIRAC's semantics: Done or Failed retrieved = the status check passed; the payload's own
    result is reported separately."""
    backends = {"main": _Full(), "second": _Full(final=JobStatus.FAILED)}
    code, out, _ = _run([str(config_file)], backends)
    assert code == 0, out
    assert "- 100% of the queues correctly retrieved job status. Issues with 0 queue(s):" in out
    assert "status  passed   1 job(s) final: 1 Failed" in out
    assert "probe, stamp" in out
    assert "status Failed, payload failed" in out
    assert "status Done, payload succeeded" in out


def test_an_aborted_probe_fails_with_a_reason_line_in_diracs_format(config_file: Path) -> None:
    backends = {"main": _Full(), "second": _Full(final=JobStatus.ABORTED)}
    code, out, _ = _run([str(config_file)], backends)
    assert code == 1
    assert "- 50% of the queues correctly retrieved job status. Issues with 1 queue(s):\n" in out
    assert "  - second: aborted by the resource: 1_0: Aborted\n" in out


def test_missing_stamp_fails_the_output_check(config_file: Path) -> None:
    code, out, _ = _run(
        [str(config_file), "--queue", "main", "--json"], {"main": _Full(echo_stamp=False)}
    )
    document = json.loads(out)
    assert code == 1
    output = document["queues"][0]["checks"]["output"]
    assert output["state"] == "failed"
    assert "not echoed in stdout" in output["message"]


def test_unreachable_resource_exits_2_with_a_message(config_file: Path) -> None:
    code, out, err = _run([str(config_file), "--queue", "main"], {"main": _Full(unreachable=True)})
    assert code == 2
    assert "intercede-debug-ce: error: queue main: ResourceUnavailableError: cannot connect" in err
    assert "Traceback" not in out + err
    assert "not reached" in out  # later checks say why they did not run


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[queues.main]\nkind = "batch"\ntransport = "carrier-pigeon"\n', "transport"),
        ("[queues.main\n", "not valid TOML"),
        ('[defaults]\nkind = "batch"\ntransport = "local"\n[queues.main]\n', "work_root"),
    ],
)
def test_invalid_config_exits_2_naming_the_problem(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    code, out, err = _run([str(path), "--json"], {})
    assert code == 2
    assert expected in err
    assert "invalid configuration" in err
    assert expected in json.loads(out)["error"]
    assert "Traceback" not in err


def test_every_config_problem_is_printed_once_one_per_line_naming_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[defaults]\nkind = "batch"\ntransport = "ssh"\nuser = "u"\nknown_hosts = "kh"\n'
        '[queues.main]\nwork_root = "relative"\nhostnme = "typo"\n'
        '[queues.other]\nhost = "h"\nwork_root = "/w"\nport = 0\n'
        "[credentials]\nssh_key = 'k'\nreread_after_s = -1\n"
    )
    code, out, err = _run([str(path)], {})
    assert code == 2
    assert out == ""  # not printed twice: stderr only
    lines = err.splitlines()
    assert lines[0] == "intercede-debug-ce: error: invalid configuration:"
    problems = [line.strip() for line in lines[1:]]
    keys = [p.split(":")[0] for p in problems]
    assert "queues.main.hostnme" in keys  # the typo is not hidden behind another error
    assert "queues.main.host" in keys
    assert "queues.main.work_root" in keys
    assert "queues.other.port" in keys
    assert "credentials.ssh_key" in keys
    assert "credentials.reread_after_s" in keys
    assert not any("Value error" in p for p in problems)
    assert len(problems) == len(set(problems))


def test_check_connects_and_counts_without_submitting(config_file: Path) -> None:
    backends = {"main": _Full(), "second": _Full()}
    code, out, err = _run([str(config_file), "--check"], backends)
    assert code == 0, err
    assert out.splitlines() == [
        "- main: running 1, waiting 2, queue state unknown",
        "- second: running 1, waiting 2, queue state unknown",
    ]
    assert all(not b.submits for b in backends.values())


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    import intercede

    with pytest.raises(SystemExit) as exc:
        debug_ce.build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"intercede-debug-ce {intercede.__version__}"


def test_unknown_queue_and_missing_script_are_configuration_errors(config_file: Path) -> None:
    code, _, err = _run([str(config_file), "--queue", "nope"], {})
    assert code == 2
    assert "--queue: no queue 'nope'" in err
    assert "known: main, second" in err
    code, _, err = _run([str(config_file), "--script", "/no/such/script.sh"], {})
    assert code == 2
    assert "--script: no such file" in err


def test_keep_leaves_the_jobs_and_prints_the_command_removing_them(config_file: Path) -> None:
    backend = _Full()
    code, out, _ = _run([str(config_file), "--queue", "main", "--keep"], {"main": backend})
    assert code == 0
    assert backend.purged == []
    assert "- no queue was asked to purged their jobs (skipped on every queue)." in out
    assert "2 job(s) left on the resource; remove them with:" in out
    command = shlex.split(out.split("remove them with:\n")[1].splitlines()[0])
    assert command[:5] == ["intercede-debug-ce", str(config_file), "--queue", "main", "--purge"]
    refs = command[5:]
    assert [JobHandle.parse(r).id for r in refs] == ["1_0", "2_0"]
    # ... and that command does remove them.
    code, out, _ = _run(command[1:], {"main": backend})
    assert code == 0
    assert out.splitlines() == ["- 1_0: purged", "- 2_0: purged"]
    assert backend.purged == ["1_0", "2_0"]


def test_minimal_backend_skips_optional_checks(config_file: Path) -> None:
    code, out, _ = _run([str(config_file), "--queue", "main", "--json"], {"main": _Minimal()})
    checks = json.loads(out)["queues"][0]["checks"]
    assert code == 0
    assert {n: c["state"] for n, c in checks.items()} == {
        "load": "skipped",
        "submit": "passed",
        "status": "passed",
        "output": "skipped",
        "kill": "skipped",
        "purge": "skipped",
    }


def test_jobs_never_finishing_fail_after_the_timeout(config_file: Path) -> None:
    code, out, _ = _run(
        [str(config_file), "--queue", "main", "--timeout", "0.3", "--json"],
        {"main": _Full(final=None)},
    )
    queue = json.loads(out)["queues"][0]
    status = queue["checks"]["status"]
    assert code == 1
    assert status["state"] == "failed"
    assert status["message"].startswith("not final after 0.3 s: 1_0: Running")
    # One deadline per queue: no kill target is sent after it ran out, and the timed-out
    # probe is killed, then purged.
    assert queue["checks"]["kill"]["message"] == "not reached: --timeout 0.3 s"
    assert queue["checks"]["purge"] == {
        "state": "passed",
        "message": "1 job(s) purged (1 killed first)",
    }


def test_custom_script_is_what_gets_submitted(config_file: Path, tmp_path: Path) -> None:
    script = tmp_path / "mine.sh"
    script.write_text("#!/bin/sh\necho $DIRAC_PILOT_STAMP\n")
    backend = _Full()
    code, _, _ = _run(
        [str(config_file), "--queue", "main", "--script", str(script)], {"main": backend}
    )
    assert code == 0
    assert backend.submits[0][0].executable == str(script.resolve())


@pytest.mark.parametrize("bad", [["--copies", "0"], ["--timeout", "-1"], ["--timeout", "soon"]])
def test_bad_numbers_are_usage_errors(config_file: Path, bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        debug_ce.build_parser().parse_args([str(config_file), *bad])
    assert exc.value.code == 2


def test_duplicate_queue_names_across_files_are_qualified(
    config_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.toml"
    other.write_text(config_file.read_text())
    labels = [t.label for t in debug_ce.select_queues([config_file, other], ["main"])]
    assert labels == [f"{config_file}:main", f"{other}:main"]


def test_summary_lines_are_diracs_with_a_reason_line_per_queue() -> None:
    ok, bad, kept = (QueueReport(queue=n, config="f") for n in "abc")
    for q in (ok, bad, kept):
        q.record("submit", CheckState.PASSED, "")
    bad.record("purge", CheckState.FAILED, "gone\nfor good")
    ok.record("purge", CheckState.PASSED, "")
    kept.record("purge", CheckState.SKIPPED, "--keep")
    lines = summary_lines([ok, bad, kept])
    at = lines.index("- 100% of the queues correctly submitted a job. Issues with 0 queue(s):")
    assert lines[at + 1] == ""
    at = lines.index("- 50% of the queues correctly purged their jobs. Issues with 1 queue(s):")
    assert lines[at + 1 : at + 3] == ["  - b: gone for good", ""]
    # A check never recorded on a queue counts as an issue there.
    at = lines.index("- 0% of the queues correctly reported CE status. Issues with 3 queue(s):")
    assert lines[at + 1 : at + 4] == ["  - a: not run", "  - b: not run", "  - c: not run"]


def test_run_report_exit_codes() -> None:
    failed = QueueReport(queue="a", config="f")
    failed.record("submit", CheckState.FAILED, "refused")
    unreachable = QueueReport(queue="b", config="f", error="ResourceUnavailableError: down")
    assert RunReport(queues=[QueueReport(queue="ok", config="f")]).exit_code == 0
    assert RunReport(queues=[failed]).exit_code == 1
    assert RunReport(queues=[failed, unreachable]).exit_code == 2
    assert RunReport(queues=[failed], interrupted=True).exit_code == 130
    assert json.loads(render_json(RunReport(error="bad")))["summary"] == []


def test_the_json_document_matches_its_published_schema() -> None:
    from intercede._cli._report import report_schema

    schema = report_schema()
    published = Path(__file__).parents[2] / "docs" / "reference" / "debug-ce-report.schema.json"
    assert json.loads(published.read_text()) == schema
    queue = QueueReport(queue="a", config="f")
    queue.record("load", CheckState.PASSED, "running 0, waiting 0")
    document = RunReport(queues=[queue]).document()
    assert set(document) <= set(schema["properties"])
    assert set(document["queues"][0]) <= set(schema["$defs"]["QueueReport"]["properties"])


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_live_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    tty = _Tty()
    live = make_progress(tty, ["main", "second"], json_mode=False)
    assert isinstance(live, LiveProgress)
    live.update("main", "submitting\nwith a newline that must not break the table")
    live.update("second", "polling")
    live.finish()
    text = tty.getvalue()
    assert "submitting with a newline" in text
    assert "polling" in text

    plain = io.StringIO()
    lines = make_progress(plain, ["main"], json_mode=False)
    assert isinstance(lines, LineProgress)
    lines.update("main", "submitting\nnow")
    assert plain.getvalue() == "[main] submitting now\n"
    assert isinstance(make_progress(_Tty(), ["main"], json_mode=True), SilentProgress)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_progress(_Tty(), ["main"], json_mode=False), LineProgress)


class _Stuck(_Full):
    """A queue whose partition is DOWN: jobs stay Waiting and ``explain`` says why."""

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        return {
            h.id: JobStatus.ABORTED if h.id in self.killed else JobStatus.WAITING for h in handles
        }

    async def explain(
        self, handles: Sequence[JobHandle]
    ) -> Mapping[JobID, Explanation | OpOutcome]:
        return {
            h.id: Explanation(
                status=JobStatus.WAITING,
                reason="PartitionDown",
                queue="main",
                queue_state="DOWN",
                blocked=True,
            )
            for h in handles
        }

    async def counts(self) -> LoadCounts:
        return LoadCounts(running=0, waiting=1, queue_state="DOWN")


def test_a_blocked_queue_fails_at_once_with_the_schedulers_words(config_file: Path) -> None:
    backend = _Stuck()
    targets = debug_ce.select_queues([config_file], ["main"])
    started = time.monotonic()
    report = debug_ce.run(
        targets,
        Options(timeout_s=60, explain_every_s=0.2),
        factory=lambda c, k: sync.wrap(backend),
        stream=io.StringIO(),
    )
    assert time.monotonic() - started < 5
    queue = report.queues[0]
    assert queue.checks["load"].message == "the queue is DOWN: running 0, waiting 1"
    assert queue.checks["status"].message == (
        "the scheduler will not start it: Waiting (PartitionDown) in main, which is DOWN"
    )
    assert queue.checks["kill"].message == "not reached: the queue starts no jobs"
    assert len(backend.submits) == 1  # no second job
    assert backend.killed == ["1_0"]
    assert backend.purged == ["1_0"]
    assert queue.jobs[0].reason == "Waiting (PartitionDown) in main, which is DOWN"


def test_an_interrupt_stops_every_queue_cleans_up_and_reports(config_file: Path) -> None:
    backends = {"main": _Full(final=None), "second": _Full(final=None)}
    targets = debug_ce.select_queues([config_file], [])
    interrupt = threading.Event()
    stopped_at: list[float] = []

    def press() -> None:
        time.sleep(0.5)
        stopped_at.append(time.monotonic())
        interrupt.set()

    threading.Thread(target=press).start()
    report = debug_ce.run(
        targets,
        Options(timeout_s=600),
        factory=lambda c, k: sync.wrap(backends[c.queue]),
        stream=io.StringIO(),
        interrupt=interrupt,
    )
    assert time.monotonic() - stopped_at[0] < 2.0
    assert report.interrupted
    assert report.exit_code == 130
    for queue in report.queues:
        assert queue.interrupted
        assert queue.checks["status"].message == "interrupted (Ctrl-C)"
        assert queue.checks["purge"].state is CheckState.PASSED
    for backend in backends.values():
        assert backend.killed == ["1_0"]
        assert backend.purged == ["1_0"]
    assert "(interrupted: partial report)" in debug_ce.render_text(report)


def test_an_unexpected_error_fails_that_queue_only_without_traceback(config_file: Path) -> None:
    backends: dict[str, _Minimal] = {"main": _Full(), "second": _Crashing()}
    code, out, err = _run([str(config_file)], backends)
    assert code == 2
    main_part = out.split("== second")[0]
    assert "== main (" in main_part
    assert "): OK in" in main_part
    assert "error: unexpected KeyError: \"squeue column 'ST' missing\"" in out
    assert "status  failed   unexpected KeyError" in out
    assert "output  failed   not reached: status failed" in out
    assert "- 100% of the queues correctly reported CE status." in out  # load ran first
    assert "- 50% of the queues correctly retrieved job status. Issues with 1 queue(s):" in out
    assert "  - second: unexpected KeyError" in out
    assert "queue second: unexpected KeyError" in err
    assert "rerun with --debug" in err
    assert "Traceback" not in out + err
    assert backends["second"].closed  # the facade is still closed after the crash
    assert len(backends["main"].purged) == 2  # the healthy queue ran to its end


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_on_stderr(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    argv = [str(config_file), "--queue", "second", "--json"]
    if how == "flag":
        argv.append("--debug")
    else:
        monkeypatch.setenv(debug_ce.DEBUG_ENV, "1")
    code, out, err = _run(argv, {"second": _Crashing()})
    assert code == 2
    assert json.loads(out)["queues"][0]["error"].startswith("unexpected KeyError")
    assert "Traceback (most recent call last)" in err
    assert "in get_status" in err
    assert "rerun with --debug" not in err


def test_a_factory_crash_is_reported_per_queue(config_file: Path) -> None:
    def factory(config: Any, credentials: Any) -> sync.JobBackend:
        if config.queue == "second":
            raise TypeError("bad backend plugin")
        return sync.wrap(_Full())

    out, err = io.StringIO(), io.StringIO()
    code = debug_ce.main([str(config_file), "--json"], factory=factory, stdout=out, stderr=err)
    document = json.loads(out.getvalue())
    assert code == 2
    main, second = document["queues"]
    assert main["ok"] is True
    assert second["error"] == "unexpected TypeError: bad backend plugin"
    assert second["checks"]["load"]["state"] == "failed"


def test_the_scheduler_log_tail_is_shown(config_file: Path) -> None:
    lines = [f"log line {i:05d}" for i in range(1000)]  # ~16 KiB: only the end is shown
    backend = _Full(log="\n".join(lines) + "\n")
    code, out, _ = _run([str(config_file), "--queue", "main"], {"main": backend})
    assert code == 0
    assert "     scheduler log (tail):" in out
    assert "      | log line 00999" in out
    assert "log line 00000" not in out
    assert "earlier bytes]" in out
    code, out, _ = _run([str(config_file), "--queue", "main", "--json"], {"main": _Full()})
    assert json.loads(out)["queues"][0]["jobs"][0]["log"] is None  # no log kept: none shown


def test_the_stamp_is_found_past_the_shown_head_but_not_past_the_bound(
    config_file: Path,
) -> None:
    code, out, _ = _run(
        [str(config_file), "--queue", "main", "--json"], {"main": _Full(noise=20_000)}
    )
    document = json.loads(out)
    probe = document["queues"][0]["jobs"][0]
    assert code == 0
    assert probe["stamp"] not in probe["stdout"]  # not among the bytes shown...
    assert "more bytes]" in probe["stdout"]
    assert document["queues"][0]["checks"]["output"]["state"] == "passed"  # ...but found
    code, out, _ = _run(
        [str(config_file), "--queue", "main", "--json"], {"main": _Full(noise=1_100_000)}
    )
    output = json.loads(out)["queues"][0]["checks"]["output"]
    assert code == 1
    assert output["state"] == "failed"
    assert "searched the first 1024 KiB" in output["message"]


def test_verbose_logs_intercede_but_keeps_asyncssh_quiet_unless_named() -> None:
    names = ("intercede", "asyncssh")
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    try:
        stream = io.StringIO()
        debug_ce.configure_logging(2, [], stream)
        assert logging.getLogger("intercede").level == logging.DEBUG
        assert logging.getLogger("asyncssh").level == logging.WARNING
        logging.getLogger("intercede.batch").debug("get_status on x: ok")
        logging.getLogger("asyncssh").info("Command: sh -c 'a whole script'")
        assert "get_status on x: ok" in stream.getvalue()
        assert "a whole script" not in stream.getvalue()
        debug_ce.configure_logging(0, [debug_ce._log_level("asyncssh=INFO")], stream)
        logging.getLogger("asyncssh").info("now asked for")
        assert "now asked for" in stream.getvalue()
    finally:
        for name, (level, handlers) in saved.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).handlers[:] = handlers


def test_log_level_names_the_bad_level() -> None:
    with pytest.raises(SystemExit):
        debug_ce.build_parser().parse_args(["c.toml", "--log-level", "LOUD"])


class _SlowSubmit(_Full):
    """A submit that takes a while: Ctrl-C arrives while it runs."""

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        await asyncio.sleep(1.0)
        return await super().submit(spec, copies)


def test_a_submit_in_flight_is_not_interrupted_so_its_jobs_are_cleaned_up(
    config_file: Path,
) -> None:
    backend = _SlowSubmit(final=None)
    interrupt = threading.Event()
    threading.Timer(0.4, interrupt.set).start()
    report = debug_ce.run(
        debug_ce.select_queues([config_file], ["main"]),
        Options(timeout_s=600),
        factory=lambda c, k: sync.wrap(backend),
        stream=io.StringIO(),
        interrupt=interrupt,
    )
    assert report.exit_code == 130
    assert len(backend.submits) == 1  # the submit finished ...
    assert backend.purged == ["1_0"]  # ... so its job was known, killed and purged
    assert report.queues[0].checks["submit"].state is CheckState.PASSED


def test_no_color_and_a_terminal_still_get_the_table_without_colour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")
    tty = _Tty()
    live = make_progress(tty, ["main"], json_mode=False)
    assert isinstance(live, LiveProgress)
    live.update("main", "polling")
    live.finish()
    assert "polling" in tty.getvalue()
    assert not re.search(r"\x1b\[[0-9;]*3[0-9]m", tty.getvalue())  # no foreground colour


def test_more_queues_than_terminal_rows_are_cropped_while_live(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("LINES", "10")
    tty = _Tty()
    live = make_progress(tty, [f"q{i:02d}" for i in range(60)], json_mode=False)
    assert isinstance(live, LiveProgress)
    live._live.refresh()
    frame = tty.getvalue()
    live.finish()
    assert frame.count("\n") < 10  # never taller than the terminal
    assert "..." in frame  # says rows are hidden
    assert "q00" in frame
