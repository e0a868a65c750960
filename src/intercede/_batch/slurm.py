"""Slurm: the state table, command builders and reply parsers.

Everything here is pure (strings in, strings out) so it is unit-tested against output recorded
from real clusters (``tests/unit/data/slurm/<variant>/``). Only POSIX ``sh`` and Slurm's CLI run
remotely; every remote command is one shell script so each operation costs one round trip
whatever the number of jobs.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..config import LocalBatchConfig, SSHBatchConfig
from ..errors import (
    InterCEdeError,
    ResourceUnavailableError,
    SpecificationRejectedError,
    SubmitUnavailableError,
)
from ..models import Explanation, JobStatus, LoadCounts, OpOutcome, Resources, SubmissionSpec
from . import remote
from .layout import (
    CHUNKS,
    COPIES,
    SECRETS,
    JobLocation,
    chunk_records,
    handle_mismatch,
    parse_chunk,
    parse_chunk_record,
    recorded_job_id,
)
from .scheduler import (
    BatchConfig,
    Command,
    Reply,
    StatusView,
    SubmitResult,
    cleanup_outcome,
    clip,
)

__all__ = [
    "CHUNKS",
    "DEFAULT_MAX_ARRAY_SIZE",
    "EXIT_LINE",
    "SLURM_STATES",
    "STAGING_EXIT_CODES",
    "SUBMITTING",
    "TRANSIENT_SUBMIT_ERRORS",
    "SlurmJobState",
    "SlurmScheduler",
    "StatusReply",
    "SubmitReply",
    "batch_comment",
    "batch_script",
    "cancel_script",
    "cleanup_script",
    "compress_ids",
    "counts_script",
    "expand_job_ids",
    "handle_mismatch",
    "is_transient",
    "job_script",
    "kill_outcome",
    "map_state",
    "normalise_state",
    "parse_chunk",
    "parse_chunk_record",
    "parse_counts",
    "parse_status",
    "parse_status_reply",
    "parse_submit",
    "quote_command",
    "recorded_job_id",
    "resource_options",
    "sbatch_options",
    "status_input",
    "status_of",
    "status_script",
    "submit_error",
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

_FINAL_RAW = tuple(raw for raw, status in SLURM_STATES.items() if status.is_final)


@functools.lru_cache(maxsize=1024)
def normalise_state(raw: str) -> str:
    """``"CANCELLED by 2000"`` → ``"CANCELLED"``; ``"RUNNING+"`` → ``"RUNNING"``.
    Cached, as ``map_state``: a status of thousands of jobs holds a handful of raw states."""
    words = raw.strip().upper().split()
    return words[0].rstrip("+") if words else ""


@functools.lru_cache(maxsize=1024)
def map_state(raw: str) -> JobStatus:
    """Map one raw squeue/sacct state through ``SLURM_STATES``; unknown → ``Unknown``."""
    return SLURM_STATES.get(normalise_state(raw), JobStatus.UNKNOWN)


# --- job ids -----------------------------------------------------------------------------

_COLLAPSED = re.compile(r"([0-9]+)_\[([0-9,:\-]+)(?:%[0-9]+)?\]")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+)(?::([0-9]+))?)?")


def expand_job_ids(field: str) -> list[str]:
    """One squeue/sacct JobID field → task ids: ``"7_[0-2,5%2]"`` → ``7_0 7_1 7_2 7_5``, and
    a stepped range (what cancelling every other task of a pending array leaves) too:
    ``"7_[1-7:2]"`` → ``7_1 7_3 7_5 7_7``."""
    if "[" not in field:
        return [field.strip()]
    match = _COLLAPSED.fullmatch(field.strip())
    if match is None:
        return [field.strip()]
    array, ranges = match.groups()
    ids: list[str] = []
    for part in ranges.split(","):
        bounds = _RANGE.fullmatch(part)
        if bounds is None:
            continue
        low, high, step = bounds.groups()
        stop = int(high or low) + 1
        ids.extend(f"{array}_{i}" for i in range(int(low), stop, max(int(step or 1), 1)))
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


def batch_comment(batch: str, tag: str | None) -> str:
    """The ``--comment`` of every job of a batch: the batch id (never secret) so a submit whose
    reply was lost can be found again (``squeue -u <user> -o '%i %k'``), then the spec's tag."""
    return f"intercede:{batch}" + (f" {tag}" if tag else "")


