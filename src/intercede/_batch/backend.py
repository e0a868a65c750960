"""``BatchBackend``: the interCEde protocols over a scheduler and a transport.

Every operation is one or two remote shell commands whatever the number of jobs (submit 1,
status 1, kill 1, counts 1, diagnostics 1, purge 2, get_output 2), which is what lets a site
queue fill with a thousand pilots in well under a second. Id and path lists travel on the
command's stdin, so the command line has the same size for any N. The backend stores no jobs:
a handle carries the scheduler's job id and the job's directory, and every answer is derived
from the resource. What differs between batch systems is behind ``scheduler.Scheduler``.
Each operation runs under one deadline (``command_timeout_s``, or
``transfer_timeout_s`` for submit and get_output) that covers everything it waits for: the
credential provider, a free channel, connecting, building the archive and the commands.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import tarfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio

from ..config import LocalBatchConfig, SSHBatchConfig
from ..credentials import CredentialProvider, CredentialRequirements, CredentialSet
from ..errors import (
    AuthenticationError,
    BackendClosedError,
    InterCEdeError,
    OperationTimeoutError,
    ResourceUnavailableError,
    SpecificationRejectedError,
    SubmitTimeoutError,
    SubmitUnavailableError,
)
from ..models import (
    CopyVars,
    Diagnostics,
    Explanation,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    LoadCounts,
    OpOutcome,
    Submission,
    SubmissionSpec,
)
from ..protocols import (
    BatchCleaner,
    Diagnosable,
    Explainer,
    JobBackend,
    Killable,
    LoadReporter,
    OutputRetriever,
    Purgeable,
)
from . import collect, remote
from .layout import ChunkRecords, JobLocation, handle_mismatch, locate, parse_chunk_record
from .pipe import run_into
from .scheduler import Command, Reply, Scheduler, StatusView, clip
from .staging import build_batch_archive, check_sizes, check_submittable, is_contained
from .transport import OutputLimitError, Transport, shell, tar_command, tar_input

__all__ = [
    "DIAGNOSTICS_MAX_BYTES",
    "DIAGNOSTIC_STREAMS",
    "BatchBackend",
]

DIAGNOSTICS_MAX_BYTES = 1 << 20
"""``get_diagnostics`` returns at most the last MiB of the file (``truncated=True`` then)."""

DIAGNOSTIC_STREAMS = {":stdout": "stdout", ":stderr": "stderr", ":log": "log"}
"""``get_diagnostics`` names for the streams kept outside the working directory. A payload
file with one of these names is read as ``./:stderr``."""

_log = logging.getLogger("intercede.batch")
_BATCH = re.compile(r"[0-9a-f]{32}")


class BatchBackend:
    """A batch system (a ``Scheduler``) reached through a transport (SSH or local)."""

    def __init__(
        self,
        transport: Transport,
        scheduler: Scheduler,
        config: SSHBatchConfig | LocalBatchConfig,
        credentials: CredentialProvider,
    ) -> None:
        self._transport = transport
        self._scheduler = scheduler
        self._config = config
        self._provider = credentials
        self._credentials: CredentialSet | None = None
        self._requirements = _requirements(config, transport.resource)
        self._closed = False
        self.name = f"{scheduler.name}+{transport.kind}"

    @property
    def transport(self) -> Transport:
        """For tests and the benchmark: connection and round-trip counters."""
        return self._transport

    # --- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._transport.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendClosedError(
                f"{self.name} backend for {self._transport.resource} is closed"
            )

    async def credentials(self, *, refresh: bool = False) -> CredentialSet:
        """The held set, pulled from the provider when missing or near expiry, or when
        ``refresh`` says the resource rejected it (a rotated key, a renewed token)."""
        margin = dt.timedelta(seconds=self._config.credential_refresh_margin_s)
        if refresh or self._credentials is None or self._credentials.expires_within(margin):
            why = (
                "the resource rejected the held set"
                if refresh
                else "none held yet"
                if self._credentials is None
                else "the held set is about to expire"
            )
            _log.debug("pulling credentials for %s: %s", self._requirements.resource, why)
            try:
                fresh = await self._provider.get(self._requirements)
            except InterCEdeError:
                raise
            except Exception as exc:  # noqa: BLE001 - foreign code; its message may hold secrets
                raise AuthenticationError(
                    f"credential provider failed for {self._requirements.resource}: "
                    f"{type(exc).__name__}"
                ) from None
            if not fresh.satisfies(self._requirements):
                missing = sorted(set(self._requirements.kinds) - fresh.kinds())
                raise AuthenticationError(
                    f"credential provider gave no {', '.join(missing)} "
                    f"for {self._requirements.resource}"
                )
            self._credentials = fresh
        return self._credentials

    async def _begin(self) -> None:
        self._check_open()
        if self._requirements.kinds:
            await self.credentials()

    @contextmanager
    def _deadline(
        self, what: str, *, transfer: bool = False, jobs: int | None = None
    ) -> Iterator[None]:
        """One limit for the whole operation, whatever it waits for; each operation is logged
        at DEBUG on ``intercede.batch`` (what, how many jobs, duration, round trips, outcome),
        never with arguments that could hold a secret."""
        limit = self._config.transfer_timeout_s if transfer else self._config.command_timeout_s
        started, trips = time.monotonic(), self._transport.round_trips
        outcome = "ok"
        try:
            with anyio.fail_after(limit):
                yield
        except OperationTimeoutError:
            outcome = "timed out"
            raise
        except TimeoutError:
            outcome = f"timed out after {limit:g} s"
            raise OperationTimeoutError(
                f"{what} on {self._transport.resource} did not finish within {limit:g} s"
            ) from None
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            _log.debug(
                "%s on %s: %s%s in %.3f s, %d round trip(s)",
                what,
                self._transport.resource,
                outcome,
                "" if jobs is None else f", {jobs} job(s)",
                time.monotonic() - started,
                self._transport.round_trips - trips,
            )

    async def _run(self, command: Command) -> Reply:
        timeout = (
            self._config.transfer_timeout_s if command.transfer else self._config.command_timeout_s
        )
        result = await self._transport.run(
            shell(command.script),
            stdin=command.stdin,
            timeout=timeout,
            idempotent=command.idempotent,
        )
        return Reply(
            result.rc,
            result.stdout.decode("utf-8", errors="replace"),
            result.stderr.decode("utf-8", errors="replace"),
        )

    @asynccontextmanager
    async def _operation(
        self, what: str, handles: Sequence[JobHandle], *, transfer: bool = False
    ) -> AsyncIterator[tuple[list[JobLocation], dict[JobID, OpOutcome]]]:
        """The opening every operation on handles shares: one deadline, credentials, and the
        handles read into this backend's jobs and the refusals of those that are not."""
        with self._deadline(what, transfer=transfer, jobs=len(handles)):
            await self._begin()
            jobs, bad = self._locate(handles)
            yield (
                jobs,
                {job_id: OpOutcome(ok=False, reason=reason) for job_id, reason in bad.items()},
            )

    def _locate(self, handles: Sequence[JobHandle]) -> tuple[list[JobLocation], dict[str, str]]:
        found: dict[str, JobLocation] = {}
        bad: dict[str, str] = {}
        for handle in handles:
            where = locate(
                handle,
                backend=self.name,
                resource=self._transport.resource,
                id_pattern=self._scheduler.job_id_pattern,
                label=self._scheduler.label,
            )
            if isinstance(where, str):
                bad[handle.id] = where
            else:
                found[handle.id] = where
        return list(found.values()), bad

    # --- submit ------------------------------------------------------------------------------

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        """N copies = one tar stream + the scheduler's submit command (Slurm: ``sbatch --array``,
        chunked remotely): one round trip.

        When the outcome is in doubt (timeout, lost connection, unreadable reply) the error
        carries the batch id (``SubmitTimeoutError``/``SubmitUnavailableError``): its jobs
        carry ``--comment=intercede:<batch>`` and ``<work_root>/<batch>/chunks`` lists the
        accepted chunks, so the caller can reconcile before submitting again.
        """
        batch = uuid.uuid4().hex
        try:
            with self._deadline("submit", transfer=True, jobs=_count(copies)):
                return await self._submit(spec, copies, batch)
        except SubmitTimeoutError:
            raise
        except OperationTimeoutError as exc:
            raise SubmitTimeoutError(str(exc), batch=batch) from None

    async def _submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars], batch: str
    ) -> Submission:
        await self._begin()
        variants = _copies(copies)
        check_submittable(spec, self._config)
        check_sizes(spec, variants)
        batch_dir = f"{self._config.work_root}/{batch}"
        script = self._scheduler.batch_script(
            spec,
            self._config,
            batch_dir,
            Path(spec.executable).name,
            has_inputs=bool(spec.inputs),
        )
        archive = await anyio.to_thread.run_sync(
            lambda: build_batch_archive(spec, variants, script=script),
            abandon_on_cancel=True,
        )
        command = self._scheduler.submit_command(spec, self._config, batch, len(variants))
        try:
            reply = await self._run(replace(command, stdin=archive))
        except ResourceUnavailableError as exc:
            raise SubmitUnavailableError(str(exc), batch=batch) from None
        accepted = self._scheduler.submit_result(reply, self._config, batch, len(variants))
        _log.debug("batch %s: %d copies in %s", batch, len(variants), accepted.grouping)
        handles = _handles(self.name, self._transport.resource, batch, accepted.job_ids)
        failures = {
            index: accepted.refused or "not accepted by the scheduler"
            for index in range(len(variants))
            if index not in handles
        }
        _log.info("submitted %d of %d copies as batch %s", len(handles), len(variants), batch)
        return Submission(handles=handles, failures=failures)

    # --- status ------------------------------------------------------------------------------

    async def _states(self, jobs: Sequence[JobLocation], *, chunks: bool = False) -> StatusView:
        command = self._scheduler.status_command(self._config, jobs, chunks=chunks)
        return self._scheduler.status_result(await self._run(command), jobs)

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        """One status query for any N (Slurm: ``squeue`` + ``sacct``); unknown ids are ``Unknown``.

        Raises ``ResourceUnavailableError`` when both commands fail (an outage must not look
        like a queue of forgotten jobs). A job neither command knows (no accounting, or
        ``MinJobAge`` passed) is Done or Failed by the exit code its log records.
        """
        async with self._operation("get_status", handles) as (jobs, refused):
            result: dict[JobID, JobStatus] = dict.fromkeys(refused, JobStatus.UNKNOWN)
            if not jobs:
                return result
            view = await self._states(jobs)
            for job in jobs:
                result[job.job_id] = view.statuses.get(job.job_id, JobStatus.UNKNOWN)
            return result

    # --- kill --------------------------------------------------------------------------------

    async def kill(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        """One command: the state, the kill of the live jobs that are ours (Slurm: one
        ``scancel`` of ranges per array, only for arrays squeue shows with our user and
        ``job_name``), and the state again only when that kill failed."""
        async with self._operation("kill", handles) as (jobs, refused):
            result: dict[JobID, OpOutcome] = {**refused}
            if not jobs:
                return result
            reply = await self._run(self._scheduler.kill_command(self._config, jobs))
            result.update(self._scheduler.kill_result(reply, self._config, jobs))
            return result

    # --- output ------------------------------------------------------------------------------

    async def get_output(
        self, handles: Sequence[JobHandle], dest: Path
    ) -> Mapping[JobID, JobOutput | OpOutcome]:
        """A listing, then one tar of exactly the selected files unpacked as it streams;
        limits checked before any transfer and again while unpacking, and every planned file
        must arrive whole. Both round trips share one ``transfer_timeout_s`` deadline."""
        dest = _output_directory(dest)
        async with self._operation("get_output", handles, transfer=True) as (jobs, refused):
            result: dict[JobID, JobOutput | OpOutcome] = {**refused}
            if not jobs:
                return result
            try:
                listing = await self._transport.run(
                    shell(collect.listing_script(self._config.work_root)),
                    stdin=collect.listing_input(jobs),
                    timeout=self._config.transfer_timeout_s,
                    stdout_limit=collect.LISTING_MAX_BYTES,
                )
            except OutputLimitError:
                raise ResourceUnavailableError(
                    f"the output listing of {len(jobs)} jobs is larger than "
                    f"{collect.LISTING_MAX_BYTES} bytes; ask for fewer jobs at once"
                ) from None
            collect.check_listing(
                listing.rc, listing.stdout, listing.stderr, self._config.work_root
            )
            manifests, entries = collect.parse_listing(listing.stdout)
            records = collect.chunk_records(listing.stdout)
            for job in list(jobs):
                mismatch = self._mismatch(records, job)
                if mismatch is not None:
                    result[job.job_id] = OpOutcome(ok=False, reason=f"not collected: {mismatch}")
                    jobs.remove(job)
            plans = collect.plan_collection(
                jobs,
                manifests,
                entries,
                max_bytes=self._config.output_max_bytes,
                max_files=self._config.output_max_files,
                not_started=collect.not_started(listing.stdout, jobs),
            )
            del listing, manifests, entries  # the plans hold what the transfer needs
            ready = {job_id: p for job_id, p in plans.items() if isinstance(p, collect.Plan)}
            for job_id, plan in plans.items():
                if isinstance(plan, OpOutcome):
                    result[job_id] = plan
            if ready:
                result.update(await self._fetch(ready, Path(dest)))
            return result

    async def _fetch(
        self, plans: Mapping[str, collect.Plan], dest: Path
    ) -> dict[str, JobOutput | OpOutcome]:
        unpacker = collect.Unpacker(plans, dest, max_bytes=self._config.output_max_bytes)
        try:
            paths = [remote for plan in plans.values() for remote in plan.files]
            rc: int | None = 0
            messages = ""
            if paths:
                done = await run_into(
                    self._transport,
                    tar_command(self._config.work_root),
                    unpacker.extract,
                    stdin=tar_input(paths),
                    timeout=self._config.transfer_timeout_s,
                )
                rc = done.rc if done is not None else None
                messages = done.stderr.decode("utf-8", errors="replace") if done else ""
                if done is not None and rc not in (0, 1, 2):
                    _log.warning("output tar ended with exit code %s: %s", rc, clip(messages))
            return await anyio.to_thread.run_sync(unpacker.finish, rc, messages)
        finally:
            unpacker.close()

    # --- purge -------------------------------------------------------------------------------

    async def purge(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        """Remove job directories (secrets included) and logs, and a batch's shared files with
        its last copy; a live job is left alone, and so is a directory whose batch records
        another job id for that copy. ``ok`` with reason "already gone" for a job purged
        before (or whose batch is gone)."""
        async with self._operation("purge", handles) as (jobs, refused):
            result: dict[JobID, OpOutcome] = {**refused}
            if not jobs:
                return result
            view = await self._states(jobs, chunks=True)
            if view.live_view_failed is not None:
                raise ResourceUnavailableError(
                    f"cannot tell which jobs are still live: {view.live_view_failed}; "
                    "nothing purged"
                )
            removable: list[JobLocation] = []
            for job in jobs:
                mismatch = self._mismatch(view.chunks, job)
                if view.is_live(job.job_id):
                    result[job.job_id] = OpOutcome(
                        ok=False,
                        reason=f"job is still {view.statuses[job.job_id].value}; kill it first",
                    )
                elif mismatch is not None:
                    result[job.job_id] = OpOutcome(ok=False, reason=f"not purged: {mismatch}")
                else:
                    removable.append(job)
            if not removable:
                return result
            reply = await self._run(
                Command(
                    remote.script("purge.sh", self._config.work_root),
                    stdin="".join(
                        f"{job.batch} {job.index} {job.log}\n" for job in removable
                    ).encode(),
                )
            )
            parts = remote.sections(reply.out)
            if not any(part.word == "done" for part in parts):
                raise ResourceUnavailableError(f"purge failed: {clip(reply.err)}")
            had = {part.arg for part in parts if part.word == "had"}
            for job in removable:
                result[job.job_id] = (
                    OpOutcome(ok=True)
                    if job.job_dir in had
                    else OpOutcome(ok=True, reason="already gone")
                )
            return result

    # --- cleanup of a submit in doubt -----------------------------------------------------------

    async def cleanup_batch(self, batch: str) -> OpOutcome:
        """Remove everything a submit left under ``<work_root>/<batch>`` (staged files, secrets,
        logs), by the batch id a ``SubmitUnavailableError``/``SubmitTimeoutError`` named.

        Idempotent (a batch already gone is ``ok`` with reason ``"already gone"``). Refused
        (``ok=False``, nothing removed) while the submit still runs on the resource or while
        any of the batch's jobs is queued or running: the reason lists them by job id. Raises
        ``ResourceUnavailableError`` when the scheduler cannot say (nothing is removed then).
        """
        if not isinstance(batch, str) or not _BATCH.fullmatch(batch):
            raise SpecificationRejectedError(
                "must be the 32-hex-digit batch id a submit in doubt reported", field="batch"
            )
        with self._deadline("cleanup_batch"):
            await self._begin()
            reply = await self._run(self._scheduler.cleanup_command(self._config, batch))
        outcome = self._scheduler.cleanup_result(reply, batch)
        if outcome.ok and outcome.reason is None:
            _log.info("removed batch %s left by a submit in doubt", batch)
        return outcome

    # --- diagnostics -------------------------------------------------------------------------

    async def get_diagnostics(
        self, handles: Sequence[JobHandle], name: str | None = None
    ) -> Mapping[JobID, Diagnostics | OpOutcome]:
        """The last MiB of a file of each job: its stdout (``None`` or ``":stdout"``), its
        stderr (``":stderr"``), the wrapper's scheduler log (``":log"``), or ``name`` in its
        working directory."""
        if name is not None and name not in DIAGNOSTIC_STREAMS and not is_contained(name):
            raise SpecificationRejectedError(
                "must be a relative path inside the job's working directory, or one of "
                f"{', '.join(DIAGNOSTIC_STREAMS)}",
                field="name",
            )
        async with self._operation("get_diagnostics", handles) as (jobs, refused):
            result: dict[JobID, Diagnostics | OpOutcome] = {**refused}
            if not jobs:
                return result
            label = name or "stdout"
            stream = DIAGNOSTIC_STREAMS.get(name or ":stdout")
            lines = "".join(
                f"{job.job_id} {getattr(job, stream) if stream else job.work_dir}\n" for job in jobs
            )
            suffix = "" if stream else f"/{name}"
            try:
                raw = await self._transport.run(
                    shell(
                        remote.script(
                            "diagnostics.sh",
                            self._config.work_root,
                            _octal(suffix),
                            "stream" if stream else "file",
                            str(DIAGNOSTICS_MAX_BYTES + 1),
                        )
                    ),
                    stdin=lines.encode(),
                    timeout=self._config.command_timeout_s,
                    stdout_limit=len(jobs) * (DIAGNOSTICS_MAX_BYTES + 2048) + 20480,
                )
            except OutputLimitError as exc:
                raise ResourceUnavailableError(f"diagnostics reply too large: {exc}") from None
            if raw.rc != 0:
                problem = clip(raw.stderr.decode("utf-8", errors="replace"))
                raise ResourceUnavailableError(
                    f"cannot read {label} under {self._config.work_root}: "
                    f"{problem or f'exit code {raw.rc}'}"
                )
            found = _read_tar(raw.stdout)
            records = {
                name[2:]: parse_chunk_record(data.decode("utf-8", errors="replace"))
                for name, data in found.items()
                if name.startswith("c/")
            }
            for job in jobs:
                content = found.get(f"d/{job.job_id}")
                why = found.get(f"w/{job.job_id}")
                mismatch = self._mismatch(records, job)
                if mismatch is not None:
                    result[job.job_id] = OpOutcome(ok=False, reason=f"not read: {mismatch}")
                elif why is not None:
                    result[job.job_id] = OpOutcome(
                        ok=False,
                        reason=f"{label} {why.decode('utf-8', errors='replace').strip()}",
                    )
                elif content is None:
                    result[job.job_id] = OpOutcome(
                        ok=False, reason=f"no {label} for this job (not started yet, or purged)"
                    )
                else:
                    truncated = len(content) > DIAGNOSTICS_MAX_BYTES
                    result[job.job_id] = Diagnostics(
                        name=label,
                        content=content[-DIAGNOSTICS_MAX_BYTES:] if truncated else content,
                        truncated=truncated,
                    )
            return result

    # --- load --------------------------------------------------------------------------------

    async def counts(self) -> LoadCounts:
        """Running/waiting jobs with our user, job name and queue: one query."""
        with self._deadline("counts"):
            await self._begin()
            reply = await self._run(self._scheduler.counts_command(self._config))
            return self._scheduler.counts_result(reply)

    # --- explain -----------------------------------------------------------------------------

    async def explain(
        self, handles: Sequence[JobHandle]
    ) -> Mapping[JobID, Explanation | OpOutcome]:
        """One command: the scheduler's state, pending reason and queue of each job, and the
        state of every queue; a job the scheduler no longer shows gets an ``OpOutcome``."""
        async with self._operation("explain", handles) as (jobs, refused):
            result: dict[JobID, Explanation | OpOutcome] = {**refused}
            if not jobs:
                return result
            reply = await self._run(self._scheduler.explain_command(self._config, jobs))
            result.update(self._scheduler.explain_result(reply, jobs))
            return result

    def _mismatch(self, records: ChunkRecords, job: JobLocation) -> str | None:
        return handle_mismatch(
            records, job.batch, job.index, job.job_id, label=self._scheduler.label
        )


def _requirements(
    config: SSHBatchConfig | LocalBatchConfig, resource: str
) -> CredentialRequirements:
    if isinstance(config, SSHBatchConfig):
        kind = "ssh_private_key" if config.auth == "key" else "ssh_password"
        return CredentialRequirements(resource=resource, kinds=(kind,))
    return CredentialRequirements(resource=resource, kinds=())


def _copies(copies: int | Sequence[CopyVars]) -> list[CopyVars]:
    if isinstance(copies, int):
        if copies < 1:
            raise SpecificationRejectedError(f"must be at least 1, got {copies}", field="copies")
        return [CopyVars()] * copies
    variants = list(copies)
    if not variants:
        raise SpecificationRejectedError("no copies given", field="copies")
    for i, variant in enumerate(variants):
        if not isinstance(variant, CopyVars):
            raise SpecificationRejectedError(
                f"must be CopyVars, got {type(variant).__name__}", field=f"copies[{i}]"
            )
    return variants


def _handles(
    backend: str, resource: str, batch: str, job_ids: Mapping[int, str]
) -> dict[int, JobHandle]:
    """One handle per accepted copy, by copy index. They differ only in the digits of their
    id and routing (the scheduler's ids and the batch's hex, checked by its reply parser), so
    the longest one is validated in full (it alone could exceed the compact form's limit) and
    the others are built from the same, known-valid parts: validating each of 5000 costs more
    than the scheduler's own submit."""
    if not job_ids:
        return {}
    longest = max(job_ids, key=lambda index: len(job_ids[index]) + len(str(index)))
    JobHandle(backend=backend, resource=resource, id=job_ids[longest], routing=f"{batch}/{longest}")
    return {
        index: JobHandle.model_construct(
            backend=backend, resource=resource, id=job_id, routing=f"{batch}/{index}"
        )
        for index, job_id in sorted(job_ids.items())
    }


def _count(copies: int | Sequence[CopyVars]) -> int:
    return copies if isinstance(copies, int) else len(copies)


def _output_directory(dest: Path | str) -> Path:
    """``dest`` made (with its parents) or refused naming the argument: an existing file, an
    impossible path or one we may not write is the caller's mistake, not an outage."""
    try:
        path = Path(dest)
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError, TypeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SpecificationRejectedError(
            f"cannot use {dest!s} as the output directory: {why}", field="dest"
        ) from None
    return path


def _octal(text: str) -> str:
    """Any name (any bytes, quotes, newlines) as a printf format of octal escapes."""
    return "".join(f"\\{byte:03o}" for byte in os.fsencode(text))


def _read_tar(data: bytes) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if not data:
        raise ResourceUnavailableError("the diagnostics reply is empty (no tar stream)")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        found[member.name.removeprefix("./")] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ResourceUnavailableError(f"unreadable diagnostics reply: {exc}") from None
    return found


# The type checker proves the protocols are satisfied structurally.
_: type[JobBackend] = BatchBackend
_output: type[OutputRetriever] = BatchBackend
_kill: type[Killable] = BatchBackend
_purge: type[Purgeable] = BatchBackend
_diagnose: type[Diagnosable] = BatchBackend
_load: type[LoadReporter] = BatchBackend
_explain: type[Explainer] = BatchBackend
_clean: type[BatchCleaner] = BatchBackend
