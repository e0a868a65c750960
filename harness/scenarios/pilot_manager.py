"""PilotManagerHandler's pilot output on demand through the sync facade (DC-36).

An operator asks for a pilot's output long after the SiteDirector that submitted it moved on.
The service builds a FRESH CE for that one call (no cached connection to lean on), gives it a
temporary working directory, asks for the output with one argument, the reference
``WMSUtilities.getPilotRef`` builds from the PilotAgentsDB row (``f"{ref}:::{stamp}"``,
DC-10), keeps stdout and stderr as text, and removes the directory. Here: two pilots, each
fetched twice (output on demand is repeatable), plus a stale reference that must come back as
that pilot's own failure, the directory still removed.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from intercede import sync
from intercede.models import CopyVars, JobStatus, OpOutcome, SubmissionSpec

from ._context import ScenarioContext, missing
from ._refs import handle_of, stamped_ref
from ._result import Recorder, ScenarioResult, run_scenario
from ._result import describe_submission as _describe

__all__ = ["DC_IDS", "PILOT_SCRIPT", "PilotOutput", "get_pilot_output", "run"]

DC_IDS = ("DC-36", "DC-10", "DC-16")
PILOT_SCRIPT = """\
#!/bin/sh
echo "pilot stdout ${DIRAC_PILOT_STAMP}"
echo "pilot stderr ${DIRAC_PILOT_STAMP}" >&2
"""

PilotOutput = tuple[str, str]
"""stdout and stderr as text, what ``getJobOutput(ref)`` without ``localDir`` returns."""


def get_pilot_output(
    new_facade: Callable[[], sync.Facade],
    pilot_ref: str,
    *,
    scratch_root: Path | None = None,
    timeout: float = 120,
) -> tuple[PilotOutput | OpOutcome, Path]:
    """The handler's ``getPilotOutput``: the pilot's streams or why there are none, and the
    working directory it used (already removed). A malformed reference or a missing output is
    this pilot's failure; whole-operation errors (the CE is down) propagate."""
    workdir = Path(tempfile.mkdtemp(prefix="pilot-output-", dir=scratch_root))
    try:
        try:
            handle = handle_of(pilot_ref)
        except ValueError as exc:
            return OpOutcome(ok=False, reason=f"not a pilot reference: {exc}"), workdir
        with new_facade() as ce:
            if not isinstance(ce, sync.OutputRetriever):
                raise missing(ce, "OutputRetriever", "return output")
            got = ce.get_output([handle], workdir, timeout=timeout).get(handle.id)
        if got is None:
            return OpOutcome(ok=False, reason="missing from the output result"), workdir
        if isinstance(got, OpOutcome):
            return got, workdir
        texts = [
            p.read_text(errors="replace") if p is not None else "" for p in (got.stdout, got.stderr)
        ]
        return (texts[0], texts[1]), workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(ctx: ScenarioContext) -> ScenarioResult:
    return run_scenario("PilotManagerHandler", DC_IDS, lambda rec: _body(ctx, rec))


def _body(ctx: ScenarioContext, rec: Recorder) -> None:
    queue = ctx.queues[0]
    local = ctx.local_dir("pilot-manager")
    executable = local / "pilot.sh"
    executable.write_text(PILOT_SCRIPT)
    executable.chmod(0o755)
    with ctx.facade(queue) as director:  # the SiteDirector's cached CE
        stamps = [uuid.uuid4().hex for _ in range(2)]
        submission = director.submit(
            SubmissionSpec(executable=str(executable)),
            [CopyVars(environment={"DIRAC_PILOT_STAMP": s}) for s in stamps],
            timeout=120,
        )
        if not rec.check("submit", len(submission.handles) == 2, _describe(submission)):
            return
        # PilotAgentsDB rows: PilotJobReference and PilotStamp, strings only.
        rows = {str(h): stamps[i] for i, h in submission.handles.items()}
        handles = list(submission.handles.values())
        statuses, finished = ctx.poll(director, handles)
        rec.check(
            "pilots-done",
            finished and all(statuses.get(h.id) is JobStatus.DONE for h in handles),
            ", ".join(f"{h.id}: {statuses.get(h.id)}" for h in handles),
        )

        built: list[sync.Facade] = []

        def fresh() -> sync.Facade:
            facade = ctx.facade(queue)
            built.append(facade)
            return facade

        scratch = ctx.local_dir("pilot-manager", "service-tmp")
        answers: dict[str, list[PilotOutput | OpOutcome]] = {}
        workdirs: list[Path] = []
        calls = 0
        for ref, stamp in rows.items():
            for _ in range(2):  # the operator asks again: on demand, repeatable
                result, workdir = get_pilot_output(
                    fresh, stamped_ref(ref, stamp), scratch_root=scratch
                )
                calls += 1
                answers.setdefault(ref, []).append(result)
                workdirs.append(workdir)
        template = handles[0]
        stale = str(template.model_copy(update={"id": "999999_0", "routing": "0" * 32 + "/0"}))
        stale_result, stale_dir = get_pilot_output(
            fresh, stamped_ref(stale, uuid.uuid4().hex), scratch_root=scratch
        )
        calls += 1
        workdirs.append(stale_dir)

        rec.check(
            "fresh-facade",
            len(built) == calls
            and len({id(f) for f in built}) == calls
            and all(f is not director and f.closed for f in built),
            f"{len(built)} facades for {calls} calls, each closed after its call, none the "
            "director's",
        )
        problems = []
        for ref, stamp in rows.items():
            got = answers[ref]
            first = got[0]
            if not isinstance(first, tuple):
                problems.append(f"{handle_of(ref).id}: {first}")
                continue
            out, err = first
            if f"pilot stdout {stamp}" not in out or "pilot stderr" in out:
                problems.append(f"{handle_of(ref).id}: stdout {out!r}")
            if f"pilot stderr {stamp}" not in err:
                problems.append(f"{handle_of(ref).id}: stderr {err!r}")
            if got[1] != first:
                problems.append(f"{handle_of(ref).id}: second request differs: {got[1]!r}")
        rec.check(
            "pilot-output",
            not problems,
            "; ".join(problems)
            or f"{len(rows)} pilots, each asked twice by ref:::stamp: own stdout and stderr, "
            "identical both times",
        )
        rec.check(
            "unknown-pilot",
            isinstance(stale_result, OpOutcome) and not stale_result.ok,
            f"{handle_of(stale).id}: {stale_result}",
        )
        left = [str(d) for d in workdirs if d.exists()] + [p.name for p in scratch.iterdir()]
        rec.check(
            "workdir-removed",
            not left and len(set(workdirs)) == calls,
            f"{calls} temporary working directories, all removed"
            if not left
            else f"left behind: {left}",
        )

        if not isinstance(director, sync.Purgeable):
            raise missing(director, "Purgeable", "purge")
        outcomes = director.purge(handles, timeout=120)
        rec.check(
            "purge",
            all(outcomes.get(h.id) is not None and outcomes[h.id].ok for h in handles),
            f"{sum(1 for o in outcomes.values() if o.ok)}/{len(handles)} purged",
        )