def sbatch_options(
    spec: SubmissionSpec, config: SSHBatchConfig | LocalBatchConfig, batch_dir: str, batch: str
) -> list[str]:
    """Every sbatch option but ``--array`` (which the remote loop adds per chunk)."""
    return [
        "--parsable",
        f"--job-name={config.job_name}",
        f"--output={batch_dir}/logs/%A_%a.log",
        f"--chdir={batch_dir}",
        f"--comment={batch_comment(batch, spec.tag)}",
        *resource_options(spec.resources, config),
        *config.submit_extra,
    ]


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


_PLACEHOLDER = re.compile(r"\{image\}|\{command\}")

EXIT_LINE = "intercede: exit code "
"""How the batch script's last log line starts; status reads it when Slurm forgot the job."""


def batch_script(
    spec: SubmissionSpec,
    config: SSHBatchConfig | LocalBatchConfig,
    batch_dir: str,
    executable_name: str,
    *,
    has_inputs: bool,
) -> str:
    """The one batch script every copy of the batch runs (array task + offset = copy index)."""
    return job_script(
        spec,
        config,
        batch_dir,
        executable_name,
        has_inputs=has_inputs,
        head="# interCEde batch script: array task + offset ($1) = copy index.\n"
        "i=$((SLURM_ARRAY_TASK_ID + ${1:-0}))\n",
        job_id="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}",
    )


def job_script(
    spec: SubmissionSpec,
    config: SSHBatchConfig | LocalBatchConfig,
    batch_dir: str,
    executable_name: str,
    *,
    has_inputs: bool,
    head: str,
    job_id: str,
    end: str = "exit",
    prelude: str = "",
    wrap: tuple[str, str] = ("", ""),
    enforce_wall_time: bool = False,
) -> str:
    """The script a copy runs, for every scheduler: ``head`` sets ``$i`` (the copy index) and
    ``job_id`` is how the log line names the job; ``end`` is how it exits (a shell function
    ``prelude`` may define); ``wrap`` goes around the payload's command; with
    ``enforce_wall_time`` (no scheduler does) ``timeout`` ends the payload at
    ``wall_time_s``: SIGTERM, SIGKILL 30 s later, exit code 124.

    bash, as DIRAC's own SLURM.py batch scripts: site preambles are written for it
    (PushJobAgent's is "source <cvmfs>/diracosrc", which dash refuses). Secrets never appear
    here: the copy reads its own line of the batch's ``copies`` and ``secrets`` files
    (exit code 95 when it cannot), writes its secret files and exports only their paths.
    The job makes the copy's directory; exit codes 96 and 97 say staging the inputs or making
    the working directory failed. A container image without a
    launcher never gets here (``staging.check_submittable`` refuses it).
    """
    command = quote_command(
        [f"{batch_dir}/bin/{executable_name}", *spec.arguments], field="executable"
    )
    if spec.container_image is not None and config.container_launcher is not None:
        # One pass: a command holding the text "{image}" must stay as it is.
        values = {"{image}": shlex.quote(spec.container_image), "{command}": command}
        command = _PLACEHOLDER.sub(lambda m: values[m.group(0)], config.container_launcher)
    if enforce_wall_time and spec.resources.wall_time_s is not None:
        command = f"timeout -k 30 {spec.resources.wall_time_s} {command}"
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in spec.environment.items()
    )
    b = shlex.quote(batch_dir)
    stage_inputs = (
        f'cp -R {b}/inputs/. . || {{ echo "intercede: staging inputs failed"; {end} 96; }}\n'
    )
    no_record = f'{{ echo "intercede: cannot read copy $i\'s record in {batch_dir}"; {end} 95; }}'
    # The copy's own line of the per-submission records (staging.copy_records), read with
    # bash builtins: a secret passes through printf (a builtin) into base64's stdin, never
    # through an argv or an environment.
    copy_record = (
        f'mapfile -t -s "$i" -n 1 r <{b}/{COPIES} && [ "${{#r[@]}}" = 1 ] &&'
        f' e=$(base64 -d <<<"${{r[0]}}") && eval "$e" || {no_record}\n'
        f"if [ -f {b}/{SECRETS} ]; then\n"
        f'  mapfile -t -s "$i" -n 1 r <{b}/{SECRETS} && mkdir -p "$d/secrets" || {no_record}\n'
        "  for e in ${r[0]-}; do\n"
        "    v=${e#*:}\n"
        # "@<k>": the same value as copy k's under this name, on k's line
        '    case $v in @*) mapfile -t -s "${v#@}" -n 1 s <'
        f"{b}/{SECRETS}"
        ' && for f in ${s[0]-}; do [ "${f%%:*}" = "${e%%:*}" ] && v=${f#*:}; done ;; esac\n'
        '    printf %s "$v" | base64 -d >"$d/secrets/${e%%:*}" || '
        f"{no_record}\n"
        '    export "INTERCEDE_SECRET_${e%%:*}=$d/secrets/${e%%:*}"\n'
        "  done\n"
        "fi\n"
    )
    return (
        "#!/bin/bash\n"
        + head
        + "umask 077\n"
        + f'd={b}/"$i"\n'
        + prelude
        + 'mkdir -p "$d/work" && cd "$d/work" ||'
        f' {{ echo "intercede: no working directory $d/work"; {end} 97; }}\n'
        f'echo "intercede: copy $i, job {job_id},'
        ' started on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"\n'
        + (stage_inputs if has_inputs else "")
        + "export INTERCEDE_COPY_INDEX=$i\n"
        + exports
        + copy_record
        + 'exec 3>&1 >"$d/stdout" 2>"$d/stderr"\n'
        + (config.preamble.rstrip("\n") + "\n" if config.preamble else "")
        + wrap[0]
        + command
        + wrap[1]
        + "\n"
        "rc=$?\n"
        f'echo "{EXIT_LINE}$rc at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >&3\n'
        f'{end} "$rc"\n'
    )


