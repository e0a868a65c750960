"""The debug-CE procedure for one queue (DIRAC's ``dirac-admin-debug-ce``, DC-37), driven
through the sync facade exactly as a DIRAC agent thread would drive it.

Order: load counts → submit stamped probes → wait for a final state → fetch output and find
the stamp → submit a sleeper and kill it while it runs → clean up (kill what still lives, then
purge). The whole queue runs under one deadline (``--timeout``), not one per wait. While the
probes wait, the backend is asked why (``explain``): a job the scheduler says cannot start (its
partition is DOWN, say) fails the queue at once with Slurm's own words, and no second job is
sent. Whatever stops the queue (a failed step, the deadline, Ctrl-C), the jobs it submitted are
killed and purged unless ``--keep``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from intercede import sync
from intercede.config import LocalBatchConfig, SSHBatchConfig
from intercede.credentials import CredentialProvider
from intercede.errors import (
    AuthenticationError,
    ConfigurationError,
    InterCEdeError,
    OperationCancelledError,
    OperationTimeoutError,
    ResourceUnavailableError,
)
from intercede.models import (
    CopyVars,
    Explanation,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    OpOutcome,
    SubmissionSpec,
)
from intercede.waiting import FINAL_STATES, reached

from ._progress import Progress
from ._report import CheckState, JobReport, QueueReport, cleanup_command, now
from ._script import write_probe_script, write_sleep_script

__all__ = ["WHOLE_RESOURCE_ERRORS", "FacadeFactory", "Options", "QueueStop", "check_queue"]

WHOLE_RESOURCE_ERRORS = (
    ConfigurationError,
    ResourceUnavailableError,
    OperationTimeoutError,
    AuthenticationError,
)
_SHOWN_BYTES = 4096
"""How much of stdout/stderr the report shows (the head) and of the log (the tail)."""
_SEARCH_BYTES = 1 << 20
"""How much of stdout is searched for the stamp: a chatty script still passes, a runaway one
cannot make the check read gigabytes."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_CLEANUP_CALL_S = 30.0
_SETTLE_S = 20.0
"""How long cleanup waits for killed jobs to be final before purging them."""
_PROG = "intercede-debug-ce"
_log = logging.getLogger("intercede.debug_ce")


FacadeFactory = Callable[[SSHBatchConfig | LocalBatchConfig, CredentialProvider], sync.JobBackend]


@dataclass(frozen=True)
class Options:
    script: Path | None = None
    timeout_s: float = 1800.0
    """One deadline for the whole queue: every wait shares it."""
    copies: int = 1
    keep: bool = False
    poll_cap_s: float = 5.0
    call_timeout_s: float = 300.0
    explain_every_s: float = 10.0
    """How long jobs wait between asking the backend why they are still waiting."""
    debug: bool = False
    """Keep the traceback of an unexpected error (``--debug``); otherwise type and message."""


class _Interrupted(Exception):
    """The run was asked to stop (Ctrl-C) between two calls."""


class QueueStop:
    """How the main thread stops one queue's worker: a flag it checks between calls, and the
    facade's ``interrupt()`` for the call it is blocked in. Neither a submit (cancelled midway,
    its jobs could exist without their handles reaching the report, so nothing would clean them
    up) nor the cleanup is interrupted: the worker shields them."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._lock = threading.Lock()
        self._facade: sync.JobBackend | None = None
        self._cleaning = False
        self._shielded = False

    def attach(self, facade: sync.JobBackend) -> None:
        with self._lock:
            self._facade = facade

    def request(self) -> None:
        """Ask the worker to stop and cancel its call in flight. The main thread repeats it
        until the worker cleans up: a call started just after the flag was checked is caught
        by the next ``request``."""
        self.requested.set()
        with self._lock:
            interrupt = getattr(self._facade, "interrupt", None)
            if not (self._cleaning or self._shielded) and callable(interrupt):
                interrupt()

    def checkpoint(self) -> None:
        if self.requested.is_set():
            raise _Interrupted

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """A call that must finish once started (a submit); the stop is honoured after it."""
        self.checkpoint()
        with self._lock:
            self._shielded = True
        try:
            yield
        finally:
            with self._lock:
                self._shielded = False

    def cleaning(self) -> None:
        with self._lock:
            self._cleaning = True


class _Step:
    """Remembers which check is in progress so an error lands on it."""

    def __init__(self) -> None:
        self.name = "load"


def _read_head(path: Path | None, limit: int = _SHOWN_BYTES) -> str | None:
    """The first ``limit`` bytes as text, saying how much was left out."""
    if path is None or not path.exists():
        return None
    size = path.stat().st_size
    with path.open("rb") as f:
        text = f.read(limit).decode(errors="replace")
    if size > limit:
        text += f"\n[... {size - limit} more bytes]"
    return text


def _read_tail(path: Path | None, limit: int = _SHOWN_BYTES) -> str | None:
    """The last ``limit`` bytes as text (a log's end says why a job ended)."""
    if path is None or not path.exists():
        return None
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - limit))
        text = f.read().decode(errors="replace")
    if size > limit:
        text = f"[... {size - limit} earlier bytes]\n" + text
    return text


