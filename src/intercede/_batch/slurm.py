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
from ..models import Explanation, JobStatus, Resources, SubmissionSpec
from .layout import BATCH_SCRIPT

__all__ = [
    "CHUNKS",
    "DEFAULT_MAX_ARRAY_SIZE",
    "EXIT_LINE",
    "SLURM_STATES",
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

_FINAL_RAW = tuple(raw for raw, status in SLURM_STATES.items() if status.is_final)


def normalise_state(raw: str) -> str:
    """``"CANCELLED by 2000"`` → ``"CANCELLED"``; ``"RUNNING+"`` → ``"RUNNING"``."""
    words = raw.strip().upper().split()
    return words[0].rstrip("+") if words else ""


def map_state(raw: str) -> JobStatus:
    """Map one raw squeue/sacct state through ``SLURM_STATES``; unknown → ``Unknown``."""
    return SLURM_STATES.get(normalise_state(raw), JobStatus.UNKNOWN)


# --- job ids -----------------------------------------------------------------------------

_COLLAPSED = re.compile(r"([0-9]+)_\[([0-9,\-]+)(?:%[0-9]+)?\]")


def expand_job_ids(field: str) -> list[str]:
    """One squeue/sacct JobID field → task ids: ``"7_[0-2,5%2]"`` → ``7_0 7_1 7_2 7_5``."""
    match = _COLLAPSED.fullmatch(field.strip())
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
    """The one batch script every copy of the batch runs (array task + offset = copy index).

    Secrets never appear here: each copy's ``env`` file exports only their paths. A container
    image without a launcher never gets here (``staging.check_submittable`` refuses it).
    """
    command = quote_command(
        [f"{batch_dir}/bin/{executable_name}", *spec.arguments], field="executable"
    )
    if spec.container_image is not None and config.container_launcher is not None:
        # One pass: a command holding the text "{image}" must stay as it is.
        values = {"{image}": shlex.quote(spec.container_image), "{command}": command}
        command = _PLACEHOLDER.sub(lambda m: values[m.group(0)], config.container_launcher)
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in spec.environment.items()
    )
    b = shlex.quote(batch_dir)
    stage_inputs = (
        f'cp -R {b}/inputs/. . || {{ echo "intercede: staging inputs failed"; exit 96; }}\n'
    )
    return (
        # bash, as DIRAC's own SLURM.py batch scripts: site preambles are written for it
        # (PushJobAgent's is "source <cvmfs>/diracosrc", which dash refuses).
        "#!/bin/bash\n"
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
        f'echo "{EXIT_LINE}$rc at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >&3\n'
        'exit "$rc"\n'
    )


CANCELLED = "cancelled"
"""``<batch>/cancelled``: the task ids ``kill`` cancelled while they were live, one a line: the
only trace of a task cancelled inside its pending array record (see ``status_script``)."""

SUBMITTING = "submitting"
"""``<batch>/submitting``: the process id of the submit script while it runs, so a cleanup
never removes a batch whose submit is still unpacking or calling sbatch on the resource."""

CHUNKS = "chunks"
"""``<batch>/chunks``: the ``@@chunk`` lines of every chunk sbatch accepted, written as they
happen, so a submit whose reply was lost can be reconciled (and purge can check a handle)."""


