"""Waiting for jobs to reach a state, the way an agent polls: exponential backoff up to a
capped interval (DIRAC's debug-CE polls every 5 s), bounded overall.

A whole-operation error raised by a poll is not retried: it means the resource is gone, and
the caller reports it rather than hammering a dead endpoint until the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_exponential

from intercede.models import JobID, JobStatus

__all__ = ["all_final", "wait_for"]

Statuses = Mapping[JobID, JobStatus]


def all_final(statuses: Statuses) -> bool:
    return bool(statuses) and all(status.is_final for status in statuses.values())


def _last_result(state: RetryCallState) -> Statuses:
    assert state.outcome is not None  # tenacity calls this only after an attempt
    result: Statuses = state.outcome.result()
    return result


def wait_for(
    poll: Callable[[], Statuses],
    done: Callable[[Statuses], bool],
    *,
    timeout_s: float,
    cap_s: float = 5.0,
    first_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Statuses, bool]:
    """Poll until ``done`` or ``timeout_s``; return the last answer and whether it is done."""
    retrying = Retrying(
        retry=retry_if_result(lambda statuses: not done(statuses)),
        wait=wait_exponential(multiplier=first_s, min=first_s, max=cap_s),
        stop=stop_after_delay(timeout_s),
        retry_error_callback=_last_result,
        sleep=sleep,
        reraise=True,
    )
    statuses: Statuses = retrying(poll)
    return statuses, done(statuses)
