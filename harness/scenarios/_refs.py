"""DIRAC's ``"<ref>:::<stamp>"`` (DC-10), built and stripped the way its consumers do.

PushJobAgent, RemoteRunner and ``WMSUtilities.getPilotRef`` store the bare reference and the
stamp apart and glue them together only for output retrieval; the CE strips the stamp again
with ``split(":::")[0]``. The scenarios store ``str(JobHandle)`` as the reference, so stripping
ends in ``JobHandle.parse``.
"""

from __future__ import annotations

from intercede.models import JobHandle

__all__ = ["STAMP_SEPARATOR", "handle_of", "stamp_of", "stamped_ref"]

STAMP_SEPARATOR = ":::"


def stamped_ref(ref: str, stamp: str) -> str:
    """``f"{ref}:::{stamp}"``, refusing parts that would not split back into the same two."""
    if not stamp or STAMP_SEPARATOR in stamp:
        raise ValueError(f"stamp {stamp!r} is empty or contains {STAMP_SEPARATOR!r}")
    if STAMP_SEPARATOR in ref:
        raise ValueError(f"reference {ref!r} already carries a stamp")
    return f"{ref}{STAMP_SEPARATOR}{stamp}"


def handle_of(ref: str) -> JobHandle:
    """The job a stored reference names, stamped or not: ``JobHandle.parse(ref.split(":::")[0])``
    as DIRAC's CEs strip it."""
    return JobHandle.parse(ref.split(STAMP_SEPARATOR)[0])


def stamp_of(ref: str) -> str | None:
    """The stamp of a stamped reference, ``None`` for a bare one."""
    _, sep, stamp = ref.partition(STAMP_SEPARATOR)
    return stamp if sep else None
