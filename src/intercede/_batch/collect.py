"""Output collection: decide remotely-listed files per job, then unpack one tar stream safely.

Two round trips for any number of jobs: one listing (``find`` over every job directory plus the
batches' manifests) and one ``tar -c`` of exactly the selected files, unpacked while it streams.
Deciding on the listing means a job over a limit is refused before a byte of it moves; the
unpacking checks the limits again on what actually arrives (the payload may still be writing),
and afterwards every planned file must have arrived whole: a file that vanished, shrank or
changed while tar read it (tar names it on stderr) fails its job rather than leaving a
truncated or zero-padded copy. Everything lands in a private temporary directory first and is
renamed into place per job, so a refused job leaves nothing behind in ``dest``.

Links are recreated only after every file is written, then each is resolved (chains included)
and any that leads outside its job's directory is removed and reported, never followed.

Local layout under ``dest`` (documented in docs/backend.md)::

    dest/<job id>.out   stdout        dest/<job id>.log       the wrapper/scheduler log
    dest/<job id>.err   stderr        dest/<job id>/...       the payload's files
                                      dest/<job id>.skipped   members left out, and why
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import tarfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import ResourceUnavailableError
from ..models import JobOutput, OpOutcome
from . import layout
from .layout import JobLocation
from .remote import MARK, Section, sections
from .remote import script as remote_script
from .staging import escapes, is_contained, matches_member

__all__ = [
    "LISTING_MAX_BYTES",
    "SKIPPED_SUFFIX",
    "Entry",
    "Plan",
    "Unpacker",
    "check_listing",
    "chunk_records",
    "listing_input",
    "listing_script",
    "not_started",
    "parse_listing",
    "plan_collection",
    "transfer_cap",
    "unpack",
]

LISTING_MAX_BYTES = 64 << 20
"""The output listing is read up to this size (about 400,000 entries); beyond it the whole
``get_output`` call fails with ``ResourceUnavailableError`` (ask for fewer jobs at once)."""

SKIPPED_SUFFIX = ".skipped"
_STREAM_SUFFIX = {"stdout": ".out", "stderr": ".err", "log": ".log"}
_TAR_BLOCK = 512
_SMALL = 1 << 20


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # find's %y: f, d, l, ...
    size: int
    link: str


def listing_input(jobs: Sequence[JobLocation]) -> bytes:
    """What to list, on stdin (the command line stays the same size for any N)."""
    lines = [f"B {batch}\n" for batch in sorted({job.batch for job in jobs})]
    lines += [f"P {job.job_dir}\nP {job.log}\n" for job in jobs]
    return "".join(lines).encode()


def listing_script(work_root: str) -> str:
    """Manifests line by line, then ``find`` output NUL-separated (names may hold newlines).
    A path that does not exist (a purged job) is simply absent from the answer
    (``listing.sh``)."""
    return remote_script("listing.sh", work_root)


def chunk_records(stdout: bytes) -> dict[str, tuple[tuple[int, int, str], ...]]:
    """Each listed batch's chunk record (``<batch>/chunks``), for checking handles."""
    return layout.chunk_records(_head(stdout))


def not_started(stdout: bytes, jobs: Sequence[JobLocation]) -> frozenset[str]:
    """The ids of the jobs whose batch has their copy (an index below its ``copies`` count)
    and did not purge it: without a directory, such a job has not started yet (pending, or
    cancelled before it ran), and its output is empty rather than gone."""
    counts: dict[str, int] = {}
    purged: dict[str, set[str]] = {}
    for part in _head(stdout):
        if part.word == "copies":
            batch, _, count = part.arg.partition(" ")
            if count.isdigit():
                counts[batch] = int(count)
        elif part.word == "purged":
            purged[part.arg] = {line.strip() for line in part.lines}
    return frozenset(
        job.job_id
        for job in jobs
        if job.index < counts.get(job.batch, 0) and str(job.index) not in purged.get(job.batch, ())
    )


