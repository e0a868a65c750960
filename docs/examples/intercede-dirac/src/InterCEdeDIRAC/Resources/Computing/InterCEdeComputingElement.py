"""InterCEde Computing Element: pilots on a batch system reached through interCEde.

A drop-in for ``SSHComputingElement``/``SSHBatchComputingElement`` with ``BatchSystem = SLURM``
or ``BatchSystem = Host`` (and ``LocalComputingElement`` with the same batch systems): the same
CS options, the same
callers (SiteDirector, PushJobAgent, RemoteRunner, ``killPilotsInQueues``,
``dirac-admin-debug-ce``), but every operation is one bulk call of an interCEde backend through
its synchronous facade: one ``sbatch --array`` per submission, one status query for all the
pilots of a queue, one ``scancel`` for all the pilots to kill, over one SSH connection kept for
the life of the CE (host keys always verified).

CS options (queue or CE section), on top of those of ``ComputingElement``::

  CEType = InterCEde
  BatchSystem = SLURM (the default) or Host (no batch system: detached processes on the host)
  Queue = <partition> (SLURM; for Host only DIRAC's name of the queue)
  Slots = <copies running at once on the host> (Host only; default: its processor count)
  SSHHost, SSHPort, SSHUser, SSHKey (or SSHPassword), SSHKnownHosts, SSHJumpHost  (absent: Local)
  SharedArea = <absolute directory on the shared file system>, WorkArea = <sub-directory>
  SubmitOptions, Preamble, Account
  NumberOfProcessors, NumberOfGPUs, NumberOfNodes, WholeNode  (what every pilot asks for)
  SSHConnectTimeout, SSHKeepAliveInterval, SSHReconnectAttempts, JobName, MaxArraySize,
  OutputMaxBytes, OutputMaxFiles, TransferTimeout, CommandTimeout, CredentialRefreshMargin,
  ContainerLauncher  (optional; interCEde's defaults otherwise)

Pilot references are interCEde handle strings; each pilot finds its stamp in
``$DIRAC_PILOT_STAMP``. A proxy given to ``submitJob`` reaches each job as a 0600 file whose
path is in ``$INTERCEDE_SECRET_PROXY``, never in the job's description or environment.
"""

import os
import posixpath
import shlex
import shutil
import tempfile
import uuid
from pathlib import Path

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Utilities import DErrno
from DIRAC.Resources.Computing.ComputingElement import FLOAT_PARAMETERS, INTEGER_PARAMETERS, ComputingElement
from DIRAC.WorkloadManagementSystem.Client import PilotStatus
from intercede import (
    AuthenticationError,
    ConfigurationError,
    CopyVars,
    Diagnostics,
    FileCredentials,
    FileRef,
    InterCEdeError,
    JobHandle,
    OperationTimeoutError,
    OutputMember,
    OutputSpec,
    Resources,
    ResourceUnavailableError,
    SpecificationRejectedError,
    SSHPassword,
    StaticCredentials,
    SubmissionSpec,
    parse_config,
    sync,
)
from pydantic import SecretBytes, SecretStr

STAMP_VARIABLE = "DIRAC_PILOT_STAMP"
PROXY_SECRET = "PROXY"  # noqa: S105 - the name of the secret file, not a secret
STAMP_SEPARATOR = ":::"

