"""What one debug-CE run found, and its three renderings: summary lines, text, JSON.

Kept free of I/O and of the backend so the exact wording operators grep for (DIRAC's
"N% of the queues correctly ...") and the JSON document scripts parse are unit-tested.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CHECKS",
    "EXIT_CHECK_FAILED",
    "EXIT_ERROR",
    "EXIT_OK",
    "CheckResult",
    "CheckState",
    "JobReport",
    "QueueReport",
    "RunReport",
    "render_json",
    "render_text",
    "summary_lines",
]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
"""Invalid configuration or an unreachable resource: nothing about the CE itself was learnt."""

# Check name -> how the summary line completes "N% of the queues ...".
CHECKS: dict[str, str] = {
    "load": "reported their load",
    "submit": "correctly submitted",
    "status": "ran their jobs to Done",
    "output": "returned the stamped output",
    "kill": "killed a running job",
    "purge": "purged their jobs",
}


class CheckState(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Deliberately not run (``--keep``, a backend without the capability): not a failure."""


@dataclass(frozen=True)
class CheckResult:
    state: CheckState
    message: str


@dataclass
class JobReport:
    """One submitted copy: what an operator needs to find it again and judge it."""

    ref: str
    stamp: str
    status: str = "Unknown"
    stdout: str | None = None
    """The head of the job's stdout."""
    stderr: str | None = None
    log: str | None = None
    """The tail of the scheduler's log for the job (DIRAC's ``getJobLog``), when it keeps one."""
    files: list[str] = field(default_factory=list)


@dataclass
class QueueReport:
    label: str
    config_path: str
    checks: dict[str, CheckResult] = field(default_factory=dict)
    jobs: list[JobReport] = field(default_factory=list)
    error: str | None = None
    """A whole-resource failure (unreachable, authentication, timeout) or an unexpected error
    that stopped this queue's checks: the run exits 2."""
    duration_s: float = 0.0
    traceback: str | None = None
    """The unexpected error's traceback, kept only with ``--debug``."""

    def record(self, check: str, state: CheckState, message: str) -> None:
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r}; expected one of {list(CHECKS)}")
        self.checks[check] = CheckResult(state, message)

    def not_reached(self, reason: str) -> None:
        """Every check not yet recorded failed because an earlier step stopped the queue."""
        for check in CHECKS:
            if check not in self.checks:
                self.record(check, CheckState.FAILED, f"not reached: {reason}")

    @property
    def ok(self) -> bool:
        return self.error is None and all(
            result.state is not CheckState.FAILED for result in self.checks.values()
        )


@dataclass
class RunReport:
    queues: list[QueueReport]
    duration_s: float = 0.0
    error: str | None = None
    """Set when the run could not start (invalid configuration): no queue was tried."""

    @property
    def exit_code(self) -> int:
        if self.error is not None or any(q.error is not None for q in self.queues):
            return EXIT_ERROR
        if any(not q.ok for q in self.queues):
            return EXIT_CHECK_FAILED
        return EXIT_OK


def summary_lines(queues: Sequence[QueueReport]) -> list[str]:
    """One line per check, in DIRAC's words, naming the queues with issues."""
    lines = []
    for check, verb in CHECKS.items():
        tried = [
            q
            for q in queues
            if q.checks.get(check, CheckResult(CheckState.FAILED, "")).state
            is not CheckState.SKIPPED
        ]
        if not tried:
            lines.append(f"{check}: skipped on every queue")
            continue
        failed = [
            q.label
            for q in tried
            if check not in q.checks or q.checks[check].state is CheckState.FAILED
        ]
        percent = round(100 * (len(tried) - len(failed)) / len(tried))
        line = f"{percent}% of the queues {verb}"
        if failed:
            line += f"; issues with {len(failed)} queue(s): {', '.join(failed)}"
        skipped = len(queues) - len(tried)
        if skipped:
            line += f" ({skipped} skipped)"
        lines.append(line)
    return lines


def _indent(text: str, prefix: str = "      | ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines()) or prefix


def render_text(report: RunReport) -> str:
    """The human report printed after the run: per queue, per check, per job, then summary.

    Empty when the run could not start: the error goes to stderr alone, not twice."""
    if report.error is not None:
        return ""
    out: list[str] = []
    for queue in report.queues:
        verdict = "OK" if queue.ok else "FAILED"
        out.append(f"== {queue.label} ({queue.config_path}): {verdict} in {queue.duration_s:.1f} s")
        if queue.error is not None:
            out.append(f"   error: {queue.error}")
        for check in CHECKS:
            result = queue.checks.get(check)
            if result is not None:
                out.append(f"   {check:<7} {result.state.value:<8} {result.message}")
        for job in queue.jobs:
            out.append(f"   job {job.ref}")
            out.append(f"     stamp {job.stamp}, status {job.status}")
            if job.stdout is not None:
                out.append("     stdout:")
                out.append(_indent(job.stdout))
            if job.stderr:
                out.append("     stderr:")
                out.append(_indent(job.stderr))
            if job.log:
                out.append("     scheduler log (tail):")
                out.append(_indent(job.log))
            if job.files:
                out.append(f"     files: {', '.join(job.files)}")
    out.append("")
    out.extend(summary_lines(report.queues))
    out.append(f"total time {report.duration_s:.1f} s, exit status {report.exit_code}")
    return "\n".join(out) + "\n"


def _queue_json(queue: QueueReport) -> dict[str, Any]:
    return {
        "queue": queue.label,
        "config": queue.config_path,
        "ok": queue.ok,
        "error": queue.error,
        "duration_s": round(queue.duration_s, 3),
        "checks": {
            name: {"state": result.state.value, "message": result.message}
            for name, result in queue.checks.items()
        },
        "jobs": [
            {
                "ref": job.ref,
                "stamp": job.stamp,
                "status": job.status,
                "stdout": job.stdout,
                "stderr": job.stderr,
                "log": job.log,
                "files": job.files,
            }
            for job in queue.jobs
        ],
    }


def render_json(report: RunReport) -> str:
    """One JSON document, whatever happened, so a script never has to parse text."""
    document = {
        "ok": report.exit_code == EXIT_OK,
        "exit_code": report.exit_code,
        "error": report.error,
        "duration_s": round(report.duration_s, 3),
        "summary": [] if report.error is not None else summary_lines(report.queues),
        "queues": [_queue_json(q) for q in report.queues],
    }
    return json.dumps(document, indent=2) + "\n"
