"""Typed backend configuration: what the registry builds a backend from.

One discriminated union on ``kind`` (and, inside ``batch``, on ``transport``), so a config file
is validated in one step and every error names the exact key. These are the typed counterparts
of DIRAC's CS ``ParametersDict`` keys; ``docs/migration/dirac.md`` maps them key by key.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator

__all__ = [
    "BackendConfig",
    "BatchConfig",
    "LocalBatchConfig",
    "SSHBatchConfig",
]

# Attribute docstrings become JSON-schema descriptions, so the generated config reference
# (docs/reference/config.md) and the code cannot disagree.
_STRICT = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
_PLACEHOLDERS = ("{image}", "{command}")


class _BatchBase(BaseModel):
    """Fields every batch backend shares, whatever reaches it."""

    model_config = _STRICT

    kind: Literal["batch"] = "batch"
    """Backend family; the registry's first discriminator."""
    scheduler: Literal["slurm"] = "slurm"
    """Which batch system's commands and replies to speak (DIRAC ``BatchSystem``)."""
    queue: str | None = None
    """Slurm partition (DIRAC ``Queue``/``CEQueueName``); ``None`` = the cluster default."""
    work_root: str
    """Absolute directory on the resource's shared filesystem holding one directory per job
    (DIRAC ``SharedArea`` + ``WorkArea``)."""
    account: str | None = None
    """Slurm account (DIRAC ``Account``)."""
    submit_extra: tuple[str, ...] = ()
    """Extra ``sbatch`` options, one argv item each (DIRAC ``SubmitOptions``)."""
    preamble: str = ""
    """Shell lines run in the batch script before the payload (DIRAC ``Preamble``)."""
    container_launcher: str | None = None
    """How to run ``container_image``: a template with ``{image}`` and ``{command}``, e.g.
    ``"apptainer exec docker://{image} {command}"``; without it container specs are refused."""
    job_name: str = "intercede"
    """Slurm job name given to this backend's jobs; ``counts()`` counts only these."""
    max_array_size: Annotated[int, Field(ge=1)] | None = None
    """Largest array per ``sbatch``; ``None`` asks the cluster's ``MaxArraySize`` once."""
    output_max_bytes: Annotated[int, Field(ge=1)] = 1 << 30
    """Per job: refuse to collect more than this many bytes of output."""
    output_max_files: Annotated[int, Field(ge=1)] = 10_000
    """Per job: refuse to collect more than this many files."""
    transfer_timeout_s: Annotated[float, Field(gt=0)] = 300.0
    """Per transfer (one ``get_output``/``submit`` staging) timeout."""
    command_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    """Per scheduler command timeout."""
    credential_refresh_margin_s: Annotated[float, Field(ge=0)] = 300.0
    """Pull fresh credentials when the held ones expire within this margin."""

    @field_validator("work_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts:
            raise ValueError("must be an absolute path without '..'")
        return str(path)

    @field_validator("container_launcher")
    @classmethod
    def _has_placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            missing = [p for p in _PLACEHOLDERS if p not in value]
            if missing:
                raise ValueError(f"template lacks {', '.join(missing)}")
        return value


class SSHBatchConfig(_BatchBase):
    """A batch system reached over SSH (DIRAC's SSH CE with ``BatchSystem = SLURM``)."""

    transport: Literal["ssh"]
    """Reach the batch system's login node over SSH."""
    host: str
    """Login node's host name or address (DIRAC ``SSHHost``)."""
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    """Login node's SSH port (DIRAC ``SSHPort``)."""
    user: str
    """Account on the login node that submits the jobs (DIRAC ``SSHUser``)."""
    known_hosts: FilePath
    """OpenSSH known_hosts file; host-key verification is mandatory, there is no off switch."""
    jump_host: str | None = None
    """``user@host:port`` of a bastion (DIRAC ``SSHTunnel``)."""
    auth: Literal["key", "password"] = "key"
    """Which credential the provider must supply: ``SSHPrivateKey`` or ``SSHPassword``."""
    connect_timeout_s: Annotated[float, Field(gt=0)] = 15.0
    """Give up opening one SSH connection after this many seconds."""
    keepalive_interval_s: Annotated[float, Field(gt=0)] = 15.0
    """Seconds between SSH keepalives, so a dead peer is noticed between agent cycles."""
    reconnect_attempts: Annotated[int, Field(ge=1)] = 3
    """Connection attempts per operation before the whole operation fails."""


class LocalBatchConfig(_BatchBase):
    """A batch system whose commands run on this host (DIRAC's Local CE)."""

    transport: Literal["local"]
    """Run the batch system's commands as subprocesses of this host."""


BatchConfig: TypeAlias = Annotated[
    SSHBatchConfig | LocalBatchConfig, Field(discriminator="transport")
]
BackendConfig: TypeAlias = Annotated[BatchConfig, Field(discriminator="kind")]
