"""Typed backend configuration: what the registry builds a backend from.

One discriminated union on ``kind`` (and, inside ``batch``, on ``transport``), so a config file
is validated in one step and every error names the exact key. These are the typed counterparts
of DIRAC's CS ``ParametersDict`` keys; ``docs/migration/dirac.md`` maps them key by key.
"""

from __future__ import annotations

from pathlib import Path, PurePath, PurePosixPath
from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ._sbatch_options import submit_extra_problem

__all__ = [
    "BackendConfig",
    "BatchConfig",
    "LocalBatchConfig",
    "SSHBatchConfig",
]

# Attribute docstrings become JSON-schema descriptions, so the generated config reference
# (docs/reference/config.md) and the code cannot disagree. Inputs stay out of validation errors:
# a ``submit_extra`` or ``preamble`` copied from a CS may carry a token.
_STRICT = ConfigDict(
    frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True
)
_PLACEHOLDERS = ("{image}", "{command}")
# Numbers and booleans are strict (``true`` is not 1, ``"60"`` is not 60) and durations finite
# and bounded: an ``inf`` timeout would let a frozen node hang a call for ever.
_MAX_SECONDS = 7 * 86_400.0
_Seconds: TypeAlias = Annotated[
    float, Field(gt=0, le=_MAX_SECONDS, strict=True, allow_inf_nan=False)
]


