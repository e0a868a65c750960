"""The data types that cross the interCEde contract.

They are pydantic v2 models because they arrive from configuration files, stores and other
processes: a handle read back from DIRAC's database must be validated like any other input.
Identities (``JobHandle``) are frozen and hashable; results are frozen so nobody mutates a map
another caller still holds.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeAlias
from urllib.parse import quote, unquote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    field_validator,
    model_validator,
)

__all__ = [
    "HANDLE_MAX_LENGTH",
    "CopyVars",
    "Diagnostics",
    "Explanation",
    "FileRef",
    "JobHandle",
    "JobID",
    "JobOutput",
    "JobStatus",
    "LoadCounts",
    "OpOutcome",
    "OutputMember",
    "OutputSpec",
    "Resources",
    "Submission",
    "SubmissionSpec",
]

JobID: TypeAlias = str
"""The key of every result map: ``handle.id``, unique among one backend's jobs."""

HANDLE_MAX_LENGTH = 255
"""DIRAC (and DiracX) store pilot references in a 255-character column."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")
# pydantic echoes the offending input (``input_value=...``) in every validation error; a model
# that may carry secret material must never do that, or a typo prints the secret in a log.
_SECRET_BEARING = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
# Used with fullmatch only: ``$`` also matches before a final newline ("A\n" would pass).
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_NODES = re.compile(r"[1-9][0-9]*(-[1-9][0-9]*)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Input(BaseModel):
    """A model callers fill in: every text in it must reach a resource byte for byte, so it
    must be writable as UTF-8 (a lone surrogate cannot be sent, stored as JSON or put in a
    script) and hold no NUL byte (no command line, job attribute or file name can carry one).
    Refused naming the field, instead of failing later as a raw ``UnicodeEncodeError`` or
    being cut short on the resource."""

    @field_validator("*")
    @classmethod
    def _utf8_text(cls, value: Any) -> Any:
        if not _is_utf8(value):
            raise ValueError("must be valid UTF-8 text without NUL bytes")
        return value


def _is_utf8(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    # Mappings are environments: names are identifiers, values checked by _environment_values
    # (which names the variable).
    if isinstance(value, tuple | list):
        return all(_is_utf8(item) for item in value)
    return True


class JobStatus(enum.StrEnum):
    """Job states; values equal DIRAC's pilot status names, so mapping them is the identity."""

    SUBMITTED = "Submitted"
    WAITING = "Waiting"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"
    ABORTED = "Aborted"
    UNKNOWN = "Unknown"

    @property
    def is_final(self) -> bool:
        """A final state never changes again: output can be collected and the job purged."""
        return self in _FINAL


_FINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.ABORTED})


class Resources(_Input):
    """What one copy needs from the resource."""

    model_config = _FROZEN

    cpus: Annotated[int, Field(ge=1)] = 1
    memory_mb: Annotated[int, Field(ge=1)] | None = None
    wall_time_s: Annotated[int, Field(ge=1)] | None = None
    queue: str | None = None
    gpus: Annotated[int, Field(ge=0)] = 0
    nodes: str = "1"
    """A count (``"2"``) or a range (``"2-4"``), as DIRAC's ``NumberOfNodes``."""
    whole_node: bool = False

    @field_validator("nodes")
    @classmethod
    def _nodes_is_count_or_range(cls, value: str) -> str:
        if not _NODES.fullmatch(value):
            raise ValueError("must be a count like '2' or a range like '2-4'")
        if "-" in value:
            low, high = (int(part) for part in value.split("-"))
            if low > high:
                raise ValueError("range must be increasing, like '2-4'")
        return value


class FileRef(_Input):
    """An input file: ``source`` (a local path or a URL) lands as ``name`` in the working dir."""

    model_config = _FROZEN

    name: str
    source: str

    @field_validator("name")
    @classmethod
    def _name_is_relative(cls, value: str) -> str:
        _check_relative(value)
        return value

    @property
    def is_url(self) -> bool:
        """Whether the resource must fetch ``source`` itself (we stage only local files)."""
        return "://" in self.source


class OutputMember(_Input):
    """A file or glob in the working directory to bring back or upload."""

    model_config = _FROZEN

    pattern: str
    destination: str | None = None
    """``None`` keeps it at the resource for ``get_output``; a URL asks the resource to upload."""

    @field_validator("pattern")
    @classmethod
    def _pattern_is_relative(cls, value: str) -> str:
        _check_relative(value)
        return value


class OutputSpec(_Input):
    """Which files the payload leaves behind that the caller wants.

    ``include_unlisted=True`` is DIRAC's ``outputs=["/"]``: everything, recursively. stdout,
    stderr and the scheduler log never count as members: they always come back as their own
    ``JobOutput`` fields, so a payload file called ``stdout`` cannot shadow them.
    """

    model_config = _FROZEN

    members: tuple[OutputMember, ...] = ()
    include_unlisted: bool = False

    @classmethod
    def everything(cls) -> OutputSpec:
        """DIRAC's ``outputs=["/"]``."""
        return cls(include_unlisted=True)

    @property
    def wants_collection(self) -> bool:
        """Whether anything must stay at the resource for ``get_output``."""
        return self.include_unlisted or any(m.destination is None for m in self.members)


