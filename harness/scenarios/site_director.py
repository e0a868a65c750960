"""SiteDirector's submission and monitoring cycle through the sync facade.

Reproduces DC-33 (the per-queue cycle: slots, bulk submit, record refs and stamps, monitor
transient pilots by stored refs), DC-23 (``available()`` slot math, here caller policy over
``counts()``), DC-05 (``PilotStampDict``), DC-06 (one ``uuid4().hex`` stamp per pilot, seen by
the pilot as ``DIRAC_PILOT_STAMP``) and DC-07 (the executable is deleted right after submit:
``ExecutableToKeep`` is obsolete because the backend staged its own copy).

On top of DIRAC it checks what IC-ADR-003 promises for per-copy secrets: each pilot gets its
own secret file of mode 0600, and the value appears neither in its environment nor in what
the scheduler shows (``scontrol show job``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from intercede import sync
from intercede.models import (
    HANDLE_MAX_LENGTH,
    CopyVars,
    JobHandle,
    JobOutput,
    JobStatus,
    OpOutcome,
    SubmissionSpec,
)

from ._context import ScenarioContext, missing
from ._poll import History, all_final, poll_until
from ._result import Recorder, ScenarioResult, run_scenario

__all__ = [
    "DC_IDS",
    "PILOT_SCRIPT",
    "SlotPolicy",
    "available_slots",
    "check_progression",
    "parse_pilot_report",
    "run",
]

DC_IDS = ("DC-33", "DC-23", "DC-05", "DC-06", "DC-07")
SECRET_NAME = "PILOT_TOKEN"  # noqa: S105 - the variable name, not a secret
_STAMP = re.compile(r"^[0-9a-f]{32}$")
_ORDER = {
    JobStatus.SUBMITTED: 0,
    JobStatus.WAITING: 1,
    JobStatus.RUNNING: 2,
    JobStatus.DONE: 3,
    JobStatus.FAILED: 3,
    JobStatus.ABORTED: 3,
}

# The pilot reports on its own secret without ever printing it: mode, digest, and whether the
# value is visible anywhere in its environment. It sleeps so monitoring can see it Running.
PILOT_SCRIPT = f"""\
#!/bin/sh
echo "stamp=${{DIRAC_PILOT_STAMP}}"
f="${{INTERCEDE_SECRET_{SECRET_NAME}:-}}"
if [ -z "$f" ] || [ ! -f "$f" ]; then echo "secret=missing"; exit 3; fi
echo "secret_mode=$(stat -c %a "$f")"
echo "secret_sha256=$(sha256sum "$f" | cut -d' ' -f1)"
if env | grep -qF -- "$(cat "$f")"; then echo "secret_in_env=yes"; else echo "secret_in_env=no"; fi
sleep 6
echo "pilot done on $(hostname)"
"""


@dataclass(frozen=True)
class SlotPolicy:
    """The CS limits SiteDirector applies per queue (DC-23, DC-33)."""

    max_total_jobs: int = 4
    max_waiting_jobs: int = 3
    max_pilots_to_submit: int = 100
    demand: int = 10
    """Jobs waiting in the task queues for this queue."""


def available_slots(running: int, waiting: int, max_total: int, max_waiting: int) -> int:
    """DIRAC's ``available()`` (DC-23): free pilot slots from our own counts and CS limits."""
    if min(running, waiting, max_total, max_waiting) < 0:
        raise ValueError("counts and limits must not be negative")
    total = running + waiting
    if total >= max_total:
        return 0
    if waiting >= max_waiting:
        return 0
    add = max_waiting - waiting
    if total + add > max_total:
        add = max_total - total
    return add


def check_progression(seen: list[JobStatus]) -> str | None:
    """Why a sequence of observed statuses is impossible, or ``None`` when it is plausible."""
    if not seen:
        return "no status observed"
    if JobStatus.UNKNOWN in seen:
        return f"went through Unknown: {[s.value for s in seen]}"
    ranks = [_ORDER[s] for s in seen]
    if ranks != sorted(ranks) or sum(1 for s in seen if s.is_final) > 1:
        return f"went backwards: {[s.value for s in seen]}"
    return None