CANCELLED = "cancelled"
"""``<batch>/cancelled``: the task ids ``kill`` cancelled while they were live, one a line: the
only trace of a task cancelled inside its pending array record (see ``slurm_query.sh``)."""

SUBMITTING = "submitting"
"""``<batch>/submitting``: the process id of the submit script while it runs, so a cleanup
never removes a batch whose submit is still unpacking or calling sbatch on the resource."""


def submit_script(
    *, work_root: str, batch: str, copies: int, options: Sequence[str], max_array_size: int | None
) -> str:
    """Unpack the staged tar (stdin) and ``sbatch --array`` every chunk, in one round trip
    (``slurm_submit.sh``).

    Chunking happens remotely so the count of round trips stays one for any N; when the array
    limit is not configured the script asks ``scontrol`` once and reports it (``@@max``) so the
    backend can cache it. The script's size does not depend on N.
    """
    limit = "" if max_array_size is None else str(max_array_size)
    return remote.script(
        "slurm_submit.sh",
        work_root,
        batch,
        str(copies),
        limit,
        str(DEFAULT_MAX_ARRAY_SIZE),
        *options,
    )


@dataclass(frozen=True)
class SubmitReply:
    """What the submit script said: ``chunks`` (offset, size, array id) and, if a chunk failed,
    the offset it failed at and sbatch's message. ``malformed`` holds lines that looked like
    markers but could not be read: their copies' fate is unknown."""

    chunks: tuple[tuple[int, int, str], ...]
    max_array_size: int | None
    failed_at: int | None
    error: str
    malformed: tuple[str, ...] = ()


def parse_submit(stdout: str) -> SubmitReply:
    chunks: list[tuple[int, int, str]] = []
    max_size: int | None = None
    failed_at: int | None = None
    error_lines: list[str] = []
    malformed: list[str] = []
    for part in remote.sections(stdout):
        mark = f"{remote.MARK}{part.word} {part.arg}".rstrip()
        if failed_at is not None:
            error_lines += [mark, *part.lines]
        elif part.word == "max":
            value = part.arg.split()[0] if part.arg.split() else ""
            if value.isdigit() and int(value) > 0:
                max_size = int(value)
        elif part.word == "chunk":
            chunk = parse_chunk(mark)
            if chunk is None:
                malformed.append(mark)
            else:
                chunks.append(chunk)
        elif part.word == "fail":
            value = part.arg.split()[0] if part.arg.split() else ""
            if value.isdigit():
                failed_at = int(value)
                error_lines += part.lines
            else:
                malformed.append(mark)
    return SubmitReply(
        chunks=tuple(chunks),
        max_array_size=max_size,
        failed_at=failed_at,
        error="\n".join(error_lines).strip(),
        malformed=tuple(malformed),
    )


