"""``InterCEdeComputingElement``: a DIRAC Computing Element over the interCEde sync facade.

Written the way a DIRAC maintainer would write it inside DIRAC: DIRAC's CE method names and
``S_OK``/``S_ERROR`` dicts outside, interCEde's typed bulk calls inside. It holds one facade
(one event-loop thread, one SSH connection) for its whole life, because DIRAC caches CE objects
across agent cycles; ``close()`` releases it when the cache evicts the CE.

What this CE stores is what interCEde does not: the pilot stamp per job (returned once in
``PilotStampDict``; the caller records it) and the slot policy (``MaxTotalJobs``,
``MaxWaitingJobs``). Pilot references are ``str(JobHandle)``: the handle carries the routing
that locates the job's directory, so no call needs the stamp to find a job again.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import SecretBytes, ValidationError

from intercede import (
    ConfigurationError,
    CopyVars,
    FileRef,
    InterCEdeError,
    JobHandle,
    JobOutput,
    JobStatus,
    OpOutcome,
    OutputMember,
    OutputSpec,
    SubmissionSpec,
    sync,
)

from .parameters import CETranslation, translate
from .returns import (
    ECONF,
    ENOMETH,
    EWMSJDL,
    EWMSJMAN,
    EWMSSTATUS,
    EWMSSUBM,
    S_ERROR,
    S_OK,
    error_from,
)
from .slots import available_slots

__all__ = ["STAMP_VARIABLE", "InterCEdeComputingElement", "getCE", "split_reference"]

STAMP_VARIABLE = "DIRAC_PILOT_STAMP"
"""Where each copy finds its own stamp (DC-06); an identifier, so a plain environment entry."""
PROXY_SECRET_NAME = "PROXY"  # noqa: S105 - a variable name, not a secret
"""The payload proxy is staged as a 0600 file; its path is in ``$INTERCEDE_SECRET_PROXY``."""
_STAMP_SEPARATOR = ":::"
_STAMP = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def split_reference(ref: str) -> tuple[JobHandle, str | None]:
    """``"<handle>[:::<stamp>]"`` → the handle and the stamp, if any (DC-10).

    The stamp is accepted and ignored for locating the job: the handle's routing does that.
    """
    text, _, stamp = ref.partition(_STAMP_SEPARATOR)
    if stamp and not _STAMP.match(stamp):  # it may name files in the caller's directory
        raise ValueError(f"{ref}: the stamp is not a plain identifier (letters, digits, _ -)")
    try:
        handle = JobHandle.parse(text)
    except ValueError as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise ValueError(f"{ref}: not an interCEde pilot reference ({reason})") from None
    return handle, stamp or None


def getCE(ceName: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What DIRAC's ``ComputingElementFactory.getCE`` does: ``S_OK(ce)`` or ``S_ERROR`` naming
    the CS key to fix, never an exception."""
    try:
        return S_OK(InterCEdeComputingElement(ceName, parameters))
    except ConfigurationError as exc:
        return S_ERROR(ECONF, f"{ceName}: {exc}")