class CopyVars(_Input):
    """What differs between copies of one spec.

    ``environment`` holds identifiers (a pilot stamp, say): the site may read them.
    ``secrets`` holds credentials: each is staged as a file of mode 0600 in the copy's working
    directory and its path is exported as ``INTERCEDE_SECRET_<NAME>``; the value itself never
    appears in a job attribute, the job description, the submit command line or the job's
    environment. Validation errors never echo the input, so a bad name cannot print a secret.
    """

    model_config = _SECRET_BEARING

    environment: Mapping[str, str] = Field(default_factory=dict)
    secrets: Mapping[str, SecretBytes] = Field(default_factory=dict)

    @field_validator("environment", "secrets")
    @classmethod
    def _names_are_identifiers(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid variable name")
        return value

    @field_validator("environment")
    @classmethod
    def _values_are_text(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        return _environment_values(value)


class SubmissionSpec(_Input):
    """One unit of work; ``submit`` runs ``copies`` of it."""

    model_config = _FROZEN

    executable: str
    """A local path (staged) to the executable, run from the job's working directory."""
    arguments: tuple[str, ...] = ()
    inputs: tuple[FileRef, ...] = ()
    outputs: OutputSpec = OutputSpec()
    resources: Resources = Resources()
    environment: Mapping[str, str] = Field(default_factory=dict)
    container_image: str | None = None
    stdout: str | None = None
    """A name hint; the backend picks the real, unique name."""
    stderr: str | None = None
    tag: str | None = None
    """A free label (a DIRAC queue or VO, say) a backend may attach to its jobs."""

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid variable name")
        return _environment_values(value)

    @field_validator("tag")
    @classmethod
    def _printable_tag(cls, value: str | None) -> str | None:
        # the tag travels as a scheduler option (Slurm's --comment): one printable line
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must be one line of printable text (no control characters)")
        return value

    @model_validator(mode="after")
    def _inputs_unique(self) -> SubmissionSpec:
        names = [ref.name for ref in self.inputs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"inputs: duplicate names {duplicates}")
        return self


class JobHandle(_Input):
    """The durable identity of one job: everything needed to find it again.

    It round-trips through JSON (``model_dump_json``/``model_validate_json``) and through a
    compact string (``str(handle)``/``JobHandle.parse``) of at most 255 characters, the form a
    DIRAC adapter stores as the pilot reference::

        slurm+ssh://submit@ce.example.org:22/4242_7?3f2a...c0/7
        <backend>://<resource>/<id>[?<routing>]

    ``routing`` is opaque to callers: the backend's own locator (for Slurm, the job's working
    directory below the configured work root).
    """

    model_config = _FROZEN

    backend: str
    resource: str
    id: JobID
    routing: str = ""

    @field_validator("backend")
    @classmethod
    def _backend_is_scheme(cls, value: str) -> str:
        if not _SCHEME.fullmatch(value):
            raise ValueError("must look like a URL scheme, e.g. 'slurm+ssh'")
        return value

    @field_validator("id", "resource")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _fits_a_dirac_column(self) -> JobHandle:
        if len(str(self)) > HANDLE_MAX_LENGTH:
            raise ValueError(
                f"compact form is {len(str(self))} characters, more than {HANDLE_MAX_LENGTH}"
            )
        return self

    def __str__(self) -> str:
        text = f"{self.backend}://{quote(self.resource, safe='@:[]')}/{quote(self.id, safe='')}"
        if self.routing:
            text += "?" + quote(self.routing, safe="/")
        return text

    @classmethod
    def parse(cls, text: str) -> JobHandle:
        """Inverse of ``str(handle)``; raises ``ValueError`` (pydantic's) on malformed text."""
        scheme, sep, rest = text.partition("://")
        if not sep:
            raise ValueError(f"not a job handle (no '://'): {text!r}")
        location, _, routing = rest.partition("?")
        resource, slash, job_id = location.partition("/")
        if not slash:
            raise ValueError(f"not a job handle (no job id): {text!r}")
        return cls(
            backend=scheme,
            resource=unquote(resource),
            id=unquote(job_id),
            routing=unquote(routing),
        )


class Submission(BaseModel):
    """What ``submit`` returns: ``handles[i]`` belongs to ``copies[i]``.

    Copies the backend refused are in ``failures`` (index → reason). Every copy index is in
    exactly one of the two maps, and no two handles share an ``id``: every later result map is
    keyed by ``handle.id``, so a duplicate would silently collapse two jobs into one entry.
    """

    model_config = _FROZEN

    handles: Mapping[int, JobHandle]
    failures: Mapping[int, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _every_copy_accounted(self) -> Submission:
        both = set(self.handles) & set(self.failures)
        if both:
            raise ValueError(f"copies {sorted(both)} are both submitted and failed")
        indices = set(self.handles) | set(self.failures)
        if indices != set(range(len(indices))):
            raise ValueError(f"copy indices {sorted(indices)} are not 0..n-1")
        seen: dict[JobID, int] = {}
        for index in sorted(self.handles):
            job_id = self.handles[index].id
            if job_id in seen:
                raise ValueError(
                    f"copies {seen[job_id]} and {index} have the same job id {job_id!r}"
                )
            seen[job_id] = index
        return self

    @property
    def count(self) -> int:
        """How many copies this answer accounts for (submitted + refused); a backend answers
        for every copy it was asked for, so this is also how many were asked for."""
        return len(self.handles) + len(self.failures)


class OpOutcome(BaseModel):
    """Per-job result of an operation that returns nothing else (kill, purge), or the failure
    standing in for a result (``get_output``, ``get_diagnostics``)."""

    model_config = _FROZEN

    ok: bool
    reason: str | None = None

    @model_validator(mode="after")
    def _failure_says_why(self) -> OpOutcome:
        if not self.ok and not self.reason:
            raise ValueError("a failed outcome needs a reason")
        return self


class JobOutput(BaseModel):
    """Where one job's output landed: paths under the caller's ``dest``, never contents.

    ``stdout``/``stderr``/``log`` are ``None`` when the resource has none (a scheduler without
    a separate log, say). ``files`` are the payload members, sorted; ``root`` is the directory
    they were collected into (their paths relative to it are their paths in the job's working
    directory), so a caller never has to know a backend's layout under ``dest``.
    ``skipped`` maps each member left out of the collection (a link leading outside the working
    directory, say) by its path relative to the working directory to the reason, so a caller
    sees the gap in the result rather than only in a side file.
    """

    model_config = _FROZEN

    root: Path
    stdout: Path | None
    stderr: Path | None
    log: Path | None = None
    files: tuple[Path, ...] = ()
    skipped: Mapping[str, str] = Field(default_factory=dict)


class Diagnostics(BaseModel):
    """A named file read from a job before it finished."""

    model_config = _FROZEN

    name: str
    content: bytes
    truncated: bool = False


class Explanation(BaseModel):
    """Why a job is in its state, in the scheduler's own words: what an operator needs when a
    job sits in ``Waiting`` (DIRAC shows it as the pilot's status reason)."""

    model_config = _FROZEN

    status: JobStatus
    reason: str | None = None
    """The scheduler's reason for the state (Slurm's pending reason: ``PartitionDown``,
    ``Priority``, ``Resources``...); ``None`` when it gives none."""
    queue: str | None = None
    """The queue (Slurm partition) the job is in."""
    queue_state: str | None = None
    """That queue's state as the scheduler names it (Slurm: ``UP``, ``DOWN``, ``DRAIN``,
    ``INACTIVE``)."""
    blocked: bool = False
    """The job cannot start until an administrator acts (its queue does not start jobs, say):
    waiting longer will not help."""

    def __str__(self) -> str:
        text = self.status.value + (f" ({self.reason})" if self.reason else "")
        if self.queue:
            text += f" in {self.queue}" + (
                f", which is {self.queue_state}" if self.queue_state else ""
            )
        return text


class LoadCounts(BaseModel):
    """Counts of THIS backend's own jobs in its queue, never the site's capacity."""

    model_config = _FROZEN

    running: Annotated[int, Field(ge=0)]
    waiting: Annotated[int, Field(ge=0)]
    queue_state: str | None = None
    """The queue's state as the scheduler names it (Slurm's partition state: ``UP``, ``DOWN``,
    ``DRAIN``, ``INACTIVE``, or ``MISSING`` when it has no such partition); ``None`` when the
    backend has no fixed queue or cannot tell. Anything but ``UP`` starts no new jobs."""

    @property
    def total(self) -> int:
        """DIRAC's ``total = R + W``."""
        return self.running + self.waiting


def _environment_values(value: Mapping[str, str]) -> Mapping[str, str]:
    """A value must reach the job byte for byte: a NUL cannot cross ``execve`` (the shell
    would silently cut it out) and a lone surrogate cannot be written as UTF-8. The message
    names the variable, never its value."""
    for name, text in value.items():
        if "\x00" in text:
            raise ValueError(f"the value of {name} contains a NUL byte")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"the value of {name} is not valid UTF-8 text") from None
    return value


def _check_relative(value: str) -> None:
    if not value or value.startswith("/") or ".." in Path(value).parts:  # NUL: see _Input
        raise ValueError("must be a relative path inside the working directory, without '..'")