def _contains(path: Path, needle: str, limit: int = _SEARCH_BYTES) -> bool:
    """Whether ``needle`` is in the first ``limit`` bytes of ``path``."""
    with path.open("rb") as f:
        return needle.encode() in f.read(limit)


class _Run:
    """One queue's run: its facade, report, deadline and the jobs it owns."""

    def __init__(
        self,
        ce: sync.JobBackend,
        report: QueueReport,
        options: Options,
        progress: Progress,
        local: Path,
        stop: QueueStop,
    ) -> None:
        self.ce = ce
        self.report = report
        self.options = options
        self.progress = progress
        self.local = local
        self.stop = stop
        self.step = _Step()
        self.started = time.monotonic()
        self.deadline = self.started + options.timeout_s
        self.queue_down = False
        """The load check saw the queue start no jobs: ask why after the first polls."""
        self.handles: dict[JobID, JobHandle] = {}
        self.jobs: dict[JobID, JobReport] = {}

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, text: str) -> None:
        self.progress.update(self.report.queue, text)

    def call_timeout(self) -> float:
        return max(1.0, min(self.options.call_timeout_s, self.left_s()))

    def own(self, handle: JobHandle, role: str, stamp: str) -> JobReport:
        job = JobReport(ref=str(handle), role=role, stamp=stamp)
        self.handles[handle.id] = handle
        self.jobs[handle.id] = job
        self.report.jobs.append(job)
        return job

    def note(self, statuses: Mapping[JobID, JobStatus]) -> None:
        for job_id, status in statuses.items():
            job = self.jobs.get(job_id)
            if job is not None:
                job.status = status.value
                job.payload_ok = {JobStatus.DONE: True, JobStatus.FAILED: False}.get(status)

    def wait(
        self, handles: Sequence[JobHandle], until: frozenset[JobStatus] = FINAL_STATES
    ) -> tuple[Mapping[JobID, JobStatus], list[Explanation]]:
        """Wait for ``handles`` until ``until``, the queue's deadline, or the scheduler saying
        a job is blocked; the last statuses and the blocking explanations (if any)."""
        statuses: Mapping[JobID, JobStatus] = {}
        while True:
            self.stop.checkpoint()
            every = min(self.options.explain_every_s, 2.0 if self.queue_down else math.inf)
            slice_s = max(0.1, min(every, self.left_s()))
            statuses = sync.wait_for_jobs(
                self.ce,
                handles,
                deadline_s=slice_s,
                until=until,
                cap_s=self.options.poll_cap_s,
                on_poll=self._show,
            )
            self.note(statuses)
            if reached(statuses, until) or self.left_s() <= 0:
                return statuses, []
            blocked = self.explain([h for h in handles if not statuses[h.id].is_final])
            if blocked:
                return statuses, blocked

    def explain(self, handles: Sequence[JobHandle]) -> list[Explanation]:
        """Ask why the jobs are not there yet; record it; the explanations saying a job is
        blocked (waiting longer will not help)."""
        if not handles or not isinstance(self.ce, sync.Explainer):
            return []
        answers = self.ce.explain(handles, timeout=self.call_timeout())
        blocked = []
        for handle in handles:
            why = answers.get(handle.id)
            if isinstance(why, Explanation):
                self.jobs[handle.id].reason = str(why)
                _log.debug("%s: %s", handle.id, why)
                if why.blocked:
                    blocked.append(why)
        return blocked

    def _show(self, statuses: Mapping[JobID, JobStatus]) -> None:
        tally: dict[str, int] = {}
        for status in statuses.values():
            tally[status.value] = tally.get(status.value, 0) + 1
        elapsed = time.monotonic() - self.started
        text = ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
        self.say(f"status: {text} ({elapsed:.0f} s of {self.options.timeout_s:g} s)")