def parse_pilot_report(text: str) -> dict[str, str]:
    """The pilot's ``key=value`` lines."""
    report = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            report[key] = value.strip()
    return report


def run(ctx: ScenarioContext, policy: SlotPolicy = SlotPolicy()) -> ScenarioResult:
    return run_scenario("SiteDirector", DC_IDS, lambda rec: _body(ctx, policy, rec))


def _body(ctx: ScenarioContext, policy: SlotPolicy, rec: Recorder) -> None:
    queue = ctx.queues[0]
    local = ctx.local_dir("site-director")
    # Our own job name, so counts() are THIS director's pilots only (LoadCounts contract).
    with ctx.facade(queue, job_name=f"sd{uuid.uuid4().hex[:10]}") as ce:
        if not isinstance(ce, sync.LoadReporter):
            raise missing(ce, "LoadReporter", "report load counts")
        loads = ce
        counts = loads.counts(timeout=60)
        slots = available_slots(
            counts.running, counts.waiting, policy.max_total_jobs, policy.max_waiting_jobs
        )
        expected = min(policy.max_waiting_jobs, policy.max_total_jobs)
        rec.check(
            "slots",
            (counts.running, counts.waiting, slots) == (0, 0, expected),
            f"counts R={counts.running} W={counts.waiting} → available() = {slots} "
            f"(MaxTotalJobs={policy.max_total_jobs}, MaxWaitingJobs={policy.max_waiting_jobs})",
        )
        to_submit = min(policy.max_pilots_to_submit, slots, policy.demand)
        if to_submit == 0:
            rec.failed("submit", "no slot to submit into")
            return

        # Submit: one stamp (identifier) and one secret (credential) per pilot, in bulk.
        executable = local / "pilot-wrapper.sh"
        executable.write_text(PILOT_SCRIPT)
        executable.chmod(0o700)
        stamps = [uuid.uuid4().hex for _ in range(to_submit)]
        tokens = [secrets.token_hex(24).encode() for _ in range(to_submit)]
        copies = [
            CopyVars(environment={"DIRAC_PILOT_STAMP": s}, secrets={SECRET_NAME: t})
            for s, t in zip(stamps, tokens, strict=True)
        ]
        submission = ce.submit(
            SubmissionSpec(executable=str(executable), tag=f"{queue}@harness"),
            copies,
            timeout=120,
        )
        executable.unlink()  # DC-07: nothing to keep, the backend staged its own copy
        rec.check(
            "submit",
            len(submission.handles) == to_submit
            and not submission.failures
            and not executable.exists(),
            f"{len(submission.handles)}/{to_submit} pilots submitted in one call, executable "
            "deleted right after"
            + (f", refused: {dict(submission.failures)}" if submission.failures else ""),
        )
        pilot_stamp_dict = {
            str(handle): copies[i].environment["DIRAC_PILOT_STAMP"]
            for i, handle in submission.handles.items()
        }
        secret_by_ref = {str(h): tokens[i] for i, h in submission.handles.items()}
        rec.check(
            "PilotStampDict",
            len(pilot_stamp_dict) == len(submission.handles)
            and len(set(pilot_stamp_dict.values())) == len(pilot_stamp_dict)
            and all(_STAMP.match(s) for s in pilot_stamp_dict.values())
            and all(len(ref) <= HANDLE_MAX_LENGTH for ref in pilot_stamp_dict),
            f"{len(pilot_stamp_dict)} refs (≤ {HANDLE_MAX_LENGTH} chars) → unique 32-hex stamps",
        )
        # The "PilotAgentsDB": only strings survive between cycles.
        pilot_db: dict[str, JobStatus] = dict.fromkeys(pilot_stamp_dict, JobStatus.SUBMITTED)

        # Next cycle, while the pilots live: our counts now hold them, fewer slots remain.
        counts2 = loads.counts(timeout=60)
        slots2 = available_slots(
            counts2.running, counts2.waiting, policy.max_total_jobs, policy.max_waiting_jobs
        )
        rec.check(
            "slots-next-cycle",
            counts2.total == to_submit and slots2 <= policy.max_total_jobs - to_submit,
            f"counts R={counts2.running} W={counts2.waiting} (expected R+W={to_submit}) → "
            f"available() = {slots2}",
        )

        with rec.step("secret-not-in-scheduler"):
            _check_scheduler_view(ctx, rec, submission.handles.values(), tokens)

        # Monitoring by stored refs only.
        handles = [JobHandle.parse(ref) for ref in pilot_db]
        history: History = {}
        statuses, finished = poll_until(
            ce, handles, all_final, timeout_s=ctx.timeout_s, cap_s=1.0, history=history
        )
        for handle in handles:
            status = statuses.get(handle.id, JobStatus.UNKNOWN)
            if status is not pilot_db[str(handle)]:
                pilot_db[str(handle)] = status
        rec.check(
            "monitoring",
            finished and all(s is JobStatus.DONE for s in pilot_db.values()),
            "final statuses: " + ", ".join(sorted(s.value for s in pilot_db.values())),
        )
        bad = {h.id: check_progression(history.get(h.id, [])) for h in handles}
        rec.check(
            "transitions",
            not any(bad.values())
            and all(JobStatus.RUNNING in history.get(h.id, []) for h in handles),
            "; ".join(
                f"{h.id}: {' → '.join(s.value for s in history.get(h.id, []))}"
                + (f" ({bad[h.id]})" if bad[h.id] else "")
                for h in handles
            ),
        )

        if not isinstance(ce, sync.OutputRetriever):
            raise missing(ce, "OutputRetriever", "return output")
        outputs = ce.get_output(handles, local / "output", timeout=120)
        _check_pilot_reports(rec, handles, outputs, pilot_stamp_dict, secret_by_ref)

        if not isinstance(ce, sync.Purgeable):
            raise missing(ce, "Purgeable", "purge")
        outcomes = ce.purge(handles, timeout=120)
        rec.check(
            "purge",
            all(outcomes.get(h.id) is not None and outcomes[h.id].ok for h in handles),
            f"{sum(1 for o in outcomes.values() if o.ok)}/{len(handles)} purged",
        )


