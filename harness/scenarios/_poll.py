"""Polling job states the way DIRAC agents do, with tenacity: exponential backoff to a capped
interval, an overall bound, and every observed transition kept (SiteDirector only records
changes, and a reviewer wants to see Waiting → Running → Done actually happen)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_exponential

from intercede import sync
from intercede.models import JobHandle, JobID, JobStatus

__all__ = ["History", "all_final", "poll_until"]

Statuses = Mapping[JobID, JobStatus]
History = dict[JobID, list[JobStatus]]
"""Per job, the statuses seen, consecutive duplicates collapsed."""


def all_final(statuses: Statuses) -> bool:
    return bool(statuses) and all(s.is_final for s in statuses.values())


def _last(state: RetryCallState) -> Statuses:
    assert state.outcome is not None
    result: Statuses = state.outcome.result()
    return result


def poll_until(
    facade: sync.StatusReporter,
    handles: Sequence[JobHandle],
    done: Callable[[Statuses], bool] = all_final,
    *,
    timeout_s: float,
    cap_s: float = 1.0,
    history: History | None = None,
) -> tuple[Statuses, bool]:
    """Poll ``get_status`` until ``done``; return the last answer and whether it was reached."""

    def poll() -> Statuses:
        statuses = facade.get_status(handles, timeout=60)
        if history is not None:
            for job_id, status in statuses.items():
                seen = history.setdefault(job_id, [])
                if not seen or seen[-1] is not status:
                    seen.append(status)
        return statuses

    retrying = Retrying(
        retry=retry_if_result(lambda statuses: not done(statuses)),
        wait=wait_exponential(multiplier=0.25, min=0.25, max=cap_s),
        stop=stop_after_delay(timeout_s),
        retry_error_callback=_last,
        reraise=True,
    )
    statuses: Statuses = retrying(poll)
    return statuses, done(statuses)
