"""``WMSUtilities.killPilotsInQueues`` through the sync facade (DC-21, with DC-20).

DIRAC groups pilot refs under ``"vo@@@site@@@ce@@@queue"`` keys as
``{"PilotList": [refs], "GridType": ceType}``, builds one CE per queue and calls ``killJob``
with bare refs, stopping at the first queue that fails. Here each queue gets one bulk ``kill``
through its facade and every ref gets its own outcome: a stale, unknown or malformed ref is
reported on its own and the other refs and queues are still killed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypedDict

from intercede import sync
from intercede.errors import InterCEdeError
from intercede.models import (
    CopyVars,
    JobHandle,
    JobStatus,
    OpOutcome,
    Resources,
    SubmissionSpec,
)

from ._context import ScenarioContext, missing
from ._result import Recorder, ScenarioResult, run_scenario

__all__ = [
    "DC_IDS",
    "KEY_SEPARATOR",
    "PilotRecord",
    "QueueEntry",
    "group_pilots",
    "kill_pilots_in_queues",
    "queue_of",
    "run",
]

DC_IDS = ("DC-21", "DC-20")
KEY_SEPARATOR = "@@@"


class QueueEntry(TypedDict):
    PilotList: list[str]
    GridType: str


@dataclass(frozen=True)
class PilotRecord:
    """One row of DIRAC's PilotAgentsDB, as far as killing is concerned."""

    vo: str
    site: str
    ce: str
    queue: str
    ref: str
    grid_type: str


def group_pilots(pilots: Iterable[PilotRecord]) -> dict[str, QueueEntry]:
    """DIRAC's ``pilotRefDict``: refs grouped per ``vo@@@site@@@ce@@@queue``, order kept."""
    grouped: dict[str, QueueEntry] = {}
    for pilot in pilots:
        parts = (pilot.vo, pilot.site, pilot.ce, pilot.queue)
        bad = [p for p in parts if not p or KEY_SEPARATOR in p]
        if bad:
            raise ValueError(f"pilot {pilot.ref}: empty or '{KEY_SEPARATOR}' in {bad}")
        key = KEY_SEPARATOR.join(parts)
        entry = grouped.setdefault(key, {"PilotList": [], "GridType": pilot.grid_type})
        if entry["GridType"] != pilot.grid_type:
            raise ValueError(
                f"pilot {pilot.ref}: GridType {pilot.grid_type} differs from "
                f"{entry['GridType']} in queue {key}"
            )
        entry["PilotList"].append(pilot.ref)
    return grouped


def queue_of(key: str) -> str:
    parts = key.split(KEY_SEPARATOR)
    if len(parts) != 4 or not all(parts):
        raise ValueError(
            f"not a vo{KEY_SEPARATOR}site{KEY_SEPARATOR}ce{KEY_SEPARATOR}queue key: {key!r}"
        )
    return parts[3]


def kill_pilots_in_queues(
    pilot_ref_dict: Mapping[str, QueueEntry],
    facade_for: Callable[[str], sync.Killable | None],
) -> dict[str, dict[str, OpOutcome]]:
    """Bulk kill per queue; every ref of every queue gets an outcome, whatever fails."""
    results: dict[str, dict[str, OpOutcome]] = {}
    for key, entry in pilot_ref_dict.items():
        outcomes: dict[str, OpOutcome] = {}
        results[key] = outcomes
        try:
            ce = facade_for(queue_of(key))
        except (ValueError, InterCEdeError) as exc:
            ce, why = None, f"no CE for {key}: {exc}"
        else:
            why = f"no CE for {key}"
        handles: dict[str, JobHandle] = {}
        for ref in entry["PilotList"]:
            try:
                handles[ref] = JobHandle.parse(ref)
            except ValueError as exc:
                outcomes[ref] = OpOutcome(ok=False, reason=f"not a pilot reference: {exc}")
        if ce is None:
            for ref in handles:
                outcomes[ref] = OpOutcome(ok=False, reason=why)
            continue
        if not handles:
            continue
        try:
            killed = ce.kill(list(handles.values()), timeout=120)
        except InterCEdeError as exc:
            for ref in handles:
                outcomes[ref] = OpOutcome(ok=False, reason=f"{type(exc).__name__}: {exc}")
            continue
        for ref, handle in handles.items():
            outcomes[ref] = killed.get(handle.id) or OpOutcome(
                ok=False, reason="missing from the kill result"
            )
    return results


def run(ctx: ScenarioContext, pilots_per_queue: int = 2) -> ScenarioResult:
    return run_scenario(
        "WMSUtilities.killPilotsInQueues", DC_IDS, lambda rec: _body(ctx, rec, pilots_per_queue)
    )


