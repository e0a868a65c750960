"""Build backends from validated configuration data.

interCEde is a closed library: backends live in it and are named by configuration, never
imported by callers. ``backend()`` validates the config (errors name the field), imports only
the module that builds the named kind, and checks the result against ``JobBackend`` at the
boundary so a broken backend fails here rather than at the first call.
"""

from __future__ import annotations

import importlib
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydantic import TypeAdapter, ValidationError

from .config import BackendConfig, LocalBatchConfig, SSHBatchConfig
from .credentials import (
    CredentialProvider,
    FileCredentials,
    StaticCredentials,
    private_file_problem,
)
from .errors import ConfigurationError
from .protocols import JobBackend

__all__ = [
    "CREDENTIAL_KEYS",
    "ConfigFile",
    "backend",
    "load_config",
    "parse_config",
]

# kind -> "module:function"; only the named target is imported (lazily).
_BUILDERS: Mapping[str, str] = {
    "batch": "intercede._batch.factory:build",
}
_ADAPTER: TypeAdapter[SSHBatchConfig | LocalBatchConfig] = TypeAdapter(BackendConfig)
_TAG_DEPTH = 2
"""pydantic's error locations start with the chosen union tags: ``("batch", "ssh", "port")``."""
_TRANSPORTS = "ssh, local"


def parse_config(
    data: Mapping[str, Any] | SSHBatchConfig | LocalBatchConfig, *, where: str = ""
) -> SSHBatchConfig | LocalBatchConfig:
    """Validate one backend config; a ``ConfigurationError`` names the offending key.

    ``where`` prefixes field names (``"queues.main"``) when the data came from a file section.
    """
    if isinstance(data, SSHBatchConfig | LocalBatchConfig):
        return data
    # ``kind`` defaults to "batch" like the model says (a discriminator cannot default itself,
    # so fill it in); ``transport`` has no sensible default and stays required.
    values = {"kind": "batch", **data}
    try:
        return _ADAPTER.validate_python(values)
    except ValidationError as exc:
        raise _configuration_error(exc, where) from None


def _configuration_error(exc: ValidationError, where: str) -> ConfigurationError:
    """Every problem pydantic found, one per line, each naming its key (the first one is the
    error's ``field``); pydantic's own prefixes ("Value error, ") are dropped."""
    problems = [
        _problem(error, where) for error in exc.errors(include_input=False, include_url=False)
    ]
    unique = list(dict.fromkeys(problems))
    field, _, message = unique[0].partition(": ")
    if len(unique) == 1:
        return ConfigurationError(message, field=field or None)
    return ConfigurationError("\n".join(unique))


def _problem(first: Any, where: str) -> str:
    loc = [str(part) for part in first["loc"]]
    message = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        # The location holds only the tags chosen so far; the culprit is the discriminator.
        loc = [str(first.get("ctx", {}).get("discriminator", "kind")).strip("'")]
        if first["type"] == "union_tag_invalid":
            ctx = first["ctx"]
            message = f"unknown value {ctx['tag']!r}; expected one of {ctx['expected_tags']}"
        elif loc == ["transport"]:
            message = f"field required, one of {_TRANSPORTS}"
        else:
            message = "field required"
    else:
        # Strip the tags by position, never by name: a user's key may be called "ssh".
        loc = loc[_TAG_DEPTH:]
        if first["type"] == "extra_forbidden":
            message = "unknown key"
    name = ".".join(part for part in [where, *loc] if part)
    return f"{name}: {message}" if name else message


