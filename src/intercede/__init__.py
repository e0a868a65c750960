"""interCEde: one async, typed, bulk way to submit, monitor and retrieve work on Computing
Elements and batch systems.

The public API is the protocols, models, errors, credentials, registry and the wait helper
(``intercede.waiting``) re-exported here, plus ``intercede.sync`` for synchronous callers.
Everything in ``_``-prefixed modules is internal and may change without notice.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from .config import BackendConfig, LocalBatchConfig, SSHBatchConfig
from .credentials import (
    BearerToken,
    CredentialProvider,
    CredentialRequirements,
    CredentialSet,
    FileCredentials,
    SSHPassword,
    SSHPrivateKey,
    StaticCredentials,
    X509Proxy,
)
from .errors import (
    AuthenticationError,
    BackendClosedError,
    ConfigurationError,
    InterCEdeError,
    OperationCancelledError,
    OperationTimeoutError,
    ResourceUnavailableError,
    RunningLoopError,
    SpecificationRejectedError,
    SubmitTimeoutError,
    SubmitUnavailableError,
)
from .models import (
    CopyVars,
    Diagnostics,
    Explanation,
    FileRef,
    JobHandle,
    JobID,
    JobOutput,
    JobStatus,
    LoadCounts,
    OpOutcome,
    OutputMember,
    OutputSpec,
    Resources,
    Submission,
    SubmissionSpec,
)
from .protocols import (
    BatchCleaner,
    Diagnosable,
    Explainer,
    JobBackend,
    Killable,
    LoadReporter,
    OutputRetriever,
    Purgeable,
    StatusReporter,
    Submitter,
)
from .registry import ConfigFile, backend, load_config, parse_config
from .waiting import FINAL_STATES, reached, wait_for_jobs

# Single source: pyproject.toml's ``version``, read from the installed distribution's metadata.
try:
    __version__ = _metadata.version("intercede")
except _metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

__all__ = [
    "FINAL_STATES",
    "AuthenticationError",
    "BackendClosedError",
    "BackendConfig",
    "BatchCleaner",
    "BearerToken",
    "ConfigFile",
    "ConfigurationError",
    "CopyVars",
    "CredentialProvider",
    "CredentialRequirements",
    "CredentialSet",
    "Diagnosable",
    "Diagnostics",
    "Explainer",
    "Explanation",
    "FileCredentials",
    "FileRef",
    "InterCEdeError",
    "JobBackend",
    "JobHandle",
    "JobID",
    "JobOutput",
    "JobStatus",
    "Killable",
    "LoadCounts",
    "LoadReporter",
    "LocalBatchConfig",
    "OpOutcome",
    "OperationCancelledError",
    "OperationTimeoutError",
    "OutputMember",
    "OutputRetriever",
    "OutputSpec",
    "Purgeable",
    "ResourceUnavailableError",
    "Resources",
    "RunningLoopError",
    "SSHBatchConfig",
    "SSHPassword",
    "SSHPrivateKey",
    "SpecificationRejectedError",
    "StaticCredentials",
    "StatusReporter",
    "Submission",
    "SubmissionSpec",
    "SubmitTimeoutError",
    "SubmitUnavailableError",
    "Submitter",
    "X509Proxy",
    "__version__",
    "backend",
    "load_config",
    "parse_config",
    "reached",
    "wait_for_jobs",
]
