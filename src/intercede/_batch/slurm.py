"""Slurm: the state table, command builders and reply parsers.

Everything here is pure (strings in, strings out) so it is unit-tested against output recorded
from real clusters (``tests/unit/data/slurm/<variant>/``). Only POSIX ``sh`` and Slurm's CLI run
remotely; every remote command is one shell script so each operation costs one round trip
whatever the number of jobs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..config import LocalBatchConfig, SSHBatchConfig
from ..errors import SpecificationRejectedError
from ..models import JobStatus, Resources, SubmissionSpec
from .layout import BATCH_SCRIPT

__all__ = [
    "DEFAULT_MAX_ARRAY_SIZE",
    "LIVE_STATES",
    "SLURM_STATES",
    "SlurmJobState",
    "SlurmScheduler",
    "SubmitReply",
    "batch_script",
    "cancel_script",
    "compress_ids",
    "counts_script",
    "expand_job_ids",
    "map_state",
    "normalise_state",
    "parse_counts",
    "parse_status",
    "parse_submit",
    "quote_command",
    "resource_options",
    "sbatch_options",
    "status_script",
    "submit_script",
]

DEFAULT_MAX_ARRAY_SIZE = 1001
"""Slurm's default ``MaxArraySize``: used only if the cluster's answer cannot be parsed."""

SLURM_STATES: Mapping[str, JobStatus] = MappingProxyType(
    {
        # Waiting: queued, or back in the queue, or held without having run to an end.
        "PENDING": JobStatus.WAITING,
        "CONFIGURING": JobStatus.WAITING,
        "REQUEUED": JobStatus.WAITING,
        "REQUEUE_FED": JobStatus.WAITING,
        "REQUEUE_HOLD": JobStatus.WAITING,
        "RESV_DEL_HOLD": JobStatus.WAITING,
        "SUSPENDED": JobStatus.WAITING,
        "STOPPED": JobStatus.WAITING,
        # Running: holds resources (COMPLETING = still cleaning up on the nodes).
        "RUNNING": JobStatus.RUNNING,
        "COMPLETING": JobStatus.RUNNING,
        "RESIZING": JobStatus.RUNNING,
        "SIGNALING": JobStatus.RUNNING,
        "STAGE_OUT": JobStatus.RUNNING,
        # Done: the payload exited 0.
        "COMPLETED": JobStatus.DONE,
        # Failed: the payload ran and failed, or outgrew what it asked for.
        "FAILED": JobStatus.FAILED,
        "TIMEOUT": JobStatus.FAILED,
        "NODE_FAIL": JobStatus.FAILED,
        "OUT_OF_MEMORY": JobStatus.FAILED,
        "SPECIAL_EXIT": JobStatus.FAILED,
        # Aborted: stopped from outside (a person, the site's policy) or never started.
        "CANCELLED": JobStatus.ABORTED,
        "PREEMPTED": JobStatus.ABORTED,
        "DEADLINE": JobStatus.ABORTED,
        "BOOT_FAIL": JobStatus.ABORTED,
        "REVOKED": JobStatus.ABORTED,
        "LAUNCH_FAILED": JobStatus.ABORTED,
    }
)
"""The one Slurm → interCEde state table. It extends DIRAC's (DC-14) and fixes its gaps: any
``CANCELLED by <uid>`` suffix and sacct's ``+`` truncation mark are stripped before lookup
(``normalise_state``), and the states DIRAC left to ``Unknown`` (OUT_OF_MEMORY, BOOT_FAIL,
DEADLINE, REQUEUED, ...) are mapped. A state missing here maps to ``Unknown``."""

LIVE_STATES = frozenset(state for state, status in SLURM_STATES.items() if not status.is_final)
"""Raw states a job can still leave: ``scancel`` has something to stop."""


def normalise_state(raw: str) -> str:
    """``"CANCELLED by 2000"`` → ``"CANCELLED"``; ``"RUNNING+"`` → ``"RUNNING"``."""
    words = raw.strip().upper().split()
    return words[0].rstrip("+") if words else ""


def map_state(raw: str) -> JobStatus:
    """Map one raw squeue/sacct state through ``SLURM_STATES``; unknown → ``Unknown``."""
    return SLURM_STATES.get(normalise_state(raw), JobStatus.UNKNOWN)


# --- job ids -----------------------------------------------------------------------------

_COLLAPSED = re.compile(r"^([0-9]+)_\[([0-9,\-]+)(?:%[0-9]+)?\]$")


def expand_job_ids(field: str) -> list[str]:
    """One squeue/sacct JobID field → task ids: ``"7_[0-2,5%2]"`` → ``7_0 7_1 7_2 7_5``."""
    match = _COLLAPSED.match(field.strip())
    if match is None:
        return [field.strip()]
    array, ranges = match.groups()
    ids: list[str] = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        if not low:
            continue
        ids.extend(f"{array}_{i}" for i in range(int(low), int(high or low) + 1))
    return ids


def compress_ids(job_ids: Iterable[str]) -> list[str]:
    """Task ids grouped per array in Slurm's range syntax, so ``scancel`` takes one argument
    (one RPC) per array instead of one per task: ``7_0 7_1 7_2 7_5`` → ``7_[0-2,5]``."""
    per_array: dict[str, set[int]] = {}
    for job_id in job_ids:
        array, _, task = job_id.partition("_")
        per_array.setdefault(array, set()).add(int(task))
    out: list[str] = []
    for array, tasks in per_array.items():
        ordered = sorted(tasks)
        if len(ordered) == 1:
            out.append(f"{array}_{ordered[0]}")
            continue
        ranges: list[str] = []
        start = prev = ordered[0]
        for value in ordered[1:]:
            if value == prev + 1:
                prev = value
                continue
            ranges.append(f"{start}-{prev}" if prev > start else str(start))
            start = prev = value
        ranges.append(f"{start}-{prev}" if prev > start else str(start))
        out.append(f"{array}_[{','.join(ranges)}]")
    return out


# --- submit ------------------------------------------------------------------------------


def resource_options(resources: Resources, config: SSHBatchConfig | LocalBatchConfig) -> list[str]:
    """``Resources`` → sbatch options (one argv item each)."""
    opts = [f"--cpus-per-task={resources.cpus}", f"--nodes={resources.nodes}"]
    if resources.memory_mb is not None:
        opts.append(f"--mem={resources.memory_mb}M")
    if resources.wall_time_s is not None:
        opts.append(f"--time={_slurm_duration(resources.wall_time_s)}")
    partition = resources.queue or config.queue
    if partition:
        opts.append(f"--partition={partition}")
    if resources.gpus:
        opts.append(f"--gpus={resources.gpus}")
    if resources.whole_node:
        opts.append("--exclusive")
    if config.account:
        opts.append(f"--account={config.account}")
    return opts


def _slurm_duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def sbatch_options(
    spec: SubmissionSpec, config: SSHBatchConfig | LocalBatchConfig, batch_dir: str
) -> list[str]:
    """Every sbatch option but ``--array`` (which the remote loop adds per chunk)."""
    opts = [
        "--parsable",
        f"--job-name={config.job_name}",
        f"--output={batch_dir}/logs/%A_%a.log",
        f"--chdir={batch_dir}",
        *resource_options(spec.resources, config),
    ]
    if spec.tag:
        opts.append(f"--comment={spec.tag}")
    opts.extend(config.submit_extra)
    return opts


def quote_command(argv: Sequence[str], *, field: str) -> str:
    """argv → one shell command line that reproduces every item byte for byte.

    A NUL byte cannot cross ``execve`` and an unpaired surrogate cannot be written to the
    script: both are refused at submit, naming the argument.
    """
    for i, item in enumerate(argv):
        name = field if i == 0 else f"arguments[{i - 1}]"
        if "\x00" in item:
            raise SpecificationRejectedError("contains a NUL byte", field=name)
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise SpecificationRejectedError("is not valid UTF-8 text", field=name) from None
    return shlex.join(argv)


def batch_script(
    spec: SubmissionSpec,
    config: SSHBatchConfig | LocalBatchConfig,
    batch_dir: str,
    executable_name: str,
    *,
    has_inputs: bool,
) -> str:
    """The one batch script every copy of the batch runs (array task + offset = copy index).

    Secrets never appear here: each copy's ``env`` file exports only their paths.
    """
    command = quote_command(
        [f"{batch_dir}/bin/{executable_name}", *spec.arguments], field="executable"
    )
    if spec.container_image is not None:
        if config.container_launcher is None:
            raise SpecificationRejectedError(
                "this backend has no container_launcher configured", field="container_image"
            )
        command = config.container_launcher.replace(
            "{image}", shlex.quote(spec.container_image)
        ).replace("{command}", command)
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in spec.environment.items()
    )
    b = shlex.quote(batch_dir)
    stage_inputs = (
        f'cp -R {b}/inputs/. . || {{ echo "intercede: staging inputs failed"; exit 96; }}\n'
    )
    return (
        "#!/bin/sh\n"
        "# interCEde batch script: array task + offset ($1) = copy index.\n"
        "i=$((SLURM_ARRAY_TASK_ID + ${1:-0}))\n"
        f'd={b}/"$i"\n'
        'mkdir -p "$d/work" && cd "$d/work" ||'
        ' { echo "intercede: no working directory $d/work"; exit 97; }\n'
        'echo "intercede: copy $i, job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID},'
        ' started on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"\n'
        + (stage_inputs if has_inputs else "")
        + "export INTERCEDE_COPY_INDEX=$i\n"
        + exports
        + '. "$d/env"\n'
        'exec 3>&1 >"$d/stdout" 2>"$d/stderr"\n'
        + (config.preamble.rstrip("\n") + "\n" if config.preamble else "")
        + command
        + "\n"
        "rc=$?\n"
        'echo "intercede: exit code $rc at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >&3\n'
        'exit "$rc"\n'
    )


def submit_script(
    *, work_root: str, batch: str, copies: int, options: Sequence[str], max_array_size: int | None
) -> str:
    """Unpack the staged tar (stdin) and ``sbatch --array`` every chunk, in one round trip.

    Chunking happens remotely so the count of round trips stays one for any N; when the array
    limit is not configured the script asks ``scontrol`` once and reports it (``@@max``) so the
    backend can cache it.
    """
    root = shlex.quote(work_root)
    opts = shlex.join(options)
    if max_array_size is None:
        ask_max = (
            "max=$(scontrol show config 2>/dev/null"
            " | sed -n 's/^MaxArraySize *= *\\([0-9][0-9]*\\).*/\\1/p')\n"
            f'[ -n "$max" ] || max={DEFAULT_MAX_ARRAY_SIZE}\n'
            'echo "@@max $max"\n'
        )
    else:
        ask_max = f"max={max_array_size}\n"
    return (
        "umask 077\n"
        f"mkdir -p {root} && cd {root} || exit 90\n"
        f"b={batch}\n"
        'mkdir "$b" || exit 91\n'
        'tar -x -f - -C "$b" || { rm -rf "$b"; exit 92; }\n' + ask_max + f"n={copies}\n"
        "o=0\n"
        'while [ "$o" -lt "$n" ]; do\n'
        '  k=$((n - o)); [ "$k" -gt "$max" ] && k=$max\n'
        f'  if id=$(sbatch {opts} --array=0-$((k - 1)) "$PWD/$b/{BATCH_SCRIPT}" "$o"'
        ' 2>"$b/sbatch.err"); then\n'
        '    echo "@@chunk $o $k $id"\n'
        "  else\n"
        '    echo "@@fail $o"; cat "$b/sbatch.err"\n'
        '    if [ "$o" -eq 0 ]; then rm -rf "$b"; else\n'
        '      i=$o; while [ "$i" -lt "$n" ]; do rm -rf "$b/$i"; i=$((i + 1)); done; fi\n'
        "    exit 93\n"
        "  fi\n"
        "  o=$((o + k))\n"
        "done\n"
        'rm -f "$b/sbatch.err"\n'
    )


@dataclass(frozen=True)
class SubmitReply:
    """What the submit script said: ``chunks`` (offset, size, array id) and, if a chunk failed,
    the offset it failed at and sbatch's message."""

    chunks: tuple[tuple[int, int, str], ...]
    max_array_size: int | None
    failed_at: int | None
    error: str


