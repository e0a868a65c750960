"""DIRAC's free-slot arithmetic, as a pure function over interCEde's ``LoadCounts``.

interCEde reports only how many of its own jobs run and wait (``LoadReporter.counts()``); how
many more to submit is the caller's policy. Keeping DIRAC's formula in one pure function lets
the adapter's ``available()`` and the migration doc's worked examples share one definition, so
the doc cannot drift from the code (``tests/unit/test_migration_doc.py`` checks it).
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_TOTAL_JOBS", "DEFAULT_MAX_WAITING_JOBS", "available_slots"]

DEFAULT_MAX_TOTAL_JOBS = 1
"""DIRAC's CE default when the CS sets no ``MaxTotalJobs``."""
DEFAULT_MAX_WAITING_JOBS = 1
"""DIRAC's CE default when the CS sets no ``MaxWaitingJobs``."""


def available_slots(
    running: int,
    waiting: int,
    max_total_jobs: int,
    max_waiting_jobs: int,
    available_processors: int | None = None,
) -> int:
    """How many more pilots DIRAC would submit (``ComputingElement.available()``, DC-23).

    Full queue or too many waiting: none. Otherwise top the waiting jobs up to
    ``max_waiting_jobs`` without letting the total pass ``max_total_jobs``, and never ask for
    more than ``available_processors`` when the CE reports it.
    """
    for name, value in (("running", running), ("waiting", waiting)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    total = running + waiting
    if total >= max_total_jobs or waiting >= max_waiting_jobs:
        return 0
    additional = max_waiting_jobs - waiting
    if total + additional >= max_total_jobs:
        additional = max_total_jobs - total
    if available_processors is not None:
        additional = min(additional, available_processors)
    return additional