# CS option -> (interCEde field, type); anything else in the CS is left to DIRAC.
CONFIG_OPTIONS = {
    "Queue": ("queue", str),
    "Account": ("account", str),
    "SSHHost": ("host", str),
    "SSHPort": ("port", int),
    "SSHUser": ("user", str),
    "SSHJumpHost": ("jump_host", str),
    "SSHConnectTimeout": ("connect_timeout_s", float),
    "SSHKeepAliveInterval": ("keepalive_interval_s", float),
    "SSHReconnectAttempts": ("reconnect_attempts", int),
    "CredentialRefreshMargin": ("credential_refresh_margin_s", float),
    "JobName": ("job_name", str),
    "MaxArraySize": ("max_array_size", int),
    "OutputMaxBytes": ("output_max_bytes", int),
    "OutputMaxFiles": ("output_max_files", int),
    "TransferTimeout": ("transfer_timeout_s", float),
    "CommandTimeout": ("command_timeout_s", float),
    "ContainerLauncher": ("container_launcher", str),
    "Slots": ("slots", int),
}
# DIRAC BatchSystem (any case) -> interCEde scheduler. Unlike DIRAC's SSH CE, whose default is
# Host, an absent BatchSystem means SLURM here (this CE's behaviour before Host existed).
SCHEDULERS = {"SLURM": "slurm", "HOST": "host"}
# CS options DIRAC always sets that mean nothing to a scheduler (Host has no partitions).
IGNORED_BY_SCHEDULER = {"host": frozenset({"Queue"})}
# interCEde resource -> (CS option, type): what every pilot of the queue asks the batch system.
RESOURCE_OPTIONS = {
    "cpus": ("NumberOfProcessors", int),
    "gpus": ("NumberOfGPUs", int),
    "nodes": ("NumberOfNodes", str),
    "whole_node": ("WholeNode", bool),
}
KIND_NAMES = {int: "an integer", float: "a number", bool: "a boolean (True/False)", str: "text"}
# Options DIRAC's SSH CE understands that would change where or how pilots run if ignored.
REFUSED_OPTIONS = {
    "SSHTunnel": "a tunnel command is not supported; give the bastion as SSHJumpHost = user@host:port",
    "SSHOptions": "free ssh options are not supported (host keys are always verified)",
}
# interCEde's stream names for get_diagnostics (kept apart from the payload's own files).
STREAMS = {"stdout": ":stdout", "stderr": ":stderr", "log": ":log"}
ERRNO_BY_EXCEPTION = (
    (ConfigurationError, DErrno.ECONF),
    (SpecificationRejectedError, DErrno.EWMSJDL),
    (AuthenticationError, DErrno.ENOAUTH),
    (ResourceUnavailableError, DErrno.ERESUNA),
    (OperationTimeoutError, DErrno.ERESUNA),
)


