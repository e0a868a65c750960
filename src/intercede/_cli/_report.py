"""What one debug-CE run found, and its renderings: DIRAC's summary, text, JSON.

The report is a set of pydantic models: the ``--json`` document is ``RunReport`` dumped as is,
and its JSON schema (``report_schema()``) is published in the docs, so a script reading the
document has a contract (``schema_version`` changes when a field changes meaning). The text
summary uses ``dirac-admin-debug-ce``'s exact wording and layout (``- N% of the queues
correctly ...`` then ``  - <queue>: <message>`` per queue with an issue), so a script written
for DIRAC's output reads ours. Kept free of I/O and of the backend so all of it is unit-tested.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import shlex
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "CHECKS",
    "EXIT_CHECK_FAILED",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "SCHEMA_VERSION",
    "CheckResult",
    "CheckState",
    "JobReport",
    "QueueReport",
    "RunReport",
    "now",
    "render_json",
    "render_text",
    "report_schema",
    "summary_lines",
]

SCHEMA_VERSION = 2
"""Version of the ``--json`` document; bumped when a field is removed or changes meaning."""

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
"""Invalid configuration or an unreachable resource: nothing about the CE itself was learnt."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (SIGINT): the report is partial, what was submitted was cleaned up."""

# Check name -> how DIRAC's summary line completes "N% of the queues correctly ...".
CHECKS: dict[str, str] = {
    "load": "reported CE status",
    "submit": "submitted a job",
    "status": "retrieved job status",
    "output": "fetched job output",
    "kill": "killed a running job",
    "purge": "purged their jobs",
}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CheckState(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Deliberately not run (``--keep``, a backend without the capability): not a failure."""


class CheckResult(BaseModel):
    state: CheckState
    message: str


class JobReport(BaseModel):
    """One submitted job: what an operator needs to find it again and judge it."""

    ref: str
    """``str(JobHandle)``: the compact reference a DIRAC adapter stores."""
    role: Literal["probe", "kill-target"]
    """A probe runs the script and must echo its stamp; the kill target is killed on purpose."""
    stamp: str
    status: str = "Unknown"
    payload_ok: bool | None = None
    """The payload's own result: ``true`` Done, ``false`` Failed, ``null`` not known (DIRAC
    counts both as a retrieved status; this says which)."""
    reason: str | None = None
    """Why the job is where it is, in the scheduler's words (``explain``), when it stuck."""
    stdout: str | None = None
    """The head of the job's stdout."""
    stderr: str | None = None
    log: str | None = None
    """The tail of the scheduler's log for the job (DIRAC's ``getJobLog``), when it keeps one."""
    files: list[str] = Field(default_factory=list)
    left: bool = False
    """Still on the resource after the run (``--keep``, or cleanup failed)."""


class QueueReport(BaseModel):
    queue: str
    config: str
    started_at: dt.datetime = Field(default_factory=now)
    finished_at: dt.datetime | None = None
    duration_s: float = 0.0
    checks: dict[str, CheckResult] = Field(default_factory=dict)
    jobs: list[JobReport] = Field(default_factory=list)
    error: str | None = None
    """A whole-resource failure (unreachable, authentication) or an unexpected error that
    stopped this queue's checks: the run exits 2."""
    interrupted: bool = False
    interrupted_at: dt.datetime | None = None
    """When the queue's work stopped after Ctrl-C (its cleanup came after)."""
    traceback: str | None = None
    """The unexpected error's traceback, kept only with ``--debug``."""
    cleanup_command: str | None = None
    """The command that removes the jobs left on the resource, when some were."""

    def record(self, check: str, state: CheckState, message: str) -> None:
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r}; expected one of {list(CHECKS)}")
        self.checks[check] = CheckResult(state=state, message=message)

    def not_reached(self, reason: str) -> None:
        """Every check not yet recorded failed because an earlier step stopped the queue."""
        for check in CHECKS:
            if check not in self.checks:
                self.record(check, CheckState.FAILED, f"not reached: {reason}")

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and not self.interrupted
            and all(result.state is not CheckState.FAILED for result in self.checks.values())
        )


