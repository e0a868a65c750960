"""``load_config`` turns every broken file into a ``ConfigurationError`` naming the field, at
load: not UTF-8, not a regular file (a FIFO would block forever), a credential value that is
not a path string, a key file that is missing, unreadable or readable by others."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from intercede import (
    AuthenticationError,
    ConfigurationError,
    CredentialRequirements,
    FileCredentials,
    load_config,
)

QUEUE = "[queues.a]\ntransport='local'\nwork_root='/w'\n"


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "queues.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _key(tmp_path: Path, mode: int = 0o600) -> Path:
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(mode)
    return key


def test_a_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not UTF-8 text"):
        load_config(_write(tmp_path, b"[queues.a]\nwork_root = '/w\xff'\n"))


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "queues.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        load_config(fifo)


def test_a_directory_and_a_missing_file_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a regular file"):
        load_config(tmp_path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("value", ["3", "true", "['a']", "''", "{ x = 'y' }"])
def test_credential_values_must_be_path_strings(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(_write(tmp_path, f"[credentials]\nssh_key_file = {value}\n{QUEUE}"))
    assert info.value.field == "credentials.ssh_key_file"


def test_a_missing_key_file_is_named_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(_write(tmp_path, f"[credentials]\nssh_key_file = 'nope'\n{QUEUE}"))
    assert info.value.field == "credentials.ssh_key_file"
    assert "No such file" in str(info.value)


def test_a_key_path_that_is_a_directory_is_named_at_load(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    with pytest.raises(ConfigurationError) as info:
        load_config(_write(tmp_path, f"[credentials]\nproxy_file = 'keys'\n{QUEUE}"))
    assert info.value.field == "credentials.proxy_file"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_others_can_read_is_refused_like_openssh_does(tmp_path: Path, mode: int) -> None:
    key = _key(tmp_path, mode)
    with pytest.raises(ConfigurationError) as info:
        load_config(_write(tmp_path, f"[credentials]\nssh_key_file = 'id'\n{QUEUE}"))
    assert info.value.field == "credentials.ssh_key_file"
    assert f"{mode:04o}" in str(info.value)
    provider = FileCredentials(ssh_key_file=key)
    requirements = CredentialRequirements(resource="u@h:22", kinds=("ssh_private_key",))
    with pytest.raises(AuthenticationError, match="chmod 600"):
        anyio.run(provider.get, requirements)


def test_a_private_key_loads(tmp_path: Path) -> None:
    key = _key(tmp_path)
    loaded = load_config(_write(tmp_path, f"[credentials]\nssh_key_file = 'id'\n{QUEUE}"))
    assert loaded.credential_files["ssh_key_file"] == key.resolve()


def test_the_debug_ce_tool_reports_a_non_utf8_config_without_a_traceback(
    tmp_path: Path,
) -> None:
    import io

    from intercede._cli.debug_ce import main

    out, err = io.StringIO(), io.StringIO()
    code = main([str(_write(tmp_path, b"\xff\xfe"))], stdout=out, stderr=err)
    assert code == 2
    assert "not UTF-8 text" in out.getvalue() + err.getvalue()
    assert "Traceback" not in out.getvalue() + err.getvalue()


@pytest.mark.parametrize("value", ["~no-such-user-x/known_hosts", "a\\u0000b"])
def test_a_path_that_cannot_be_resolved_is_named(tmp_path: Path, value: str) -> None:
    text = (
        f"[queues.a]\ntransport='ssh'\nhost='h'\nuser='u'\nwork_root='/w'\n"
        f'known_hosts="{value}"\n'
    )
    with pytest.raises(ConfigurationError) as info:
        load_config(_write(tmp_path, text))
    assert info.value.field == "queues.a.known_hosts"