# sbatch's messages for a refusal that goes away by itself: the controller is busy, down or
# unreachable, authentication (munge) is down on either side, or a submit quota
# (QOS/association MaxSubmitJobs, MaxJobCount) is full until jobs finish. Slurm words the quota
# case as "Job violates accounting/QOS policy (job submit limit, ...)". Each entry is matched
# against sbatch's stderr recorded from both Slurm variants
# (tests/unit/data/slurm/<variant>/sbatch_refusals.json).
TRANSIENT_SUBMIT_ERRORS = (
    "unable to contact",
    "unable to establish control machine address",  # controller's name does not resolve
    "protocol authentication error",  # munged down on the submit host
    "zero bytes were transmitted or received",  # munged down on the controller
    "socket timed out",
    "connection refused",
    "temporarily unable",
    "resource temporarily unavailable",
    "slurm_persist_conn",
    "job queue full",
    "job submit limit",
    "qosmaxsubmitjob",
    "assocmaxsubmitjob",
    "maxsubmitjob",
    "qosgrpsubmitjob",
    "assocgrpsubmitjob",
)
"""The one classification table: a sbatch message holding any of these (case-insensitive) is
retryable (``SubmitUnavailableError``, a ``ResourceUnavailableError``: try again later); any
other refusal is ``SpecificationRejectedError`` (this spec will never be accepted)."""


def is_transient(message: str) -> bool:
    text = message.lower()
    return any(marker in text for marker in TRANSIENT_SUBMIT_ERRORS)


# --- status, kill, counts ----------------------------------------------------------------

_CHUNK_ARGS = 500
"""Ids per squeue/sacct/scancel invocation in the scripts (``xargs -n 500``): the remote argv
stays far under the kernel's 128 KiB single-argument limit whatever N is."""


def status_input(jobs: Iterable[tuple[str, str]], cancel: Sequence[str] = ()) -> bytes:
    """The id lists travel on stdin, so the command line has the same size for any N:
    ``J <job id> <batch>`` per job, ``C <range>`` per ``scancel`` argument."""
    lines = [f"J {job_id} {batch}\n" for job_id, batch in jobs]
    lines += [f"C {item}\n" for item in cancel]
    return "".join(lines).encode()


def status_script(work_root: str, *, chunks: bool = False) -> str:
    """squeue for live jobs, sacct for the rest, each command's exit code (``@@rc``), the exit
    line of jobs both forgot, and with ``chunks`` each batch's chunk record; ids on stdin
    (``status_input``). See ``slurm_query.sh``.

    ``-t all`` keeps finished jobs in squeue's answer for ``MinJobAge``, which covers the
    moment between a job leaving the queue and slurmdbd recording it.
    """
    return remote.script("slurm_query.sh", "status+chunks" if chunks else "status", work_root)


def cancel_script(work_root: str, job_name: str) -> str:
    """The status, one ``scancel`` per chunk of ranges, and the status again only when
    ``scancel`` failed (to tell which cancels did not land); ids on stdin.

    Only arrays that squeue shows with our user and ``job_name`` are cancelled (``@@ours``):
    a stale handle cannot cancel someone else's job. scancel's own ``-u``/``--name`` filters
    are not used: with them Slurm 22.05 cancels a whole pending array when asked for one task.
    """
    return remote.script("slurm_query.sh", "cancel", work_root, job_name, "|".join(_FINAL_RAW))


def cleanup_script(work_root: str, batch: str) -> str:
    """Remove ``<work_root>/<batch>`` unless its submit still runs there or one of its jobs is
    still live; one round trip (``slurm_cleanup.sh``). ``batch`` is validated by the caller
    (32 hex digits). Any state not known to be final counts as live.
    """
    final = ",".join(sorted(raw for raw, status in SLURM_STATES.items() if status.is_final))
    return remote.script("slurm_cleanup.sh", work_root, batch, final)


@dataclass(frozen=True)
class SlurmJobState:
    """One job as Slurm reports it."""

    raw: str

    @property
    def status(self) -> JobStatus:
        return map_state(self.raw)


@dataclass(frozen=True)
class StatusReply:
    """Everything one status section said.

    ``squeue_ok``/``sacct_ok`` are ``None`` when the reply carries no exit code (recorded
    output); ``exits`` maps a job to the exit code its log reports; ``chunks`` maps a batch to
    its recorded chunks; ``ours`` are the arrays with our user and job name.
    """

    states: dict[str, SlurmJobState]
    squeue_ok: bool | None
    sacct_ok: bool | None
    exits: dict[str, int]
    chunks: dict[str, tuple[tuple[int, int, str], ...]]
    ours: frozenset[str]
    complete: bool
    cancelled: frozenset[str] = frozenset()
    """Wanted ids this backend's kill recorded as cancelled."""

    def job_id_at(self, batch: str, index: int) -> str | None:
        """The Slurm id recorded for copy ``index`` of ``batch`` (``None``: no record)."""
        return recorded_job_id(self.chunks.get(batch, ()), index)


