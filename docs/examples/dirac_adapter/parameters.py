"""Translate a DIRAC CS ``ParametersDict`` into interCEde's typed configuration.

DIRAC merges CEDefaults → CE type → site/CE → queue into one flat dict of strings (DC-27..DC-29).
interCEde wants one validated ``SSHBatchConfig``/``LocalBatchConfig`` plus a credential
provider. Errors must point at the key a DIRAC admin edits in the CS, so every interCEde field
name in a ``ConfigurationError`` is translated back to its DIRAC key (``port`` → ``SSHPort``).

Keys with no interCEde meaning (areas the backend now owns, matching-only keys) are ignored:
a ``ParametersDict`` carries many keys no CE reads. Keys whose behaviour interCEde will not
reproduce (an ``SSHTunnel`` command, free ``SSHOptions``, several SSHBatch hosts) are refused,
because silently ignoring them would change where or how pilots run.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from intercede import (
    ConfigurationError,
    CredentialProvider,
    FileCredentials,
    LocalBatchConfig,
    Resources,
    SSHBatchConfig,
    SSHPassword,
    StaticCredentials,
    parse_config,
)

from .slots import DEFAULT_MAX_TOTAL_JOBS, DEFAULT_MAX_WAITING_JOBS

__all__ = [
    "DIRAC_KEY_FOR_FIELD",
    "DIRAC_KEY_FOR_RESOURCE",
    "IGNORED_KEYS",
    "CETranslation",
    "dirac_key",
    "translate",
]

DIRAC_KEY_FOR_FIELD: Mapping[str, str] = {
    # Chosen by the CE type and the batch system.
    "kind": "CEType",
    "transport": "CEType",
    "scheduler": "BatchSystem",
    # DIRAC keys with an interCEde counterpart.
    "queue": "Queue",
    "work_root": "SharedArea",
    "account": "Account",
    "submit_extra": "SubmitOptions",
    "preamble": "Preamble",
    "host": "SSHHost",
    "port": "SSHPort",
    "user": "SSHUser",
    "auth": "SSHKey",
    # What interCEde needs or offers that DIRAC has no key for: new keys, DIRAC-style names.
    "known_hosts": "SSHKnownHosts",
    "jump_host": "SSHJumpHost",
    "connect_timeout_s": "SSHConnectTimeout",
    "keepalive_interval_s": "SSHKeepAliveInterval",
    "reconnect_attempts": "SSHReconnectAttempts",
    "container_launcher": "ContainerLauncher",
    "job_name": "JobName",
    "max_array_size": "MaxArraySize",
    "output_max_bytes": "OutputMaxBytes",
    "output_max_files": "OutputMaxFiles",
    "transfer_timeout_s": "TransferTimeout",
    "command_timeout_s": "CommandTimeout",
    "credential_refresh_margin_s": "CredentialRefreshMargin",
}
"""interCEde config field → the ``ParametersDict`` key that sets it."""

DIRAC_KEY_FOR_RESOURCE: Mapping[str, str] = {
    "cpus": "NumberOfProcessors",
    "memory_mb": "MaxRAM",
    "nodes": "NumberOfNodes",
    "whole_node": "WholeNode",
    "gpus": "NumberOfGPUs",
}
"""``Resources`` field → ``ParametersDict`` key: what every pilot of this queue asks for."""

IGNORED_KEYS = frozenset(
    {
        "BatchOutput",
        "BatchError",
        "ExecutableArea",
        "InfoArea",
        "OutputTemplate",
        "ErrorTemplate",
        "RemoveOutput",
        "WaitingToRunningRatio",
        "CPUTime",
        "VO",
        "Platform",
        "LocalCEType",
        "Tag",
        "RequiredTag",
    }
)
"""Keys the adapter reads nowhere on purpose; the migration doc says why for each."""

# Keys copied as they are, numbers converted from the CS's strings here (interCEde's config
# is strict: it never reads "22" as 22); a value that is no number reaches the config as it
# is, which refuses it naming the field.
_INTEGERS = frozenset(
    {"port", "reconnect_attempts", "max_array_size", "output_max_bytes", "output_max_files"}
)
_SECONDS = frozenset(
    {
        "connect_timeout_s",
        "keepalive_interval_s",
        "transfer_timeout_s",
        "command_timeout_s",
        "credential_refresh_margin_s",
    }
)
_PASSTHROUGH = (
    "account",
    "preamble",
    "host",
    "port",
    "user",
    "known_hosts",
    "jump_host",
    "connect_timeout_s",
    "keepalive_interval_s",
    "reconnect_attempts",
    "container_launcher",
    "job_name",
    "max_array_size",
    "output_max_bytes",
    "output_max_files",
    "transfer_timeout_s",
    "command_timeout_s",
    "credential_refresh_margin_s",
)
_CE_TYPES = {"SSH": "ssh", "Local": "local"}
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0", ""}


@dataclass(frozen=True)
class CETranslation:
    """Everything the adapter builds a CE from; the secrets live only in ``credentials``."""

    config: SSHBatchConfig | LocalBatchConfig
    credentials: CredentialProvider
    resources: Resources
    max_total_jobs: int
    max_waiting_jobs: int


def dirac_key(field: str | None) -> str:
    """The DIRAC key behind an interCEde field path (``"port"`` → ``"SSHPort"``)."""
    if not field:
        return "CEType"
    head = field.split(".")[0]
    return DIRAC_KEY_FOR_FIELD.get(head) or DIRAC_KEY_FOR_RESOURCE.get(head) or head


def translate(parameters: Mapping[str, Any]) -> CETranslation:
    """Build the interCEde config, credentials, resources and slot policy for one queue.

    Raises ``ConfigurationError`` whose ``field`` is the DIRAC key to fix.
    """
    transport = _transport(parameters)
    data: dict[str, Any] = {"kind": "batch", "transport": transport}
    data["scheduler"] = _scheduler(parameters)
    queue = parameters.get("Queue") or parameters.get("CEQueueName")
    if queue:
        data["queue"] = str(queue)
    data["work_root"] = _work_root(parameters)
    if parameters.get("SubmitOptions"):
        data["submit_extra"] = tuple(shlex.split(str(parameters["SubmitOptions"])))
    for field in _PASSTHROUGH:
        key = DIRAC_KEY_FOR_FIELD[field]
        if key in parameters and parameters[key] not in (None, ""):
            data[field] = _number(field, parameters[key])
    if "known_hosts" in data:  # CS values are written with ~ as often as not
        known_hosts = Path(str(data["known_hosts"])).expanduser()
        # interCEde checks the file only when connecting; a CE is built where it connects, so
        # a missing file is the factory's error here, not the first agent cycle's
        if not known_hosts.is_file():
            raise ConfigurationError(f"no known_hosts file at {known_hosts}", field="SSHKnownHosts")
        data["known_hosts"] = str(known_hosts)
    credentials: CredentialProvider = StaticCredentials()
    if transport == "ssh":
        _refuse_unsupported_ssh(parameters)
        data["auth"], credentials = _ssh_credentials(parameters)
    elif "SSHHost" in parameters:
        raise ConfigurationError("a Local CE runs commands on this host", field="SSHHost")
    try:
        config = parse_config(data)
    except ConfigurationError as exc:
        raise ConfigurationError(_message(exc), field=dirac_key(exc.field)) from None
    return CETranslation(
        config=config,
        credentials=credentials,
        resources=_resources(parameters),
        max_total_jobs=_count(parameters, "MaxTotalJobs", DEFAULT_MAX_TOTAL_JOBS),
        max_waiting_jobs=_count(parameters, "MaxWaitingJobs", DEFAULT_MAX_WAITING_JOBS),
    )


def _number(field: str, value: Any) -> Any:
    """A CS string as the int or float the field wants; anything else unchanged."""
    if not isinstance(value, str) or field not in _INTEGERS | _SECONDS:
        return value
    try:
        return int(value.strip()) if field in _INTEGERS else float(value.strip())
    except ValueError:
        return value


def _message(exc: ConfigurationError) -> str:
    text = str(exc)
    prefix = f"{exc.field}: " if exc.field else ""
    return text.removeprefix(prefix)


def _transport(parameters: Mapping[str, Any]) -> str:
    ce_type = parameters.get("CEType")
    if not ce_type:
        raise ConfigurationError("missing; expected one of SSH, Local", field="CEType")
    if ce_type == "InterCEde":  # the CS switched the CE over: infer the transport
        return "ssh" if parameters.get("SSHHost") else "local"
    if ce_type not in _CE_TYPES:
        raise ConfigurationError(
            f"{ce_type!r} has no interCEde backend here; expected one of SSH, Local, InterCEde",
            field="CEType",
        )
    return _CE_TYPES[str(ce_type)]


def _scheduler(parameters: Mapping[str, Any]) -> str:
    system = parameters.get("BatchSystem")
    if not system:
        raise ConfigurationError("missing; expected SLURM", field="BatchSystem")
    if str(system).upper() != "SLURM":
        raise ConfigurationError(
            f"{system!r} has no interCEde scheduler yet; expected SLURM", field="BatchSystem"
        )
    return "slurm"


def _work_root(parameters: Mapping[str, Any]) -> str:
    shared = str(parameters.get("SharedArea") or "")
    if not shared:
        raise ConfigurationError("missing; an absolute directory on the CE", field="SharedArea")
    if not posixpath.isabs(shared):
        raise ConfigurationError(f"{shared!r} is not an absolute path", field="SharedArea")
    work = str(parameters.get("WorkArea") or "")
    if ".." in work.split("/"):
        raise ConfigurationError(f"{work!r} must not climb out with '..'", field="WorkArea")
    return posixpath.normpath(posixpath.join(shared, work)) if work else shared


def _refuse_unsupported_ssh(parameters: Mapping[str, Any]) -> None:
    host = str(parameters.get("SSHHost") or "")
    if "," in host or "/" in host:
        raise ConfigurationError(
            "one host per CE; configure one queue per SSHBatch host", field="SSHHost"
        )
    if parameters.get("SSHTunnel"):
        raise ConfigurationError(
            "a tunnel command is not supported; give the bastion as SSHJumpHost = user@host:port",
            field="SSHTunnel",
        )
    if parameters.get("SSHOptions"):
        raise ConfigurationError(
            "free ssh options are not supported (host keys are always verified); "
            "use the SSH* keys and SSHKnownHosts",
            field="SSHOptions",
        )
    ssh_type = parameters.get("SSHType")
    if ssh_type and ssh_type != "ssh":
        raise ConfigurationError(f"{ssh_type!r} is not supported; expected ssh", field="SSHType")


def _ssh_credentials(parameters: Mapping[str, Any]) -> tuple[str, CredentialProvider]:
    """``SSHKey`` → key auth with that file; ``SSHPassword`` alone → password auth.

    With both, the key is used and the password is not: DIRAC's SSH class sends the password
    only when ssh prompts for a password (password login), never as a key's passphrase.
    """
    key = parameters.get("SSHKey")
    password = parameters.get("SSHPassword")
    if not key and not password:
        raise ConfigurationError("missing; give SSHKey (or SSHPassword)", field="SSHKey")
    if not key:
        return "password", StaticCredentials(SSHPassword(value=SecretStr(str(password))))
    path = Path(str(key)).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"no private key file at {path}", field="SSHKey")
    return "key", FileCredentials(ssh_key_file=path)


def _resources(parameters: Mapping[str, Any]) -> Resources:
    data: dict[str, Any] = {}
    for field, key in DIRAC_KEY_FOR_RESOURCE.items():
        value = parameters.get(key)
        if value in (None, ""):
            continue
        if field == "whole_node":
            value = _boolean(value, key)
        elif field == "nodes":
            value = str(value)
        data[field] = value
    try:
        return Resources(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise ConfigurationError(first["msg"], field=dirac_key(field)) from None


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{value!r} is not a boolean (True/False)", field=key)


def _count(parameters: Mapping[str, Any], key: str, default: int) -> int:
    value = parameters.get(key)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{value!r} is not an integer", field=key) from None
    if number < 0:
        raise ConfigurationError(f"{number} is negative", field=key)
    return number