def check_queue(
    label: str,
    config_path: Path,
    config: SSHBatchConfig | LocalBatchConfig,
    credentials: CredentialProvider,
    options: Options,
    progress: Progress,
    factory: FacadeFactory,
    workdir: Path,
    stop: QueueStop | None = None,
) -> QueueReport:
    """Run every check on one queue; never raises for a CE problem, it reports it.

    Optional steps probe the facade's capability twins (``intercede.sync.Killable``, ...) the
    way DIRAC probes CEs with ``hasattr``: a missing capability is a skipped check."""
    report = QueueReport(queue=label, config=str(config_path))
    stop = stop or QueueStop()
    started = time.monotonic()
    run: _Run | None = None
    try:
        local = workdir / _SAFE_NAME.sub("_", label)
        local.mkdir(parents=True, exist_ok=True)
        stop.checkpoint()
        ce = factory(config, credentials)
        stop.attach(ce)
        run = _Run(ce, report, options, progress, local, stop)
        try:
            try:
                _procedure(run)
            except (_Interrupted, OperationCancelledError):
                if not stop.requested.is_set():
                    raise
                report.interrupted = True
                report.interrupted_at = now()
                report.record(run.step.name, CheckState.FAILED, "interrupted (Ctrl-C)")
                report.not_reached("interrupted")
                run.say("interrupted: cleaning up")
            finally:
                stop.cleaning()
                _cleanup(run, config_path)
        finally:
            ce.close()
    except _Interrupted:
        report.interrupted = True
        report.interrupted_at = now()
        report.not_reached("interrupted")
    except WHOLE_RESOURCE_ERRORS as exc:
        _stop(report, run.step.name if run else "load", progress, f"{type(exc).__name__}: {exc}")
    except InterCEdeError as exc:
        name = run.step.name if run else "load"
        report.record(name, CheckState.FAILED, f"{type(exc).__name__}: {exc}")
        report.not_reached(f"{name} failed")
        progress.update(label, f"{name} failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - one queue's crash must not lose the others
        if options.debug:
            report.traceback = traceback.format_exc()
        name = run.step.name if run else "load"
        _stop(report, name, progress, f"unexpected {type(exc).__name__}: {exc}")
    report.duration_s = time.monotonic() - started
    report.finished_at = now()
    if report.error is None and not report.interrupted:
        progress.update(label, "passed every check" if report.ok else "finished with issues")
    return report


def _stop(report: QueueReport, step: str, progress: Progress, error: str) -> None:
    """The queue could not be checked any further: an error (exit 2), the step it hit failed,
    every later step not reached."""
    report.error = error
    if step not in report.checks or report.checks[step].state is not CheckState.FAILED:
        report.record(step, CheckState.FAILED, error)
    report.not_reached(f"{step} failed")
    progress.update(report.queue, f"error: {error}")


def _procedure(run: _Run) -> None:
    ce, report, options = run.ce, run.report, run.options
    label = report.queue

    run.step.name = "load"
    run.say("asking for load counts")
    if isinstance(ce, sync.LoadReporter):
        counts = ce.counts(timeout=run.call_timeout())
        text = f"running {counts.running}, waiting {counts.waiting}"
        if counts.queue_state not in (None, "UP"):
            run.queue_down = True
            report.record("load", CheckState.FAILED, f"the queue is {counts.queue_state}: {text}")
        else:
            state = f", queue {counts.queue_state}" if counts.queue_state else ""
            report.record("load", CheckState.PASSED, text + state)
    else:
        report.record("load", CheckState.SKIPPED, "the backend reports no load counts")

    run.step.name = "submit"
    run.stop.checkpoint()
    script = options.script or write_probe_script(run.local)
    run.say(f"submitting {options.copies} job(s) of {script.name}")
    stamps = [uuid.uuid4().hex for _ in range(options.copies)]
    with run.stop.shielded():
        submission = ce.submit(
            SubmissionSpec(executable=str(script), tag="debug-ce"),
            [CopyVars(environment={"DIRAC_PILOT_STAMP": stamp}) for stamp in stamps],
            timeout=run.call_timeout(),
        )
    handles = [submission.handles[i] for i in sorted(submission.handles)]
    for i in sorted(submission.handles):
        run.own(submission.handles[i], "probe", stamps[i])
        _log.info("%s: submitted probe %s", label, submission.handles[i])
    if submission.failures:
        refused = "; ".join(f"copy {i}: {why}" for i, why in sorted(submission.failures.items()))
        report.record("submit", CheckState.FAILED, f"refused {refused}")
    else:
        report.record(
            "submit", CheckState.PASSED, f"{len(handles)} job(s): " + ", ".join(map(str, handles))
        )
    if not handles:
        report.not_reached("nothing was submitted")
        return

    run.step.name = "status"
    run.say(f"waiting for {len(handles)} job(s) to finish")
    statuses, blocked = run.wait(handles)
    missing = sorted({h.id for h in handles} - set(statuses))
    final = [h for h in handles if statuses.get(h.id, JobStatus.UNKNOWN).is_final]
    aborted = {h.id: statuses[h.id].value for h in final if statuses[h.id] is JobStatus.ABORTED}
    if missing:
        report.record("status", CheckState.FAILED, f"no status for {', '.join(missing)}")
    elif blocked:
        why = "; ".join(sorted({str(b) for b in blocked}))
        report.record("status", CheckState.FAILED, f"the scheduler will not start it: {why}")
        report.not_reached("the queue starts no jobs")
        run.say(f"stuck: {why}")
        return
    elif len(final) < len(handles):
        run.explain([h for h in handles if h not in final])
        waiting = {h.id: run.jobs[h.id].reason or statuses[h.id].value for h in handles}
        report.record(
            "status",
            CheckState.FAILED,
            f"not final after {options.timeout_s:g} s: "
            + _pairs({k: v for k, v in waiting.items() if k not in {h.id for h in final}}),
        )
    elif aborted:
        report.record("status", CheckState.FAILED, f"aborted by the resource: {_pairs(aborted)}")
    else:
        tally = sorted(statuses[h.id].value for h in handles)
        report.record(
            "status",
            CheckState.PASSED,
            f"{len(handles)} job(s) final: "
            + ", ".join(f"{tally.count(s)} {s}" for s in sorted(set(tally))),
        )

    run.step.name = "output"
    run.stop.checkpoint()
    if not isinstance(ce, sync.OutputRetriever):
        report.record("output", CheckState.SKIPPED, "the backend cannot return output")
    elif not final:
        report.record("output", CheckState.FAILED, "no job reached a final state")
    else:
        run.say(f"fetching output of {len(final)} job(s)")
        outputs = ce.get_output(final, run.local / "output", timeout=run.call_timeout())
        report.record("output", *_judge_output(final, outputs, run.jobs, run.local / "output"))

    run.step.name = "kill"
    run.stop.checkpoint()
    if not isinstance(ce, sync.Killable):
        report.record("kill", CheckState.SKIPPED, "the backend cannot kill jobs")
    elif run.left_s() <= 0:
        report.record("kill", CheckState.FAILED, f"not reached: --timeout {options.timeout_s:g} s")
    else:
        report.record("kill", *_kill_check(run, ce, label))


def _cleanup(run: _Run, config_path: Path) -> None:
    """Kill what still lives, wait for it to be final, purge everything; or with ``--keep``
    leave it all and say how to remove it. Runs whatever stopped the queue."""
    report, ce = run.report, run.ce
    every = list(run.handles.values())
    if not every:
        if "purge" not in report.checks:
            report.record("purge", CheckState.SKIPPED, "nothing was submitted")
        return
    live = [h for h in every if not JobStatus(run.jobs[h.id].status).is_final]
    if run.options.keep:
        for job in run.jobs.values():
            job.left = True
        report.cleanup_command = cleanup_command(
            _PROG, str(config_path), report.queue, [j.ref for j in run.jobs.values()]
        )
        report.record("purge", CheckState.SKIPPED, f"--keep: {len(every)} job(s) left in place")
        return
    if not isinstance(ce, sync.Purgeable):
        report.record("purge", CheckState.SKIPPED, "the backend cannot purge jobs")
        return
    run.say(f"cleaning up {len(every)} job(s)")
    try:
        if live and isinstance(ce, sync.Killable):
            _log.debug("killing %d job(s) still live before the purge", len(live))
            ce.kill(live, timeout=_CLEANUP_CALL_S)
            run.note(sync.wait_for_jobs(ce, live, deadline_s=_SETTLE_S, first_s=0.25, cap_s=1))
        outcomes = ce.purge(every, timeout=_CLEANUP_CALL_S)
    except Exception as exc:  # noqa: BLE001 - cleanup must report, whatever stopped it
        outcomes = {h.id: OpOutcome(ok=False, reason=f"{type(exc).__name__}: {exc}") for h in every}
    bad = _failed_outcomes(every, outcomes)
    for job_id in bad:
        run.jobs[job_id].left = True
    if bad:
        report.cleanup_command = cleanup_command(
            _PROG, str(config_path), report.queue, [run.jobs[j].ref for j in sorted(bad)]
        )
        report.record("purge", CheckState.FAILED, _pairs(bad))
    else:
        killed = f" ({len(live)} killed first)" if live else ""
        report.record("purge", CheckState.PASSED, f"{len(every)} job(s) purged{killed}")


def _pairs(mapping: Mapping[str, str]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(mapping.items()))


def _failed_outcomes(
    handles: Sequence[JobHandle], outcomes: Mapping[JobID, OpOutcome]
) -> dict[str, str]:
    bad: dict[str, str] = {}
    for handle in handles:
        outcome = outcomes.get(handle.id)
        if outcome is None:
            bad[handle.id] = "missing from the result"
        elif not outcome.ok:
            bad[handle.id] = outcome.reason or "failed"
    return bad


def _judge_output(
    handles: Sequence[JobHandle],
    outputs: Mapping[JobID, JobOutput | OpOutcome],
    jobs: Mapping[JobID, JobReport],
    dest: Path,
) -> tuple[CheckState, str]:
    problems: list[str] = []
    for handle in handles:
        job = jobs[handle.id]
        result = outputs.get(handle.id)
        if result is None:
            problems.append(f"{handle.id}: missing from the result")
            continue
        if isinstance(result, OpOutcome):
            problems.append(f"{handle.id}: {result.reason}")
            continue
        job.stdout = _read_head(result.stdout)
        job.stderr = _read_head(result.stderr)
        job.log = _read_tail(result.log)
        job.files = [_relative(path, dest) for path in result.files]
        if result.stdout is None or not result.stdout.exists():
            problems.append(f"{handle.id}: no stdout came back")
        elif not _contains(result.stdout, job.stamp):
            problems.append(
                f"{handle.id}: stamp {job.stamp} not echoed in stdout "
                f"(searched the first {_SEARCH_BYTES // 1024} KiB)"
            )
    if problems:
        return CheckState.FAILED, "; ".join(problems)
    return CheckState.PASSED, f"{len(handles)} job(s) echoed their stamp"


def _relative(path: Path, dest: Path) -> str:
    try:
        return str(path.relative_to(dest))
    except ValueError:
        return str(path)


def _kill_check(run: _Run, ce: sync.Killable, label: str) -> tuple[CheckState, str]:
    stamp = uuid.uuid4().hex
    run.say("submitting a job to kill")
    with run.stop.shielded():
        submission = run.ce.submit(
            SubmissionSpec(executable=str(write_sleep_script(run.local)), tag="debug-ce"),
            [CopyVars(environment={"DIRAC_PILOT_STAMP": stamp})],
            timeout=run.call_timeout(),
        )
    if 0 not in submission.handles:
        return CheckState.FAILED, f"the job to kill was refused: {submission.failures.get(0)}"
    handle = submission.handles[0]
    run.own(handle, "kill-target", stamp)
    _log.info("%s: submitted kill-target %s", label, handle)
    run.say(f"waiting for {handle.id} to run")
    statuses, blocked = run.wait([handle], frozenset({JobStatus.RUNNING, *FINAL_STATES}))
    was = statuses.get(handle.id, JobStatus.UNKNOWN)
    if blocked:
        return CheckState.FAILED, f"{handle.id} cannot start: {blocked[0]}"
    if was is not JobStatus.RUNNING:
        return CheckState.FAILED, f"{handle.id} was {was.value}, not Running, within --timeout"
    run.stop.checkpoint()
    run.say(f"killing {handle.id} ({was.value})")
    outcome = ce.kill([handle], timeout=run.call_timeout()).get(handle.id)
    final, _ = run.wait([handle])
    now_ = final.get(handle.id, JobStatus.UNKNOWN)
    if outcome is None:
        return CheckState.FAILED, f"{handle.id}: missing from the kill result"
    if not outcome.ok:
        return CheckState.FAILED, f"{handle.id}: kill refused: {outcome.reason}"
    if now_ is not JobStatus.ABORTED:
        return CheckState.FAILED, f"{handle.id} is {now_.value} after the kill, not Aborted"
    return CheckState.PASSED, f"{handle.id} killed while Running, now Aborted"
