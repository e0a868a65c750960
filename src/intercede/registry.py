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
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    message = first["msg"]
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
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return ConfigurationError(message + more, field=name or None)


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

    def credentials(self) -> FileCredentials:
        """A provider reading the files the ``[credentials]`` table names."""
        files = self.credential_files
        return FileCredentials(
            ssh_key_file=files.get("ssh_key_file"),
            ssh_key_passphrase_file=files.get("ssh_key_passphrase_file"),
            ssh_password_file=files.get("ssh_password_file"),
            token_file=files.get("token_file"),
            proxy_file=files.get("proxy_file"),
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


_CREDENTIAL_KEYS = frozenset(
    {"ssh_key_file", "ssh_key_passphrase_file", "ssh_password_file", "token_file", "proxy_file"}
)


def load_config(path: str | Path) -> ConfigFile:
    """Read a queue file; relative credential and ``known_hosts`` paths resolve against the
    file's directory, so a config directory can move as a whole."""
    path = Path(path)
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"defaults", "queues", "credentials"})
    if unknown:
        raise ConfigurationError(f"unknown table in {path}", field=unknown[0])
    defaults = _table(data, "defaults")
    queues_data = _table(data, "queues")
    if not queues_data:
        raise ConfigurationError(f"{path} defines no [queues.<name>] table", field="queues")
    queues = {}
    for name, section in queues_data.items():
        if not isinstance(section, dict):
            raise ConfigurationError("must be a table", field=f"queues.{name}")
        merged = {**defaults, **section}
        if isinstance(merged.get("known_hosts"), str):
            merged["known_hosts"] = _beside(
                path, merged["known_hosts"], f"queues.{name}.known_hosts"
            )
        queues[name] = parse_config(merged, where=f"queues.{name}")
    files: dict[str, Path] = {}
    for key, value in _table(data, "credentials").items():
        if key not in _CREDENTIAL_KEYS:
            raise ConfigurationError(
                f"unknown key; expected one of {sorted(_CREDENTIAL_KEYS)}",
                field=f"credentials.{key}",
            )
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                "must be a non-empty string: the path of the file", field=f"credentials.{key}"
            )
        files[key] = _beside(path, value, f"credentials.{key}")
        problem = private_file_problem(files[key], private=key == "ssh_key_file")
        if problem is not None:
            raise ConfigurationError(problem, field=f"credentials.{key}")
    return ConfigFile(path=path, queues=queues, credential_files=files)


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


def _beside(config_file: Path, value: str, field: str) -> Path:
    """``value`` as written, or relative to the config file's directory (never the cwd)."""
    try:
        return (config_file.parent / Path(value).expanduser()).resolve()
    except (RuntimeError, ValueError, OSError) as exc:  # "~nobody", a NUL byte, a loop
        raise ConfigurationError(f"not a usable path: {exc}", field=field) from None


def _table(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigurationError("must be a table", field=name)
    return value