def _status_line(
    mode: str,
    line: str,
    want: set[str],
    exits: dict[str, int],
    cancelled: set[str],
    live: dict[str, str],
    live_whole: dict[str, str],
    accounted: dict[str, str],
    accounted_whole: dict[str, str],
) -> None:
    """One body line of a status reply, read by the section it is in."""
    if mode == "exits":
        path, sep, text = line.partition(f":{EXIT_LINE}")
        code = text.split(" ", 1)[0]
        if sep and code.isdigit() and path.endswith(".log"):
            exits[path.rsplit("/", 1)[-1].removesuffix(".log")] = int(code)
        return
    if mode == "cancelled":
        if line.strip() in want:
            cancelled.add(line.strip())
        return
    if mode not in ("squeue", "sacct"):
        return
    target, whole = (live, live_whole) if mode == "squeue" else (accounted, accounted_whole)
    fields = line.split("|")
    if len(fields) < 2:
        return
    job_field, state = fields[0].strip(), fields[1].strip()
    if job_field.isdigit():
        whole[job_field] = state
        return
    for job_id in expand_job_ids(job_field):
        if job_id in want:
            target[job_id] = state


def _squeue_lines(
    lines: Sequence[str],
    want: set[str],
    live: dict[str, str],
    live_whole: dict[str, str],
    accounted: dict[str, str],
    accounted_whole: dict[str, str],
) -> None:
    """``_status_line`` for a whole squeue section, with the common line (a plain task id
    that was asked for) read without a call per line."""
    for line in lines:
        job_field, sep, rest = line.partition("|")
        if sep and job_field in want:
            state = rest.partition("|")[0].strip()
            live[job_field] = state
        else:
            _status_line(
                "squeue", line, want, {}, set(), live, live_whole, accounted, accounted_whole
            )


def parse_status_reply(stdout: str, wanted: Iterable[str]) -> StatusReply:
    """The states of ``wanted`` task ids plus what the script said about its commands.

    squeue (live view) wins, except where it still says COMPLETING and sacct already has the
    final state.
    """
    return _read_status(remote.sections(stdout), wanted)


def _read_status(parts: Sequence[remote.Section], wanted: Iterable[str]) -> StatusReply:
    want = set(wanted)
    live: dict[str, str] = {}
    accounted: dict[str, str] = {}
    # A pending array cancelled before it split is reported by its bare id ("106"): that
    # state holds for every task of it not listed on its own.
    live_whole: dict[str, str] = {}
    accounted_whole: dict[str, str] = {}
    rcs: dict[str, int] = {}
    exits: dict[str, int] = {}
    ours: set[str] = set()
    cancelled: set[str] = set()
    mode = "squeue"
    complete = False
    for part in parts:
        if part.word == "squeue":
            _squeue_lines(part.lines, want, live, live_whole, accounted, accounted_whole)
            mode = "squeue"
            continue
        if part.word in ("squeue", "sacct", "exits", "cancelled"):
            mode = part.word
        elif part.word == "rc":
            name, _, code = part.arg.partition(" ")
            rcs[name] = int(code) if code.lstrip("-").isdigit() else -1
        elif part.word == "chunks":
            mode = "chunks"
        elif part.word == "ours":
            ours.add(part.arg.strip())
        elif part.word == "end":
            complete = True
            break
        for line in part.lines:
            _status_line(
                mode, line, want, exits, cancelled, live, live_whole, accounted, accounted_whole
            )
    for job_id in want:
        array = job_id.partition("_")[0]
        if job_id not in live and array in live_whole:
            live[job_id] = live_whole[array]
        if job_id not in accounted and array in accounted_whole:
            accounted[job_id] = accounted_whole[array]
    states: dict[str, SlurmJobState] = {}
    for job_id in want:
        squeue_state = live.get(job_id)
        sacct_state = accounted.get(job_id)
        if squeue_state is not None and not (
            normalise_state(squeue_state) == "COMPLETING"
            and sacct_state is not None
            and map_state(sacct_state).is_final
        ):
            states[job_id] = SlurmJobState(squeue_state)
        elif job_id in cancelled and (sacct_state is None or not map_state(sacct_state).is_final):
            states[job_id] = SlurmJobState("CANCELLED")  # gone from the queue, as we asked
        elif sacct_state is not None:
            states[job_id] = SlurmJobState(sacct_state)
    return StatusReply(
        states=states,
        squeue_ok=rcs["squeue"] == 0 if "squeue" in rcs else None,
        sacct_ok=rcs["sacct"] == 0 if "sacct" in rcs else None,
        exits={job_id: code for job_id, code in exits.items() if job_id in want},
        chunks=chunk_records(parts),
        ours=frozenset(ours),
        complete=complete,
        cancelled=frozenset(cancelled),
    )


