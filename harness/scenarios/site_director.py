"""SiteDirector's submission and monitoring cycle through the sync facade.

Reproduces DC-33 (the per-queue cycle: slots, bulk submit, record refs and stamps, monitor
transient pilots by stored refs), DC-23 (``available()`` slot math, here caller policy over
``counts()``), DC-05 (``PilotStampDict``), DC-06 (one ``uuid4().hex`` stamp per pilot, seen by
the pilot as ``DIRAC_PILOT_STAMP``), DC-07 (the executable is deleted right after submit:
``ExecutableToKeep`` is obsolete because the backend staged its own copy), DC-12 (a status
answer without a pilot's key leaves its status unchanged; interCEde answers every key, which
is checked) and DC-15 (a pilot that stays ``Unknown`` too long is recorded ``Aborted`` by the
director, and an aborted pilot pauses submission to its queue for ``FailedQueueCycleFactor``
cycles). Ageing and pausing are caller policy, as in DIRAC: the backend only answers
``Unknown`` for a job it cannot find (here a stale reference from an earlier incarnation).

On top of DIRAC it checks what IC-ADR-003 promises for per-copy secrets: each pilot gets its
own secret file of mode 0600, and the value appears neither in what the scheduler shows
(``scontrol show job -dd``, ``scontrol write batch_script``) nor in the environment the job
itself sees (``env`` captured by the pilot), nor in its streams.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from intercede import sync
from intercede.models import (
    HANDLE_MAX_LENGTH,
    CopyVars,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    OpOutcome,
    OutputMember,
    OutputSpec,
    SubmissionSpec,
)

from ._context import History, ScenarioContext, missing, record_history
from ._result import Recorder, ScenarioResult, run_scenario

__all__ = [
    "DC_IDS",
    "DIRAC_UNKNOWN_ABORT_AFTER_S",
    "ENV_FILE",
    "PILOT_SCRIPT",
    "FailedQueues",
    "MonitorPolicy",
    "PilotRecord",
    "SlotPolicy",
    "StatusUpdate",
    "available_slots",
    "check_progression",
    "monitor_queue",
    "parse_pilot_report",
    "run",
    "update_statuses",
]

DC_IDS = ("DC-33", "DC-23", "DC-05", "DC-06", "DC-07", "DC-12", "DC-15")
DIRAC_UNKNOWN_ABORT_AFTER_S = 3600.0
"""SiteDirector's fixed age after which a pilot still ``Unknown`` is recorded ``Aborted``."""
SECRET_NAME = "PILOT_TOKEN"  # noqa: S105 - the variable name, not a secret
ENV_FILE = "pilot-env.txt"
"""Where the pilot writes ``env``: the environment as the job itself sees it."""
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
# value is visible anywhere in its environment; it leaves that environment in a file for the
# director to inspect. It sleeps so monitoring can see it Running.
PILOT_SCRIPT = f"""\
#!/bin/sh
echo "stamp=${{DIRAC_PILOT_STAMP}}"
env > {ENV_FILE}
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


@dataclass(frozen=True)
class MonitorPolicy:
    """How long ``Unknown`` may last and how long an aborted pilot pauses its queue (DC-15)."""

    unknown_abort_after_s: float = DIRAC_UNKNOWN_ABORT_AFTER_S
    failed_queue_cycle_factor: int = 10

    def __post_init__(self) -> None:
        if self.unknown_abort_after_s < 0:
            raise ValueError("unknown_abort_after_s must not be negative")
        if self.failed_queue_cycle_factor < 1:
            raise ValueError("failed_queue_cycle_factor must be at least 1")


@dataclass
class PilotRecord:
    """One PilotAgentsDB row as far as monitoring goes: strings and times only."""

    queue: str
    status: JobStatus
    last_update: float
    """When ``status`` last changed (DIRAC's ``LastUpdateTime``), on the director's clock."""
    changes: list[tuple[JobStatus, float]] = field(default_factory=list)
    """Every status recorded, with its time (the record's own history, for the report)."""


@dataclass
class StatusUpdate:
    """One monitoring cycle of one queue."""

    answers: Mapping[JobID, JobStatus]
    changed: dict[str, JobStatus] = field(default_factory=dict)
    """Ref → the status to record (a changed answer, or Aborted by ageing)."""
    missing: list[str] = field(default_factory=list)
    """Refs the answer had no key for: their status stays as it was (DC-12)."""

    @property
    def aborted(self) -> list[str]:
        return [ref for ref, status in self.changed.items() if status is JobStatus.ABORTED]


class FailedQueues:
    """DIRAC's ``failedQueues`` counter with ``FailedQueueCycleFactor``: a cycle with aborted
    pilots bumps its queue's count, and a queue whose count is not a multiple of the factor
    skips submission that cycle (bumping it again), so it pauses ``factor - 1`` cycles."""

    def __init__(self, cycle_factor: int = 10) -> None:
        if cycle_factor < 1:
            raise ValueError("cycle_factor must be at least 1")
        self.cycle_factor = cycle_factor
        self.counts: dict[str, int] = {}

    def record_failure(self, queue: str) -> None:
        self.counts[queue] = self.counts.get(queue, 0) + 1

    def may_submit(self, queue: str) -> bool:
        """Whether ``queue`` gets pilots this cycle; a refusal counts as one paused cycle."""
        count = self.counts.get(queue, 0)
        if count % self.cycle_factor == 0:
            return True
        self.counts[queue] = count + 1
        return False


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


def update_statuses(
    pilots: Mapping[str, PilotRecord],
    answers: Mapping[JobID, JobStatus],
    now: float,
    abort_after_s: float,
) -> StatusUpdate:
    """DIRAC's ``_getUpdatedPilotStatus`` over interCEde answers keyed by ``handle.id``.

    A changed status is recorded; a missing key keeps the old status (DIRAC's
    ``pilotCEDict.get(ref, oldStatus)``); ``Unknown`` answered again more than
    ``abort_after_s`` after it was recorded becomes ``Aborted``. Nothing is written back."""
    update = StatusUpdate(answers=answers)
    for ref, pilot in pilots.items():
        answer = answers.get(JobHandle.parse(ref).id)
        if answer is None:
            update.missing.append(ref)
            continue
        if answer is not pilot.status:
            update.changed[ref] = answer
        elif answer is JobStatus.UNKNOWN and now - pilot.last_update > abort_after_s:
            update.changed[ref] = JobStatus.ABORTED
    return update


def monitor_queue(
    ce: sync.StatusReporter,
    queue: str,
    pilot_db: Mapping[str, PilotRecord],
    policy: MonitorPolicy,
    failed: FailedQueues,
    now: float,
) -> StatusUpdate:
    """One ``_monitorPilotsPerQueue``: ask for this queue's transient pilots by their stored
    refs, record the changes, and pause the queue when a pilot was aborted."""
    transient = {
        ref: pilot
        for ref, pilot in pilot_db.items()
        if pilot.queue == queue and not pilot.status.is_final
    }
    if not transient:
        return StatusUpdate(answers={})
    answers = ce.get_status([JobHandle.parse(ref) for ref in transient], timeout=60)
    update = update_statuses(transient, answers, now, policy.unknown_abort_after_s)
    if update.aborted:
        failed.record_failure(queue)
    for ref, status in update.changed.items():
        pilot = transient[ref]
        pilot.status, pilot.last_update = status, now
        pilot.changes.append((status, now))
    return update


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


def run(
    ctx: ScenarioContext,
    policy: SlotPolicy = SlotPolicy(),
    monitor: MonitorPolicy = MonitorPolicy(unknown_abort_after_s=2.0),
    clock: Callable[[], float] = time.monotonic,
) -> ScenarioResult:
    """``monitor`` shortens DIRAC's hour of ``Unknown`` to seconds so ageing happens in a run."""
    return run_scenario("SiteDirector", DC_IDS, lambda rec: _body(ctx, policy, monitor, clock, rec))


def _stale_ref(template: JobHandle) -> str:
    """A well-formed reference to a job that never existed on this cluster (a pilot recorded
    by an earlier incarnation of the site): the backend can only answer Unknown for it."""
    return str(
        JobHandle(
            backend=template.backend,
            resource=template.resource,
            id="999999_0",
            routing="0" * 32 + "/0",
        )
    )


def _body(
    ctx: ScenarioContext,
    policy: SlotPolicy,
    monitor: MonitorPolicy,
    clock: Callable[[], float],
    rec: Recorder,
) -> None:
    queue = ctx.queues[0]
    local = ctx.local_dir("site-director")
    failed = FailedQueues(monitor.failed_queue_cycle_factor)
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
            SubmissionSpec(
                executable=str(executable),
                tag=f"{queue}@harness",
                outputs=OutputSpec(members=(OutputMember(pattern=ENV_FILE),)),
            ),
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
        if not submission.handles:
            return
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
        # The "PilotAgentsDB": only strings and times survive between cycles. It also holds a
        # pilot an earlier incarnation of the site left behind, still transient.
        start = clock()
        pilot_db = {
            ref: PilotRecord(queue, JobStatus.SUBMITTED, start, [(JobStatus.SUBMITTED, start)])
            for ref in pilot_stamp_dict
        }
        stale = _stale_ref(submission.handles[min(submission.handles)])
        pilot_db[stale] = PilotRecord(
            queue, JobStatus.SUBMITTED, start, [(JobStatus.SUBMITTED, start)]
        )

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

        # Monitoring cycles by stored refs only, until every real pilot is final and the
        # stale one has been aged out.
        history: History = {}
        updates: list[StatusUpdate] = []

        def cycle() -> None:
            update = monitor_queue(ce, queue, pilot_db, monitor, failed, clock())
            updates.append(update)
            record_history(history, update.answers)

        def settled() -> bool:
            return all(pilot.status.is_final for pilot in pilot_db.values())

        deadline, interval = time.monotonic() + ctx.timeout_s, 0.25
        cycle()
        while not settled() and time.monotonic() < deadline:
            time.sleep(interval)
            interval = min(2 * interval, 1.0)
            cycle()
        real = [JobHandle.parse(ref) for ref in pilot_stamp_dict]
        missing_refs = sorted({ref for u in updates for ref in u.missing})
        rec.check(
            "every-ref-answered",
            bool(updates) and not missing_refs,
            f"{len(updates)} monitoring cycles, every transient ref answered in each"
            if not missing_refs
            else f"no answer for {missing_refs} (their status was kept)",
        )
        rec.check(
            "monitoring",
            all(pilot_db[str(h)].status is JobStatus.DONE for h in real),
            "final statuses: " + ", ".join(sorted(pilot_db[str(h)].status.value for h in real)),
        )
        bad = {h.id: check_progression(history.get(h.id, [])) for h in real}
        rec.check(
            "transitions",
            not any(bad.values()) and all(JobStatus.RUNNING in history.get(h.id, []) for h in real),
            "; ".join(
                f"{h.id}: {' → '.join(s.value for s in history.get(h.id, []))}"
                + (f" ({bad[h.id]})" if bad[h.id] else "")
                for h in real
            ),
        )
        _check_ageing(rec, pilot_db[stale], history.get(JobHandle.parse(stale).id, []), monitor)

        # The next submission cycle: slots are free again, but the queue is paused.
        counts3 = loads.counts(timeout=60)
        slots3 = available_slots(
            counts3.running, counts3.waiting, policy.max_total_jobs, policy.max_waiting_jobs
        )
        before = failed.counts.get(queue, 0)
        allowed = failed.may_submit(queue)
        rec.check(
            "queue-paused",
            slots3 > 0 and before == 1 and not allowed and failed.counts[queue] == 2,
            f"available() = {slots3} but an aborted pilot paused {queue}: failedQueues "
            f"{before} → {failed.counts.get(queue, 0)}, submits again after "
            f"{monitor.failed_queue_cycle_factor - before} cycles"
            if not allowed
            else f"{queue} was not paused (failedQueues {before}, available() = {slots3})",
        )

        if not isinstance(ce, sync.OutputRetriever):
            raise missing(ce, "OutputRetriever", "return output")
        outputs = ce.get_output(real, local / "output", timeout=120)
        _check_pilot_reports(rec, real, outputs, pilot_stamp_dict, secret_by_ref)

        if not isinstance(ce, sync.Purgeable):
            raise missing(ce, "Purgeable", "purge")
        outcomes = ce.purge(real, timeout=120)
        rec.check(
            "purge",
            all(outcomes.get(h.id) is not None and outcomes[h.id].ok for h in real),
            f"{sum(1 for o in outcomes.values() if o.ok)}/{len(real)} purged",
        )


def _check_ageing(
    rec: Recorder, pilot: PilotRecord, answered: list[JobStatus], monitor: MonitorPolicy
) -> None:
    """The stale pilot went Submitted → Unknown (the backend's answer) → Aborted (ours), and
    only once it had been Unknown longer than the threshold."""
    recorded = [status for status, _ in pilot.changes]
    times = dict(pilot.changes)
    aged = (
        recorded == [JobStatus.SUBMITTED, JobStatus.UNKNOWN, JobStatus.ABORTED]
        and answered == [JobStatus.UNKNOWN]
        and times[JobStatus.ABORTED] - times[JobStatus.UNKNOWN] > monitor.unknown_abort_after_s
    )
    waited = (
        f", after {times[JobStatus.ABORTED] - times[JobStatus.UNKNOWN]:.1f} s of Unknown "
        f"(threshold {monitor.unknown_abort_after_s:g} s)"
        if JobStatus.ABORTED in times and JobStatus.UNKNOWN in times
        else ""
    )
    rec.check(
        "unknown-ageing",
        aged,
        f"stale ref recorded {' → '.join(s.value for s in recorded)}{waited}; the backend "
        f"answered {' → '.join(s.value for s in answered) or 'nothing'}",
    )


def _check_scheduler_view(
    ctx: ScenarioContext,
    rec: Recorder,
    handles: Iterable[JobHandle],
    tokens: list[bytes],
) -> None:
    """What any site user (``scontrol show job -dd``) or admin (``scontrol write
    batch_script``) can read about the pilots: the secrets must not be there. Every command
    must succeed and say something, or the check proves nothing."""
    shown: list[str] = []
    problems: list[str] = []
    for handle in handles:
        code, text = ctx.on_controller(["scontrol", "show", "job", "-dd", handle.id])
        if code != 0 or "JobId=" not in text:
            problems.append(f"scontrol show job {handle.id} (exit {code}): {text.strip()}")
        else:
            shown.append(text)
        code, script = ctx.on_controller(["scontrol", "write", "batch_script", handle.id, "-"])
        if code != 0 or not script.strip().startswith("#!"):
            problems.append(
                f"scontrol write batch_script {handle.id} (exit {code}): {script.strip()[:200]}"
            )
        else:
            shown.append(script)
    leaked = [i for i, t in enumerate(tokens) if any(t.decode() in text for text in shown)]
    if leaked:
        problems.append(f"secrets of copies {leaked} visible to the scheduler")
    rec.check(
        "secret-not-in-scheduler",
        not problems,
        "; ".join(problems)
        or f"scontrol show job -dd and write batch_script for {len(shown) // 2} pilots: "
        "no secret visible",
    )


def _check_pilot_reports(
    rec: Recorder,
    handles: list[JobHandle],
    outputs: Mapping[str, JobOutput | OpOutcome],
    pilot_stamp_dict: Mapping[str, str],
    secret_by_ref: Mapping[str, bytes],
) -> None:
    problems = []
    env_problems = []
    for handle in handles:
        ref = str(handle)
        result = outputs.get(handle.id)
        if not isinstance(result, JobOutput) or result.stdout is None:
            problems.append(f"{handle.id}: no output ({result})")
            env_problems.append(f"{handle.id}: no output")
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
        why = _env_problem(result, pilot_stamp_dict[ref], secret)
        if why is not None:
            env_problems.append(f"{handle.id}: {why}")
    rec.check(
        "pilot-reports",
        not problems,
        "; ".join(problems)
        or f"{len(handles)} pilots: own stamp echoed, secret file mode 600 with the right content",
    )
    rec.check(
        "secret-not-in-job-env",
        not env_problems,
        "; ".join(env_problems)
        or f"{len(handles)} pilots' own `env`: stamp and secret file path present, secret "
        "value absent",
    )


def _env_problem(result: JobOutput, stamp: str, secret: bytes) -> str | None:
    """Why the environment the job saw is wrong, or ``None``. The stamp and the secret's path
    variable must be there, or the capture is not the job's environment at all."""
    env_file = result.root / ENV_FILE
    if not env_file.is_file():
        return f"{ENV_FILE} did not come back"
    env = env_file.read_text(errors="replace")
    if f"DIRAC_PILOT_STAMP={stamp}" not in env.splitlines():
        return f"{ENV_FILE} lacks DIRAC_PILOT_STAMP={stamp}"
    if f"INTERCEDE_SECRET_{SECRET_NAME}=" not in env:
        return f"{ENV_FILE} lacks INTERCEDE_SECRET_{SECRET_NAME}"
    if secret.decode() in env:
        return "the secret value is in the job's environment"
    return None