def submit_script(
    *, work_root: str, batch: str, copies: int, options: Sequence[str], max_array_size: int | None
) -> str:
    """Unpack the staged tar (stdin) and ``sbatch --array`` every chunk, in one round trip.

    Chunking happens remotely so the count of round trips stays one for any N; when the array
    limit is not configured the script asks ``scontrol`` once and reports it (``@@max``) so the
    backend can cache it. The script's size does not depend on N.
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
        f'echo $$ > "$b/{SUBMITTING}"\n'
        'tar -x -f - -C "$b" || { rm -rf "$b"; exit 92; }\n' + ask_max + f"n={copies}\n"
        "o=0\n"
        'while [ "$o" -lt "$n" ]; do\n'
        '  k=$((n - o)); [ "$k" -gt "$max" ] && k=$max\n'
        f'  if id=$(sbatch {opts} --array=0-$((k - 1)) "$PWD/$b/{BATCH_SCRIPT}" "$o"'
        ' 2>"$b/sbatch.err"); then\n'
        f'    echo "@@chunk $o $k $id" >> "$b/{CHUNKS}"\n'
        '    echo "@@chunk $o $k $id"\n'
        "  else\n"
        '    echo "@@fail $o"; cat "$b/sbatch.err"\n'
        '    if [ "$o" -eq 0 ]; then rm -rf "$b"; else\n'
        '      i=$o; while [ "$i" -lt "$n" ]; do rm -rf "$b/$i"; i=$((i + 1)); done; fi\n'
        "    exit 93\n"
        "  fi\n"
        "  o=$((o + k))\n"
        "done\n"
        f'rm -f "$b/sbatch.err" "$b/{SUBMITTING}"\n'
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


def parse_chunk(line: str) -> tuple[int, int, str] | None:
    """``@@chunk <offset> <size> <id>[;cluster]`` → (offset, size, array id); ``None`` if bad."""
    parts = line.split(maxsplit=3)
    if len(parts) != 4 or parts[0] != "@@chunk":
        return None
    _, offset, size, raw_id = parts
    array_id = raw_id.split(";")[0].strip()  # --parsable prints "<id>" or "<id>;<cluster>"
    if not (offset.isdigit() and size.isdigit() and array_id.isdigit()):
        return None
    return int(offset), int(size), array_id


def parse_submit(stdout: str) -> SubmitReply:
    chunks: list[tuple[int, int, str]] = []
    max_size: int | None = None
    failed_at: int | None = None
    error_lines: list[str] = []
    malformed: list[str] = []
    for line in stdout.splitlines():
        if failed_at is not None:
            error_lines.append(line)
        elif line.startswith("@@max "):
            value = line.split()[1] if len(line.split()) > 1 else ""
            if value.isdigit() and int(value) > 0:
                max_size = int(value)
        elif line.startswith("@@chunk"):
            chunk = parse_chunk(line)
            if chunk is None:
                malformed.append(line)
            else:
                chunks.append(chunk)
        elif line.startswith("@@fail"):
            value = line.split()[1] if len(line.split()) > 1 else ""
            if value.isdigit():
                failed_at = int(value)
            else:
                malformed.append(line)
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

_SQUEUE_FORMAT = "%i|%T|%u|%j"
_SACCT_FIELDS = "JobID,State"
_CHUNK_ARGS = 500
"""Ids per squeue/sacct/scancel invocation: the remote argv stays far under the kernel's
128 KiB single-argument limit whatever N is; the round trip stays one."""


def status_input(jobs: Iterable[tuple[str, str]], cancel: Sequence[str] = ()) -> bytes:
    """The id lists travel on stdin, so the command line has the same size for any N:
    ``J <job id> <batch>`` per job, ``C <range>`` per ``scancel`` argument."""
    lines = [f"J {job_id} {batch}\n" for job_id, batch in jobs]
    lines += [f"C {item}\n" for item in cancel]
    return "".join(lines).encode()


def _status_prelude(work_root: str) -> str:
    root = shlex.quote(work_root)
    return (
        "t=$(mktemp -d) || exit 4\n"
        "trap 'rm -rf \"$t\"' EXIT\n"
        'cat > "$t/in"\n'
        'sed -n \'s/^J //p\' "$t/in" > "$t/jobs"\n'
        'cut -d\' \' -f1 "$t/jobs" | cut -d_ -f1 | sort -u > "$t/arrays"\n'
        f"r={root}\n"
        # squeue fails when none of its ids is known to it: the user's whole queue (filtered
        # locally) then tells "unknown to Slurm" from "Slurm not answering".
        "status() {\n"
        "  echo @@squeue\n"
        f'  xargs -r -n {_CHUNK_ARGS} sh -c \'IFS=,; squeue -h -r -t all -j "$*"'
        f' -o "{_SQUEUE_FORMAT}" 2>/dev/null'
        f' || squeue -h -r -t all -u "$(id -un)" -o "{_SQUEUE_FORMAT}"\' sh'
        ' < "$t/arrays" > "$t/q"\n'
        '  s=$?; cat "$t/q"; echo "@@rc squeue $s"\n'
        "  echo @@sacct\n"
        # sacct (a slurmdbd query, ~0.1 s) only when squeue left a job out or saw it COMPLETING
        '  cut -d\'|\' -f1 "$t/q" | sort -u > "$t/qk"\n'
        "  if grep -q '|COMPLETING|' \"$t/q\" ||"
        ' cut -d\' \' -f1 "$t/jobs" | sort -u | comm -23 - "$t/qk" | grep -q .; then\n'
        f'  xargs -r -n {_CHUNK_ARGS} sh -c \'IFS=,; exec sacct -n -P -X -j "$*"'
        f" -o {_SACCT_FIELDS}' sh"
        ' < "$t/arrays" > "$t/s"\n'
        '  s=$?; else : > "$t/s"; s=0; fi; cat "$t/s"; echo "@@rc sacct $s"\n'
        "}\n"
        # Tasks this backend cancelled (kill's record, one file per batch): Slurm 22.05 and
        # 24.11 drop a task cancelled inside its pending array record from squeue and never
        # give it an sacct row of its own, while sacct keeps listing the array's range.
        "cancelled() {\n"
        "  echo @@cancelled\n"
        "  cut -d' ' -f2 \"$t/jobs\" | sort -u | while read -r b; do\n"
        f'    cat "$r/$b/{CANCELLED}" 2>/dev/null\n'
        "  done\n"
        "}\n"
    )


# Jobs neither command knows (no accounting, MinJobAge passed): the batch script's last log
# line still says how the payload ended. One grep over just those logs.
_EXITS = (
    "echo @@exits\n"
    'cut -d\'|\' -f1 "$t/q" "$t/s" | sort -u > "$t/known"\n'
    # FILENAME, not NR == FNR: the known list is empty exactly when every job was forgotten.
    'awk \'FILENAME == ARGV[1] { k[$0] = 1; next } !($1 in k) { print $2 "/logs/" $1 ".log" }\''
    ' "$t/known" "$t/jobs" > "$t/logs"\n'
    'if [ -s "$t/logs" ] && cd "$r" 2>/dev/null; then\n'
    f"  xargs -r grep -H '^{EXIT_LINE}[0-9]' < \"$t/logs\" 2>/dev/null\n"
    "fi\n"
)

# Each batch's chunk record, so purge can check a handle's id against its routing.
_CHUNKS = (
    "cut -d' ' -f2 \"$t/jobs\" | sort -u | while read -r b; do\n"
    f'  [ -f "$r/$b/{CHUNKS}" ] && {{ echo "@@chunks $b"; cat "$r/$b/{CHUNKS}"; }}\n'
    "done\n"
)


def status_script(work_root: str, *, chunks: bool = False) -> str:
    """squeue for live jobs, sacct for the rest, each command's exit code (``@@rc``), the exit
    line of jobs both forgot, and with ``chunks`` each batch's chunk record; ids on stdin
    (``status_input``).

    ``-t all`` keeps finished jobs in squeue's answer for ``MinJobAge``, which covers the
    moment between a job leaving the queue and slurmdbd recording it.
    """
    return (
        _status_prelude(work_root)
        + "status\n"
        + "cancelled\n"
        + _EXITS
        + (_CHUNKS if chunks else "")
        + "echo @@end\n"
    )


def cancel_script(work_root: str, job_name: str) -> str:
    """Status before, one ``scancel`` per chunk of ranges, status after; ids on stdin.

    Only arrays that squeue shows with our user and ``job_name`` are cancelled (``@@ours``):
    a stale handle cannot cancel someone else's job. scancel's own ``-u``/``--name`` filters
    are not used: with them Slurm 22.05 cancels a whole pending array when asked for one task.
    """
    return (
        _status_prelude(work_root)
        + "status\n"
        + "cancelled\n"
        + f"n={shlex.quote(job_name)}\n"
        + "m=$(id -un)\n"
        + 'n="$n" m="$m" awk -F\'|\' \'$3 == ENVIRON["m"] && $4 == ENVIRON["n"]'
        ' { split($1, a, "_"); print a[1] }\' "$t/q" | sort -u > "$t/ours"\n'
        + "sed 's/^/@@ours /' \"$t/ours\"\n"
        + "sed -n 's/^C //p' \"$t/in\" | awk -F_ 'NR == FNR { ok[$0] = 1; next } ($1 in ok)'"
        ' "$t/ours" - > "$t/cancel"\n'
        + f'xargs -r -n {_CHUNK_ARGS} scancel < "$t/cancel"; echo "@@rc scancel $?"\n'
        # The record of what this call cancelled: the tasks of our arrays squeue listed live.
        + 'awk \'FILENAME == ARGV[1] { split($0, f, "|"); if (f[2] !~ /^('
        + "|".join(_FINAL_RAW)
        + ')/) live[f[1]] = 1; next } ($1 in live) { print $1, $2 }\' "$t/q" "$t/jobs"'
        " | awk -F_ 'NR == FNR { ok[$0] = 1; next } ($1 in ok)' \"$t/ours\" -"
        f' | while read -r j b; do echo "$j" >> "$r/$b/{CANCELLED}"; done\n'
        + "echo @@after\n"
        + "status\n"
        + "cancelled\n"
        + "echo @@end\n"
    )


def cleanup_script(work_root: str, batch: str) -> str:
    """Remove ``<work_root>/<batch>`` unless its submit still runs there or one of its jobs is
    still live; one round trip. ``batch`` is validated by the caller (32 hex digits).

    A job belongs to the batch when its comment carries ``intercede:<batch>`` or its array id
    is in the batch's chunk record (a ``--comment`` in ``submit_extra`` replaces ours). Any
    state not known to be final counts as live. Replies: ``@@busy``, ``@@rc squeue <n>``
    (squeue failed: nothing removed), ``@@live <id> <state>`` lines (nothing removed),
    ``@@removed`` or ``@@gone``.
    """
    final = ",".join(sorted(raw for raw, status in SLURM_STATES.items() if status.is_final))
    return (
        f"cd {shlex.quote(work_root)} 2>/dev/null || {{ echo @@gone; exit 0; }}\n"
        f"b={batch}\n"
        f'if [ -f "$b/{SUBMITTING}" ] && kill -0 "$(cat "$b/{SUBMITTING}")" 2>/dev/null; then\n'
        "  echo @@busy; exit 0\n"
        "fi\n"
        "t=$(mktemp -d) || exit 4\n"
        "trap 'rm -rf \"$t\"' EXIT\n"
        f'squeue -h -r -t all -u "$(id -un)" -o "%i|%T|%k" > "$t/q"\n'
        's=$?; [ "$s" -eq 0 ] || { echo "@@rc squeue $s"; exit 0; }\n'
        f'[ -f "$b/{CHUNKS}" ] && cut -d" " -f4 "$b/{CHUNKS}" | cut -d";" -f1 > "$t/arrays"\n'
        'touch "$t/arrays"\n'
        f"awk -F'|' -v c=\"|intercede:$b\" -v final={final}"
        ' \'BEGIN { n = split(final, f, ","); for (i = 1; i <= n; i++) done[f[i]] = 1 }'
        " FILENAME == ARGV[1] { a[$0] = 1; next }"
        ' { split($1, id, "_"); split($2, w, " "); st = w[1]; sub(/\\+$/, "", st) }'
        ' (index($0, c) || (id[1] in a)) && !(st in done) { print "@@live " $1 " " $2 }\''
        ' "$t/arrays" "$t/q" > "$t/live"\n'
        'if [ -s "$t/live" ]; then cat "$t/live"; exit 0; fi\n'
        '[ -e "$b" ] || { echo @@gone; exit 0; }\n'
        'rm -rf "$b" && echo @@removed\n'
    )


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


def recorded_job_id(chunks: Iterable[tuple[int, int, str]], index: int) -> str | None:
    """The Slurm id a batch's chunk record gives copy ``index`` (``None``: not recorded)."""
    for offset, size, array_id in chunks:
        if offset <= index < offset + size:
            return f"{array_id}_{index - offset}"
    return None


