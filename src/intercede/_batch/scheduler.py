"""The scheduler seam: everything that differs between batch systems, behind one protocol.

``BatchBackend`` owns what every batch system shares (credentials, deadlines, staging the
batch's tar, reading handles, collecting output, diagnostics, purging directories) and asks
a ``Scheduler`` for the rest. Each scheduler operation is a pair: a ``Command`` to run in one
round trip, then a pure function that reads its ``Reply``. Keeping the pair pure is what lets
each scheduler be unit-tested on output recorded from its real system, and keeps the round
trip count of every operation independent of the scheduler.

A scheduler decides how copies start (``sbatch --array``, or detached processes on the host),
what a job id looks like, how status, kill and counts are asked and read, and the limits it
learns from the resource (``max_array_size``). It never runs anything itself.

What a scheduler must keep, so the shared parts work for it: each copy's files live where
``layout`` says (``<batch>/<index>/``, its wrapper log at ``<batch>/logs/<job id>.log``); a job
id is ``<group>_<task>`` with a numeric group (``job_id_pattern``), and the submit script
appends one ``@@chunk <offset> <size> <group>`` line per accepted group to ``<batch>/chunks``
as it happens (``layout.CHUNKS``), which is how output collection, diagnostics and purge check
that a handle's id belongs to its routing, and how a submit in doubt is reconciled. A scheduler
whose ids spell the routing instead (``host``: ``<batch>_<index>``, the named groups ``batch``
and ``index`` of its ``job_id_pattern``) writes no chunk record: ``layout.locate`` compares the
id with the routing before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..config import LocalBatchConfig, SSHBatchConfig
from ..errors import ResourceUnavailableError
from ..models import Explanation, JobStatus, LoadCounts, OpOutcome, SubmissionSpec
from . import remote
from .layout import ChunkRecords, JobLocation

__all__ = [
    "BatchConfig",
    "Command",
    "Reply",
    "Scheduler",
    "StatusView",
    "SubmitResult",
    "cleanup_outcome",
    "clip",
]

BatchConfig = SSHBatchConfig | LocalBatchConfig
"""The configuration every scheduler command is built from (work root, job name, queue...)."""


@dataclass(frozen=True)
class Command:
    """One remote POSIX ``sh`` script and what goes on its stdin (id lists, the batch tar):
    the script's size does not depend on the number of jobs."""

    script: str
    stdin: bytes | None = None
    transfer: bool = False
    """Runs under ``transfer_timeout_s`` (it moves the batch's files), not ``command_timeout_s``."""
    idempotent: bool = True
    """``False``: never retried once it may have started (a lost submit reply must not submit
    twice)."""


@dataclass(frozen=True)
class Reply:
    """What a ``Command`` answered, decoded (undecodable bytes replaced)."""

    rc: int
    out: str
    err: str


@dataclass(frozen=True)
class SubmitResult:
    """The copies the scheduler accepted, by copy index (``job_ids``), and why the others
    were not (``refused``: one reason for all of them). A submit that queued nothing raises
    instead (see ``Scheduler.submit_result``)."""

    job_ids: Mapping[int, str]
    refused: str | None = None
    grouping: str = ""
    """How the copies were grouped, for the debug log only (Slurm: ``5 array chunk(s)
    (MaxArraySize 1001): 0+1001=41, ...``)."""


@dataclass(frozen=True)
class StatusView:
    """What one status query said about the wanted jobs.

    ``statuses`` holds every wanted id (``Unknown`` when the scheduler knows nothing of it);
    ``live_view_failed`` says what failed when the part of the query that sees live jobs did
    (the answer came from accounting or exit codes only: good for a status, not for deciding
    a job is safe to remove); ``chunks`` is each batch's id record, when asked for.
    """

    statuses: Mapping[str, JobStatus]
    live_view_failed: str | None = None
    chunks: ChunkRecords = field(default_factory=dict)

    def is_live(self, job_id: str) -> bool:
        """Queued or running: neither final nor unknown."""
        status = self.statuses.get(job_id, JobStatus.UNKNOWN)
        return not status.is_final and status is not JobStatus.UNKNOWN