def _body(ctx: ScenarioContext, rec: Recorder, per_queue: int) -> None:
    queues = ctx.queues
    if len(queues) < 2:
        rec.failed("queues", f"needs two queues (partitions), config has {queues}")
        return
    local = ctx.local_dir("wms-utilities")
    sleeper = local / "pilot.sh"
    sleeper.write_text("#!/bin/sh\necho pilot $DIRAC_PILOT_STAMP\nsleep 600\n")
    sleeper.chmod(0o755)
    facades = {q: ctx.facade(q) for q in queues[:2]}
    try:
        pilots: list[PilotRecord] = []
        real: dict[str, list[JobHandle]] = {}
        for queue, ce in facades.items():
            submission = ce.submit(
                # Two CPUs each fill a worker: some pilots run, the later ones stay queued, so
                # the kill covers both (DIRAC kills queued pilots as often as running ones).
                SubmissionSpec(executable=str(sleeper), resources=Resources(cpus=2)),
                [
                    CopyVars(environment={"DIRAC_PILOT_STAMP": f"{queue}{i}"})
                    for i in range(per_queue)
                ],
                timeout=120,
            )
            rec.check(
                f"submit-{queue}",
                len(submission.handles) == per_queue,
                f"{len(submission.handles)} pilots in {queue}",
            )
            real[queue] = list(submission.handles.values())
            pilots += [
                PilotRecord("dteam", "LCG.Harness.org", _ce_name(ctx), queue, str(h), "SSH")
                for h in real[queue]
            ]
        first = queues[0]
        template = real[first][0]
        stale = JobHandle(
            backend=template.backend,
            resource=template.resource,
            id="999999_0",
            routing="0" * 32 + "/0",
        )
        # The bad refs go into the FIRST queue: DIRAC would stop there and spare the second.
        pilots.insert(
            0, PilotRecord("dteam", "LCG.Harness.org", _ce_name(ctx), first, str(stale), "SSH")
        )
        pilots.insert(
            1, PilotRecord("dteam", "LCG.Harness.org", _ce_name(ctx), first, "garbage-ref", "SSH")
        )
        pilot_ref_dict = group_pilots(pilots)
        rec.check(
            "grouping",
            len(pilot_ref_dict) == 2
            and all(len(e["PilotList"]) >= per_queue for e in pilot_ref_dict.values()),
            ", ".join(f"{k}: {len(e['PilotList'])} refs" for k, e in pilot_ref_dict.items()),
        )

        def facade_for(queue: str) -> sync.Killable | None:
            ce = facades.get(queue)
            if ce is not None and not isinstance(ce, sync.Killable):
                raise missing(ce, "Killable", "kill")
            return ce

        before = {q: ce.get_status(real[q], timeout=60) for q, ce in facades.items()}
        results = kill_pilots_in_queues(pilot_ref_dict, facade_for)
        flat = {ref: o for per_key in results.values() for ref, o in per_key.items()}
        every_ref = [ref for e in pilot_ref_dict.values() for ref in e["PilotList"]]
        rec.check(
            "every-ref-answered",
            sorted(flat) == sorted(every_ref),
            f"{len(flat)}/{len(every_ref)} refs have an outcome",
        )
        bad_refs = {str(stale), "garbage-ref"}
        real_refs = [str(h) for hs in real.values() for h in hs]
        rec.check(
            "bad-refs-reported",
            all(ref in flat and not flat[ref].ok and flat[ref].reason for ref in bad_refs),
            "; ".join(f"{ref}: {flat.get(ref)}" for ref in sorted(bad_refs)),
        )
        rec.check(
            "real-pilots-killed",
            all(ref in flat and flat[ref].ok for ref in real_refs),
            "; ".join(f"{JobHandle.parse(r).id}: {flat.get(r)}" for r in real_refs),
        )
        for queue, ce in facades.items():
            statuses, _ = ctx.poll(ce, real[queue])
            rec.check(
                f"aborted-{queue}",
                all(statuses.get(h.id) is JobStatus.ABORTED for h in real[queue]),
                ", ".join(
                    f"{h.id}: {before[queue].get(h.id)} → {statuses.get(h.id)}" for h in real[queue]
                ),
            )
            if isinstance(ce, sync.Purgeable):
                ce.purge(real[queue], timeout=120)
    finally:
        for ce in facades.values():
            ce.close()


def _ce_name(ctx: ScenarioContext) -> str:
    """The CE part of the key: the host the queues are reached on."""
    config = ctx.queue_config(ctx.queues[0])
    return str(getattr(config, "host", "localhost"))
