"""``InterCEdeComputingElement``: a DIRAC Computing Element over the interCEde sync facade.

Written the way a DIRAC maintainer would write it inside DIRAC: DIRAC's CE method names and
``S_OK``/``S_ERROR`` dicts outside, interCEde's typed bulk calls inside. DIRAC's factory builds
it as ``ceClass(ceName)`` and then calls ``setParameters(dict)`` (DC-38), so it does the same;
the facade it then holds (one event-loop thread, one SSH connection) lives as long as the CE,
because DIRAC caches CE objects across agent cycles; ``close()`` releases it on eviction.

What this CE stores is what interCEde does not: the pilot stamp per job (returned once in
``PilotStampDict``; the caller records it), the slot policy (``MaxTotalJobs``,
``MaxWaitingJobs``) and the credentials DIRAC sets on a CE every cycle (``proxy``, ``token``).
Pilot references are ``str(JobHandle)``: the handle carries the routing that locates the job's
directory, so no call needs the stamp to find a job again.
"""

from __future__ import annotations

import functools
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self

from pydantic import SecretBytes, SecretStr, ValidationError

from intercede import (
    ConfigurationError,
    CopyVars,
    FileRef,
    InterCEdeError,
    JobHandle,
    JobStatus,
    OpOutcome,
    OutputMember,
    OutputSpec,
    SubmissionSpec,
    sync,
)

from .output import SLURM_STREAM_NAMES, Stream, collect, place, read_streams
from .parameters import CETranslation, translate
from .proxy import proxy_pem
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


BackendFactory = Callable[[CETranslation], sync.JobBackend]
"""How a CE turns its translated parameters into a facade; tests substitute an in-memory one."""

_P = ParamSpec("_P")
_NOT_CONFIGURED = "no parameters set: DIRAC's factory calls setParameters(dict) right after ceName"