def backend(
    config: Mapping[str, Any] | SSHBatchConfig | LocalBatchConfig,
    credentials: CredentialProvider | None = None,
) -> JobBackend:
    """Build the backend ``config`` names. Construction does no I/O: connect happens on first
    use, inside the caller's event loop. Use it as an async context manager, or ``aclose()``."""
    parsed = parse_config(config)
    target = _BUILDERS.get(parsed.kind)
    if target is None:  # pragma: no cover - the union already refuses unknown kinds
        raise ConfigurationError(f"no backend for kind {parsed.kind!r}", field="kind")
    module_name, _, function_name = target.partition(":")
    build = cast(
        "Callable[[Any, CredentialProvider], object]",
        getattr(importlib.import_module(module_name), function_name),
    )
    built = build(parsed, credentials if credentials is not None else StaticCredentials())
    if not isinstance(built, JobBackend):
        raise ConfigurationError(
            f"{target} built {type(built).__name__}, which does not satisfy JobBackend",
            field="kind",
        )
    return built


@dataclass(frozen=True)
class ConfigFile:
    """A TOML file of named queues: ``[defaults]`` merged under each ``[queues.<name>]``
    (DIRAC merges CEDefaults → CE → queue the same way), plus a ``[credentials]`` table
    naming where a ``FileCredentials`` provider reads from."""

    path: Path
    queues: Mapping[str, SSHBatchConfig | LocalBatchConfig]
    credential_files: Mapping[str, Path] = field(default_factory=dict)
    reread_after_s: float | None = None
    """``[credentials] reread_after_s``: how long a read credential is held before the files
    are read again (``FileCredentials``' default, 600 s, when unset)."""
    queue_credentials: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)
    """Per queue, the keys of its own ``[queues.<name>.credentials]`` table, which override
    the file-wide ``[credentials]`` key by key."""

    def credentials(self) -> FileCredentials:
        """A provider reading the files the ``[credentials]`` table names."""
        return self._provider(self.credential_files)

    def credentials_for(self, queue: str) -> FileCredentials:
        """The provider for one queue: ``[credentials]`` overridden by its own
        ``[queues.<queue>.credentials]``, so queues with different keys share one file."""
        if queue not in self.queues:
            raise ConfigurationError(f"no queue {queue!r} in {self.path}", field="queues")
        return self._provider({**self.credential_files, **self.queue_credentials.get(queue, {})})

    def _provider(self, files: Mapping[str, Path]) -> FileCredentials:
        extra = {} if self.reread_after_s is None else {"reread_after_s": self.reread_after_s}
        return FileCredentials(
            ssh_key_file=files.get("ssh_key_file"),
            ssh_key_passphrase_file=files.get("ssh_key_passphrase_file"),
            ssh_password_file=files.get("ssh_password_file"),
            token_file=files.get("token_file"),
            proxy_file=files.get("proxy_file"),
            **extra,
        )

    def select(
        self, names: list[str] | None = None
    ) -> dict[str, SSHBatchConfig | LocalBatchConfig]:
        """The named queues (all when ``names`` is empty); an unknown name is an error."""
        if not names:
            return dict(self.queues)
        unknown = [n for n in names if n not in self.queues]
        if unknown:
            raise ConfigurationError(
                f"no queue {', '.join(map(repr, unknown))} in {self.path}; "
                f"known: {', '.join(self.queues)}",
                field="queues",
            )
        return {n: self.queues[n] for n in names}


CREDENTIAL_KEYS: Mapping[str, str] = {
    "ssh_key_file": "path to an OpenSSH or PEM private key file (mode 0600), read at each "
    "(re)connect",
    "ssh_key_passphrase_file": "path to a file whose first line is the key's passphrase",
    "ssh_password_file": "path to a file whose first line is the SSH password (prefer a key)",
    "token_file": "path to a file holding one bearer token (a JWT's exp bounds how long it is "
    "held)",
    "proxy_file": "path to an X.509 proxy: PEM certificate chain and its private key",
    "reread_after_s": "seconds a credential read from these files is held before they are "
    "read again (a number > 0; default 600)",
}
"""Every ``[credentials]`` key and its format. Paths are relative to the config file's
directory unless absolute; a ``[queues.<name>.credentials]`` table takes the same keys (but
``reread_after_s``, which is file-wide)."""
_CREDENTIAL_KEYS = frozenset(CREDENTIAL_KEYS) - {"reread_after_s"}


