"""The debug-CE procedure for one queue (DIRAC's ``dirac-admin-debug-ce``, DC-37), driven
through the sync facade exactly as a DIRAC agent thread would drive it.

Order: load counts → submit stamped copies → poll to a final state → fetch output and find
the stamp → submit a sleeper and kill it while it runs → purge. Each step records one check;
a whole-resource failure (unreachable, rejected credentials, timeout) stops the queue and is
reported as an error, not as a failed check, because nothing was learnt about the CE.
"""

from __future__ import annotations

import re
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from intercede import sync
from intercede.config import LocalBatchConfig, SSHBatchConfig
from intercede.credentials import CredentialProvider
from intercede.errors import (
    AuthenticationError,
    ConfigurationError,
    InterCEdeError,
    OperationTimeoutError,
    ResourceUnavailableError,
)
from intercede.models import (
    CopyVars,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    OpOutcome,
    SubmissionSpec,
)

from ._poll import all_final, wait_for
from ._progress import Progress
from ._report import CheckState, JobReport, QueueReport
from ._script import write_probe_script, write_sleep_script

__all__ = ["WHOLE_RESOURCE_ERRORS", "FacadeFactory", "Options", "check_queue"]

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


FacadeFactory = Callable[[SSHBatchConfig | LocalBatchConfig, CredentialProvider], sync.JobBackend]


@dataclass(frozen=True)
class Options:
    script: Path | None = None
    timeout_s: float = 1800.0
    """Bound on each wait (the probe reaching a final state, the sleeper starting/dying)."""
    copies: int = 1
    keep: bool = False
    poll_cap_s: float = 5.0
    call_timeout_s: float = 300.0
    debug: bool = False
    """Keep the traceback of an unexpected error (``--debug``); otherwise type and message."""


class _Step:
    """Remembers which check is in progress so an unexpected error lands on it."""

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


