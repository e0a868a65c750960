"""Typed credentials and the provider protocol (IC-ADR-003).

Secrets are pydantic secret types so they never show in a ``repr`` or a log line, and the models
hide their input in validation errors. Backends compute what they need
(``CredentialRequirements``) from their configuration and pull from a ``CredentialProvider``
when their set is missing or near expiry, and once more when the resource rejects it; the
consumer owns the provider's lifetime.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Annotated, Literal, Protocol, Self, TypeAlias, TypeVar, runtime_checkable

import anyio
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .errors import AuthenticationError, ConfigurationError

__all__ = [
    "BearerToken",
    "Credential",
    "CredentialKind",
    "CredentialProvider",
    "CredentialRequirements",
    "CredentialSet",
    "FileCredentials",
    "SSHPassword",
    "SSHPrivateKey",
    "StaticCredentials",
    "X509Proxy",
    "private_file_problem",
]

# hide_input_in_errors: pydantic would otherwise print the rejected value (a PEM, a token) in
# the ValidationError text, which ends up in logs.
_FROZEN = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class _Expiring(BaseModel):
    model_config = _FROZEN

    expires_at: dt.datetime | None = None

    def expires_within(self, margin: dt.timedelta) -> bool:
        """Whether this credential will be unusable ``margin`` from now."""
        if self.expires_at is None:
            return False
        expires = self.expires_at
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
        return expires - dt.datetime.now(dt.UTC) <= margin


class BearerToken(_Expiring):
    """An OAuth2/OIDC access token (DIRAC's ``Tag = Token``)."""

    kind: Literal["bearer_token"] = "bearer_token"
    value: SecretStr


class X509Proxy(_Expiring):
    """A PEM-encoded X.509 proxy (certificate chain + key)."""

    kind: Literal["x509_proxy"] = "x509_proxy"
    pem: SecretStr


class SSHPrivateKey(_Expiring):
    """An SSH private key in OpenSSH or PEM format, optionally encrypted."""

    kind: Literal["ssh_private_key"] = "ssh_private_key"
    pem: SecretStr
    passphrase: SecretStr | None = None


class SSHPassword(_Expiring):
    """An SSH password (DIRAC's ``SSHPassword``); prefer keys."""

    kind: Literal["ssh_password"] = "ssh_password"
    value: SecretStr


Credential: TypeAlias = Annotated[
    BearerToken | X509Proxy | SSHPrivateKey | SSHPassword, Field(discriminator="kind")
]
CredentialKind: TypeAlias = (
    type[BearerToken] | type[X509Proxy] | type[SSHPrivateKey] | type[SSHPassword]
)
_C = TypeVar("_C", BearerToken, X509Proxy, SSHPrivateKey, SSHPassword)


class CredentialRequirements(BaseModel):
    """What one backend needs: ALL of ``kinds`` together, for ``resource``, with ``scopes``."""

    model_config = _FROZEN

    resource: str
    kinds: tuple[Literal["bearer_token", "x509_proxy", "ssh_private_key", "ssh_password"], ...]
    scopes: tuple[str, ...] = ()


class CredentialSet:
    """An immutable bag of credentials, at most one per kind."""

    __slots__ = ("_by_kind",)

    def __init__(
        self, credentials: Iterable[BearerToken | X509Proxy | SSHPrivateKey | SSHPassword] = ()
    ):
        self._by_kind: Mapping[str, BearerToken | X509Proxy | SSHPrivateKey | SSHPassword] = {
            credential.kind: credential for credential in credentials
        }

    def get(self, kind: type[_C]) -> _C | None:
        """The credential of that type, or ``None``."""
        found = self._by_kind.get(kind.model_fields["kind"].default)
        return found if isinstance(found, kind) else None

    def kinds(self) -> frozenset[str]:
        """The kinds present (``"ssh_private_key"``, ...)."""
        return frozenset(self._by_kind)

    def satisfies(self, requirements: CredentialRequirements) -> bool:
        """Whether every required kind is present."""
        return set(requirements.kinds) <= set(self._by_kind)

    def expires_within(self, margin: dt.timedelta) -> bool:
        """Whether any credential in the set expires within ``margin``."""
        return any(c.expires_within(margin) for c in self._by_kind.values())

    def __repr__(self) -> str:  # never the values
        return f"CredentialSet(kinds={sorted(self._by_kind)})"


@runtime_checkable
class CredentialProvider(Protocol):
    """Where backends pull credentials from; an async context manager the consumer owns."""

    async def get(self, requirements: CredentialRequirements) -> CredentialSet: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _ProviderBase:
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @staticmethod
    def _check(found: CredentialSet, requirements: CredentialRequirements) -> CredentialSet:
        missing = sorted(set(requirements.kinds) - found.kinds())
        if missing:
            raise AuthenticationError(
                f"no credential of kind {', '.join(missing)} for {requirements.resource}"
            )
        return found


class StaticCredentials(_ProviderBase):
    """A fixed set, for tests and standalone use."""

    def __init__(self, *credentials: BearerToken | X509Proxy | SSHPrivateKey | SSHPassword):
        self._set = CredentialSet(credentials)

    async def get(self, requirements: CredentialRequirements) -> CredentialSet:
        return self._check(self._set, requirements)


class FileCredentials(_ProviderBase):
    """Reads credentials from files, so a rotated key or a renewed token is picked up without
    restarting (the harness's generated config uses it).

    Only the files of the kinds asked for are read. What it reads is given a short life
    (``reread_after_s``, or a token's own JWT ``exp`` when sooner) so a backend holding it pulls
    again and sees a renewed file; a backend also pulls again at once when the resource rejects
    what it holds. With the default 600 s and a backend's default 300 s refresh margin, a
    renewed file is read within about five minutes.
    """

    def __init__(
        self,
        *,
        ssh_key_file: Path | None = None,
        ssh_key_passphrase_file: Path | None = None,
        ssh_password_file: Path | None = None,
        token_file: Path | None = None,
        proxy_file: Path | None = None,
        reread_after_s: float = 600.0,
    ) -> None:
        if not reread_after_s > 0:
            raise ConfigurationError(
                f"must be positive, got {reread_after_s}", field="reread_after_s"
            )
        self._ssh_key_file = ssh_key_file
        self._passphrase_file = ssh_key_passphrase_file
        self._password_file = ssh_password_file
        self._token_file = token_file
        self._proxy_file = proxy_file
        self._reread_after = dt.timedelta(seconds=reread_after_s)

    async def get(self, requirements: CredentialRequirements) -> CredentialSet:
        wanted = set(requirements.kinds)
        expires = dt.datetime.now(dt.UTC) + self._reread_after
        found: list[BearerToken | X509Proxy | SSHPrivateKey | SSHPassword] = []
        if "ssh_private_key" in wanted and self._ssh_key_file is not None:
            problem = private_file_problem(self._ssh_key_file)
            if problem is not None:
                raise AuthenticationError(problem)
        try:
            if "ssh_private_key" in wanted and self._ssh_key_file is not None:
                passphrase = (
                    SecretStr(_one_line(await anyio.Path(self._passphrase_file).read_text()))
                    if self._passphrase_file is not None
                    else None
                )
                pem = await anyio.Path(self._ssh_key_file).read_text()
                found.append(
                    SSHPrivateKey(pem=SecretStr(pem), passphrase=passphrase, expires_at=expires)
                )
            if "ssh_password" in wanted and self._password_file is not None:
                password = _one_line(await anyio.Path(self._password_file).read_text())
                found.append(SSHPassword(value=SecretStr(password), expires_at=expires))
            if "bearer_token" in wanted and self._token_file is not None:
                token = (await anyio.Path(self._token_file).read_text()).strip()
                token_expiry = _jwt_expiry(token)
                found.append(
                    BearerToken(
                        value=SecretStr(token),
                        expires_at=min(expires, token_expiry) if token_expiry else expires,
                    )
                )
            if "x509_proxy" in wanted and self._proxy_file is not None:
                pem = await anyio.Path(self._proxy_file).read_text()
                found.append(X509Proxy(pem=SecretStr(pem), expires_at=expires))
        except OSError as exc:
            raise AuthenticationError(
                f"cannot read credential file {exc.filename}: {exc.strerror}"
            ) from None
        return self._check(CredentialSet(found), requirements)


def private_file_problem(path: Path, *, private: bool = True) -> str | None:
    """Why ``path`` cannot hold a credential we use, or ``None``: it must be a readable regular
    file and, when ``private`` (an SSH private key), one that neither group nor others can
    access: OpenSSH refuses such a key ("UNPROTECTED PRIVATE KEY FILE"), and so do we."""
    try:
        info = path.stat()
    except OSError as exc:
        return f"cannot use {path}: {exc.strerror or type(exc).__name__}"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if private and info.st_mode & 0o077:
        return (
            f"{path} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            "OpenSSH refuses such a private key: chmod 600"
        )
    if not os.access(path, os.R_OK):
        return f"cannot use {path}: not readable by this user"
    return None


def _one_line(text: str) -> str:
    """A password or passphrase file ends with a newline; inner or trailing spaces are part of
    the secret, so only the line ending goes."""
    return text.rstrip("\r\n")


def _jwt_expiry(token: str) -> dt.datetime | None:
    """A JWT's ``exp`` claim, or ``None`` for an opaque token (or one we cannot decode)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(exp, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
