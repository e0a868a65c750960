"""Credentials: secrets stay out of errors, files are read only when asked and go stale soon."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from intercede import (
    AuthenticationError,
    BearerToken,
    ConfigurationError,
    CredentialRequirements,
    FileCredentials,
    SSHPassword,
    SSHPrivateKey,
    X509Proxy,
)

pytestmark = pytest.mark.anyio

SECRET = "TOPSECRET-7f3a"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _needs(*kinds: Any) -> CredentialRequirements:
    return CredentialRequirements(resource="submit@ce.example.org:22", kinds=kinds)


# --- secrets never echoed by validation ----------------------------------------------------


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        (SSHPrivateKey, {"pem": {"key": SECRET}}),
        (SSHPrivateKey, {"pem": "x", "passphrase": [SECRET]}),
        (SSHPrivateKey, {"pem": "x", "private_key": SECRET}),
        (SSHPassword, {"value": 12, "password": SECRET}),
        (BearerToken, {"value": "x", "expires_at": SECRET}),
        (X509Proxy, {"pem": {"cert": SECRET}}),
    ],
)
def test_validation_errors_never_show_the_secret(model: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        model(**kwargs)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert info.value.errors()[0]["loc"]  # the field is still named


# --- FileCredentials -----------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    contents = {
        "ssh_key_file": "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n",
        "ssh_key_passphrase_file": "pass phrase \n",
        "ssh_password_file": " pass word \r\n",
        "token_file": "opaque-token\n",
        "proxy_file": "-----BEGIN CERTIFICATE-----\nproxy\n",
    }
    paths = {}
    for name, text in contents.items():
        paths[name] = tmp_path / name
        paths[name].write_text(text)
        paths[name].chmod(0o600)
    return paths


async def test_password_file_gives_an_ssh_password_keeping_inner_spaces(
    files: dict[str, Path],
) -> None:
    provider = FileCredentials(ssh_password_file=files["ssh_password_file"])
    found = await provider.get(_needs("ssh_password"))
    password = found.get(SSHPassword)
    assert password is not None
    assert password.value.get_secret_value() == " pass word "
    assert found.kinds() == {"ssh_password"}


async def test_key_file_with_passphrase(files: dict[str, Path]) -> None:
    provider = FileCredentials(
        ssh_key_file=files["ssh_key_file"],
        ssh_key_passphrase_file=files["ssh_key_passphrase_file"],
    )
    key = (await provider.get(_needs("ssh_private_key"))).get(SSHPrivateKey)
    assert key is not None
    assert key.pem.get_secret_value().endswith("key\n")
    assert key.passphrase is not None
    assert key.passphrase.get_secret_value() == "pass phrase "


async def test_only_the_requested_kinds_are_read(files: dict[str, Path]) -> None:
    # Every file but the key is unreadable: asking for the key alone must still work.
    for name in ("ssh_password_file", "token_file", "proxy_file"):
        files[name].unlink()
    provider = FileCredentials(**files)
    found = await provider.get(_needs("ssh_private_key"))
    assert found.kinds() == {"ssh_private_key"}
    assert (await provider.get(_needs())).kinds() == frozenset()
    with pytest.raises(AuthenticationError, match="token_file"):
        await provider.get(_needs("bearer_token"))


async def test_all_kinds_together(files: dict[str, Path]) -> None:
    provider = FileCredentials(**files)
    kinds = ("ssh_private_key", "ssh_password", "bearer_token", "x509_proxy")
    found = await provider.get(_needs(*kinds))
    assert found.kinds() == set(kinds)


async def test_a_kind_without_a_file_is_an_authentication_error(files: dict[str, Path]) -> None:
    provider = FileCredentials(ssh_key_file=files["ssh_key_file"])
    with pytest.raises(AuthenticationError, match="ssh_password"):
        await provider.get(_needs("ssh_password"))


async def test_what_is_read_expires_after_the_reread_interval(files: dict[str, Path]) -> None:
    provider = FileCredentials(ssh_key_file=files["ssh_key_file"], reread_after_s=120)
    before = dt.datetime.now(dt.UTC)
    found = await provider.get(_needs("ssh_private_key"))
    key = found.get(SSHPrivateKey)
    assert key is not None
    assert key.expires_at is not None
    assert before + dt.timedelta(seconds=119) <= key.expires_at
    assert key.expires_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    assert found.expires_within(dt.timedelta(seconds=121))
    assert not found.expires_within(dt.timedelta(seconds=100))


async def test_a_rewritten_file_is_seen_on_the_next_pull(files: dict[str, Path]) -> None:
    provider = FileCredentials(token_file=files["token_file"])
    first = (await provider.get(_needs("bearer_token"))).get(BearerToken)
    files["token_file"].write_text("renewed-token\n")
    second = (await provider.get(_needs("bearer_token"))).get(BearerToken)
    assert first is not None
    assert second is not None
    assert first.value.get_secret_value() == "opaque-token"
    assert second.value.get_secret_value() == "renewed-token"


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


async def test_a_jwt_expiring_sooner_sets_the_expiry(files: dict[str, Path]) -> None:
    exp = int(dt.datetime.now(dt.UTC).timestamp()) + 60
    files["token_file"].write_text(_jwt({"sub": "pilot", "exp": exp}) + "\n")
    provider = FileCredentials(token_file=files["token_file"], reread_after_s=600)
    token = (await provider.get(_needs("bearer_token"))).get(BearerToken)
    assert token is not None
    assert token.expires_at == dt.datetime.fromtimestamp(exp, dt.UTC)


_LATER = "exp one day from now"


@pytest.mark.parametrize(
    "text",
    [
        "not.a-jwt.at-all!",  # three parts, undecodable payload
        _jwt({"sub": "pilot"}),  # no exp claim
        _jwt({"exp": "tomorrow"}),
        _jwt({"exp": 10**20}),  # beyond any datetime
        _LATER,  # later than the re-read interval
    ],
    ids=["undecodable", "no-exp", "text-exp", "huge-exp", "later-exp"],
)
async def test_tokens_without_a_usable_earlier_exp_use_the_reread_interval(
    files: dict[str, Path], text: str
) -> None:
    if text == _LATER:
        text = _jwt({"exp": int(dt.datetime.now(dt.UTC).timestamp()) + 86_400})
    files["token_file"].write_text(text)
    provider = FileCredentials(token_file=files["token_file"], reread_after_s=600)
    token = (await provider.get(_needs("bearer_token"))).get(BearerToken)
    assert token is not None
    assert token.expires_at is not None
    remaining = token.expires_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=590) < remaining <= dt.timedelta(seconds=600)


async def test_unreadable_file_names_the_file_not_the_content(tmp_path: Path) -> None:
    provider = FileCredentials(ssh_password_file=tmp_path / "absent")
    with pytest.raises(AuthenticationError, match="absent"):
        await provider.get(_needs("ssh_password"))


@pytest.mark.parametrize("value", [0, -1.0])
def test_reread_interval_must_be_positive(value: float) -> None:
    with pytest.raises(ConfigurationError) as info:
        FileCredentials(reread_after_s=value)
    assert info.value.field == "reread_after_s"


def test_held_secrets_stay_out_of_repr() -> None:
    key = SSHPrivateKey(pem=SecretStr(SECRET), passphrase=SecretStr(SECRET))
    assert SECRET not in repr(key)
    assert SECRET not in str(key)