def getCE(ceName: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What DIRAC's ``ComputingElementFactory.getCE`` does with this class: ``ceClass(ceName)``,
    then ``setParameters({"CEType": <type>, **parameters})``; ``S_OK(ce)`` or that
    ``S_ERROR``, never an exception."""
    element = InterCEdeComputingElement(ceName)
    result = element.setParameters({"CEType": element.ceType, **parameters})
    return S_OK(element) if result["OK"] else result


def _configured(
    method: Callable[Concatenate[InterCEdeComputingElement, _P], dict[str, Any]],
) -> Callable[Concatenate[InterCEdeComputingElement, _P], dict[str, Any]]:
    """``S_ERROR(ECONF)`` instead of a crash when a CE is used before ``setParameters``."""

    @functools.wraps(method)
    def guarded(
        self: InterCEdeComputingElement, /, *args: _P.args, **kwargs: _P.kwargs
    ) -> dict[str, Any]:
        if self._state is None:
            return S_ERROR(ECONF, f"{self.ceName}: {_NOT_CONFIGURED}")
        return method(self, *args, **kwargs)

    return guarded


@dataclass(frozen=True)
class _State:
    """What one ``setParameters`` built: replaced whole, so no call sees half of each."""

    translation: CETranslation
    backend: sync.JobBackend


class InterCEdeComputingElement:
    """A DIRAC CE (SSH or Local, Slurm) backed by one interCEde backend.

    ``setParameters`` translates the ``ParametersDict`` and builds the facade; it does no I/O
    (the connection opens on first use), unlike DIRAC's SSH CE (DC-30). A bad or missing key
    gives ``S_ERROR(ECONF)`` naming the DIRAC key, and leaves a configured CE as it was.
    """

    def __init__(self, ceName: str, *, backend_factory: BackendFactory | None = None) -> None:
        self.ceName = ceName
        self.ceType = "InterCEde"  # DIRAC derives it from the class name
        self.ceParameters: dict[str, Any] = {}
        # What DIRAC's consumers set and read on every CE (DC-25): SiteDirector reads
        # ``ce.proxy`` (an X509Chain) to check its lifetime and bundle it into the pilot.
        self.proxy: Any = ""
        self.valid: Any = None
        self.token: Any = None
        self.audienceName: str | None = None  # no token audience: SSH CEs use SSH keys (DC-26)
        self._password: SecretStr | None = None  # kept apart from ceParameters, never shown
        self._factory: BackendFactory = backend_factory or _facade
        # which streams get_diagnostics can read, and under which name (see output.py)
        self.streamDiagnosticNames: Mapping[Stream, str | None] = SLURM_STREAM_NAMES
        self._state: _State | None = None
        self._submitted = 0

    @classmethod
    def fromParameters(
        cls,
        ceName: str,
        parameters: Mapping[str, Any],
        *,
        backend_factory: BackendFactory | None = None,
    ) -> Self:
        """``cls(ceName)`` + ``setParameters(parameters)`` for callers outside DIRAC's factory;
        raises ``ConfigurationError`` (``field`` = the DIRAC key) instead of returning it."""
        element = cls(ceName, backend_factory=backend_factory)
        element._configure(parameters)
        return element

    # -- configuration and credentials ------------------------------------------------------

    def setParameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``parameters`` over the current ones and rebuild the facade (DC-30, DC-38).

        ``S_OK()``, or ``S_ERROR(ECONF, "<ceName>: <DIRAC key>: <problem>")`` with the CE left
        as it was. The previous facade is closed once the new one is in place.
        """
        try:
            self._configure(parameters)
        except ConfigurationError as exc:
            return S_ERROR(ECONF, f"{self.ceName}: {exc}")
        return S_OK()

    def _configure(self, parameters: Mapping[str, Any]) -> None:
        merged = {**self.ceParameters, **parameters}
        password = self._password
        if "SSHPassword" in merged:  # it goes to the credential provider, never ceParameters
            given = merged.pop("SSHPassword")
            password = SecretStr(str(given)) if given else None
        full = {**merged, "SSHPassword": password.get_secret_value()} if password else merged
        translation = translate(full)
        backend = self._factory(translation)
        previous, self._state = self._state, _State(translation, backend)
        self.ceParameters, self._password = merged, password
        if previous is not None:
            previous.backend.close()

    def setProxy(self, proxy: Any, valid: Any = None) -> dict[str, Any]:
        """Keep the proxy DIRAC hands every CE each cycle (DC-25); ``S_OK()``.

        Nothing authenticates with it here (the SSH key does), nothing is exported
        process-wide, and it is not shipped to jobs on its own: SiteDirector bundles
        ``ce.proxy`` into the pilot itself, and a caller that wants it at the job passes it as
        ``submitJob``'s ``proxy`` (RemoteRunner passes ``ce.proxy``), which stages it per copy.
        """
        self.proxy = proxy
        self.valid = valid
        return S_OK()

    def setToken(self, token: Any) -> dict[str, Any]:
        """Keep the token SiteDirector sets on a ``Tag = Token`` CE (DC-25, DC-26); ``S_OK()``.

        An SSH-reached Slurm backend requires no token, so it is stored, not used.
        """
        self.token = token
        return S_OK()

    @property
    def _ready(self) -> _State:
        if self._state is None:  # the public methods are guarded by @_configured
            raise ConfigurationError(_NOT_CONFIGURED, field="CEType")
        return self._state

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connection and the facade's loop thread; idempotent."""
        if self._state is not None:
            self._state.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- submission -------------------------------------------------------------------------

    @_configured
    def submitJob(
        self,
        executableFile: str,
        proxy: Any = None,
        numberOfJobs: int = 1,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """``S_OK([ref, ...])`` plus ``PilotStampDict`` (DC-04..DC-06).

        The executable is staged during the call, so the caller may delete it on return: there
        is no ``ExecutableToKeep`` (DC-07). A non-empty ``proxy`` (PEM text or DIRAC's
        ``X509Chain``) is staged per job as a 0600 secret file instead of being bundled into
        the executable (DC-08). Copies the backend refused are reported in ``FailedCopies``
        (index → reason), never dropped.
        """
        if numberOfJobs < 1:
            return S_ERROR(EWMSSUBM, f"numberOfJobs: must be >= 1, got {numberOfJobs}")
        state = self._ready
        try:
            pem = proxy_pem(proxy)
        except ValueError as exc:
            return S_ERROR(EWMSSUBM, str(exc))
        try:
            spec = SubmissionSpec(
                executable=executableFile,
                inputs=tuple(FileRef(name=Path(p).name, source=str(p)) for p in inputs or ()),
                outputs=_output_spec(outputs or ()),
                resources=state.translation.resources,
                tag=self.ceName,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "spec"
            return S_ERROR(EWMSJDL, f"{where}: {first['msg']}")
        stamps = [uuid.uuid4().hex for _ in range(numberOfJobs)]
        secrets = {PROXY_SECRET_NAME: SecretBytes(pem)} if pem else {}
        copies = [CopyVars(environment={STAMP_VARIABLE: s}, secrets=secrets) for s in stamps]
        try:
            submission = state.backend.submit(spec, copies)
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

    @_configured
    def getJobStatus(self, jobIDList: Iterable[str]) -> dict[str, Any]:
        """``S_OK({ref: status})`` keyed by each ref exactly as passed, stamped or not (DC-11).

        A ref that does not parse is ``Unknown`` and explained in ``Failed`` (DC-03 style), so
        one bad row cannot block the status of the queue's other pilots.
        """
        handles, failed = _parse_all(jobIDList)
        try:
            statuses = self._ready.backend.get_status(_unique(handles.values())) if handles else {}
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

    @_configured
    def getJobOutput(self, jobID: str, localDir: str | None = None) -> dict[str, Any]:
        """``S_OK((stdout, stderr))`` (DC-16).

        Without ``localDir``: the two streams as text, read without fetching the payload when
        the backend can serve them by name (``output.read_streams``). With it: the payload's
        files are placed in ``localDir`` (relative paths kept) and the streams land beside
        them as ``<stamp>.out``/``<stamp>.err`` (``<job id>`` when no stamp was given); their
        paths are returned. Collecting twice is safe.
        """
        try:
            handle, stamp = split_reference(jobID)
        except ValueError as exc:
            return S_ERROR(EWMSJMAN, str(exc))
        backend = self._ready.backend
        if localDir is None:
            try:
                streams = read_streams(
                    backend, handle, ("stdout", "stderr"), self.streamDiagnosticNames
                )
            except InterCEdeError as exc:
                return _job_error(jobID, exc)
            if isinstance(streams, OpOutcome):
                return S_ERROR(EWMSJMAN, f"{jobID}: {streams.reason}")
            return S_OK((streams["stdout"] or "", streams["stderr"] or ""))
        with tempfile.TemporaryDirectory(prefix="intercede-output-") as tmp:
            try:
                got = collect(backend, handle, Path(tmp))
            except InterCEdeError as exc:
                return _job_error(jobID, exc)
            if isinstance(got, OpOutcome):
                return S_ERROR(EWMSJMAN, f"{jobID}: {got.reason}")
            try:
                paths = place(got, Path(localDir), stamp or handle.id)
            except (FileExistsError, ValueError) as exc:
                return S_ERROR(EWMSJMAN, f"{jobID}: {exc}")
        return S_OK(paths)

    @_configured
    def getJobLog(self, jobID: str) -> dict[str, Any]:
        """``S_OK(text)`` of the scheduler's own log for the job (DC-17), read by name when the
        backend serves it that way, else from a collection into a temporary directory."""
        try:
            handle, _ = split_reference(jobID)
        except ValueError as exc:
            return S_ERROR(EWMSJMAN, str(exc))
        try:
            streams = read_streams(
                self._ready.backend, handle, ("log",), self.streamDiagnosticNames
            )
        except InterCEdeError as exc:
            return _job_error(jobID, exc)
        if isinstance(streams, OpOutcome):
            return S_ERROR(EWMSJMAN, f"{jobID}: {streams.reason}")
        if streams["log"] is None:
            return S_ERROR(EWMSJMAN, f"{jobID}: the resource keeps no scheduler log")
        return S_OK(streams["log"])

    # -- kill and clean-up ------------------------------------------------------------------

    @_configured
    def killJob(self, jobIDList: Iterable[str] | str) -> dict[str, Any]:
        """``S_OK(number killed)`` with per-ref ``Successful``/``Failed`` (DC-20): every ref is
        attempted, none is dropped, and the caller sees which ones failed and why."""
        backend = self._ready.backend
        if not isinstance(backend, sync.Killable):
            return S_ERROR(ENOMETH, f"{self.ceName}: this backend cannot kill jobs")
        return _bulk(jobIDList, backend.kill)

    @_configured
    def cleanJob(self, jobIDList: Iterable[str] | str) -> dict[str, Any]:
        """Release the jobs' remote directories after collection (DC-18, DC-19)."""
        backend = self._ready.backend
        if not isinstance(backend, sync.Purgeable):
            return S_ERROR(ENOMETH, f"{self.ceName}: this backend cannot clean jobs")
        return _bulk(jobIDList, backend.purge)

    # -- load and slots ---------------------------------------------------------------------

    @_configured
    def getCEStatus(self) -> dict[str, Any]:
        """``S_OK()`` with top-level ``RunningJobs``/``WaitingJobs``/``SubmittedJobs`` (DC-22):
        counts of this backend's own jobs in its queue, never the site's capacity."""
        backend = self._ready.backend
        if not isinstance(backend, sync.LoadReporter):
            return S_ERROR(ENOMETH, f"{self.ceName}: this backend reports no load")
        try:
            counts = backend.counts()
        except InterCEdeError as exc:
            return error_from(exc, EWMSSTATUS)
        result = S_OK()
        result["RunningJobs"] = counts.running
        result["WaitingJobs"] = counts.waiting
        result["SubmittedJobs"] = self._submitted
        return result

    @_configured
    def available(self) -> dict[str, Any]:
        """DIRAC's ``available()`` (DC-23): ``Value`` = free slots; ``CEInfoDict`` = a copy of
        the ``getCEStatus`` result (``OK``, ``Value``, the counts, ``AvailableProcessors`` when
        present) plus the CS limits, as DIRAC's base class builds it. interCEde only counts;
        this policy is DIRAC's."""
        result = self.getCEStatus()
        if not result["OK"]:
            return result
        translation = self._ready.translation
        info = dict(result)
        info["MaxTotalJobs"] = translation.max_total_jobs
        info["MaxWaitingJobs"] = translation.max_waiting_jobs
        result["CEInfoDict"] = info
        result["Value"] = available_slots(
            result["RunningJobs"],
            result["WaitingJobs"],
            translation.max_total_jobs,
            translation.max_waiting_jobs,
            result.get("AvailableProcessors"),
        )
        return result


def _facade(translation: CETranslation) -> sync.JobBackend:
    return sync.backend(translation.config, translation.credentials)


def _job_error(jobID: str, exc: InterCEdeError) -> dict[str, Any]:
    error = error_from(exc, EWMSJMAN)
    return S_ERROR(error["Errno"], f"{jobID}: {str(exc) or type(exc).__name__}")


def _bulk(
    refs: Iterable[str] | str,
    operation: Callable[[Sequence[JobHandle]], Mapping[str, OpOutcome]],
) -> dict[str, Any]:
    handles, failed = _parse_all([refs] if isinstance(refs, str) else refs)
    try:
        outcomes: Mapping[str, OpOutcome] = operation(_unique(handles.values())) if handles else {}
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