def parse_submit(stdout: str) -> SubmitReply:
    chunks: list[tuple[int, int, str]] = []
    max_size: int | None = None
    failed_at: int | None = None
    error_lines: list[str] = []
    for line in stdout.splitlines():
        if failed_at is not None:
            error_lines.append(line)
        elif line.startswith("@@max "):
            max_size = int(line.split()[1])
        elif line.startswith("@@chunk "):
            _, offset, size, raw_id = line.split(maxsplit=3)
            # --parsable prints "<id>" or "<id>;<cluster>"
            chunks.append((int(offset), int(size), raw_id.split(";")[0].strip()))
        elif line.startswith("@@fail "):
            failed_at = int(line.split()[1])
    return SubmitReply(
        chunks=tuple(chunks),
        max_array_size=max_size,
        failed_at=failed_at,
        error="\n".join(error_lines).strip(),
    )


# --- status, kill, counts ----------------------------------------------------------------

_SQUEUE_FORMAT = "%i|%T"
_SACCT_FIELDS = "JobID,State"


def status_script(array_ids: Sequence[str]) -> str:
    """squeue for live jobs and sacct for the rest, in one shell command.

    ``-t all`` keeps finished jobs in squeue's answer for ``MinJobAge``, which covers the
    moment between a job leaving the queue and slurmdbd recording it. squeue fails when every
    id it is given is unknown to it; the fallback lists the user's whole queue (filtered
    locally) so that case still reads sacct's answer.
    """
    ids = ",".join(array_ids)
    return (
        f"squeue -h -r -t all -j {ids} -o '{_SQUEUE_FORMAT}' 2>/dev/null"
        f" || squeue -h -r -t all -u \"$(id -un)\" -o '{_SQUEUE_FORMAT}' 2>/dev/null\n"
        "echo @@sacct\n"
        f"sacct -n -P -X -j {ids} -o {_SACCT_FIELDS} 2>/dev/null\n"
        "echo @@end\n"
    )


