"""Waiting for jobs: the one helper every caller of ``get_status`` otherwise writes itself.

It keeps the contract's shape: bulk (one ``get_status`` per poll for every job still being
waited for, never one call per job), stateless (the backend is asked, nothing is stored) and
total (the answer holds every handle asked about). It polls with exponential backoff, like an
agent (DIRAC's debug-CE polls every 5 s, the default cap here), and stops at a deadline rather
than raising: the caller reads which jobs got there from the map.

``intercede.sync.wait_for_jobs`` is its blocking twin, generated from this module by
``tools/gen_sync.py``: same parameters, run on the facade's event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence

import anyio

from .models import JobHandle, JobID, JobStatus
from .protocols import StatusReporter

__all__ = ["FINAL_STATES", "reached", "wait_for_jobs"]

FINAL_STATES: frozenset[JobStatus] = frozenset(s for s in JobStatus if s.is_final)
"""``Done``, ``Failed`` and ``Aborted``: the default target of :func:`wait_for_jobs`."""

_log = logging.getLogger("intercede.waiting")


def reached(
    statuses: Mapping[JobID, JobStatus], until: Collection[JobStatus] | None = None
) -> bool:
    """Whether every job in ``statuses`` is in ``until`` (default: a final state); an empty map
    has reached nothing."""
    targets = FINAL_STATES if until is None else until
    return bool(statuses) and all(status in targets for status in statuses.values())


async def wait_for_jobs(
    backend: StatusReporter,
    handles: Sequence[JobHandle],
    *,
    deadline_s: float,
    until: Collection[JobStatus] | None = None,
    first_s: float = 0.5,
    cap_s: float = 5.0,
    on_poll: Callable[[Mapping[JobID, JobStatus]], None] | None = None,
) -> Mapping[JobID, JobStatus]:
    """Poll ``get_status`` until every job is in ``until`` (default: a final state) or
    ``deadline_s`` seconds have passed; return the last status of every handle.

    Each poll asks only about the jobs still short of ``until`` (one bulk call); a job that got
    there keeps the status it got there with. The interval starts at ``first_s`` and doubles up
    to ``cap_s``, and never sleeps past the deadline. ``on_poll`` sees the full map after each
    poll (a progress line, a history); in the sync twin it runs on the facade's loop thread.
    A whole-operation error from ``get_status`` is raised, not retried: it means the resource
    is gone, and hammering it until the deadline would only hide that. Whether every job got
    there is ``reached(result, until)``.
    """
    if not deadline_s > 0:
        raise ValueError(f"deadline_s: must be a positive number of seconds, not {deadline_s!r}")
    if not 0 < first_s <= cap_s:
        raise ValueError(f"first_s and cap_s: need 0 < first_s <= cap_s, not {first_s}, {cap_s}")
    targets = FINAL_STATES if until is None else frozenset(until)
    started = time.monotonic()
    deadline = started + deadline_s
    latest: dict[JobID, JobStatus] = dict.fromkeys((h.id for h in handles), JobStatus.UNKNOWN)
    pending = list({h.id: h for h in handles}.values())
    interval, polls = first_s, 0
    while pending:
        answer = await backend.get_status(pending)
        polls += 1
        latest.update({h.id: answer.get(h.id, JobStatus.UNKNOWN) for h in pending})
        pending = [h for h in pending if latest[h.id] not in targets]
        if on_poll is not None:
            on_poll(dict(latest))
        left = deadline - time.monotonic()
        if not pending or left <= 0:
            break
        await anyio.sleep(min(interval, left))
        interval = min(interval * 2, cap_s)
    _log.debug(
        "waited %.2f s for %d job(s) in %d poll(s): %d short of %s",
        time.monotonic() - started,
        len(latest),
        polls,
        len(pending),
        "/".join(sorted(targets)),
    )
    return latest
