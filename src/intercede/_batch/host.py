"""The ``host`` scheduler: copies run as detached processes on the resource itself, no batch
system (DIRAC's SSH CE with ``BatchSystem = Host``, that CE's default).

DIRAC's ``Host`` starts each copy with ``setsid`` in the background and later asks ``ps``
whether its pid still runs. This one keeps those semantics and closes their gaps:

- **Detached**: the submit unpacks the batch and starts one launcher per batch in its own
  session (``setsid``, every descriptor redirected), so the launcher and the copies outlive
  the SSH session and the submit's channel closes at once (``host_submit.sh``).
- **Slots**: at most ``slots`` copies run at a time under one ``work_root``. A slot is an
  ``flock`` on ``<work_root>/.host/slot.<k>`` that the launcher takes and hands to the copy it
  starts: the slot is held exactly as long as the copy's job script lives, however it ends.
  Copies beyond the slots wait (``Waiting``) in their launcher (``host_launch.sh``).
- **Status from the job's own files**: ``<copy>/pid`` (written by the launcher, which makes
  the copy's directory when it starts it), ``<copy>/exit`` (written by the job script),
  ``<copy>/killed`` (written by ``kill``); a copy with no directory yet is waiting if its
  batch has it (``<batch>/copies``) and it was not purged (``host_batch.sh``). A pid gone
  with no exit code is ``Failed``, and so is a copy whose launcher died before starting it. A
  pid counts as alive only while it leads its own session, as every copy does, and is not a
  zombie: a recycled pid does not keep a dead copy ``Running`` (``host_status.sh``).
- **Kill** signals the copy's process group (SIGTERM, SIGKILL 3 s later) or marks a waiting
  copy so its launcher never starts it; status is ``Aborted`` then (``host_kill.sh``).
- **Counts** are the live copies under ``work_root``: running (a live pid) and waiting (not
  started yet by a live launcher) (``host_counts.sh``).

A job id is ``<batch>_<index>``, the routing's two halves, so ``layout.locate`` refuses a
handle whose id and routing disagree before anything runs. Every operation is one round trip,
as with Slurm; the wrapper's log is ``<batch>/logs/<id>.log`` as with Slurm, so output
collection, diagnostics and purge are the backend's shared ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ResourceUnavailableError, SpecificationRejectedError, SubmitUnavailableError
from ..models import Explanation, JobStatus, LoadCounts, OpOutcome, SubmissionSpec
from . import remote
from .layout import JobLocation
from .scheduler import (
    BatchConfig,
    Command,
    Reply,
    StatusView,
    SubmitResult,
    cleanup_outcome,
    clip,
)
from .slurm import job_script

__all__ = [
    "HOST_SCRIPTS",
    "JOB_ID",
    "HostScheduler",
    "HostState",
    "check_resources",
    "host_batch_script",
    "parse_host_states",
]

JOB_ID = re.compile(r"(?P<batch>[0-9a-f]{32})_(?P<index>0|[1-9][0-9]*)", re.ASCII)
"""A host job id: ``<batch>_<index>`` (group 1: the batch, the group it was submitted in)."""

HOST_SCRIPTS = (
    "host_submit.sh",
    "host_launch.sh",
    "host_status.sh",
    "host_kill.sh",
    "host_counts.sh",
    "host_cleanup.sh",
    "host_batch.sh",
)
"""The remote scripts of this scheduler (package files beside this module)."""

STAGING_EXIT_CODES = {
    90: "cannot create or enter the work root",
    91: "cannot create the batch directory",
    92: "cannot unpack the batch (disk full, quota, or the upload broke off)",
    94: "the host lacks a tool the host scheduler needs",
}
"""Exit codes of ``host_submit.sh`` that started nothing (and left nothing behind)."""

_STATUS = {
    "W": JobStatus.WAITING,
    "R": JobStatus.RUNNING,
    "K": JobStatus.ABORTED,
    "L": JobStatus.FAILED,
    "X": JobStatus.FAILED,
    "U": JobStatus.UNKNOWN,
}
_REASON = {
    "W": "waiting for a free slot on the host",
    "K": "killed",
    "L": "its launcher ended before starting it",
    "X": "its process ended without writing an exit code",
}
_UNKNOWN = "unknown to the host (never existed, or purged)"


@dataclass(frozen=True)
class HostState:
    """One job as ``host_status.sh`` reports it (a state letter and, when it ended, the exit
    code its job script wrote), or what ``host_kill.sh`` did to it (a word)."""

    letter: str
    code: str | None = None

    @property
    def status(self) -> JobStatus:
        if self.letter == "E":
            return JobStatus.DONE if self.code == "0" else JobStatus.FAILED
        return _STATUS.get(self.letter, JobStatus.UNKNOWN)

    @property
    def reason(self) -> str | None:
        if self.letter == "E" and self.code != "0":
            return f"exit code {self.code}"
        return _REASON.get(self.letter)


def check_resources(spec: SubmissionSpec) -> None:
    """Refuse what one host cannot give: several nodes, GPUs, the whole host, a named queue.
    ``cpus`` and ``memory_mb`` are accepted and not enforced (a slot is a slot, as in DIRAC's
    ``Host``); ``wall_time_s`` is enforced with ``timeout``."""
    resources = spec.resources
    refusals = (
        (resources.nodes != "1", "resources.nodes", "each copy runs on the one host; ask for 1"),
        (bool(resources.gpus), "resources.gpus", "the host scheduler allocates no GPUs"),
        (resources.whole_node, "resources.whole_node", "the host scheduler cannot reserve it"),
        (resources.queue is not None, "resources.queue", "the host scheduler has no queues"),
    )
    for refused, field, why in refusals:
        if refused:
            raise SpecificationRejectedError(why, field=field)


def host_batch_script(
    spec: SubmissionSpec, config: BatchConfig, batch_dir: str, executable_name: str, *,
    has_inputs: bool,
) -> str:  # fmt: skip
    """The job script every copy runs (``bash job.sh <index>``, started by the launcher with
    the slot's lock on fd 9, which the payload does not inherit): Slurm's, but every way out
    writes the copy's exit code to ``<copy>/exit`` (whole, then renamed), the file status
    reads, and ``wall_time_s`` is enforced here since no scheduler does."""
    check_resources(spec)
    return job_script(
        spec,
        config,
        batch_dir,
        executable_name,
        has_inputs=has_inputs,
        head="# interCEde host job script: copy $1 of the batch; its slot's lock is on fd 9.\n"
        "i=$1\n",
        job_id=f"{batch_dir.rsplit('/', 1)[-1]}_$i",
        end="end",
        prelude='end() { echo "$1" >"$d/exit.tmp" && mv -f "$d/exit.tmp" "$d/exit"; exit "$1"; }\n',
        wrap=("{\n", "\n} 9>&-"),
        enforce_wall_time=True,
    )


def parse_host_states(out: str) -> dict[str, HostState] | None:
    """``<id> <letter> [code]`` lines up to ``@@end`` (``None`` when the reply was cut short
    before it: nothing in it can be trusted to be complete)."""
    found: dict[str, HostState] = {}
    for line in out.splitlines():
        if line == f"{remote.MARK}end":
            return found
        parts = line.split()
        if len(parts) >= 2:
            found[parts[0]] = HostState(parts[1], parts[2] if len(parts) > 2 else None)
    return None


def _job_lines(jobs: Sequence[JobLocation]) -> bytes:
    return "".join(f"{job.job_id} {job.batch} {job.index}\n" for job in jobs).encode()


class HostScheduler:
    """The ``host`` scheduler behind the ``Scheduler`` seam (``scheduler = "host"``); see the
    module docstring. It holds no state: the slots come from the config at every submit."""

    name = "host"
    label = "host"
    job_id_pattern = JOB_ID

    # --- submit ------------------------------------------------------------------------------

    def batch_script(
        self, spec: SubmissionSpec, config: BatchConfig, batch_dir: str, executable_name: str,
        *, has_inputs: bool,
    ) -> str:  # fmt: skip
        return host_batch_script(spec, config, batch_dir, executable_name, has_inputs=has_inputs)

    def submit_command(
        self, spec: SubmissionSpec, config: BatchConfig, batch: str, copies: int
    ) -> Command:
        return Command(
            remote.script(
                "host_submit.sh",
                config.work_root,
                batch,
                str(copies),
                str(config.slots or 0),
                remote.source("host_launch.sh"),
            ),
            transfer=True,
            idempotent=False,
        )

    def submit_result(
        self, reply: Reply, config: BatchConfig, batch: str, copies: int
    ) -> SubmitResult:
        if not remote.marks(reply.out, "started"):
            text = clip(reply.err) or f"exit code {reply.rc}"
            if reply.rc in STAGING_EXIT_CODES:
                raise ResourceUnavailableError(
                    f"{STAGING_EXIT_CODES[reply.rc]} under {config.work_root}; nothing was "
                    f"started: {text}"
                )
            raise SubmitUnavailableError(f"submission failed: {text}", batch=batch)
        slots = remote.marks(reply.out, "slots")
        return SubmitResult(
            job_ids={index: f"{batch}_{index}" for index in range(copies)},
            grouping=f"one launcher, {slots[0] if slots else '?'} slot(s) on the host",
        )

    # --- status ------------------------------------------------------------------------------

    def _states(self, reply: Reply, what: str) -> dict[str, HostState]:
        states = parse_host_states(reply.out)
        if states is None:
            raise ResourceUnavailableError(
                f"{what} failed on the host: {clip(reply.err) or f'exit code {reply.rc}'}"
            )
        return states

    def status_command(
        self, config: BatchConfig, jobs: Sequence[JobLocation], *, chunks: bool = False
    ) -> Command:
        # No chunk record: a host job id spells its routing (checked by layout.locate).
        return Command(
            remote.script("host_status.sh", config.work_root),
            stdin=_job_lines(jobs),
        )

    def status_result(self, reply: Reply, jobs: Sequence[JobLocation]) -> StatusView:
        states = self._states(reply, "status query")
        return StatusView(
            statuses={
                job.job_id: states[job.job_id].status if job.job_id in states else JobStatus.UNKNOWN
                for job in jobs
            }
        )

    # --- kill --------------------------------------------------------------------------------

    def kill_command(self, config: BatchConfig, jobs: Sequence[JobLocation]) -> Command:
        return Command(
            remote.script("host_kill.sh", config.work_root),
            stdin=_job_lines(jobs),
        )

    def kill_result(
        self, reply: Reply, config: BatchConfig, jobs: Sequence[JobLocation]
    ) -> dict[str, OpOutcome]:
        done = self._states(reply, "kill")
        result: dict[str, OpOutcome] = {}
        for job in jobs:
            what = done.get(job.job_id)
            word, code = (what.letter, what.code) if what else ("", None)
            if word in ("killed", "dequeued", "killed-before"):
                result[job.job_id] = OpOutcome(ok=True)
            elif word == "ended":
                status = JobStatus.DONE if code == "0" else JobStatus.FAILED
                result[job.job_id] = OpOutcome(
                    ok=False, reason=f"already finished ({status.value})"
                )
            elif word == "lost":
                result[job.job_id] = OpOutcome(
                    ok=False, reason=f"already finished (Failed: {_REASON['X']})"
                )
            else:
                result[job.job_id] = OpOutcome(ok=False, reason=_UNKNOWN)
        return result

    # --- counts and explain ------------------------------------------------------------------

    def counts_command(self, config: BatchConfig) -> Command:
        return Command(remote.script("host_counts.sh", config.work_root))

    def counts_result(self, reply: Reply) -> LoadCounts:
        found = remote.marks(reply.out, "counts")
        numbers = found[0].split() if found else []
        if reply.rc != 0 or len(numbers) != 2 or not all(n.isdigit() for n in numbers):
            raise ResourceUnavailableError(
                f"counting the host's jobs failed: {clip(reply.err) or f'exit code {reply.rc}'}"
            )
        return LoadCounts(running=int(numbers[0]), waiting=int(numbers[1]))

    def explain_command(self, config: BatchConfig, jobs: Sequence[JobLocation]) -> Command:
        return self.status_command(config, jobs)

    def explain_result(
        self, reply: Reply, jobs: Sequence[JobLocation]
    ) -> dict[str, Explanation | OpOutcome]:
        states = self._states(reply, "explain")
        result: dict[str, Explanation | OpOutcome] = {}
        for job in jobs:
            state = states.get(job.job_id)
            if state is None or state.status is JobStatus.UNKNOWN:
                result[job.job_id] = OpOutcome(ok=False, reason=_UNKNOWN)
            else:
                result[job.job_id] = Explanation(status=state.status, reason=state.reason)
        return result

    # --- cleanup of a submit in doubt --------------------------------------------------------

    def cleanup_command(self, config: BatchConfig, batch: str) -> Command:
        return Command(remote.script("host_cleanup.sh", config.work_root, batch))

    def cleanup_result(self, reply: Reply, batch: str) -> OpOutcome:
        return cleanup_outcome(reply, batch)