@dataclass(frozen=True)
class SlurmJobState:
    """One job as Slurm reports it: the raw state and which command said so."""

    raw: str
    source: str  # "squeue" or "sacct"

    @property
    def status(self) -> JobStatus:
        return map_state(self.raw)


def parse_status(stdout: str, wanted: Iterable[str]) -> dict[str, SlurmJobState]:
    """The states of ``wanted`` task ids; an id missing from both commands is left out.

    squeue (live view) wins, except where it still says COMPLETING and sacct already has the
    final state.
    """
    want = set(wanted)
    live: dict[str, str] = {}
    accounted: dict[str, str] = {}
    # A pending array cancelled before it split is reported by its bare id ("106"): that
    # state holds for every task of it not listed on its own.
    live_whole: dict[str, str] = {}
    accounted_whole: dict[str, str] = {}
    target, whole = live, live_whole
    for line in stdout.splitlines():
        if line == "@@sacct":
            target, whole = accounted, accounted_whole
            continue
        if line == "@@end":
            break
        job_field, sep, state = line.partition("|")
        if not sep:
            continue
        if job_field.strip().isdigit():
            whole[job_field.strip()] = state.strip()
            continue
        for job_id in expand_job_ids(job_field):
            if job_id in want:
                target[job_id] = state.strip()
    for job_id in want:
        array = job_id.partition("_")[0]
        if job_id not in live and array in live_whole:
            live[job_id] = live_whole[array]
        if job_id not in accounted and array in accounted_whole:
            accounted[job_id] = accounted_whole[array]
    out: dict[str, SlurmJobState] = {}
    for job_id in want:
        squeue_state = live.get(job_id)
        sacct_state = accounted.get(job_id)
        if squeue_state is not None and not (
            normalise_state(squeue_state) == "COMPLETING"
            and sacct_state is not None
            and map_state(sacct_state).is_final
        ):
            out[job_id] = SlurmJobState(squeue_state, "squeue")
        elif sacct_state is not None:
            out[job_id] = SlurmJobState(sacct_state, "sacct")
    return out