def parse_status(stdout: str, wanted: Iterable[str]) -> dict[str, SlurmJobState]:
    """The states of ``wanted`` task ids; an id missing from both commands is left out."""
    return parse_status_reply(stdout, wanted).states


def counts_script(job_name: str, queue: str | None) -> str:
    """This backend's own jobs: our user, our job name, our partition (if fixed); then, for a
    fixed partition, its state (``@@partition``: nothing follows when Slurm has no such one).
    See ``slurm_counts.sh``."""
    return remote.script("slurm_counts.sh", job_name, queue or "")


MISSING_PARTITION = "MISSING"
"""``LoadCounts.queue_state`` for a partition Slurm does not have."""

BLOCKING_REASONS = frozenset(
    {
        "PartitionDown",
        "PartitionInactive",
        "PartitionConfig",
        "InvalidAccount",
        "InvalidQOS",
        "BadConstraints",
        "JobHeldAdmin",
    }
)
"""Pending reasons that waiting will not clear: an administrator has to act."""


def parse_counts(stdout: str) -> tuple[int, int]:
    """(running, waiting) from one ``%T`` per line (up to ``@@partition``)."""
    running = waiting = 0
    for line in remote.sections(stdout)[0].lines:
        status = map_state(line)
        if status is JobStatus.RUNNING:
            running += 1
        elif status is JobStatus.WAITING:
            waiting += 1
    return running, waiting


def parse_queue_state(stdout: str) -> str | None:
    """The partition state after ``@@partition`` (``MISSING`` when Slurm printed none);
    ``None`` when the script asked for none."""
    found = [part for part in remote.sections(stdout) if part.word == "partition"]
    if not found:
        return None
    for line in found[0].lines:
        _, sep, state = line.partition("|")
        if sep and state.strip():
            return state.strip()
    return MISSING_PARTITION


def explain_script() -> str:
    """Each job's state, pending reason and partition (squeue), then every partition's state;
    job ids on stdin, one per line (``slurm_explain.sh``)."""
    return remote.script("slurm_explain.sh")


def parse_explain(stdout: str, wanted: Iterable[str]) -> dict[str, Explanation]:
    """The explanation of every ``wanted`` id squeue still shows; the others are left out."""
    want = set(wanted)
    jobs: dict[str, tuple[str, str, str]] = {}
    partitions: dict[str, str] = {}
    for part in remote.sections(stdout):
        for line in part.lines:
            fields = [f.strip() for f in line.split("|")]
            if part.word == "squeue" and len(fields) >= 4:
                for job_id in expand_job_ids(fields[0]):
                    if job_id in want:
                        jobs[job_id] = (fields[1], fields[2], fields[3])
            elif part.word == "partitions" and len(fields) == 2:
                partitions[fields[0]] = fields[1]
    result: dict[str, Explanation] = {}
    for job_id, (raw, reason, partition) in jobs.items():
        status = map_state(raw)
        queue_state = partitions.get(partition, MISSING_PARTITION if partition else None)
        blocked = status is JobStatus.WAITING and (
            reason in BLOCKING_REASONS or queue_state not in (None, "UP")
        )
        result[job_id] = Explanation(
            status=status,
            reason=None if reason in ("", "None") else reason,
            queue=partition or None,
            queue_state=queue_state,
            blocked=blocked,
        )
    return result


STAGING_EXIT_CODES = {
    90: "cannot create or enter the work root",
    91: "cannot create the batch directory",
    92: "cannot unpack the batch (disk full, quota, or the upload broke off)",
}
"""Exit codes of the submit script that fail before any ``sbatch`` ran: nothing can have
been queued, and the script removed what it had unpacked."""


def submit_error(rc: int, message: str, work_root: str, batch: str) -> InterCEdeError:
    """The class of a submit that queued nothing (the first chunk failed).

    Staging failures queued nothing for sure: ``ResourceUnavailableError``, not the "outcome in
    doubt" class. A sbatch refusal is retryable (``SubmitUnavailableError``: sbatch may have
    lost the controller's answer) or permanent (``SpecificationRejectedError``) by
    ``TRANSIENT_SUBMIT_ERRORS``.
    """
    text = clip(message) or f"exit code {rc}"
    if rc in STAGING_EXIT_CODES:
        return ResourceUnavailableError(
            f"{STAGING_EXIT_CODES[rc]} under {work_root}; nothing was queued: {text}"
        )
    if rc == 93 and not is_transient(text):
        return SpecificationRejectedError(f"sbatch refused the submission: {text}")
    return SubmitUnavailableError(f"submission failed: {text}", batch=batch)