class InterCEdeComputingElement(ComputingElement):
    """DIRAC Computing Element over an interCEde batch backend (Slurm or Host, SSH or local)."""

    def __init__(self, ceUniqueID):
        super().__init__(ceUniqueID)
        self.mandatoryParameters = ["Queue", "SharedArea"]
        self.submittedJobs = 0
        self.preamble = None
        self.config = None  # the interCEde config of the last valid parameters
        self.credentials = None
        self.backend = None  # the facade: one loop thread, one connection; opened on first use
        self.backendConfig = None  # the config the facade was built with

    #############################################################################
    def setParameters(self, ceOptions):
        """The base class's, after checking the values it converts with ``int()``/``float()``:
        a bad one is ``S_ERROR(ECONF)`` naming the option instead of a ``ValueError`` that the
        factory logs as a traceback (the CE is then left as it was)."""
        merged = {**self.ceParameters, **ceOptions}
        converted = {"NumberOfProcessors", "NumberOfGPUs", "MaxRAM"} & merged.keys()
        converted |= set(ceOptions) & set(INTEGER_PARAMETERS + FLOAT_PARAMETERS)
        for option in sorted(converted):
            kind, noun = (float, "a number") if option in FLOAT_PARAMETERS else (int, "an integer")
            try:
                kind(merged[option])
            except (TypeError, ValueError):
                return S_ERROR(DErrno.ECONF, f"{self.ceName}: {option}: {merged[option]!r} is not {noun}")
        return super().setParameters(ceOptions)

    def _reset(self):
        """Translate the CE parameters; called by ``setParameters``. No I/O happens here."""
        self.preamble = self.ceParameters.get("Preamble", self.preamble)
        try:
            config, credentials = self._translate(self.ceParameters)
        except ConfigurationError as exc:
            return S_ERROR(DErrno.ECONF, f"{self.ceName}: {exc}")
        self.config, self.credentials = config, credentials
        self.log.verbose("interCEde configuration", repr(config))
        return S_OK()

    def _translate(self, parameters):
        """The interCEde config and credential provider of a CE's parameters.

        Raises ``ConfigurationError`` whose message names the CS option to fix.
        """
        for option, reason in REFUSED_OPTIONS.items():
            if parameters.get(option):
                raise ConfigurationError(f"{option}: {reason}")
        system = str(parameters.get("BatchSystem") or "SLURM")
        scheduler = SCHEDULERS.get(system.upper())
        if scheduler is None:
            raise ConfigurationError(f"BatchSystem: {system!r} has no interCEde scheduler; expected SLURM or Host")
        data = {"kind": "batch", "scheduler": scheduler, "work_root": _workRoot(parameters)}
        ignored = IGNORED_BY_SCHEDULER.get(scheduler, frozenset())
        for option, (field, kind) in CONFIG_OPTIONS.items():
            if option in ignored:
                continue
            value = parameters.get(option)
            if value not in (None, ""):
                data[field] = _typed(option, value, kind)
        if parameters.get("SubmitOptions"):
            data["submit_extra"] = tuple(shlex.split(str(parameters["SubmitOptions"])))
        credentials = StaticCredentials()
        if data.get("host"):
            data["transport"] = "ssh"
            data["known_hosts"] = _existingFile(parameters, "SSHKnownHosts")
            key, password = parameters.get("SSHKey"), parameters.get("SSHPassword")
            if key:  # as DIRAC's SSH CE: the password is for password logins, never a passphrase
                data["auth"] = "key"
                credentials = FileCredentials(ssh_key_file=Path(_existingFile(parameters, "SSHKey")))
            elif password:
                data["auth"] = "password"
                credentials = StaticCredentials(SSHPassword(value=SecretStr(str(password))))
            else:
                raise ConfigurationError("SSHKey: missing; give SSHKey (or SSHPassword)")
        else:
            data["transport"] = "local"
        try:
            return parse_config(data), credentials
        except ConfigurationError as exc:
            option = _optionOf(exc.field)
            detail = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
            raise ConfigurationError(f"{option}: {detail}") from None

    def _resources(self):
        """What each pilot asks for, read from ``ceParameters`` when submitting (callers such
        as RemoteRunner change ``NumberOfProcessors`` after the CE was built)."""
        data = {}
        for field, (option, kind) in RESOURCE_OPTIONS.items():
            value = self.ceParameters.get(option)
            if value not in (None, ""):
                data[field] = _typed(option, value, kind)
        try:
            return Resources(**data)
        except ValueError as exc:
            raise ConfigurationError(f"{_firstError(exc, RESOURCE_OPTIONS)}") from None

    def _getBackend(self):
        """The facade for the current config and preamble; rebuilt only when they change."""
        config = self.config.model_copy(update={"preamble": self.preamble or ""})
        if self.backend is None or self.backendConfig != config:
            self._closeBackend()
            self.backend = sync.backend(config, self.credentials)
            self.backendConfig = config
        return self.backend

    def _closeBackend(self):
        if self.backend is not None:
            backend, self.backend = self.backend, None
            backend.close()

    def shutdown(self):
        """Close the connection and the facade's thread (``QueueCECache.drop``, agents' finalize)."""
        self._closeBackend()
        return super().shutdown()

    #############################################################################
    def submitJob(self, executableFile, proxy, numberOfJobs=1, inputs=None, outputs=None):
        """Submit ``numberOfJobs`` copies of ``executableFile`` in one bulk call.

        ``S_OK([ref, ...])`` with ``PilotStampDict``; copies the batch system refused are in
        ``FailedCopies`` (copy index -> reason), never dropped. The executable is staged during
        the call, so the caller may delete it on return.
        """
        numberOfJobs = int(numberOfJobs)
        if numberOfJobs < 1:
            return S_ERROR(DErrno.EWMSSUBM, f"numberOfJobs: must be >= 1, got {numberOfJobs}")
        if self.config is None:
            return S_ERROR(DErrno.ECONF, f"{self.ceName}: the CE has no valid parameters")
        pem = _proxyPEM(proxy or None)
        if not pem["OK"]:
            return pem
        try:
            spec = SubmissionSpec(
                executable=executableFile,
                inputs=tuple(FileRef(name=os.path.basename(path), source=str(path)) for path in inputs or ()),
                outputs=_outputSpec(outputs or ()),
                resources=self._resources(),
                tag=self.ceName,
            )
            stamps = [uuid.uuid4().hex for _ in range(numberOfJobs)]
            secrets = {PROXY_SECRET: SecretBytes(pem["Value"])} if pem["Value"] else {}
            copies = [CopyVars(environment={STAMP_VARIABLE: stamp}, secrets=secrets) for stamp in stamps]
            submission = self._getBackend().submit(spec, copies)
        except (InterCEdeError, ValueError) as exc:
            return _error(exc, DErrno.EWMSSUBM)
        if not submission.handles:
            reasons = "; ".join(f"copy {i}: {r}" for i, r in sorted(submission.failures.items()))
            return S_ERROR(DErrno.EWMSSUBM, f"no pilot submitted: {reasons}")
        ordered = sorted(submission.handles.items())
        self.submittedJobs += len(ordered)
        result = S_OK([str(handle) for _, handle in ordered])
        result["PilotStampDict"] = {str(handle): stamps[i] for i, handle in ordered}
        if submission.failures:
            self.log.warn("Copies not submitted", str(dict(submission.failures)))
            result["FailedCopies"] = dict(submission.failures)
        self.log.info("Submitted pilots", f"{len(ordered)} of {numberOfJobs} to {self.ceName}")
        return result

    #############################################################################
    def getJobStatus(self, jobIDList):
        """``S_OK({ref: status})`` keyed by each ref as passed (with or without ``:::stamp``).

        A ref that is not an interCEde handle reads ``Unknown`` and is explained in ``Failed``.
        """
        handles, failed = _parseAll(jobIDList)
        try:
            statuses = self._getBackend().get_status(_unique(handles.values())) if handles else {}
        except (InterCEdeError, AttributeError) as exc:
            return _error(exc, DErrno.EWMSSTATUS)
        value = {ref: str(statuses.get(handle.id, PilotStatus.UNKNOWN)) for ref, handle in handles.items()}
        value.update(dict.fromkeys(failed, PilotStatus.UNKNOWN))
        result = S_OK(value)
        if failed:
            result["Failed"] = failed
        return result

    def killJob(self, jobIDList):
        """Kill the pilots in one bulk call: ``S_OK(number killed)`` with per-ref ``Successful``
        and ``Failed``. A pilot that had already finished is a ``Failed`` entry, not an error
        of the whole queue (which would make ``killPilotsInQueues`` drop the CE)."""
        return self._bulk(jobIDList, "kill")

    def cleanJob(self, jobIDList):
        """Remove the pilots' directories on the resource once their output is fetched."""
        return self._bulk(jobIDList, "purge")

    def _bulk(self, jobIDList, operation):
        refs = [jobIDList] if isinstance(jobIDList, str) else list(jobIDList)
        handles, failed = _parseAll(refs)
        try:
            call = getattr(self._getBackend(), operation)
            outcomes = call(_unique(handles.values())) if handles else {}
        except (InterCEdeError, AttributeError) as exc:
            return _error(exc, DErrno.EWMSJMAN)
        successful = {}
        for ref, handle in handles.items():
            outcome = outcomes.get(handle.id)
            if outcome is not None and outcome.ok:
                successful[ref] = True
            else:
                failed[ref] = outcome.reason if outcome is not None else "no answer"
        if failed:
            self.log.warn(f"{operation} failed for some pilots", str(failed))
        result = S_OK(len(successful))
        result["Successful"] = successful
        result["Failed"] = failed
        return result

    #############################################################################
    def getJobOutput(self, jobID, localDir=None):
        """``S_OK((stdout, stderr))``: the texts, or with ``localDir`` the paths of
        ``<stamp>.out``/``<stamp>.err`` written there, next to every file the payload left
        (relative paths kept: what ``outputs=["/"]`` asked for)."""
        try:
            handle, stamp = _splitReference(jobID)
            backend = self._getBackend()
            if localDir is None:
                return S_OK(tuple(self._stream(backend, handle, name) for name in ("stdout", "stderr")))
            with tempfile.TemporaryDirectory(prefix="intercede-output-") as tmp:
                got = backend.get_output([handle], Path(tmp))[handle.id]
                if not hasattr(got, "files"):
                    return S_ERROR(DErrno.EWMSJMAN, f"{jobID}: {got.reason}")
                return S_OK(_place(got, Path(localDir), stamp or handle.id))
        except (InterCEdeError, ValueError, OSError) as exc:
            return _error(exc, DErrno.EWMSJMAN, prefix=f"{jobID}: ")

    def getJobLog(self, jobID):
        """``S_OK(text)`` of the batch system's own log of the job."""
        try:
            handle, _ = _splitReference(jobID)
            return S_OK(self._stream(self._getBackend(), handle, "log"))
        except (InterCEdeError, ValueError) as exc:
            return _error(exc, DErrno.EWMSJMAN, prefix=f"{jobID}: ")

    @staticmethod
    def _stream(backend, handle, name):
        got = backend.get_diagnostics([handle], STREAMS[name])[handle.id]
        if not isinstance(got, Diagnostics):
            raise ValueError(got.reason)
        text = got.content.decode(errors="replace")
        return f"[... earlier lines cut ...]\n{text}" if got.truncated else text

    #############################################################################
    def getCEStatus(self):
        """``S_OK()`` with ``RunningJobs``/``WaitingJobs`` of this CE's own pilots in its queue
        and ``SubmittedJobs`` of this CE object; the base class's ``available()`` uses them."""
        try:
            counts = self._getBackend().counts()
        except (InterCEdeError, AttributeError) as exc:
            return _error(exc, DErrno.ERESUNA)
        result = S_OK()
        result["SubmittedJobs"] = self.submittedJobs
        result["RunningJobs"] = counts.running
        result["WaitingJobs"] = counts.waiting
        return result