def cancel_script(array_ids: Sequence[str], job_ids: Sequence[str]) -> str:
    """Status before, one ``scancel`` for every id (ranges per array), status after."""
    return (
        status_script(array_ids)
        + f"scancel {shlex.join(compress_ids(job_ids))} 2>/dev/null\n"
        + "echo @@after\n"
        + status_script(array_ids)
    )


def counts_script(job_name: str, queue: str | None) -> str:
    """This backend's own jobs: our user, our job name, our partition (if fixed)."""
    partition = f" -p {shlex.quote(queue)}" if queue else ""
    return f"squeue -h -r -u \"$(id -un)\" -n {shlex.quote(job_name)}{partition} -o '%T'\n"


def parse_counts(stdout: str) -> tuple[int, int]:
    """(running, waiting) from one ``%T`` per line."""
    running = waiting = 0
    for line in stdout.splitlines():
        status = map_state(line)
        if status is JobStatus.RUNNING:
            running += 1
        elif status is JobStatus.WAITING:
            waiting += 1
    return running, waiting


class SlurmScheduler:
    """The scheduler half of a batch backend; its only state is the cluster's array limit,
    asked once (inside the first submit) and cached for the backend's lifetime."""

    name = "slurm"

    def __init__(self, max_array_size: int | None = None) -> None:
        self.max_array_size = max_array_size