def check_queue(
    label: str,
    config_path: Path,
    config: SSHBatchConfig | LocalBatchConfig,
    credentials: CredentialProvider,
    options: Options,
    progress: Progress,
    factory: FacadeFactory,
    workdir: Path,
) -> QueueReport:
    """Run every check on one queue; never raises for a CE problem, it reports it.

    Optional steps probe the facade's capability twins (``intercede.sync.Killable``, ...) the
    way DIRAC probes CEs with ``hasattr``: a missing capability is a skipped check."""
    report = QueueReport(label=label, config_path=str(config_path))
    step = _Step()
    started = time.monotonic()
    try:
        local = workdir / _SAFE_NAME.sub("_", label)
        local.mkdir(parents=True, exist_ok=True)
        ce = factory(config, credentials)
        try:
            _procedure(ce, report, options, progress, local, step)
        finally:
            ce.close()
    except WHOLE_RESOURCE_ERRORS as exc:
        _stop(report, step, progress, f"{type(exc).__name__}: {exc}")
    except InterCEdeError as exc:
        report.record(step.name, CheckState.FAILED, f"{type(exc).__name__}: {exc}")
        report.not_reached(f"{step.name} failed")
        progress.update(label, f"{step.name} failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - one queue's crash must not lose the others
        if options.debug:
            report.traceback = traceback.format_exc()
        _stop(report, step, progress, f"unexpected {type(exc).__name__}: {exc}")
    report.duration_s = time.monotonic() - started
    if report.error is None:
        progress.update(label, "passed every check" if report.ok else "finished with issues")
    return report


def _stop(report: QueueReport, step: _Step, progress: Progress, error: str) -> None:
    """The queue could not be checked any further: an error (exit 2), the step it hit failed,
    every later step not reached."""
    report.error = error
    report.record(step.name, CheckState.FAILED, error)
    report.not_reached(f"{step.name} failed")
    progress.update(report.label, f"error: {error}")


def _procedure(
    ce: sync.JobBackend,
    report: QueueReport,
    options: Options,
    progress: Progress,
    local: Path,
    step: _Step,
) -> None:
    label, call = report.label, options.call_timeout_s

    step.name = "load"
    progress.update(label, "asking for load counts")
    if isinstance(ce, sync.LoadReporter):
        counts = ce.counts(timeout=call)
        report.record(
            "load",
            CheckState.PASSED,
            f"running {counts.running}, waiting {counts.waiting}",
        )
    else:
        report.record("load", CheckState.SKIPPED, "the backend reports no load counts")

    step.name = "submit"
    script = options.script or write_probe_script(local)
    progress.update(label, f"submitting {options.copies} job(s) of {script.name}")
    stamps = [uuid.uuid4().hex for _ in range(options.copies)]
    submission = ce.submit(
        SubmissionSpec(executable=str(script), tag="debug-ce"),
        [CopyVars(environment={"DIRAC_PILOT_STAMP": stamp}) for stamp in stamps],
        timeout=call,
    )
    handles = [submission.handles[i] for i in sorted(submission.handles)]
    jobs = {
        submission.handles[i].id: JobReport(str(submission.handles[i]), stamps[i])
        for i in sorted(submission.handles)
    }
    report.jobs.extend(jobs.values())
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

    step.name = "status"
    progress.update(label, f"waiting for {len(handles)} job(s) to finish")
    statuses, finished = wait_for(
        lambda: _poll_and_show(ce, handles, progress, label, call),
        all_final,
        timeout_s=options.timeout_s,
        cap_s=options.poll_cap_s,
    )
    for job_id, status in statuses.items():
        if job_id in jobs:
            jobs[job_id].status = status.value
    not_done = {job_id: s.value for job_id, s in statuses.items() if s is not JobStatus.DONE}
    missing = sorted({h.id for h in handles} - set(statuses))
    if missing:
        report.record("status", CheckState.FAILED, f"no status for {', '.join(missing)}")
    elif not finished:
        report.record(
            "status",
            CheckState.FAILED,
            f"not final after {options.timeout_s:g} s: {_pairs(not_done)}",
        )
    elif not_done:
        report.record("status", CheckState.FAILED, f"finished but not Done: {_pairs(not_done)}")
    else:
        report.record("status", CheckState.PASSED, f"{len(handles)} job(s) Done")

    step.name = "output"
    final = [h for h in handles if h.id in statuses and statuses[h.id].is_final]
    if not isinstance(ce, sync.OutputRetriever):
        report.record("output", CheckState.SKIPPED, "the backend cannot return output")
    elif not final:
        report.record("output", CheckState.FAILED, "no job reached a final state")
    else:
        progress.update(label, f"fetching output of {len(final)} job(s)")
        outputs = ce.get_output(final, local / "output", timeout=call)
        report.record("output", *_judge_output(final, outputs, jobs, local / "output"))

    step.name = "kill"
    if isinstance(ce, sync.Killable):
        killable = ce
        report.record(
            "kill",
            *_kill_check(
                ce,
                lambda handles: killable.kill(handles, timeout=options.call_timeout_s),
                report,
                options,
                progress,
                local,
            ),
        )
    else:
        report.record("kill", CheckState.SKIPPED, "the backend cannot kill jobs")

    step.name = "purge"
    every = [JobHandle.parse(job.ref) for job in report.jobs]
    if options.keep:
        report.record("purge", CheckState.SKIPPED, f"--keep: {len(every)} job(s) left in place")
    elif not isinstance(ce, sync.Purgeable):
        report.record("purge", CheckState.SKIPPED, "the backend cannot purge jobs")
    else:
        progress.update(label, f"purging {len(every)} job(s)")
        outcomes = ce.purge(every, timeout=call)
        bad = _failed_outcomes(every, outcomes)
        if bad:
            report.record("purge", CheckState.FAILED, _pairs(bad))
        else:
            report.record("purge", CheckState.PASSED, f"{len(every)} job(s) purged")


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


def _poll_and_show(
    ce: sync.JobBackend, handles: Sequence[JobHandle], progress: Progress, label: str, call: float
) -> Mapping[JobID, JobStatus]:
    statuses = ce.get_status(handles, timeout=call)
    tally: dict[str, int] = {}
    for status in statuses.values():
        tally[status.value] = tally.get(status.value, 0) + 1
    progress.update(label, "status: " + ", ".join(f"{n} {s}" for s, n in sorted(tally.items())))
    return statuses


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


def _kill_check(
    ce: sync.JobBackend,
    kill: Callable[[Sequence[JobHandle]], Mapping[JobID, OpOutcome]],
    report: QueueReport,
    options: Options,
    progress: Progress,
    local: Path,
) -> tuple[CheckState, str]:
    label, call = report.label, options.call_timeout_s
    stamp = uuid.uuid4().hex
    progress.update(label, "submitting a job to kill")
    submission = ce.submit(
        SubmissionSpec(executable=str(write_sleep_script(local)), tag="debug-ce"),
        [CopyVars(environment={"DIRAC_PILOT_STAMP": stamp})],
        timeout=call,
    )
    if 0 not in submission.handles:
        return CheckState.FAILED, f"the job to kill was refused: {submission.failures.get(0)}"
    handle = submission.handles[0]
    job = JobReport(str(handle), stamp)
    report.jobs.append(job)
    progress.update(label, f"waiting for {handle.id} to run")
    statuses, _ = wait_for(
        lambda: ce.get_status([handle], timeout=call),
        lambda s: s.get(handle.id) is JobStatus.RUNNING or all_final(s),
        timeout_s=options.timeout_s,
        cap_s=options.poll_cap_s,
    )
    was = statuses.get(handle.id, JobStatus.UNKNOWN)
    progress.update(label, f"killing {handle.id} ({was.value})")
    outcome = kill([handle]).get(handle.id)
    final, _ = wait_for(
        lambda: ce.get_status([handle], timeout=call),
        all_final,
        timeout_s=options.timeout_s,
        cap_s=options.poll_cap_s,
    )
    now = final.get(handle.id, JobStatus.UNKNOWN)
    job.status = now.value
    if outcome is None:
        return CheckState.FAILED, f"{handle.id}: missing from the kill result"
    if not outcome.ok:
        return CheckState.FAILED, f"{handle.id}: kill refused: {outcome.reason}"
    if was is not JobStatus.RUNNING:
        return CheckState.FAILED, f"{handle.id} was {was.value}, not Running, when killed"
    if now is not JobStatus.ABORTED:
        return CheckState.FAILED, f"{handle.id} is {now.value} after the kill, not Aborted"
    return CheckState.PASSED, f"{handle.id} killed while Running, now Aborted"
