"""Where a job lives on the resource, and how a handle says so.

The handle is all a later call receives, so everything must be derivable from it: the Slurm id
(``<arrayjob>_<task>``) addresses the scheduler, the routing (``<batch>/<index>``) addresses the
job's directory below ``work_root``::

    <work_root>/<batch>/job.sh            the batch script, shared by the batch's copies
    <work_root>/<batch>/manifest.json     what the spec asked to collect
    <work_root>/<batch>/bin/<executable>  staged once per batch
    <work_root>/<batch>/inputs/...        staged once per batch, copied into work/ at start
    <work_root>/<batch>/logs/<id>.log     Slurm's own output file: the wrapper's log
    <work_root>/<batch>/<index>/env       per-copy environment (identifiers, secret paths)
    <work_root>/<batch>/<index>/secrets/  per-copy secret files, mode 0600
    <work_root>/<batch>/<index>/stdout    the payload's stdout (outside work/, so a payload
    <work_root>/<batch>/<index>/stderr    file named "stdout" cannot collide with it)
    <work_root>/<batch>/<index>/work/     the payload's working directory

Handle fields come back from stores and other processes, so they are validated before any of
them is spliced into a remote command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..models import JobHandle

__all__ = [
    "BATCH_SCRIPT",
    "MANIFEST",
    "JobLocation",
    "locate",
]

BATCH_SCRIPT = "job.sh"
MANIFEST = "manifest.json"

# fullmatch, never ``$``: ``$`` also matches before a final newline, and a handle whose id
# ends in "\n" (``%0A`` in its compact form) would address the right job under a wrong id.
_JOB_ID = re.compile(r"([0-9]+)_([0-9]+)", re.ASCII)
_ROUTING = re.compile(r"([0-9a-f]{32})/(0|[1-9][0-9]*)", re.ASCII)


@dataclass(frozen=True)
class JobLocation:
    """One job, resolved from its handle: its Slurm ids and its paths relative to work_root."""

    job_id: str
    array_id: str
    batch: str
    index: int

    @property
    def job_dir(self) -> str:
        return f"{self.batch}/{self.index}"

    @property
    def work_dir(self) -> str:
        return f"{self.job_dir}/work"

    @property
    def stdout(self) -> str:
        return f"{self.job_dir}/stdout"

    @property
    def stderr(self) -> str:
        return f"{self.job_dir}/stderr"

    @property
    def log(self) -> str:
        return f"{self.batch}/logs/{self.job_id}.log"


def locate(handle: JobHandle, *, backend: str, resource: str) -> JobLocation | str:
    """The job's location, or the reason the handle is not one of this backend's jobs."""
    if handle.backend != backend or handle.resource != resource:
        return (
            f"handle belongs to {handle.backend}://{handle.resource}, "
            f"not this backend ({backend}://{resource})"
        )
    id_match = _JOB_ID.fullmatch(handle.id)
    if id_match is None:
        return f"malformed Slurm job id {handle.id!r} (expected <arrayjob>_<task>)"
    routing_match = _ROUTING.fullmatch(handle.routing)
    if routing_match is None:
        return f"malformed routing {handle.routing!r} (expected <batch>/<index>)"
    return JobLocation(
        job_id=handle.id,
        array_id=id_match.group(1),
        batch=routing_match.group(1),
        index=int(routing_match.group(2)),
    )
