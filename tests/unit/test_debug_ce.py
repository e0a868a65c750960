"""intercede-debug-ce against in-memory async backends wrapped by the real sync facade."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from intercede import sync
from intercede._cli import debug_ce
from intercede._cli._poll import wait_for
from intercede._cli._progress import LineProgress, LiveProgress, SilentProgress, make_progress
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
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    LoadCounts,
    OpOutcome,
    Submission,
    SubmissionSpec,
)

STAMP = re.compile(r"^[0-9a-f]{32}$")


class _Minimal:
    """Only the essential JobBackend: submit, get_status, lifecycle."""

    def __init__(
        self,
        *,
        final: JobStatus | None = JobStatus.DONE,
        echo_stamp: bool = True,
        unreachable: bool = False,
    ) -> None:
        self.final = final
        self.echo_stamp = echo_stamp
        self.unreachable = unreachable
        self.submits: list[tuple[SubmissionSpec, list[CopyVars]]] = []
        self.jobs: dict[JobID, dict[str, Any]] = {}
        self.purged: list[JobID] = []
        self.killed: list[JobID] = []
        self.closed = False

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        if self.unreachable:
            raise ResourceUnavailableError("cannot connect to ce.example.org:22: refused")
        varied = [CopyVars()] * copies if isinstance(copies, int) else list(copies)
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

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


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
    assert "100% of the queues correctly submitted" in out
    assert "100% of the queues killed a running job" in out
    assert "issues with" not in out
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


def test_failed_job_names_the_queue_in_the_summary(config_file: Path) -> None:
    backends = {"main": _Full(), "second": _Full(final=JobStatus.FAILED)}
    code, out, _ = _run([str(config_file)], backends)
    assert code == 1
    assert "50% of the queues ran their jobs to Done; issues with 1 queue(s): second" in out
    assert "finished but not Done: 1_0: Failed" in out


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
    assert json.loads(out)["error"].startswith("invalid configuration")
    assert "Traceback" not in err


def test_unknown_queue_and_missing_script_are_configuration_errors(config_file: Path) -> None:
    code, _, err = _run([str(config_file), "--queue", "nope"], {})
    assert code == 2
    assert "--queue: no queue 'nope'" in err
    assert "known: main, second" in err
    code, _, err = _run([str(config_file), "--script", "/no/such/script.sh"], {})
    assert code == 2
    assert "--script: no such file" in err


def test_keep_skips_purge(config_file: Path) -> None:
    backend = _Full()
    code, out, _ = _run([str(config_file), "--queue", "main", "--keep"], {"main": backend})
    assert code == 0
    assert backend.purged == []
    assert "purge: skipped on every queue" in out


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
    status = json.loads(out)["queues"][0]["checks"]["status"]
    assert code == 1
    assert status["state"] == "failed"
    assert status["message"].startswith("not final after 0.3 s: 1_0: Running")


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


def test_summary_lines_count_skips_apart() -> None:
    ok, bad, kept = QueueReport("a", "f"), QueueReport("b", "f"), QueueReport("c", "f")
    for q in (ok, bad, kept):
        q.record("submit", CheckState.PASSED, "")
    bad.record("purge", CheckState.FAILED, "gone")
    ok.record("purge", CheckState.PASSED, "")
    kept.record("purge", CheckState.SKIPPED, "--keep")
    lines = summary_lines([ok, bad, kept])
    assert "100% of the queues correctly submitted" in lines
    assert "50% of the queues purged their jobs; issues with 1 queue(s): b (1 skipped)" in lines
    # A check never recorded on a queue counts as an issue there.
    assert "0% of the queues reported their load; issues with 3 queue(s): a, b, c" in lines


def test_run_report_exit_codes() -> None:
    failed = QueueReport("a", "f")
    failed.record("submit", CheckState.FAILED, "refused")
    unreachable = QueueReport("b", "f", error="ResourceUnavailableError: down")
    assert RunReport([QueueReport("ok", "f")]).exit_code == 0
    assert RunReport([failed]).exit_code == 1
    assert RunReport([failed, unreachable]).exit_code == 2
    assert json.loads(render_json(RunReport([], error="bad")))["summary"] == []


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_live_only_on_a_terminal() -> None:
    tty = _Tty()
    live = make_progress(tty, ["main", "second"], json_mode=False)
    assert isinstance(live, LiveProgress)
    live.update("main", "submitting")
    live.update("second", "polling")
    live.finish()
    text = tty.getvalue()
    assert "\x1b[2F" in text  # redrawn in place over the two queue lines
    assert "main    submitting" in text
    assert "second  polling" in text

    plain = io.StringIO()
    lines = make_progress(plain, ["main"], json_mode=False)
    assert isinstance(lines, LineProgress)
    lines.update("main", "submitting")
    assert plain.getvalue() == "[main] submitting\n"
    assert isinstance(make_progress(_Tty(), ["main"], json_mode=True), SilentProgress)


def test_wait_for_returns_last_answer_when_time_runs_out() -> None:
    naps: list[float] = []
    answers = iter([{"1": JobStatus.WAITING}] * 50)

    def nap(seconds: float) -> None:
        naps.append(seconds)
        time.sleep(seconds)

    last, done = wait_for(
        lambda: next(answers),
        lambda s: all(x.is_final for x in s.values()),
        timeout_s=0.05,
        cap_s=0.01,
        first_s=0.01,
        sleep=nap,
    )
    assert not done
    assert last == {"1": JobStatus.WAITING}
    assert naps
    assert max(naps) <= 0.01


def test_wait_for_does_not_retry_whole_resource_errors() -> None:
    calls = 0

    def poll() -> Mapping[JobID, JobStatus]:
        nonlocal calls
        calls += 1
        raise ResourceUnavailableError("down")

    with pytest.raises(ResourceUnavailableError):
        wait_for(poll, lambda s: True, timeout_s=5)
    assert calls == 1


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
    assert "100% of the queues reported their load" in out  # load ran before the crash
    assert "50% of the queues ran their jobs to Done; issues with 1 queue(s): second" in out
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
