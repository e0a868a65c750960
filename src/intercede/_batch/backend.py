"""``BatchBackend``: the interCEde protocols over a scheduler and a transport.

Every operation is one or two remote shell commands whatever the number of jobs (submit 1,
status 1, kill 1, counts 1, diagnostics 1, purge 2, get_output 2), which is what lets a site
queue fill with a thousand pilots in well under a second. The backend stores no jobs: a handle
carries the Slurm id and the job's directory, and every answer is derived from the resource.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import shlex
import tarfile
import uuid
from collections.abc import Mapping, Sequence
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
    ResourceUnavailableError,
    SpecificationRejectedError,
)
from ..models import (
    CopyVars,
    Diagnostics,
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
    Diagnosable,
    JobBackend,
    Killable,
    LoadReporter,
    OutputRetriever,
    Purgeable,
)
from . import collect, slurm
from .layout import JobLocation, locate
from .staging import build_batch_archive, check_submittable, is_contained
from .transport import Transport, get_tar, shell

__all__ = ["DIAGNOSTICS_MAX_BYTES", "BatchBackend"]

DIAGNOSTICS_MAX_BYTES = 1 << 20
"""``get_diagnostics`` returns at most the last MiB of the file (``truncated=True`` then)."""

_log = logging.getLogger("intercede.batch")

# sbatch messages that mean "the controller is not answering", not "your job is wrong".
_UNAVAILABLE_MARKERS = (
    "unable to contact",
    "socket timed out",
    "connection refused",
    "temporarily unable",
    "slurm_persist_conn",
)


class BatchBackend:
    """A batch system (Slurm) reached through a transport (SSH or local)."""

    def __init__(
        self,
        transport: Transport,
        scheduler: slurm.SlurmScheduler,
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

    async def _run(
        self,
        script: str,
        *,
        stdin: bytes | None = None,
        transfer: bool = False,
        idempotent: bool = True,
    ) -> tuple[int, str, str]:
        timeout = self._config.transfer_timeout_s if transfer else self._config.command_timeout_s
        result = await self._transport.run(
            shell(script), stdin=stdin, timeout=timeout, idempotent=idempotent
        )
        return (
            result.rc,
            result.stdout.decode("utf-8", errors="replace"),
            result.stderr.decode("utf-8", errors="replace"),
        )

    def _locate(self, handles: Sequence[JobHandle]) -> tuple[list[JobLocation], dict[str, str]]:
        found: dict[str, JobLocation] = {}
        bad: dict[str, str] = {}
        for handle in handles:
            where = locate(handle, backend=self.name, resource=self._transport.resource)
            if isinstance(where, str):
                bad[handle.id] = where
            else:
                found[handle.id] = where
        return list(found.values()), bad

    # --- submit ------------------------------------------------------------------------------

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        """N copies = one tar stream + ``sbatch --array`` (chunked remotely): one round trip."""
        await self._begin()
        variants = _copies(copies)
        check_submittable(spec, self._config)
        batch = uuid.uuid4().hex
        batch_dir = f"{self._config.work_root}/{batch}"
        script = slurm.batch_script(
            spec,
            self._config,
            batch_dir,
            Path(spec.executable).name,
            has_inputs=bool(spec.inputs),
        )
        archive = await anyio.to_thread.run_sync(
            lambda: build_batch_archive(spec, variants, batch_dir=batch_dir, script=script)
        )
        command = slurm.submit_script(
            work_root=self._config.work_root,
            batch=batch,
            copies=len(variants),
            options=slurm.sbatch_options(spec, self._config, batch_dir),
            max_array_size=self._scheduler.max_array_size,
        )
        rc, out, err = await self._run(command, stdin=archive, transfer=True, idempotent=False)
        reply = slurm.parse_submit(out)
        if reply.max_array_size is not None:
            self._scheduler.max_array_size = reply.max_array_size
        if not reply.chunks:
            raise _submit_error(rc, reply.error or err, self._config.work_root)
        handles: dict[int, JobHandle] = {}
        for offset, size, array_id in reply.chunks:
            for task in range(size):
                handles[offset + task] = JobHandle(
                    backend=self.name,
                    resource=self._transport.resource,
                    id=f"{array_id}_{task}",
                    routing=f"{batch}/{offset + task}",
                )
        failures = {
            index: f"sbatch refused this chunk: {reply.error or 'no reason given'}"
            for index in range(len(variants))
            if index not in handles
        }
        _log.info("submitted %d of %d copies as batch %s", len(handles), len(variants), batch)
        return Submission(handles=handles, failures=failures)

    # --- status ------------------------------------------------------------------------------

    async def _states(self, jobs: Sequence[JobLocation]) -> dict[str, slurm.SlurmJobState]:
        if not jobs:
            return {}
        arrays = sorted({job.array_id for job in jobs})
        _, out, err = await self._run(slurm.status_script(arrays))
        if "@@end" not in out:
            raise ResourceUnavailableError(f"status query failed: {err.strip()}")
        return slurm.parse_status(out, [job.job_id for job in jobs])

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        """One ``squeue`` + ``sacct`` command for any N; unknown ids are ``Unknown``."""
        await self._begin()
        jobs, bad = self._locate(handles)
        states = await self._states(jobs)
        result: dict[JobID, JobStatus] = dict.fromkeys(bad, JobStatus.UNKNOWN)
        for job in jobs:
            state = states.get(job.job_id)
            result[job.job_id] = state.status if state else JobStatus.UNKNOWN
        return result

    # --- kill --------------------------------------------------------------------------------

    async def kill(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        """One command: status, one ``scancel`` (ranges per array), status again."""
        await self._begin()
        jobs, bad = self._locate(handles)
        result: dict[JobID, OpOutcome] = {
            job_id: OpOutcome(ok=False, reason=reason) for job_id, reason in bad.items()
        }
        if not jobs:
            return result
        arrays = sorted({job.array_id for job in jobs})
        ids = [job.job_id for job in jobs]
        _, out, err = await self._run(slurm.cancel_script(arrays, ids))
        before_text, marker, after_text = out.partition("@@after\n")
        if not marker or "@@end" not in after_text:
            raise ResourceUnavailableError(f"scancel failed: {err.strip()}")
        before = slurm.parse_status(before_text, ids)
        after = slurm.parse_status(after_text, ids)
        for job_id in ids:
            result[job_id] = _kill_outcome(before.get(job_id), after.get(job_id))
        return result

    # --- output ------------------------------------------------------------------------------

    async def get_output(
        self, handles: Sequence[JobHandle], dest: Path
    ) -> Mapping[JobID, JobOutput | OpOutcome]:
        """A listing, then one tar of exactly the selected files; limits checked before any
        transfer and again while unpacking."""
        await self._begin()
        jobs, bad = self._locate(handles)
        result: dict[JobID, JobOutput | OpOutcome] = {
            job_id: OpOutcome(ok=False, reason=reason) for job_id, reason in bad.items()
        }
        if not jobs:
            return result
        listing = await self._transport.run(
            shell(collect.listing_script(self._config.work_root, jobs)),
            timeout=self._config.command_timeout_s,
        )
        if listing.rc != 0 or b"@@find\n" not in listing.stdout:
            problem = listing.stderr.decode(errors="replace").strip()
            raise ResourceUnavailableError(
                f"cannot list {self._config.work_root}: {problem or f'exit code {listing.rc}'}"
            )
        manifests, entries = collect.parse_listing(listing.stdout)
        plans = collect.plan_collection(
            jobs,
            manifests,
            entries,
            max_bytes=self._config.output_max_bytes,
            max_files=self._config.output_max_files,
        )
        ready = {job_id: plan for job_id, plan in plans.items() if isinstance(plan, collect.Plan)}
        for job_id, plan in plans.items():
            if isinstance(plan, OpOutcome):
                result[job_id] = plan
        if not ready:
            return result
        paths = [remote for plan in ready.values() for remote in plan.files]
        archive = (
            await get_tar(
                self._transport,
                self._config.work_root,
                paths,
                self._config.transfer_timeout_s,
            )
            if paths
            else b""
        )
        result.update(
            await anyio.to_thread.run_sync(
                lambda: collect.unpack(
                    io.BytesIO(archive),
                    ready,
                    Path(dest),
                    max_bytes=self._config.output_max_bytes,
                )
            )
        )
        return result

    # --- purge -------------------------------------------------------------------------------

    async def purge(self, handles: Sequence[JobHandle]) -> Mapping[JobID, OpOutcome]:
        """Remove job directories (secrets included) and logs; a live job is left alone."""
        await self._begin()
        jobs, bad = self._locate(handles)
        result: dict[JobID, OpOutcome] = {
            job_id: OpOutcome(ok=False, reason=reason) for job_id, reason in bad.items()
        }
        if not jobs:
            return result
        states = await self._states(jobs)
        removable: list[JobLocation] = []
        for job in jobs:
            state = states.get(job.job_id)
            if (
                state is not None
                and not state.status.is_final
                and state.status is not (JobStatus.UNKNOWN)
            ):
                result[job.job_id] = OpOutcome(
                    ok=False, reason=f"job is still {state.status.value}; kill it first"
                )
            else:
                removable.append(job)
        if not removable:
            return result
        _, out, err = await self._run(_purge_script(self._config.work_root, removable))
        if "@@done" not in out:
            raise ResourceUnavailableError(f"purge failed: {err.strip()}")
        had = {line[len("@@had ") :] for line in out.splitlines() if line.startswith("@@had ")}
        for job in removable:
            result[job.job_id] = (
                OpOutcome(ok=True)
                if job.job_dir in had
                else OpOutcome(ok=False, reason="nothing to purge: no job directory")
            )
        return result

    # --- diagnostics -------------------------------------------------------------------------

    async def get_diagnostics(
        self, handles: Sequence[JobHandle], name: str | None = None
    ) -> Mapping[JobID, Diagnostics | OpOutcome]:
        """The last MiB of a file of each job: its stdout, or ``name`` in its working dir."""
        if name is not None and not is_contained(name):
            raise SpecificationRejectedError(
                "must be a relative path inside the job's working directory", field="name"
            )
        await self._begin()
        jobs, bad = self._locate(handles)
        result: dict[JobID, Diagnostics | OpOutcome] = {
            job_id: OpOutcome(ok=False, reason=reason) for job_id, reason in bad.items()
        }
        if not jobs:
            return result
        label = name or "stdout"
        files = {
            job.job_id: (job.stdout if name is None else f"{job.work_dir}/{name}") for job in jobs
        }
        result_raw = await self._transport.run(
            shell(_diagnostics_script(self._config.work_root, files)),
            timeout=self._config.command_timeout_s,
        )
        found = _read_tar(result_raw.stdout)
        for job in jobs:
            content = found.get(job.job_id)
            if content is None:
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
        """Running/waiting tasks with our user, job name and partition: one squeue."""
        await self._begin()
        rc, out, err = await self._run(
            slurm.counts_script(self._config.job_name, self._config.queue)
        )
        if rc != 0:
            raise ResourceUnavailableError(f"squeue failed: {err.strip()}")
        running, waiting = slurm.parse_counts(out)
        return LoadCounts(running=running, waiting=waiting)


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


def _submit_error(rc: int, message: str, work_root: str) -> InterCEdeError:
    text = message.strip() or f"exit code {rc}"
    if rc in (90, 91, 92):
        return ResourceUnavailableError(f"cannot stage the batch under {work_root}: {text}")
    if rc == 93 and not any(marker in text.lower() for marker in _UNAVAILABLE_MARKERS):
        return SpecificationRejectedError(f"sbatch refused the submission: {text}")
    return ResourceUnavailableError(f"submission failed: {text}")


def _kill_outcome(
    before: slurm.SlurmJobState | None, after: slurm.SlurmJobState | None
) -> OpOutcome:
    if before is None:
        return OpOutcome(ok=False, reason="unknown to Slurm (never existed, or long gone)")
    if before.status.is_final:
        return OpOutcome(ok=False, reason=f"already finished ({before.status.value})")
    if after is None or after.status is JobStatus.ABORTED:
        return OpOutcome(ok=True)
    if slurm.normalise_state(after.raw) == "COMPLETING":
        return OpOutcome(ok=True)
    if after.status.is_final:
        return OpOutcome(ok=False, reason=f"finished ({after.status.value}) before scancel")
    return OpOutcome(ok=False, reason=f"still {after.raw} after scancel")


def _purge_script(work_root: str, jobs: Sequence[JobLocation]) -> str:
    dirs = " ".join(job.job_dir for job in jobs)
    logs = " ".join(job.log for job in jobs)
    batches = " ".join(sorted({job.batch for job in jobs}))
    return (
        f"cd {shlex.quote(work_root)} || exit 3\n"
        f'for j in {dirs}; do [ -d "$j" ] && echo "@@had $j"; done\n'
        f"rm -rf {dirs} {logs}\n"
        # a batch whose last copy is gone takes its script, inputs and logs with it
        f'for b in {batches}; do set -- "$b"/[0-9]*; [ -e "$1" ] || rm -rf "$b"; done\n'
        "echo @@done\n"
    )


def _diagnostics_script(work_root: str, files: Mapping[str, str]) -> str:
    copies = "".join(
        f"[ -f {shlex.quote(path)} ] && tail -c {DIAGNOSTICS_MAX_BYTES + 1} "
        f'{shlex.quote(path)} > "$t/{job_id}"\n'
        for job_id, path in files.items()
    )
    return (
        f"cd {shlex.quote(work_root)} || exit 3\n"
        "t=$(mktemp -d) || exit 4\n" + copies + 'tar -c -f - -C "$t" .; rm -rf "$t"\n'
    )


def _read_tar(data: bytes) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if not data:
        return found
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    found[member.name.removeprefix("./")] = handle.read()
    return found


# The type checker proves the protocols are satisfied structurally.
_: type[JobBackend] = BatchBackend
_output: type[OutputRetriever] = BatchBackend
_kill: type[Killable] = BatchBackend
_purge: type[Purgeable] = BatchBackend
_diagnose: type[Diagnosable] = BatchBackend
_load: type[LoadReporter] = BatchBackend
