"""Where a job lives on the resource, and how a handle says so.

The handle is all a later call receives, so everything must be derivable from it: the Slurm id
(``<arrayjob>_<task>``) addresses the scheduler, the routing (``<batch>/<index>``) addresses the
job's directory below ``work_root``::

    <work_root>/<batch>/job.sh            the batch script, shared by the batch's copies
    <work_root>/<batch>/manifest.json     what the spec asked to collect
    <work_root>/<batch>/bin/<executable>  staged once per batch
    <work_root>/<batch>/inputs/...        staged once per batch, copied into work/ at start
    <work_root>/<batch>/copies            one line per copy: its environment (base64)
    <work_root>/<batch>/secrets           one line per copy: its secrets (0600; absent if none)
    <work_root>/<batch>/chunks            the scheduler's groups (Slurm: one line per array)
    <work_root>/<batch>/purged            the copies purged so far, one index a line
    <work_root>/<batch>/logs/<id>.log     Slurm's own output file: the wrapper's log
    <work_root>/<batch>/<index>/          made by the copy's job when it starts:
    <work_root>/<batch>/<index>/secrets/  its secret files, mode 0600 (from ``secrets``)
    <work_root>/<batch>/<index>/stdout    the payload's stdout (outside work/, so a payload
    <work_root>/<batch>/<index>/stderr    file named "stdout" cannot collide with it)
    <work_root>/<batch>/<index>/work/     the payload's working directory

Submit writes the same files whatever the number of copies; a copy that never started (still
pending, or cancelled before it ran) has no directory. The batch goes, with everything in it,
when its last copy is purged (the line count of ``copies`` says how many there are).

Handle fields come back from stores and other processes, so they are validated before any of
them is spliced into a remote command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..models import JobHandle
from .remote import MARK, Section

__all__ = [
    "BATCH_SCRIPT",
    "CHUNKS",
    "COPIES",
    "MANIFEST",
    "SECRETS",
    "ChunkRecords",
    "JobLocation",
    "chunk_records",
    "handle_mismatch",
    "locate",
    "parse_chunk",
    "parse_chunk_record",
    "recorded_job_id",
]

BATCH_SCRIPT = "job.sh"
MANIFEST = "manifest.json"
COPIES = "copies"
SECRETS = "secrets"

CHUNKS = "chunks"
"""``<batch>/chunks``: one ``@@chunk <offset> <size> <group id>`` line per group of copies the
scheduler accepted, written as it happens, so a submit whose reply was lost can be reconciled
and every later call can check a handle's id against its routing."""

ChunkRecords = Mapping[str, Sequence[tuple[int, int, str]]]
"""Each batch's chunk record: (offset, size, group id) per accepted group."""

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


def locate(
    handle: JobHandle,
    *,
    backend: str,
    resource: str,
    id_pattern: re.Pattern[str] = _JOB_ID,
    label: str = "Slurm",
) -> JobLocation | str:
    """The job's location, or the reason the handle is not one of this backend's jobs.
    ``id_pattern`` is the scheduler's (group 1: the group the job was submitted in)."""
    if handle.backend != backend or handle.resource != resource:
        return (
            f"handle belongs to {handle.backend}://{handle.resource}, "
            f"not this backend ({backend}://{resource})"
        )
    id_match = id_pattern.fullmatch(handle.id)
    if id_match is None:
        return f"malformed {label} job id {handle.id!r} (expected <group>_<task>)"
    routing_match = _ROUTING.fullmatch(handle.routing)
    if routing_match is None:
        return f"malformed routing {handle.routing!r} (expected <batch>/<index>)"
    batch, index = routing_match.groups()
    # A scheduler whose ids spell the routing (host: <batch>_<index>) gets them compared.
    if id_pattern.groupindex:
        named = id_match.groupdict()
        if named.get("batch", batch) != batch or named.get("index", index) != index:
            return f"{label} job id {handle.id!r} and routing {handle.routing!r} disagree"
    return JobLocation(handle.id, id_match.group(1), batch, int(index))


def parse_chunk(line: str) -> tuple[int, int, str] | None:
    """``@@chunk <offset> <size> <id>[;cluster]`` → (offset, size, group id); ``None`` if bad."""
    parts = line.split(maxsplit=3)
    if len(parts) != 4 or parts[0] != "@@chunk":
        return None
    _, offset, size, raw_id = parts
    group = raw_id.split(";")[0].strip()  # sbatch --parsable prints "<id>" or "<id>;<cluster>"
    if not (offset.isdigit() and size.isdigit() and group.isdigit()):
        return None
    return int(offset), int(size), group


def parse_chunk_record(text: str) -> tuple[tuple[int, int, str], ...]:
    """The ``@@chunk`` lines of a ``<batch>/chunks`` file; unreadable lines are skipped."""
    return tuple(c for c in (parse_chunk(line) for line in text.splitlines()) if c is not None)


def recorded_job_id(chunks: Iterable[tuple[int, int, str]], index: int) -> str | None:
    """The job id a batch's chunk record gives copy ``index`` (``None``: not recorded)."""
    for offset, size, group in chunks:
        if offset <= index < offset + size:
            return f"{group}_{index - offset}"
    return None


def handle_mismatch(
    chunks: ChunkRecords, batch: str, index: int, job_id: str, *, label: str = "Slurm"
) -> str | None:
    """Why a handle's id and routing do not belong together, by its batch's chunk record;
    ``None`` when they do or the batch has no record (a submit that predates it)."""
    if batch not in chunks:
        return None
    recorded = recorded_job_id(chunks[batch], index)
    if recorded == job_id:
        return None
    return (
        f"copy {index} of batch {batch} is {label} job {recorded or 'none'}, not {job_id} "
        "(a stale or altered handle?)"
    )


def chunk_records(parts: Iterable[Section]) -> dict[str, tuple[tuple[int, int, str], ...]]:
    """Each ``@@chunks <batch>`` part of a reply with the ``@@chunk`` lines that follow it
    (unreadable ones skipped): the batch's record as a script printed it."""
    records: dict[str, list[tuple[int, int, str]]] = {}
    batch: str | None = None
    for part in parts:
        if part.word == "chunks":
            batch = part.arg
            records.setdefault(batch, [])
        elif part.word == "chunk" and batch is not None:
            chunk = parse_chunk(f"{MARK}chunk {part.arg}")
            if chunk is not None:
                records[batch].append(chunk)
        else:
            batch = None
    return {batch: tuple(chunks) for batch, chunks in records.items()}