def status_of(reply: StatusReply, job_id: str) -> JobStatus:
    """A job's status: Slurm's state, else the exit code its log records, else ``Unknown``."""
    state = reply.states.get(job_id)
    if state is not None:
        return state.status
    code = reply.exits.get(job_id)
    if code is not None:
        return JobStatus.DONE if code == 0 else JobStatus.FAILED
    return JobStatus.UNKNOWN


def _is_live(state: SlurmJobState | None) -> bool:
    return state is not None and not state.status.is_final and state.status is not JobStatus.UNKNOWN


def kill_outcome(
    before: SlurmJobState | None,
    after: SlurmJobState | None,
    *,
    cancelled_before: bool = False,
) -> OpOutcome:
    """A job is ok when it is cancelled now and was live before, or when an earlier attempt
    (this call's, retried after a lost connection, or an earlier kill) had cancelled it."""
    if cancelled_before and before is not None and before.status is JobStatus.ABORTED:
        return OpOutcome(ok=True)
    if before is None:
        return OpOutcome(ok=False, reason="unknown to Slurm (never existed, or long gone)")
    if before.status.is_final:
        return OpOutcome(ok=False, reason=f"already finished ({before.status.value})")
    if after is None or after.status is JobStatus.ABORTED:
        return OpOutcome(ok=True)
    if normalise_state(after.raw) == "COMPLETING":
        return OpOutcome(ok=True)
    if after.status.is_final:
        return OpOutcome(ok=False, reason=f"finished ({after.status.value}) before scancel")
    return OpOutcome(ok=False, reason=f"still {after.raw} after scancel")