def load_config(path: str | Path) -> ConfigFile:
    """Read a queue file; relative credential and ``known_hosts`` paths resolve against the
    file's directory, so a config directory can move as a whole. Every problem in the file is
    reported at once (one per line of the ``ConfigurationError``), each naming its key."""
    path = Path(path)
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    problems: list[str] = []
    unknown = sorted(set(data) - {"defaults", "queues", "credentials"})
    problems += [f"{name}: unknown table in {path}" for name in unknown]
    defaults = _table(data, "defaults", problems)
    queues_data = _table(data, "queues", problems)
    if not queues_data and not problems:  # an unknown table is likely the misspelt [queues]
        problems.append(f"queues: {path} defines no [queues.<name>] table")
    queues = {}
    queue_credentials: dict[str, dict[str, Path]] = {}
    for name, section in queues_data.items():
        if not isinstance(section, dict):
            problems.append(f"queues.{name}: must be a table")
            continue
        section = dict(section)
        own = section.pop("credentials", None)
        if own is not None:
            queue_credentials[name] = _credential_files(
                path, own, f"queues.{name}.credentials", problems, file_wide=False
            )
        merged = {**defaults, **section}
        if isinstance(merged.get("known_hosts"), str):
            known_hosts = _beside(path, merged["known_hosts"])
            if known_hosts is None:
                problems.append(f"queues.{name}.known_hosts: {_NOT_A_PATH}")
                continue
            merged["known_hosts"] = known_hosts
        try:
            queues[name] = parse_config(merged, where=f"queues.{name}")
        except ConfigurationError as exc:
            problems += str(exc).splitlines()
    credentials = _table(data, "credentials", problems)
    files = _credential_files(path, credentials, "credentials", problems, file_wide=True)
    reread = credentials.get("reread_after_s")
    if problems:
        # ``field`` names the first problem's key; the message lists every problem, one a line
        field, sep, message = problems[0].partition(": ")
        error = ConfigurationError("\n".join([message, *problems[1:]]), field=field or None)
        raise error if sep else ConfigurationError("\n".join(problems))
    return ConfigFile(
        path=path,
        queues=queues,
        credential_files=files,
        reread_after_s=float(reread) if reread is not None else None,
        queue_credentials=queue_credentials,
    )


def _credential_files(
    path: Path, table: object, where: str, problems: list[str], *, file_wide: bool
) -> dict[str, Path]:
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table")
        return {}
    allowed = sorted(CREDENTIAL_KEYS if file_wide else _CREDENTIAL_KEYS)
    files: dict[str, Path] = {}
    for key, value in table.items():
        if key == "reread_after_s" and file_wide:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(f"{where}.{key}: must be a number of seconds > 0")
        elif key not in _CREDENTIAL_KEYS or (key == "reread_after_s"):
            problems.append(f"{where}.{key}: unknown key; expected one of {allowed}")
        elif not isinstance(value, str) or not value:
            problems.append(f"{where}.{key}: must be a path (a non-empty string)")
        elif (file := _beside(path, value)) is None:
            problems.append(f"{where}.{key}: {_NOT_A_PATH}")
        else:
            files[key] = file
            problem = private_file_problem(file, private=key == "ssh_key_file")
            if problem is not None:
                problems.append(f"{where}.{key}: {problem}")
    return files


def _read_text(path: Path) -> str:
    """The file as UTF-8 text. Opened without blocking and checked to be a regular file
    first: a FIFO (or a device) at that path would otherwise block the caller forever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigurationError(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)"
        ) from None


def _beside(config_file: Path, value: str) -> Path | None:
    """``value`` as written, or relative to the config file's directory (never the cwd);
    ``None`` when it cannot be a path here (``~user`` of a user this host does not have)."""
    try:
        return (config_file.parent / Path(value).expanduser()).resolve()
    except (RuntimeError, ValueError, OSError):
        return None


_NOT_A_PATH = "is not a usable path here (a ~user this host does not have?)"


def _table(data: Mapping[str, Any], name: str, problems: list[str]) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a table")
        return {}
    return value
