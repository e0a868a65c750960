"""Output collection: decide remotely-listed files per job, then unpack one tar stream safely.

Two round trips for any number of jobs: one listing (``find`` over every job directory plus the
batches' manifests) and one ``tar -c`` of exactly the selected files. Deciding on the listing
means a job over a limit, or with a member escaping its directory, is refused before a byte of
it moves; the unpacking checks the same rules again on what actually arrived (the payload may
still be writing). Everything lands in a private temporary directory first and is renamed into
place per job, so a refused job leaves nothing behind in ``dest``.

Local layout under ``dest`` (documented in docs/backend.md)::

    dest/<job id>.out   stdout        dest/<job id>.log   the wrapper/scheduler log
    dest/<job id>.err   stderr        dest/<job id>/...   the payload's files
"""

from __future__ import annotations

import json
import shlex
import shutil
import tarfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import ResourceUnavailableError
from ..models import JobOutput, OpOutcome
from .layout import MANIFEST, JobLocation
from .staging import escapes, is_contained, matches_member

__all__ = [
    "Entry",
    "Plan",
    "listing_script",
    "parse_listing",
    "plan_collection",
    "unpack",
]

_FIND_FORMAT = "%y %s %p\\0%l\\0"
_STREAM_SUFFIX = {"stdout": ".out", "stderr": ".err", "log": ".log"}


@dataclass(frozen=True)
class Entry:
    kind: str  # find's %y: f, d, l, ...
    size: int
    link: str


def listing_script(work_root: str, jobs: Sequence[JobLocation]) -> str:
    """Manifests line by line, then ``find`` output NUL-separated (names may hold newlines)."""
    batches = sorted({job.batch for job in jobs})
    roots = [job.job_dir for job in jobs] + [job.log for job in jobs]
    return (
        f"cd {shlex.quote(work_root)} || exit 3\n"
        f"for b in {' '.join(batches)}; do\n"
        f'  echo "@@manifest $b"; cat "$b/{MANIFEST}" 2>/dev/null; echo; echo @@end\n'
        "done\n"
        "echo @@find\n"
        f"find {' '.join(roots)} -printf '{_FIND_FORMAT}' 2>/dev/null; true\n"
    )


def parse_listing(stdout: bytes) -> tuple[dict[str, dict[str, object]], dict[str, Entry]]:
    """(manifest per batch, entry per path relative to work_root)."""
    head, _, found = stdout.partition(b"@@find\n")
    manifests: dict[str, dict[str, object]] = {}
    batch: str | None = None
    body: list[str] = []
    for line in head.decode("utf-8", errors="replace").splitlines():
        if line.startswith("@@manifest "):
            batch, body = line.split(maxsplit=1)[1], []
        elif line == "@@end" and batch is not None:
            text = "".join(body).strip()
            try:
                data = json.loads(text) if text else None
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                manifests[batch] = data
            batch = None
        elif batch is not None:
            body.append(line)
    entries: dict[str, Entry] = {}
    fields = found.split(b"\0")
    for record, link in zip(fields[0::2], fields[1::2], strict=False):
        kind, _, rest = record.partition(b" ")
        size, _, path = rest.partition(b" ")
        if not path:
            continue
        entries[path.decode("utf-8", errors="surrogateescape")] = Entry(
            kind=kind.decode(),
            size=int(size or 0),
            link=link.decode("utf-8", errors="surrogateescape"),
        )
    return manifests, entries


@dataclass
class Plan:
    """What to fetch for one job: remote path (relative to work_root) → local name."""

    job: JobLocation
    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    """remote path → link target, for symlinks that stay inside the working directory."""


def plan_collection(
    jobs: Sequence[JobLocation],
    manifests: Mapping[str, Mapping[str, object]],
    entries: Mapping[str, Entry],
    *,
    max_bytes: int,
    max_files: int,
) -> dict[str, Plan | OpOutcome]:
    """Per job id: the files to fetch, or why the job's output cannot be collected."""
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
            return OpOutcome(ok=False, reason=f"member {relative!r} escapes the directory")
        remote = f"{job.work_dir}/{relative}"
        if entry.kind == "l":
            if escapes(relative, entry.link):
                return OpOutcome(
                    ok=False,
                    reason=f"member {relative!r} is a link to {entry.link!r}, "
                    "outside the working directory",
                )
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


def unpack(
    stream: IO[bytes],
    plans: Mapping[str, Plan],
    dest: Path,
    *,
    max_bytes: int,
) -> dict[str, JobOutput | OpOutcome]:
    """Unpack the tar of every planned file into ``dest`` (blocking: run it in a thread)."""
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".intercede-{uuid.uuid4().hex}"
    staging.mkdir(mode=0o700)
    try:
        owner: dict[str, tuple[str, str]] = {}
        for job_id, plan in plans.items():
            for remote, local in plan.files.items():
                owner[remote] = (job_id, local)
        sizes = dict.fromkeys(plans, 0)
        refused: dict[str, str] = {}
        if any(plan.files for plan in plans.values()):
            _extract(stream, owner, sizes, refused, staging, max_bytes)
        results: dict[str, JobOutput | OpOutcome] = {}
        for job_id, plan in plans.items():
            if job_id in refused:
                results[job_id] = OpOutcome(ok=False, reason=refused[job_id])
                continue
            for remote, link_target in plan.links.items():
                link = staging / job_id / remote[len(plan.job.work_dir) + 1 :]
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(link_target)
            results[job_id] = _publish(staging, dest, job_id)
        return results
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract(
    stream: IO[bytes],
    owner: Mapping[str, tuple[str, str]],
    sizes: dict[str, int],
    refused: dict[str, str],
    staging: Path,
    max_bytes: int,
) -> None:
    """Write every expected regular file to ``staging``; count bytes per job as they come."""
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed by the with below
    except tarfile.ReadError:
        raise ResourceUnavailableError("the output transfer returned no tar stream") from None
    with tar:
        for member in tar:
            target = owner.get(member.name)
            if target is None or not member.isfile():
                continue  # only what we asked for, only regular files
            job_id, local = target
            if job_id in refused:
                continue
            sizes[job_id] += member.size
            if sizes[job_id] > max_bytes:
                refused[job_id] = (
                    f"more than output_max_bytes={max_bytes} bytes arrived "
                    "(the job is still writing?)"
                )
                continue
            path = staging / local
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:  # pragma: no cover - isfile() members always have data
                continue
            with path.open("wb") as sink:
                shutil.copyfileobj(source, sink)


def _publish(staging: Path, dest: Path, job_id: str) -> JobOutput:
    """Replace this job's previous output in ``dest`` by what was just staged."""
    names = [job_id, *(job_id + suffix for suffix in _STREAM_SUFFIX.values())]
    for name in names:
        old = dest / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
        new = staging / name
        if new.exists() or new.is_symlink():
            new.rename(old)
    files_root = dest / job_id
    files: list[Path] = []
    if files_root.is_dir():
        files = sorted(p for p in files_root.rglob("*") if p.is_symlink() or not p.is_dir())

    def present(suffix: str) -> Path | None:
        path = dest / f"{job_id}{suffix}"
        return path if path.exists() else None

    return JobOutput(
        root=files_root,
        stdout=present(".out"),
        stderr=present(".err"),
        log=present(".log"),
        files=tuple(files),
    )