class _BatchBase(BaseModel):
    """Fields every batch backend shares, whatever reaches it."""

    model_config = _STRICT

    kind: Literal["batch"] = "batch"
    """Backend family; the registry's first discriminator."""
    scheduler: Literal["slurm", "host"] = "slurm"
    """Which batch system's commands and replies to speak (DIRAC ``BatchSystem``): ``slurm``,
    or ``host`` (no batch system: copies run as detached processes on the resource itself,
    at most ``slots`` at a time; DIRAC's ``Host``)."""
    slots: Annotated[int, Field(ge=1, le=100_000, strict=True)] | None = None
    """``host`` only: how many copies may run at once under this ``work_root`` (the rest wait
    for a free slot); ``None`` = the host's processor count (``nproc``)."""
    queue: str | None = None
    """Slurm partition (DIRAC ``Queue``/``CEQueueName``); ``None`` = the cluster default.
    ``slurm`` only."""
    work_root: str
    """Absolute directory on the resource's shared filesystem holding one directory per job
    (DIRAC ``SharedArea`` + ``WorkArea``)."""
    account: str | None = None
    """Slurm account (DIRAC ``Account``); ``slurm`` only."""
    submit_extra: tuple[str, ...] = ()
    """Extra ``sbatch`` options, one argv item each (DIRAC ``SubmitOptions``); ``slurm`` only.
    Options the
    backend sets itself are refused: ``--array``/``-a``, ``--job-name``/``-J``,
    ``--output``/``-o``, ``--error``/``-e``, ``--export``, ``--parsable``, ``--chdir``/``-D``,
    ``--wrap`` and a bare ``--``; so is any item sbatch would read as the batch script (one
    that is neither an option nor the value of the option before it) and an option left
    without its value at the end. Give values as ``--option=value`` unless the option always
    takes one (``-p main`` and ``--partition main`` work)."""
    preamble: str = ""
    """Shell lines run in the batch script before the payload (DIRAC ``Preamble``)."""
    container_launcher: str | None = None
    """How to run ``container_image``: a template with ``{image}`` and ``{command}``, e.g.
    ``"apptainer exec docker://{image} {command}"``; without it container specs are refused."""
    job_name: str = "intercede"
    """Slurm job name given to this backend's jobs; ``counts()`` counts only these."""
    max_array_size: Annotated[int, Field(ge=1, strict=True)] | None = None
    """Largest array per ``sbatch``; ``None`` asks the cluster's ``MaxArraySize`` once.
    ``slurm`` only."""
    output_max_bytes: Annotated[int, Field(ge=1, strict=True)] = 1 << 30
    """Per job: refuse to collect more than this many bytes of output."""
    output_max_files: Annotated[int, Field(ge=1, strict=True)] = 10_000
    """Per job: refuse to collect more than this many files."""
    transfer_timeout_s: _Seconds = 300.0
    """Deadline of one ``submit`` or one ``get_output`` (listing and transfer together),
    covering everything it waits for: credentials, a channel, connecting, the commands."""
    command_timeout_s: _Seconds = 60.0
    """Deadline of one status, kill, purge, counts or diagnostics call, covering everything it
    waits for."""
    credential_refresh_margin_s: Annotated[
        float, Field(ge=0, le=_MAX_SECONDS, strict=True, allow_inf_nan=False)
    ] = 300.0
    """Pull fresh credentials when the held ones expire within this margin."""

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # A NUL byte cannot reach sbatch's argv, the batch script or a path on the resource.
        items = value if isinstance(value, tuple) else (value,)
        if any(isinstance(item, str) and "\x00" in item for item in items):
            raise ValueError("must not contain a NUL byte")
        return value

    @field_validator("slots")
    @classmethod
    def _host_only(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("scheduler") != "host":
            raise ValueError('only the host scheduler has slots (scheduler = "host")')
        return value

    @field_validator("queue", "account", "max_array_size")
    @classmethod
    def _slurm_only(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and info.data.get("scheduler") == "host":
            raise ValueError("the host scheduler has no such setting (it is Slurm's)")
        return value

    @field_validator("work_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts:
            raise ValueError("must be an absolute path without '..'")
        # sbatch expands '%' and '\\' in --output/--chdir patterns: the log would land elsewhere
        if "%" in value or "\\" in value:
            raise ValueError("must not contain '%' or '\\' (sbatch reads them as patterns)")
        return str(path)

    @field_validator("submit_extra")
    @classmethod
    def _no_reserved_options(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if value and info.data.get("scheduler") == "host":
            raise ValueError("the host scheduler has no such setting (it is Slurm's)")
        reason = submit_extra_problem(value)
        if reason is not None:
            raise ValueError(reason)
        return value

    @field_validator("job_name")
    @classmethod
    def _a_job_name(cls, value: str) -> str:
        # kill and counts read squeue's "%i|%T|%u|%j" lines: a '|' or a line break in the
        # name would make the backend's own jobs look foreign and leave them running.
        if not value or "|" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must be a non-empty name without '|' or control characters")
        return value

    @field_validator("container_launcher")
    @classmethod
    def _has_placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            missing = [p for p in _PLACEHOLDERS if p not in value]
            if missing:
                raise ValueError(f"template lacks {', '.join(missing)}")
        return value


class SSHBatchConfig(_BatchBase):
    """A batch system reached over SSH (DIRAC's SSH CE with ``BatchSystem = SLURM``, or
    ``Host`` with ``scheduler = "host"``)."""

    transport: Literal["ssh"]
    """Reach the batch system's login node over SSH."""
    host: str
    """Login node's host name or address (DIRAC ``SSHHost``)."""
    port: Annotated[int, Field(ge=1, le=65535, strict=True)] = 22
    """Login node's SSH port (DIRAC ``SSHPort``)."""
    user: str
    """Account on the login node that submits the jobs (DIRAC ``SSHUser``)."""
    known_hosts: Path
    """OpenSSH known_hosts file; host-key verification is mandatory, there is no off switch.
    Checked when connecting (so a config validates on any host); in a TOML file a relative path
    resolves against the file's directory."""
    jump_host: str | None = None
    """``[user@]host[:port]`` of a bastion (DIRAC ``SSHTunnel``); an IPv6 address goes in
    brackets, ``user@[2001:db8::1]:2222``. User defaults to ``user``, port to 22."""
    auth: Literal["key", "password"] = "key"
    """Which credential the provider must supply: ``SSHPrivateKey`` or ``SSHPassword``."""
    connect_timeout_s: _Seconds = 15.0
    """Give up opening one SSH connection after this many seconds."""
    keepalive_interval_s: _Seconds = 15.0
    """Seconds between SSH keepalives, so a dead peer is noticed between agent cycles."""
    reconnect_attempts: Annotated[int, Field(ge=1, le=100, strict=True)] = 3
    """Connection attempts per operation before the whole operation fails."""

    @field_validator("known_hosts", mode="before")
    @classmethod
    def _a_path(cls, value: object) -> object:
        if not isinstance(value, str | PurePath) or not str(value) or "\x00" in str(value):
            raise ValueError("must be a path string")
        return value

    @field_validator("host", "user")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if not value or any(char.isspace() for char in value):
            raise ValueError("must be a non-empty name without spaces")
        if "@" in value:
            raise ValueError("must not contain '@' (give user and host separately)")
        return value

    @field_validator("jump_host")
    @classmethod
    def _an_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_endpoint(value)
        return value

    @property
    def jump_endpoint(self) -> tuple[str, str, int] | None:
        """The bastion as ``(user, host, port)``, defaults filled in; ``None`` without one."""
        if self.jump_host is None:
            return None
        user, host, port = _parse_endpoint(self.jump_host)
        return user or self.user, host, port or 22


class LocalBatchConfig(_BatchBase):
    """A batch system whose commands run on this host (DIRAC's Local CE)."""

    transport: Literal["local"]
    """Run the batch system's commands as subprocesses of this host."""


BatchConfig: TypeAlias = Annotated[
    SSHBatchConfig | LocalBatchConfig, Field(discriminator="transport")
]
BackendConfig: TypeAlias = Annotated[BatchConfig, Field(discriminator="kind")]


def _parse_endpoint(text: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]``, IPv6 in brackets → ``(user, host, port)``, absent parts ``None``.

    The one endpoint parser: validation uses it and the SSH transport reads ``jump_endpoint``, so
    what validates is exactly what connects. Errors never echo ``text`` (it may hold a password).
    """
    if not text or any(char.isspace() for char in text):
        raise ValueError("expected [user@]host[:port], without spaces")
    user, at, hostport = text.rpartition("@")
    if at and not user:
        raise ValueError("expected a user name before '@'")
    port_text: str | None
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or not host:
            raise ValueError("expected an IPv6 address between '[' and ']'")
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':port' after ']'")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text = hostport.partition(":")
        if ":" in port_text:
            raise ValueError("put an IPv6 address in brackets: [2001:db8::1]:22")
        if not host:
            raise ValueError("expected a host name")
        if not colon:
            port_text = None
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise ValueError("port must be a number from 1 to 65535")
        port = int(port_text)
    return user or None, host, port