def parse_chunk_record(text: str) -> tuple[tuple[int, int, str], ...]:
    """The ``@@chunk`` lines of a ``<batch>/chunks`` file; unreadable lines are skipped."""
    return tuple(c for c in (parse_chunk(line) for line in text.splitlines()) if c is not None)


def handle_mismatch(
    chunks: Mapping[str, Sequence[tuple[int, int, str]]], batch: str, index: int, job_id: str
) -> str | None:
    """Why a handle's id and routing do not belong together, by its batch's chunk record;
    ``None`` when they do or the batch has no record (a submit that predates it)."""
    if batch not in chunks:
        return None
    recorded = recorded_job_id(chunks[batch], index)
    if recorded == job_id:
        return None
    return (
        f"copy {index} of batch {batch} is Slurm job {recorded or 'none'}, not {job_id} "
        "(a stale or altered handle?)"
    )


def parse_status_reply(stdout: str, wanted: Iterable[str]) -> StatusReply:
    """The states of ``wanted`` task ids plus what the script said about its commands.

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
    rcs: dict[str, int] = {}
    exits: dict[str, int] = {}
    chunks: dict[str, list[tuple[int, int, str]]] = {}
    ours: set[str] = set()
    cancelled: set[str] = set()
    section = "squeue"
    batch = ""
    complete = False
    for line in stdout.splitlines():
        if line.startswith("@@"):
            word, _, rest = line[2:].partition(" ")
            if word in ("squeue", "sacct", "exits", "cancelled"):
                section = word
            elif word == "rc":
                name, _, code = rest.partition(" ")
                rcs[name] = int(code) if code.lstrip("-").isdigit() else -1
            elif word == "chunks":
                section, batch = "chunks", rest
                chunks.setdefault(batch, [])
            elif word == "chunk" and section == "chunks":
                chunk = parse_chunk(line)
                if chunk is not None:
                    chunks[batch].append(chunk)
            elif word == "ours":
                ours.add(rest.strip())
            elif word == "end":
                complete = True
                break
            continue
        if section == "exits":
            path, sep, text = line.partition(f":{EXIT_LINE}")
            code = text.split(" ", 1)[0]
            if sep and code.isdigit() and path.endswith(".log"):
                exits[path.rsplit("/", 1)[-1].removesuffix(".log")] = int(code)
            continue
        if section == "cancelled":
            if line.strip() in want:
                cancelled.add(line.strip())
            continue
        if section not in ("squeue", "sacct"):
            continue
        target, whole = (live, live_whole) if section == "squeue" else (accounted, accounted_whole)
        fields = line.split("|")
        if len(fields) < 2:
            continue
        job_field, state = fields[0].strip(), fields[1].strip()
        if job_field.isdigit():
            whole[job_field] = state
            continue
        for job_id in expand_job_ids(job_field):
            if job_id in want:
                target[job_id] = state
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
        chunks={b: tuple(c) for b, c in chunks.items()},
        ours=frozenset(ours),
        complete=complete,
        cancelled=frozenset(cancelled),
    )


def parse_status(stdout: str, wanted: Iterable[str]) -> dict[str, SlurmJobState]:
    """The states of ``wanted`` task ids; an id missing from both commands is left out."""
    return parse_status_reply(stdout, wanted).states


def counts_script(job_name: str, queue: str | None) -> str:
    """This backend's own jobs: our user, our job name, our partition (if fixed); then, for a
    fixed partition, its state (``@@partition``: nothing follows when Slurm has no such one)."""
    partition = f" -p {shlex.quote(queue)}" if queue else ""
    script = f"squeue -h -r -u \"$(id -un)\" -n {shlex.quote(job_name)}{partition} -o '%T'"
    if not queue:
        return script + "\n"
    return (
        f"{script} || exit $?\n"
        "echo @@partition\n"
        f"scontrol show partition -o {shlex.quote(queue)} 2>/dev/null | {_PARTITION_STATE}\n"
    )


_PARTITION_STATE = "sed -n 's/^PartitionName=\\([^ ]*\\) .* State=\\([A-Z_]*\\).*/\\1|\\2/p'"
"""``scontrol show partition -o`` lines → ``<name>|<state>``."""

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
    for line in stdout.split("@@partition", 1)[0].splitlines():
        status = map_state(line)
        if status is JobStatus.RUNNING:
            running += 1
        elif status is JobStatus.WAITING:
            waiting += 1
    return running, waiting


def parse_queue_state(stdout: str) -> str | None:
    """The partition state after ``@@partition`` (``MISSING`` when Slurm printed none);
    ``None`` when the script asked for none."""
    _, marker, rest = stdout.partition("@@partition")
    if not marker:
        return None
    for line in rest.splitlines():
        _, sep, state = line.partition("|")
        if sep and state.strip():
            return state.strip()
    return MISSING_PARTITION


def explain_script() -> str:
    """Each job's state, pending reason and partition (squeue), then every partition's state;
    job ids on stdin, one per line."""
    return (
        "t=$(mktemp -d) || exit 4\n"
        "trap 'rm -rf \"$t\"' EXIT\n"
        'cut -d_ -f1 | sort -u > "$t/arrays"\n'
        "echo @@squeue\n"
        f'xargs -r -n {_CHUNK_ARGS} sh -c \'IFS=,; squeue -h -r -t all -j "$*"'
        ' -o "%i|%T|%r|%P"\' sh < "$t/arrays" 2>/dev/null\n'
        "echo @@partitions\n"
        f"scontrol show partition -o 2>/dev/null | {_PARTITION_STATE}\n"
        "echo @@end\n"
    )


def parse_explain(stdout: str, wanted: Iterable[str]) -> dict[str, Explanation]:
    """The explanation of every ``wanted`` id squeue still shows; the others are left out."""
    want = set(wanted)
    jobs: dict[str, tuple[str, str, str]] = {}
    partitions: dict[str, str] = {}
    section = ""
    for line in stdout.splitlines():
        if line.startswith("@@"):
            section = line[2:].strip()
            continue
        fields = [f.strip() for f in line.split("|")]
        if section == "squeue" and len(fields) >= 4:
            for job_id in expand_job_ids(fields[0]):
                if job_id in want:
                    jobs[job_id] = (fields[1], fields[2], fields[3])
        elif section == "partitions" and len(fields) == 2:
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


class SlurmScheduler:
    """The scheduler half of a batch backend; its only state is the cluster's array limit,
    asked once (inside the first submit) and cached for the backend's lifetime."""

    name = "slurm"

    def __init__(self, max_array_size: int | None = None) -> None:
        self.max_array_size = max_array_size