def _check_scheduler_view(
    ctx: ScenarioContext,
    rec: Recorder,
    handles: Iterable[JobHandle],
    tokens: list[bytes],
) -> None:
    """``scontrol show job`` is what any site user can read: the secrets must not be there."""
    shown = []
    for handle in handles:
        code, text = ctx.on_controller(["scontrol", "show", "job", "-dd", handle.id])
        if code != 0 or "JobId=" not in text:
            rec.failed("secret-not-in-scheduler", f"scontrol show job {handle.id}: {text.strip()}")
            return
        shown.append(text)
    leaked = [i for i, t in enumerate(tokens) if any(t.decode() in text for text in shown)]
    rec.check(
        "secret-not-in-scheduler",
        not leaked,
        f"scontrol show job -dd for {len(shown)} pilots: "
        + (f"secrets of copies {leaked} visible" if leaked else "no secret visible"),
    )


def _check_pilot_reports(
    rec: Recorder,
    handles: list[JobHandle],
    outputs: Mapping[str, JobOutput | OpOutcome],
    pilot_stamp_dict: Mapping[str, str],
    secret_by_ref: Mapping[str, bytes],
) -> None:
    problems = []
    for handle in handles:
        ref = str(handle)
        result = outputs.get(handle.id)
        if not isinstance(result, JobOutput) or result.stdout is None:
            problems.append(f"{handle.id}: no output ({result})")
            continue
        text = result.stdout.read_text(errors="replace")
        report = parse_pilot_report(text)
        secret = secret_by_ref[ref]
        expected = {
            "stamp": pilot_stamp_dict[ref],
            "secret_mode": "600",
            "secret_sha256": hashlib.sha256(secret).hexdigest(),
            "secret_in_env": "no",
        }
        wrong = {k: report.get(k) for k, v in expected.items() if report.get(k) != v}
        if wrong:
            problems.append(f"{handle.id}: {wrong}")
        streams = [p for p in (result.stdout, result.stderr, result.log) if p is not None]
        if any(secret.decode() in p.read_text(errors="replace") for p in streams):
            problems.append(f"{handle.id}: secret value in the job's streams")
    rec.check(
        "pilot-reports",
        not problems,
        "; ".join(problems)
        or f"{len(handles)} pilots: own stamp echoed, secret file mode 600 with the right "
        "content, secret absent from the environment",
    )