def parse_listing(stdout: bytes) -> tuple[dict[str, dict[str, object]], dict[str, Entry]]:
    """(manifest per batch, entry per path relative to work_root)."""
    manifests: dict[str, dict[str, object]] = {}
    for part in _head(stdout):
        if part.word != "manifest":
            continue
        text = "".join(part.lines).strip()
        try:
            data = json.loads(text) if text else None
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            manifests[part.arg] = data
    start = stdout.find(_FIND)
    entries: dict[str, Entry] = {}
    if start < 0:
        return manifests, entries
    kinds: dict[bytes, str] = {}
    # One record at a time (a listing of 5000 jobs holds tens of thousands): no list of them
    for match in _RECORD.finditer(stdout, start + len(_FIND)):
        kind, size, path, link = match.groups()
        if not path:
            continue
        text = kinds.get(kind) or kinds.setdefault(kind, kind.decode(errors="replace"))
        entries[os.fsdecode(path)] = Entry(
            kind=text, size=int(size), link=os.fsdecode(link) if link else ""
        )
    return manifests, entries


_RECORD = re.compile(rb"([^ \0]*) ([0-9]+) ([^\0]*)\0([^\0]*)\0")
"""One find record, ``%y %s %p\0%l\0``: kind, size, path, link target."""


_FIND = f"{MARK}find\n".encode()


def _head(stdout: bytes) -> list[Section]:
    """The text part of the listing (before ``@@find``: the find records are binary)."""
    return sections(stdout.partition(_FIND)[0].decode("utf-8", errors="replace"))


@dataclass
class Plan:
    """What to fetch for one job: remote path (relative to work_root) → local name."""

    job: JobLocation
    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    """remote path → link target, for symlinks whose target text stays inside."""
    skipped: dict[str, str] = field(default_factory=dict)
    """member (relative to the working directory) → why it was left out."""


def plan_collection(
    jobs: Sequence[JobLocation],
    manifests: Mapping[str, Mapping[str, object]],
    entries: Mapping[str, Entry],
    *,
    max_bytes: int,
    max_files: int,
    not_started: frozenset[str] = frozenset(),
) -> dict[str, Plan | OpOutcome]:
    """Per job id: the files to fetch, or why the job's output cannot be collected. A job in
    ``not_started`` that has no directory gets an empty plan (no streams, no files)."""
    under: dict[str, list[tuple[str, Entry]]] = {}
    prefixes = {f"{job.work_dir}/": job.job_id for job in jobs}
    for path, entry in entries.items():
        head = path.split("/", 3)
        if len(head) >= 4 and head[2] == "work":
            prefix = f"{head[0]}/{head[1]}/work/"
            if prefix in prefixes:
                under.setdefault(prefix, []).append((path[len(prefix) :], entry))
    out: dict[str, Plan | OpOutcome] = {}
    for job in jobs:
        root = entries.get(job.job_dir)
        if root is None and job.job_id in not_started:
            out[job.job_id] = Plan(job=job)
            continue
        if root is None or root.kind != "d":
            out[job.job_id] = OpOutcome(
                ok=False, reason="output is gone: the job directory does not exist (purged?)"
            )
            continue
        manifest = manifests.get(job.batch, {})
        everything = bool(manifest.get("include_unlisted", False))
        raw_patterns = manifest.get("members", [])
        patterns = (
            [p for p in raw_patterns if isinstance(p, str)]
            if isinstance(raw_patterns, list)
            else []
        )
        out[job.job_id] = _plan_one(
            job,
            entries,
            under.get(f"{job.work_dir}/", []),
            everything,
            patterns,
            max_bytes=max_bytes,
            max_files=max_files,
        )
    return out