class InterCEdeComputingElement:
    """A DIRAC CE (SSH or Local, Slurm) backed by one interCEde backend.

    Construction translates the ``ParametersDict`` and builds the facade; it does no I/O (the
    connection opens on first use), unlike DIRAC's SSH CE ``setParameters`` (DC-30). A bad or
    missing key raises ``ConfigurationError`` whose ``field`` is the DIRAC key.
    """

    def __init__(
        self,
        ceName: str,
        parameters: Mapping[str, Any],
        *,
        backend: sync.JobBackend | None = None,
    ) -> None:
        self.ceName = ceName
        self.ceType = "InterCEde"
        # DIRAC keeps the CS parameters on the CE; the password stays with the provider only.
        self.ceParameters = {k: v for k, v in parameters.items() if k != "SSHPassword"}
        self._translation: CETranslation = translate(parameters)
        self._backend = (
            backend
            if backend is not None
            else sync.backend(self._translation.config, self._translation.credentials)
        )
        self._submitted = 0

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connection and the facade's loop thread; idempotent."""
        self._backend.close()

    def __enter__(self) -> InterCEdeComputingElement:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- submission -------------------------------------------------------------------------

    def submitJob(
        self,
        executableFile: str,
        proxy: str | None = None,
        numberOfJobs: int = 1,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """``S_OK([ref, ...])`` plus ``PilotStampDict`` (DC-04..DC-06).

        The executable is staged during the call, so the caller may delete it on return: there
        is no ``ExecutableToKeep`` (DC-07). A non-empty ``proxy`` is staged per job as a 0600
        secret file instead of being bundled into the executable (DC-08). Copies the backend
        refused are reported in ``FailedCopies`` (index → reason), never dropped.
        """
        if numberOfJobs < 1:
            return S_ERROR(EWMSSUBM, f"numberOfJobs: must be >= 1, got {numberOfJobs}")
        try:
            spec = SubmissionSpec(
                executable=executableFile,
                inputs=tuple(FileRef(name=Path(p).name, source=str(p)) for p in inputs or ()),
                outputs=_output_spec(outputs or ()),
                resources=self._translation.resources,
                tag=self.ceName,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "spec"
            return S_ERROR(EWMSJDL, f"{where}: {first['msg']}")
        stamps = [uuid.uuid4().hex for _ in range(numberOfJobs)]
        secrets = {PROXY_SECRET_NAME: SecretBytes(proxy.encode())} if proxy else {}
        copies = [CopyVars(environment={STAMP_VARIABLE: s}, secrets=secrets) for s in stamps]
        try:
            submission = self._backend.submit(spec, copies)
        except InterCEdeError as exc:
            return error_from(exc, EWMSSUBM)
        if not submission.handles:
            reasons = "; ".join(f"copy {i}: {r}" for i, r in sorted(submission.failures.items()))
            return S_ERROR(EWMSSUBM, f"no pilot submitted: {reasons}")
        ordered = sorted(submission.handles.items())
        self._submitted += len(ordered)
        result = S_OK([str(handle) for _, handle in ordered])
        result["PilotStampDict"] = {str(handle): stamps[i] for i, handle in ordered}
        if submission.failures:
            result["FailedCopies"] = dict(submission.failures)
        return result

    # -- status -----------------------------------------------------------------------------

    def getJobStatus(self, jobIDList: Iterable[str]) -> dict[str, Any]:
        """``S_OK({ref: status})`` keyed by each ref exactly as passed, stamped or not (DC-11).

        A ref that does not parse is ``Unknown`` and explained in ``Failed`` (DC-03 style), so
        one bad row cannot block the status of the queue's other pilots.
        """
        handles, failed = _parse_all(jobIDList)
        try:
            statuses = self._backend.get_status(_unique(handles.values())) if handles else {}
        except InterCEdeError as exc:
            return error_from(exc, EWMSSTATUS)
        value = {
            ref: str(statuses.get(handle.id, JobStatus.UNKNOWN)) for ref, handle in handles.items()
        }
        value.update(dict.fromkeys(failed, str(JobStatus.UNKNOWN)))
        result = S_OK(value)
        if failed:
            result["Failed"] = failed
        return result

    # -- output -----------------------------------------------------------------------------

    def getJobOutput(self, jobID: str, localDir: str | None = None) -> dict[str, Any]:
        """``S_OK((stdout, stderr))`` (DC-16).

        Without ``localDir``: the two streams as text. With it: the payload's files are placed
        in ``localDir`` (relative paths kept) and the streams land beside them as
        ``<stamp>.out``/``<stamp>.err`` (``<job id>`` when no stamp was given); their paths
        are returned. Collecting twice is safe.
        """
        try:
            handle, stamp = split_reference(jobID)
        except ValueError as exc:
            return S_ERROR(EWMSJMAN, str(exc))
        with tempfile.TemporaryDirectory(prefix="intercede-output-") as tmp:
            got = self._collect(handle, Path(tmp))
            if isinstance(got, OpOutcome):
                return S_ERROR(EWMSJMAN, f"{jobID}: {got.reason}")
            if localDir is None:
                return S_OK((_read(got.stdout), _read(got.stderr)))
            try:
                paths = _place(got, Path(tmp), handle.id, Path(localDir), stamp or handle.id)
            except FileExistsError as exc:
                return S_ERROR(EWMSJMAN, f"{jobID}: {exc}")
        return S_OK(paths)

    def getJobLog(self, jobID: str) -> dict[str, Any]:
        """``S_OK(text)`` of the scheduler's own log for the job (DC-17)."""
        try:
            handle, _ = split_reference(jobID)
        except ValueError as exc:
            return S_ERROR(EWMSJMAN, str(exc))
        with tempfile.TemporaryDirectory(prefix="intercede-log-") as tmp:
            got = self._collect(handle, Path(tmp))
            if isinstance(got, OpOutcome):
                return S_ERROR(EWMSJMAN, f"{jobID}: {got.reason}")
            if got.log is None:
                return S_ERROR(EWMSJMAN, f"{jobID}: the resource keeps no scheduler log")
            return S_OK(_read(got.log))

    def _collect(self, handle: JobHandle, dest: Path) -> JobOutput | OpOutcome:
        if not isinstance(self._backend, sync.OutputRetriever):
            return OpOutcome(ok=False, reason="this backend cannot return output")
        try:
            outputs = self._backend.get_output([handle], dest)
        except InterCEdeError as exc:
            return OpOutcome(ok=False, reason=error_from(exc, EWMSJMAN)["Message"])
        return outputs.get(handle.id) or OpOutcome(ok=False, reason="no output returned")

    # -- kill and clean-up ------------------------------------------------------------------

    def killJob(self, jobIDList: Iterable[str] | str) -> dict[str, Any]:
        """``S_OK(number killed)`` with per-ref ``Successful``/``Failed`` (DC-20): every ref is
        attempted, none is dropped, and the caller sees which ones failed and why."""
        if not isinstance(self._backend, sync.Killable):
            return S_ERROR(ENOMETH, f"{self.ceName}: this backend cannot kill jobs")
        return self._bulk(jobIDList, self._backend.kill)

    def cleanJob(self, jobIDList: Iterable[str] | str) -> dict[str, Any]:
        """Release the jobs' remote directories after collection (DC-18, DC-19)."""
        if not isinstance(self._backend, sync.Purgeable):
            return S_ERROR(ENOMETH, f"{self.ceName}: this backend cannot clean jobs")
        return self._bulk(jobIDList, self._backend.purge)

    def _bulk(
        self,
        refs: Iterable[str] | str,
        operation: Callable[[Sequence[JobHandle]], Mapping[str, OpOutcome]],
    ) -> dict[str, Any]:
        handles, failed = _parse_all([refs] if isinstance(refs, str) else refs)
        try:
            outcomes: Mapping[str, OpOutcome] = (
                operation(_unique(handles.values())) if handles else {}
            )
        except InterCEdeError as exc:
            return error_from(exc, EWMSJMAN)
        successful: dict[str, bool] = {}
        for ref, handle in handles.items():
            outcome = outcomes.get(handle.id) or OpOutcome(ok=False, reason="no answer")
            if outcome.ok:
                successful[ref] = True
            else:
                failed[ref] = outcome.reason or "failed"
        result = S_OK(len(successful))
        result["Successful"] = successful
        result["Failed"] = failed
        return result

    # -- load and slots ---------------------------------------------------------------------

    def getCEStatus(self) -> dict[str, Any]:
        """``S_OK()`` with top-level ``RunningJobs``/``WaitingJobs``/``SubmittedJobs`` (DC-22):
        counts of this backend's own jobs in its queue, never the site's capacity."""
        if not isinstance(self._backend, sync.LoadReporter):
            return S_ERROR(ENOMETH, f"{self.ceName}: this backend reports no load")
        try:
            counts = self._backend.counts()
        except InterCEdeError as exc:
            return error_from(exc, EWMSSTATUS)
        result = S_OK()
        result["RunningJobs"] = counts.running
        result["WaitingJobs"] = counts.waiting
        result["SubmittedJobs"] = self._submitted
        return result

    def available(self) -> dict[str, Any]:
        """DIRAC's ``available()`` (DC-23): ``Value`` = free slots, ``CEInfoDict`` = the counts
        and the CS limits. interCEde only counts; this policy is DIRAC's."""
        result = self.getCEStatus()
        if not result["OK"]:
            return result
        max_total = self._translation.max_total_jobs
        max_waiting = self._translation.max_waiting_jobs
        info = {key: result[key] for key in ("RunningJobs", "WaitingJobs", "SubmittedJobs")}
        info["MaxTotalJobs"] = max_total
        info["MaxWaitingJobs"] = max_waiting
        result["CEInfoDict"] = info
        result["Value"] = available_slots(
            result["RunningJobs"], result["WaitingJobs"], max_total, max_waiting
        )
        return result


def _output_spec(outputs: Sequence[str]) -> OutputSpec:
    if "/" in outputs:  # PushJobAgent and RemoteRunner: everything the payload leaves behind
        return OutputSpec.everything()
    return OutputSpec(members=tuple(OutputMember(pattern=p) for p in outputs))


def _parse_all(refs: Iterable[str]) -> tuple[dict[str, JobHandle], dict[str, str]]:
    handles: dict[str, JobHandle] = {}
    failed: dict[str, str] = {}
    for ref in refs:
        try:
            handles[ref] = split_reference(ref)[0]
        except ValueError as exc:
            failed[ref] = str(exc)
    return handles, failed


def _unique(handles: Iterable[JobHandle]) -> list[JobHandle]:
    return list(dict.fromkeys(handles))


def _read(path: Path | None) -> str:
    return path.read_text(errors="replace") if path is not None else ""


def _place(got: JobOutput, dest: Path, job_id: str, local_dir: Path, stem: str) -> tuple[str, str]:
    """Move the payload files and both streams into ``local_dir``; refuse a payload file that
    would overwrite a stream (they must stay separate, as in interCEde's own layout)."""
    streams = {Path(f"{stem}.out"), Path(f"{stem}.err")}
    payload_root = dest / job_id  # the backend's layout: payload under dest/<job id>/
    local_dir.mkdir(parents=True, exist_ok=True)
    for source in got.files:
        root = payload_root if source.is_relative_to(payload_root) else dest
        relative = source.relative_to(root)
        if relative in streams:
            raise FileExistsError(f"payload file {relative} collides with the job's stream name")
        target = local_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    paths = []
    for stream, name in ((got.stdout, f"{stem}.out"), (got.stderr, f"{stem}.err")):
        target = local_dir / name
        if stream is None:
            target.write_text("")
        else:
            shutil.move(stream, target)
        paths.append(str(target))
    return paths[0], paths[1]