#############################################################################
def _workRoot(parameters):
    shared = str(parameters.get("SharedArea") or "")
    if not posixpath.isabs(shared):
        raise ConfigurationError(f"SharedArea: {shared!r} is not an absolute directory on the CE")
    work = str(parameters.get("WorkArea") or "")
    if ".." in work.split("/"):
        raise ConfigurationError(f"WorkArea: {work!r} must not climb out with '..'")
    return posixpath.normpath(posixpath.join(shared, work)) if work else shared


def _typed(option, value, kind):
    """A CS value (a string, or what a caller wrote later) as ``kind``, naming the option."""
    if kind is bool:
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0", ""):
            return False
    else:
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    raise ConfigurationError(f"{option}: {value!r} is not {KIND_NAMES[kind]}")


def _existingFile(parameters, option):
    value = parameters.get(option)
    if not value:
        raise ConfigurationError(f"{option}: missing")
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"{option}: no file at {path}")
    return str(path)


def _optionOf(field):
    """The CS option behind an interCEde config field (``port`` -> ``SSHPort``)."""
    head = (field or "").split(".")[0]
    for option, (name, _) in CONFIG_OPTIONS.items():
        if name == head:
            return option
    return {"work_root": "SharedArea", "submit_extra": "SubmitOptions", "known_hosts": "SSHKnownHosts"}.get(
        head, head or "CEType"
    )