def _plan_one(
    job: JobLocation,
    entries: Mapping[str, Entry],
    work: Iterable[tuple[str, Entry]],
    everything: bool,
    patterns: Sequence[str],
    *,
    max_bytes: int,
    max_files: int,
) -> Plan | OpOutcome:
    plan = Plan(job)
    total = 0
    for stream in ("stdout", "stderr", "log"):
        remote = getattr(job, stream)
        entry = entries.get(remote)
        if entry is not None and entry.kind == "f":
            plan.files[remote] = f"{job.job_id}{_STREAM_SUFFIX[stream]}"
            total += entry.size
    count = 0
    for relative, entry in sorted(work, key=lambda item: item[0]):
        if entry.kind not in ("f", "l"):
            continue
        if not (everything or any(matches_member(p, relative) for p in patterns)):
            continue
        if not is_contained(relative):
            plan.skipped[relative] = "not a path inside the working directory"
            continue
        remote = f"{job.work_dir}/{relative}"
        if entry.kind == "l":
            if escapes(relative, entry.link):
                plan.skipped[relative] = f"link to {entry.link!r}, outside the working directory"
                continue
            plan.links[remote] = entry.link
        else:
            plan.files[remote] = f"{job.job_id}/{relative}"
            total += entry.size
        count += 1
    if count > max_files:
        return OpOutcome(
            ok=False, reason=f"{count} output files, more than output_max_files={max_files}"
        )
    if total > max_bytes:
        return OpOutcome(
            ok=False, reason=f"{total} bytes of output, more than output_max_bytes={max_bytes}"
        )
    return plan


def transfer_cap(plans: Mapping[str, Plan], max_bytes: int) -> int:
    """The most bytes the output tar may carry: every job at its limit plus tar's headers."""
    files = sum(len(plan.files) for plan in plans.values())
    return len(plans) * max_bytes + (files * 3 + 64) * _TAR_BLOCK + 20 * _TAR_BLOCK


class _Capped(io.RawIOBase):
    """Counts what the tar reader consumes and stops it at ``cap``."""

    def __init__(self, source: IO[bytes], cap: int) -> None:
        self._source = source
        self._cap = cap
        self.read_total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        if not data:
            return 0
        self.read_total += len(data)
        if self.read_total > self._cap:
            raise _TooMuch(self._cap)
        buffer[: len(data)] = data
        return len(data)


class _TooMuch(Exception):
    def __init__(self, cap: int) -> None:
        self.cap = cap


