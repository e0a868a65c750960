"""The ``host`` scheduler: copies run as detached processes on the resource itself, no batch
system (DIRAC's SSH CE with ``BatchSystem = Host``, its default).

DIRAC's ``Host`` starts each copy with ``setsid`` in the background and later asks ``ps``
whether its pid still runs. This one keeps those semantics and closes their gaps:

- **Detached**: the submit unpacks the batch and starts one launcher per batch in its own
  session (``setsid``, every descriptor redirected), so the launcher and the copies outlive
  the SSH session and the submit's channel closes at once.
- **Slots**: at most ``slots`` copies run at a time under one ``work_root``. A slot is an
  ``flock`` on ``<work_root>/.host/slot.<k>`` that the launcher takes and hands to the copy it
  starts: the slot is held exactly as long as the copy's job script lives, however it ends.
  Copies beyond the slots wait (``Waiting``) in their launcher.
- **Status from the job's own files**: ``<copy>/pid`` (written by the launcher), ``<copy>/exit``
  (written by the job script), ``<copy>/killed`` (written by ``kill``). A pid that is gone
  with no exit code is ``Failed``, and so is a copy whose launcher died before starting it.
  A pid counts as alive only while it leads its own session, as every copy does: a recycled
  pid does not keep a dead copy ``Running``.
- **Kill** signals the copy's process group (SIGTERM, SIGKILL 3 s later) or marks a waiting
  copy so its launcher never starts it; status is ``Aborted`` then.
- **Counts** are the live copies under ``work_root`` (running: a live pid; waiting: not yet
  started by a live launcher).

A job id is ``<batch>_<index>``: the routing's two halves, so a handle whose id and routing
disagree is refused before anything runs. Every operation is one round trip, like Slurm's.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from ..config import LocalBatchConfig, SSHBatchConfig
from ..errors import (
    ResourceUnavailableError,
    SpecificationRejectedError,
    SubmitUnavailableError,
)
from ..models import Explanation, JobStatus, LoadCounts, OpOutcome, SubmissionSpec
from .layout import JobLocation

__all__ = [
    "HOST_SCRIPTS",
    "JOB_ID",
    "HostScheduler",
    "check_resources",
    "host_batch_script",
    "parse_host_status",
]

JOB_ID = re.compile(r"([0-9a-f]{32})_(0|[1-9][0-9]*)", re.ASCII)
"""A host job id: ``<batch>_<index>`` (group 1: the batch)."""

HOST_SCRIPTS = (
    "host_submit.sh",
    "host_launch.sh",
    "host_status.sh",
    "host_kill.sh",
    "host_counts.sh",
    "host_cleanup.sh",
)
"""The remote scripts of this scheduler (package files beside this module)."""

EXIT_LINE = "intercede: exit code "

_STATES = {
    "W": JobStatus.WAITING,
    "R": JobStatus.RUNNING,
    "K": JobStatus.ABORTED,
    "L": JobStatus.FAILED,
    "X": JobStatus.FAILED,
    "U": JobStatus.UNKNOWN,
}

_STAGING_EXIT_CODES = {
    90: "cannot create or enter the work root",
    91: "cannot create the batch directory",
    92: "cannot unpack the batch (disk full, quota, or the upload broke off)",
    94: "the host lacks a tool the host scheduler needs",
}


def check_resources(spec: SubmissionSpec) -> None:
    """Refuse what one host cannot give: several nodes, GPUs, a whole node, a named queue.
    ``cpus`` and ``memory_mb`` are accepted and not enforced (a slot is a slot, as in DIRAC's
    Host); ``wall_time_s`` is enforced by ``timeout``."""
    resources = spec.resources
    if resources.nodes != 1:
        raise SpecificationRejectedError(
            "the host scheduler runs each copy on the one host; ask for 1 node",
            field="resources.nodes",
        )
    if resources.gpus:
        raise SpecificationRejectedError(
            "the host scheduler has no GPUs to allocate", field="resources.gpus"
        )
    if resources.whole_node:
        raise SpecificationRejectedError(
            "the host scheduler cannot reserve the whole host", field="resources.whole_node"
        )
    if resources.queue is not None:
        raise SpecificationRejectedError(
            "the host scheduler has no queues", field="resources.queue"
        )


def host_batch_script(spec: SubmissionSpec, command: str, batch_dir: str, *, has_inputs: bool,
                      preamble: str) -> str:
    """The job script every copy runs (``bash job.sh <index>``, started by the launcher with
    the slot's lock on fd 9, which the payload does not inherit). Its last act is the copy's
    exit code in ``<copy>/exit`` (written whole, then renamed): the file status reads."""
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in spec.environment.items()
    )
    b = shlex.quote(batch_dir)
    wall = spec.resources.wall_time_s
    run = f"timeout -k 30 {wall} " if wall is not None else ""
    stage_inputs = f'cp -R {b}/inputs/. . || {{ echo "intercede: staging inputs failed"; end 96; }}\n'
    return (
        "#!/bin/bash\n"
        "# interCEde host job script: copy $1 of the batch; its slot's lock is on fd 9.\n"
        "i=$1\n"
        f'd={b}/"$i"\n'
        'end() { echo "$1" >"$d/exit.tmp" && mv -f "$d/exit.tmp" "$d/exit"; exit "$1"; }\n'
        'mkdir -p "$d/work" && cd "$d/work" ||'
        ' { echo "intercede: no working directory $d/work"; end 97; }\n'
        'echo "intercede: copy $i, job $(basename "$(dirname "$d")")_$i,'
        ' started on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"\n'
        + (stage_inputs if has_inputs else "")
        + "export INTERCEDE_COPY_INDEX=$i\n"
        + exports
        + '. "$d/env"\n'
        'exec 3>&1 >"$d/stdout" 2>"$d/stderr"\n'
        + (preamble.rstrip("\n") + "\n" if preamble else "")
        + "{\n"
        + run
        + command
        + "\n} 9>&-\n"
        "rc=$?\n"
        f'echo "{EXIT_LINE}$rc at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >&3\n'
        'end "$rc"\n'
    )


def parse_host_status(out: str, jobs: Sequence[JobLocation]) -> dict[str, JobStatus]:
    """``<id> <state> [rc]`` lines up to ``@@end`` → a status for every job (``Unknown`` for
    one the reply left out). Raises when the reply is cut short (no ``@@end``)."""
    found: dict[str, JobStatus] = {}
    complete = False
    for line in out.splitlines():
        if line == "@@end":
            complete = True
            break
        parts = line.split()
        if len(parts) < 2:
            continue
        job_id, state = parts[0], parts[1]
        if state == "E":
            code = parts[2] if len(parts) > 2 else ""
            found[job_id] = (
                JobStatus.DONE if code == "0" else JobStatus.FAILED
            )
        elif state in _STATES:
            found[job_id] = _STATES[state]
    if not complete:
        raise ResourceUnavailableError("the host's status reply was cut short")
    return {job.job_id: found.get(job.job_id, JobStatus.UNKNOWN) for job in jobs}


class HostScheduler:
    """Placeholder until the scheduler seam lands; see the module docstring."""

    name = "host"
    label = "host"
    job_id_pattern = JOB_ID

    def __init__(self, config: SSHBatchConfig | LocalBatchConfig) -> None:
        self._config = config


_unused = (SubmitUnavailableError, Explanation, LoadCounts, OpOutcome, _STAGING_EXIT_CODES)