def _firstError(exc, options):
    errors = getattr(exc, "errors", list)()
    if not errors:
        return str(exc)
    field = str(errors[0]["loc"][0]) if errors[0]["loc"] else ""
    return f"{options.get(field, (field,))[0]}: {errors[0]['msg']}"


def _error(exc, errno, prefix=""):
    """``S_ERROR`` with the most specific ``DErrno`` for an interCEde exception."""
    for kind, code in ERRNO_BY_EXCEPTION:
        if isinstance(exc, kind):
            errno = code
            break
    return S_ERROR(errno, f"{prefix}{exc or type(exc).__name__}")


def _proxyPEM(proxy):
    """A proxy (PEM text or DIRAC's ``X509Chain``) as bytes; ``S_OK(None)`` for none."""
    if proxy is None or isinstance(proxy, (str, bytes)):
        return S_OK(proxy.encode() if isinstance(proxy, str) else proxy)
    result = proxy.dumpAllToString()
    if not result["OK"]:
        return S_ERROR(DErrno.EWMSSUBM, f"proxy: the X509Chain could not be dumped: {result['Message']}")
    value = result["Value"]
    return S_OK(value.encode() if isinstance(value, str) else value)


def _outputSpec(outputs):
    if "/" in outputs:  # PushJobAgent and RemoteRunner: everything the payload leaves behind
        return OutputSpec.everything()
    return OutputSpec(members=tuple(OutputMember(pattern=pattern) for pattern in outputs))


def _splitReference(ref):
    """``"<handle>[:::<stamp>]"`` -> (handle, stamp or None); the handle locates the job."""
    text, _, stamp = str(ref).partition(STAMP_SEPARATOR)
    if stamp and not stamp.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"{ref}: the stamp is not a plain identifier")
    try:
        return JobHandle.parse(text), stamp or None
    except ValueError as exc:
        raise ValueError(f"{ref}: not an interCEde pilot reference ({_firstError(exc, {})})") from None


def _parseAll(refs):
    handles, failed = {}, {}
    for ref in refs:
        try:
            handles[ref] = _splitReference(ref)[0]
        except ValueError as exc:
            failed[ref] = str(exc)
    return handles, failed


def _unique(handles):
    return list(dict.fromkeys(handles))


def _place(got, localDir, stem):
    """Move the payload's files (relative paths kept) and its two streams, as ``<stem>.out``
    and ``<stem>.err``, into ``localDir``; the two stream paths. Everything is checked before
    anything moves, so a refusal leaves ``localDir`` as it was."""
    streams = {Path(f"{stem}.out"), Path(f"{stem}.err")}
    moves = []
    for source in got.files:
        relative = source.relative_to(got.root)
        if relative in streams:
            raise FileExistsError(f"payload file {relative} has the name of the job's stream file")
        moves.append((source, localDir / relative))
    localDir.mkdir(parents=True, exist_ok=True)
    for source, target in moves:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    paths = []
    for stream, name in ((got.stdout, f"{stem}.out"), (got.stderr, f"{stem}.err")):
        target = localDir / name
        if stream is None:
            target.write_text("")
        else:
            shutil.move(stream, target)
        paths.append(str(target))
    return tuple(paths)