class SlurmScheduler:
    """Slurm behind the ``Scheduler`` seam (``scheduler = "slurm"``). Its only state is the
    cluster's array limit, asked once (inside the first submit) and cached for the backend's
    lifetime."""

    name = "slurm"
    label = "Slurm"
    job_id_pattern = re.compile(r"([0-9]+)_([0-9]+)", re.ASCII)

    def __init__(self, max_array_size: int | None = None) -> None:
        self.max_array_size = max_array_size

    # --- submit ------------------------------------------------------------------------------

    def batch_script(
        self, spec: SubmissionSpec, config: BatchConfig, batch_dir: str, executable_name: str,
        *, has_inputs: bool,
    ) -> str:  # fmt: skip
        return batch_script(spec, config, batch_dir, executable_name, has_inputs=has_inputs)

    def submit_command(
        self, spec: SubmissionSpec, config: BatchConfig, batch: str, copies: int
    ) -> Command:
        batch_dir = f"{config.work_root}/{batch}"
        return Command(
            submit_script(
                work_root=config.work_root,
                batch=batch,
                copies=copies,
                options=sbatch_options(spec, config, batch_dir, batch),
                max_array_size=self.max_array_size,
            ),
            transfer=True,
            idempotent=False,
        )

    def submit_result(
        self, reply: Reply, config: BatchConfig, batch: str, copies: int
    ) -> SubmitResult:
        parsed = parse_submit(reply.out)
        if parsed.malformed:
            raise SubmitUnavailableError(
                f"unreadable reply from the submit command: {parsed.malformed[0]!r}", batch=batch
            )
        if parsed.max_array_size is not None:
            self.max_array_size = parsed.max_array_size
        if not parsed.chunks:
            raise submit_error(reply.rc, parsed.error or reply.err, config.work_root, batch)
        job_ids = {
            offset + task: f"{array_id}_{task}"
            for offset, size, array_id in parsed.chunks
            for task in range(size)
        }
        refused = None
        if len(job_ids) < copies:
            refused = f"sbatch refused this chunk: {parsed.error or 'no reason given'}"
        return SubmitResult(
            job_ids=job_ids,
            refused=refused,
            grouping=f"{len(parsed.chunks)} array chunk(s) (MaxArraySize {self.max_array_size}): "
            + ", ".join(f"{first}+{size}={array}" for first, size, array in parsed.chunks),
        )

    # --- status ------------------------------------------------------------------------------

    def status_command(
        self, config: BatchConfig, jobs: Sequence[JobLocation], *, chunks: bool = False
    ) -> Command:
        return Command(
            status_script(config.work_root, chunks=chunks),
            stdin=status_input((job.job_id, job.batch) for job in jobs),
        )

    def status_result(self, reply: Reply, jobs: Sequence[JobLocation]) -> StatusView:
        ids = [job.job_id for job in jobs]
        parsed = parse_status_reply(reply.out, ids)
        if not parsed.complete or parsed.squeue_ok is None or parsed.sacct_ok is None:
            raise ResourceUnavailableError(f"status query failed: {clip(reply.err)}")
        if not parsed.squeue_ok and not parsed.sacct_ok:
            raise ResourceUnavailableError(
                f"Slurm is not answering (squeue and sacct both failed): {clip(reply.err)}"
            )
        return StatusView(
            statuses={job_id: status_of(parsed, job_id) for job_id in ids},
            live_view_failed=None if parsed.squeue_ok else "squeue failed",
            chunks=parsed.chunks,
        )

    # --- kill --------------------------------------------------------------------------------

    def kill_command(self, config: BatchConfig, jobs: Sequence[JobLocation]) -> Command:
        ids = [job.job_id for job in jobs]
        return Command(
            cancel_script(config.work_root, config.job_name),
            stdin=status_input(((job.job_id, job.batch) for job in jobs), compress_ids(ids)),
        )

    def kill_result(
        self, reply: Reply, config: BatchConfig, jobs: Sequence[JobLocation]
    ) -> dict[str, OpOutcome]:
        ids = [job.job_id for job in jobs]
        parts = remote.sections(reply.out)
        split = next((i for i, part in enumerate(parts) if part.word == "after"), None)
        if split is None:
            raise ResourceUnavailableError(f"scancel failed (squeue): {clip(reply.err)}")
        before = _read_status([*parts[:split], remote.Section("end", "", ())], ids)
        rest = [remote.Section("", "", parts[split].lines), *parts[split + 1 :]]
        # The status is read again only when scancel failed: then each job's own state says
        # which cancel did not land. A scancel that succeeded cancelled every live job asked.
        reread = any(part.word == "squeue" for part in rest)
        after = _read_status(rest, ids)
        if not after.complete or not before.squeue_ok or (reread and not after.squeue_ok):
            raise ResourceUnavailableError(f"scancel failed (squeue): {clip(reply.err)}")
        result: dict[str, OpOutcome] = {}
        for job in jobs:
            state = before.states.get(job.job_id)
            if job.array_id not in before.ours and _is_live(state):
                result[job.job_id] = OpOutcome(
                    ok=False,
                    reason="not cancelled: squeue shows it with another user or job name "
                    f"than {config.job_name!r} (a stale or foreign handle?)",
                )
                continue
            result[job.job_id] = kill_outcome(
                state,
                after.states.get(job.job_id) if reread else None,
                cancelled_before=job.job_id in before.cancelled,
            )
        return result

    # --- counts and explain ------------------------------------------------------------------

    def counts_command(self, config: BatchConfig) -> Command:
        return Command(counts_script(config.job_name, config.queue))

    def counts_result(self, reply: Reply) -> LoadCounts:
        if reply.rc != 0:
            raise ResourceUnavailableError(f"squeue failed: {clip(reply.err)}")
        running, waiting = parse_counts(reply.out)
        return LoadCounts(
            running=running, waiting=waiting, queue_state=parse_queue_state(reply.out)
        )

    def explain_command(self, config: BatchConfig, jobs: Sequence[JobLocation]) -> Command:
        return Command(explain_script(), stdin="".join(f"{j.job_id}\n" for j in jobs).encode())

    def explain_result(
        self, reply: Reply, jobs: Sequence[JobLocation]
    ) -> dict[str, Explanation | OpOutcome]:
        if reply.rc != 0 or f"{remote.MARK}end" not in reply.out:
            raise ResourceUnavailableError(f"explain failed: {clip(reply.err)}")
        found = parse_explain(reply.out, [job.job_id for job in jobs])
        return {
            job.job_id: found.get(job.job_id)
            or OpOutcome(ok=False, reason="Slurm's queue no longer shows this job")
            for job in jobs
        }

    # --- cleanup of a submit in doubt --------------------------------------------------------

    def cleanup_command(self, config: BatchConfig, batch: str) -> Command:
        return Command(cleanup_script(config.work_root, batch))

    def cleanup_result(self, reply: Reply, batch: str) -> OpOutcome:
        return cleanup_outcome(reply, batch)