class RunReport(BaseModel):
    schema_version: int = SCHEMA_VERSION
    tool_version: str = ""
    started_at: dt.datetime = Field(default_factory=now)
    finished_at: dt.datetime | None = None
    duration_s: float = 0.0
    error: str | None = None
    """Set when the run could not start (invalid configuration): no queue was tried."""
    interrupted: bool = False
    queues: list[QueueReport] = Field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.error is not None or any(q.error is not None for q in self.queues):
            return EXIT_ERROR
        if any(not q.ok for q in self.queues):
            return EXIT_CHECK_FAILED
        return EXIT_OK

    def document(self) -> dict[str, Any]:
        """The ``--json`` document: the model plus the derived fields scripts want."""
        data = self.model_dump(mode="json")
        data["ok"] = self.exit_code == EXIT_OK
        data["exit_code"] = self.exit_code
        data["summary"] = [] if self.error is not None else summary_lines(self.queues)
        for queue, dumped in zip(self.queues, data["queues"], strict=True):
            dumped["ok"] = queue.ok
        return data


def report_schema() -> dict[str, Any]:
    """The JSON schema of the ``--json`` document (published as
    ``docs/reference/debug-ce-report.schema.json``)."""
    schema = RunReport.model_json_schema()
    schema["title"] = "intercede-debug-ce --json report"
    props = schema["properties"]
    props["ok"] = {"type": "boolean", "description": "exit_code == 0"}
    props["exit_code"] = {"type": "integer", "enum": [0, 1, 2, 130]}
    props["summary"] = {"type": "array", "items": {"type": "string"}}
    schema["$defs"]["QueueReport"]["properties"]["ok"] = {"type": "boolean"}
    return schema


def summary_lines(queues: Sequence[QueueReport]) -> list[str]:
    """DIRAC's summary: per check, ``- N% of the queues correctly <verb>. Issues with M
    queue(s):`` then ``  - <queue>: <message>`` for each queue with an issue. Queues that
    skipped a check are left out of its percentage."""
    lines: list[str] = []
    for check, verb in CHECKS.items():
        tried = [
            q
            for q in queues
            if q.checks.get(check, CheckResult(state=CheckState.FAILED, message="")).state
            is not CheckState.SKIPPED
        ]
        if not tried:
            lines += [f"- no queue was asked to {verb} (skipped on every queue).", ""]
            continue
        issues = [
            (q.queue, q.checks[check].message if check in q.checks else "not run")
            for q in tried
            if check not in q.checks or q.checks[check].state is CheckState.FAILED
        ]
        percent = int((len(tried) - len(issues)) / len(tried) * 100)
        lines.append(
            f"- {percent}% of the queues correctly {verb}. Issues with {len(issues)} queue(s):"
        )
        lines += [f"  - {name}: {' '.join(message.split())}" for name, message in issues]
        lines.append("")
    return lines


def _indent(text: str, prefix: str = "      | ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines()) or prefix


def _payload(job: JobReport) -> str:
    if job.payload_ok is None:
        return ""
    return ", payload succeeded" if job.payload_ok else ", payload failed"


def render_text(report: RunReport) -> str:
    """The human report printed after the run: per queue, per check, per job, then DIRAC's
    summary. Empty when the run could not start: the error goes to stderr alone, not twice."""
    if report.error is not None:
        return ""
    out: list[str] = []
    for queue in report.queues:
        verdict = "INTERRUPTED" if queue.interrupted else "OK" if queue.ok else "FAILED"
        out.append(f"== {queue.queue} ({queue.config}): {verdict} in {queue.duration_s:.1f} s")
        if queue.error is not None:
            out.append(f"   error: {queue.error}")
        for check in CHECKS:
            result = queue.checks.get(check)
            if result is not None:
                out.append(f"   {check:<7} {result.state.value:<8} {result.message}")
        for job in queue.jobs:
            out.append(f"   job {job.ref}")
            out.append(f"     {job.role}, stamp {job.stamp}, status {job.status}{_payload(job)}")
            if job.reason:
                out.append(f"     why: {job.reason}")
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
        left = [job.ref for job in queue.jobs if job.left]
        if left:
            out.append(f"   {len(left)} job(s) left on the resource; remove them with:")
            out.append(f"     {queue.cleanup_command}")
    out.append("")
    out.extend(summary_lines(report.queues))
    state = " (interrupted: partial report)" if report.interrupted else ""
    out.append(f"total time {report.duration_s:.1f} s, exit status {report.exit_code}{state}")
    return "\n".join(out) + "\n"


def render_json(report: RunReport) -> str:
    """One JSON document, whatever happened, so a script never has to parse text."""
    return json.dumps(report.document(), indent=2) + "\n"


def cleanup_command(prog: str, config: str, queue: str, refs: Sequence[str]) -> str:
    """The shell command that kills and purges ``refs`` (``--purge``), quoted to paste."""
    words = [prog, config, "--queue", queue, "--purge", *refs]
    return " ".join(shlex.quote(w) for w in words)