class Unpacker:
    """One ``get_output`` call's unpacking, in two steps so the first can run while the tar
    streams and the second can use tar's exit code and messages, which come after it.

    Blocking (files and tarfile): run both steps in a worker thread. ``close`` always.
    """

    def __init__(self, plans: Mapping[str, Plan], dest: Path, *, max_bytes: int) -> None:
        self._plans = plans
        self._dest = dest
        self._max_bytes = max_bytes
        self._owner: dict[str, tuple[str, str]] = {}
        for job_id, plan in plans.items():
            for remote, local in plan.files.items():
                self._owner[remote] = (job_id, local)
        self._sizes = dict.fromkeys(plans, 0)
        self._arrived: set[str] = set()
        self._refused: dict[str, str] = {}
        self._broken: str | None = None
        dest.mkdir(parents=True, exist_ok=True)
        self._staging = dest / f".intercede-{uuid.uuid4().hex}"
        self._staging.mkdir(mode=0o700)
        self._root = os.fspath(self._staging)
        self._made = {self._root}

    @property
    def expects_data(self) -> bool:
        return bool(self._owner)

    def extract(self, stream: IO[bytes]) -> None:
        """Write every expected regular file to the staging directory as the stream comes,
        counting bytes per job (over ``max_bytes`` refuses the job) and in all (over
        ``transfer_cap`` stops reading). A broken stream is recorded, never raised: the jobs
        whose files did not all arrive fail in ``finish``. The stream is read to its end."""
        capped = _Capped(stream, transfer_cap(self._plans, self._max_bytes))
        reader = io.BufferedReader(capped, buffer_size=1 << 16)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    self._take(tar, member)
                    # A streamed TarFile still keeps every member it read: thousands here.
                    tar.members.clear()  # type: ignore[attr-defined]  # not in typeshed
            while reader.read(1 << 16):
                pass  # tar's end padding
        except _TooMuch as exc:
            self._broken = f"the transfer was stopped after more than {exc.cap} bytes"
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            self._broken = f"the output stream broke off ({str(exc) or type(exc).__name__})"

    def _take(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        target = self._owner.get(member.name)
        if target is None or not member.isfile():
            return  # only what we asked for, only regular files
        job_id, local = target
        if job_id in self._refused:
            return
        self._sizes[job_id] += member.size
        if self._sizes[job_id] > self._max_bytes:
            self._refused[job_id] = (
                f"more than output_max_bytes={self._max_bytes} bytes arrived "
                "(the job is still writing?)"
            )
            return
        # Plain os calls, each directory made once: thousands of small files per call, and
        # the file system's own cost of creating them is already most of the time.
        path = os.path.join(self._root, local)
        parent = os.path.dirname(path)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - isfile() members always have data
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        with open(fd, "wb", closefd=True) as sink:
            if member.size <= _SMALL:
                sink.write(source.read())
            else:
                shutil.copyfileobj(source, sink)
        self._arrived.add(member.name)

    def finish(self, tar_rc: int | None, tar_messages: str) -> dict[str, JobOutput | OpOutcome]:
        """Per job: its output published under ``dest``, or why not."""
        problems = _tar_problems(tar_messages, self._plans)
        results: dict[str, JobOutput | OpOutcome] = {}
        # Both directories listed once: publishing then touches only names that exist.
        names = _Names(set(os.listdir(self._dest)), set(os.listdir(self._staging)))
        for job_id, plan in self._plans.items():
            if job_id in self._refused:
                results[job_id] = OpOutcome(ok=False, reason=self._refused[job_id])
                continue
            missing = [remote for remote in plan.files if remote not in self._arrived]
            if job_id in problems or missing:
                results[job_id] = OpOutcome(
                    ok=False,
                    reason=_incomplete(plan, problems.get(job_id), missing, self._broken, tar_rc),
                )
                continue
            skipped = dict(plan.skipped)
            skipped.update(_make_links(self._staging / job_id, plan))
            if skipped:
                report = "".join(f"{name!r}: {why}\n" for name, why in sorted(skipped.items()))
                (self._staging / f"{job_id}{SKIPPED_SUFFIX}").write_text(report, errors="replace")
                names.staged.add(f"{job_id}{SKIPPED_SUFFIX}")
            results[job_id] = _publish(self._staging, self._dest, plan, skipped, names)
        return results

    def close(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


def unpack(
    stream: IO[bytes],
    plans: Mapping[str, Plan],
    dest: Path,
    *,
    max_bytes: int,
    tar_rc: int | None = 0,
    tar_messages: str = "",
) -> dict[str, JobOutput | OpOutcome]:
    """Both steps at once, for a stream already at hand (blocking: run it in a thread)."""
    unpacker = Unpacker(plans, dest, max_bytes=max_bytes)
    try:
        if unpacker.expects_data:
            unpacker.extract(stream)
        return unpacker.finish(tar_rc, tar_messages)
    finally:
        unpacker.close()


def _tar_problems(messages: str, plans: Mapping[str, Plan]) -> dict[str, str]:
    """tar's complaints (``tar: <path>: <problem>``) by the job whose directory they name."""
    prefixes = {f"{plan.job.job_dir}/": job_id for job_id, plan in plans.items()}
    logs = {plan.job.log: job_id for job_id, plan in plans.items()}
    found: dict[str, str] = {}
    for line in messages.splitlines():
        text = line.removeprefix("tar: ")
        job_id = next((j for log, j in logs.items() if text.startswith(f"{log}:")), None)
        if job_id is None:
            head = "/".join(text.split("/", 2)[:2]) + "/"
            job_id = prefixes.get(head)
        if job_id is not None and job_id not in found:
            found[job_id] = text.strip()
    return found


def _incomplete(
    plan: Plan, problem: str | None, missing: list[str], broken: str | None, rc: int | None
) -> str:
    root = f"{plan.job.job_dir}/"
    names = ", ".join(repr(m.removeprefix(root)) for m in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    if problem is not None:
        why = f"tar reported {problem!r}"
    elif broken is not None:
        why = broken
    else:
        why = f"tar ended with exit code {rc}" if rc else "they were not in the stream"
    detail = f"; missing {names}{more}" if missing else ""
    return f"output incomplete, nothing kept: {why}{detail}"


def _make_links(root: Path, plan: Plan) -> dict[str, str]:
    """Recreate the plan's symlinks under ``root``; remove (and report) every one that, once
    resolved with the others in place, leads outside ``root``. Repeated until none does,
    since removing one link can change where another resolves."""
    if not plan.links:
        return {}
    work = f"{plan.job.work_dir}/"
    skipped: dict[str, str] = {}
    made: dict[str, Path] = {}
    base = os.path.realpath(root)
    inside: Callable[[str], bool] = lambda p: p == base or p.startswith(base + os.sep)  # noqa: E731
    for remote, target in sorted(plan.links.items(), key=lambda item: item[0].count("/")):
        relative = remote.removeprefix(work)
        link = root / relative
        if not inside(os.path.realpath(link.parent)):
            skipped[relative] = "its directory leads outside the working directory"
            continue
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
        except OSError as exc:
            skipped[relative] = f"cannot be recreated ({exc.strerror})"
            continue
        made[relative] = link
    changed = True
    while changed:
        changed = False
        leaving = [rel for rel, link in made.items() if not inside(os.path.realpath(link))]
        for relative in leaving:
            made.pop(relative).unlink()
            skipped[relative] = (
                f"link to {plan.links[work + relative]!r} resolves outside the working directory"
            )
            changed = True
    return skipped


@dataclass
class _Names:
    """What ``dest`` held before publishing, and what the staging directory holds."""

    existing: set[str]
    staged: set[str]


def _publish(
    staging: Path, dest: Path, plan: Plan, skipped: Mapping[str, str], names: _Names
) -> JobOutput:
    """Replace this job's previous output in ``dest`` by what was just staged; ``skipped`` is
    reported both in the result and in the ``.skipped`` side file, which outlives the call.
    Without links the job's files are its plan's (every planned file arrived): nothing is
    listed back from the disk."""
    job_id = plan.job.job_id
    present: set[str] = set()
    for suffix in ("", *_STREAM_SUFFIX.values(), SKIPPED_SUFFIX):
        name = job_id + suffix
        old = os.path.join(dest, name)
        if name in names.existing:
            try:
                mode = os.lstat(old).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and stat.S_ISDIR(mode):
                shutil.rmtree(old)
            elif mode is not None:
                os.unlink(old)
        if name in names.staged:
            os.rename(os.path.join(staging, name), old)
            present.add(suffix)
    files_root = dest / job_id
    if plan.links and files_root.is_dir():
        # A link can be the directory another one was made through: list what is there.
        files = sorted(p for p in files_root.rglob("*") if p.is_symlink() or not p.is_dir())
    else:
        prefix = f"{job_id}/"
        files = sorted(
            files_root / local[len(prefix) :]
            for local in plan.files.values()
            if local.startswith(prefix)
        )
    return JobOutput(
        root=files_root,
        stdout=dest / f"{job_id}.out" if ".out" in present else None,
        stderr=dest / f"{job_id}.err" if ".err" in present else None,
        log=dest / f"{job_id}.log" if ".log" in present else None,
        files=tuple(files),
        skipped=dict(sorted(skipped.items())),
    )


def check_listing(rc: int, stdout: bytes, stderr: bytes, work_root: str) -> None:
    """A listing without its marker means the command did not run as written."""
    if rc != 0 or _FIND not in stdout:
        problem = stderr.decode(errors="replace").strip()
        raise ResourceUnavailableError(f"cannot list {work_root}: {problem or f'exit code {rc}'}")