class Scheduler(Protocol):
    """What ``BatchBackend`` needs from a batch system. Implementations: ``slurm.SlurmScheduler``
    (``scheduler = "slurm"``) and ``host.HostScheduler`` (``scheduler = "host"``: no batch
    system, detached processes on the resource itself)."""

    name: str
    """The first half of a handle's backend name (``<name>+<transport kind>``)."""
    job_id_pattern: re.Pattern[str]
    """What this scheduler's job ids look like (``fullmatch``); group 1 is the group the job
    was submitted in (Slurm: its array id). A handle whose id does not match is refused
    before any of it reaches a remote command."""
    label: str
    """How error messages and reasons name the system (``"Slurm"``)."""

    def batch_script(
        self,
        spec: SubmissionSpec,
        config: BatchConfig,
        batch_dir: str,
        executable_name: str,
        *,
        has_inputs: bool,
    ) -> str:
        """The one script every copy of a batch runs (staged as ``<batch>/job.sh``)."""
        ...

    def submit_command(
        self, spec: SubmissionSpec, config: BatchConfig, batch: str, copies: int
    ) -> Command:
        """Unpack the batch's tar (stdin) under ``<work_root>/<batch>`` and start ``copies``
        copies; records every accepted group in ``<batch>/chunks`` as it happens."""
        ...

    def submit_result(
        self, reply: Reply, config: BatchConfig, batch: str, copies: int
    ) -> SubmitResult:
        """Read the submit reply; may update what the scheduler learnt (limits). Raises
        ``SubmitUnavailableError`` (outcome in doubt, or retryable), ``ResourceUnavailableError``
        (nothing queued for sure) or ``SpecificationRejectedError`` (never accepted)."""
        ...

    def status_command(
        self, config: BatchConfig, jobs: Sequence[JobLocation], *, chunks: bool = False
    ) -> Command:
        """One query of every job's state (with ``chunks``: each batch's id record too)."""
        ...

    def status_result(self, reply: Reply, jobs: Sequence[JobLocation]) -> StatusView:
        """Raises ``ResourceUnavailableError`` when the system did not answer at all: an
        outage must not look like a queue of forgotten jobs."""
        ...

    def kill_command(self, config: BatchConfig, jobs: Sequence[JobLocation]) -> Command:
        """State before, the kill of the live jobs that are ours, state after: one command."""
        ...

    def kill_result(
        self, reply: Reply, config: BatchConfig, jobs: Sequence[JobLocation]
    ) -> dict[str, OpOutcome]:
        """An outcome for every job in ``jobs``."""
        ...

    def counts_command(self, config: BatchConfig) -> Command:
        """This backend's own running and waiting jobs (and the queue's state, if fixed)."""
        ...

    def counts_result(self, reply: Reply) -> LoadCounts: ...

    def explain_command(self, config: BatchConfig, jobs: Sequence[JobLocation]) -> Command: ...

    def explain_result(
        self, reply: Reply, jobs: Sequence[JobLocation]
    ) -> dict[str, Explanation | OpOutcome]:
        """An answer for every job in ``jobs`` (``OpOutcome`` for one the system no longer
        shows)."""
        ...

    def cleanup_command(self, config: BatchConfig, batch: str) -> Command:
        """Remove ``<work_root>/<batch>`` unless its submit still runs or a job of it is
        live; ``batch`` is validated by the caller (32 hex digits)."""
        ...

    def cleanup_result(self, reply: Reply, batch: str) -> OpOutcome: ...


def clip(text: str, limit: int = 2000) -> str:
    """A remote message cut to a size fit for an error message."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def cleanup_outcome(reply: Reply, batch: str) -> OpOutcome:
    """What a cleanup script's reply means, for every scheduler: ``@@live <id> <state>`` lines
    (refused), ``@@busy`` (the submit still runs), ``@@removed`` or ``@@gone``; anything else
    raises ``ResourceUnavailableError`` (nothing was removed)."""
    parts = remote.sections(reply.out)
    words = {part.word for part in parts}
    live = [part.arg.split(" ", 1) for part in parts if part.word == "live"]
    if live:
        listed = ", ".join(f"{job} ({' '.join(state)})" for job, *state in live[:20])
        more = f" and {len(live) - 20} more" if len(live) > 20 else ""
        return OpOutcome(
            ok=False,
            reason=f"not removed: {len(live)} job(s) of batch {batch} still queued or "
            f"running: {listed}{more}; cancel them first",
        )
    if "busy" in words:
        return OpOutcome(
            ok=False,
            reason=f"not removed: the submit of batch {batch} is still running on the "
            "resource; try again shortly",
        )
    if "removed" in words:
        return OpOutcome(ok=True)
    if "gone" in words:
        return OpOutcome(ok=True, reason="already gone")
    raise ResourceUnavailableError(
        f"cannot tell whether batch {batch} still has live jobs; nothing removed: "
        f"{clip(reply.err) or clip(reply.out) or 'no reply'}"
    )
