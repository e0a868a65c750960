"""The registry and config loading: every error names the key a user has to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import intercede
from intercede import (
    ConfigurationError,
    Diagnosable,
    FileCredentials,
    JobBackend,
    Killable,
    LoadReporter,
    LocalBatchConfig,
    OutputRetriever,
    Purgeable,
    SSHBatchConfig,
    load_config,
    parse_config,
)


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG\n")
    return path


@pytest.fixture
def ssh_config(known_hosts: Path) -> dict[str, Any]:
    return {
        "kind": "batch",
        "transport": "ssh",
        "host": "ce.example.org",
        "user": "submit",
        "known_hosts": str(known_hosts),
        "work_root": "/home/submit/intercede",
    }


def test_parse_ssh_config_with_defaults(ssh_config: dict[str, Any]) -> None:
    parsed = parse_config(ssh_config)
    assert isinstance(parsed, SSHBatchConfig)
    assert parsed.port == 22
    assert parsed.scheduler == "slurm"
    assert parsed.job_name == "intercede"
    assert parsed.auth == "key"


def test_parse_local_config() -> None:
    parsed = parse_config({"kind": "batch", "transport": "local", "work_root": "/w"})
    assert isinstance(parsed, LocalBatchConfig)


def test_parsed_config_passes_through(ssh_config: dict[str, Any]) -> None:
    parsed = parse_config(ssh_config)
    assert parse_config(parsed) is parsed


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"kind": "cloud"}, "kind", "unknown value 'cloud'"),
        ({"transport": "telnet"}, "transport", "unknown value 'telnet'"),
        ({"host": None}, "host", ""),
        ({"port": 70000}, "port", "less than or equal to 65535"),
        ({"work_root": "relative/dir"}, "work_root", "absolute path"),
        ({"work_root": "/a/../b"}, "work_root", "without '..'"),
        ({"container_launcher": "apptainer exec {image}"}, "container_launcher", "{command}"),
        ({"hostname": "x"}, "hostname", "unknown key"),
        ({"known_hosts": "/nonexistent/known_hosts"}, "known_hosts", ""),
        ({"reconnect_attempts": 0}, "reconnect_attempts", ""),
        ({"scheduler": "pbs"}, "scheduler", ""),
    ],
)
def test_bad_config_names_the_field(
    ssh_config: dict[str, Any], change: dict[str, Any], field: str, message: str
) -> None:
    data = {**ssh_config, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigurationError) as info:
        parse_config(data)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert message in str(info.value)


def test_missing_kind_is_named(ssh_config: dict[str, Any]) -> None:
    del ssh_config["kind"]
    with pytest.raises(ConfigurationError) as info:
        parse_config(ssh_config)
    assert info.value.field == "kind"


def test_where_prefixes_the_field(ssh_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, "port": "x"}, where="queues.main")
    assert info.value.field == "queues.main.port"


def test_backend_builds_a_batch_backend_without_io(ssh_config: dict[str, Any]) -> None:
    # ce.example.org does not resolve: construction must not try.
    built = intercede.backend(ssh_config)
    for protocol in (JobBackend, OutputRetriever, Killable, Purgeable, Diagnosable, LoadReporter):
        assert isinstance(built, protocol)
    assert built.transport.connections_opened == 0  # type: ignore[attr-defined]


def test_backend_refuses_bad_config_before_importing(ssh_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        intercede.backend({**ssh_config, "queue": 3})
    assert info.value.field == "queue"


def test_backend_import_is_lazy() -> None:
    code = (
        "import sys, intercede; print('intercede._batch' in sys.modules, 'asyncssh' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


# --- TOML files --------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "queues.toml"
    path.write_text(text)
    return path


def test_load_config_merges_defaults_and_resolves_credentials(
    tmp_path: Path, known_hosts: Path
) -> None:
    path = _write(
        tmp_path,
        f"""
[credentials]
ssh_key_file = "keys/id"

[defaults]
kind = "batch"
transport = "ssh"
host = "127.0.0.1"
port = 2222
user = "submit"
known_hosts = "{known_hosts}"
work_root = "/home/submit/w"

[queues.main]
queue = "main"

[queues.second]
queue = "second"
port = 2223
""",
    )
    loaded = load_config(path)
    assert set(loaded.queues) == {"main", "second"}
    assert loaded.queues["main"].queue == "main"
    assert isinstance(loaded.queues["second"], SSHBatchConfig)
    assert loaded.queues["second"].port == 2223
    assert loaded.queues["main"].port == 2222  # type: ignore[union-attr]
    assert loaded.credential_files["ssh_key_file"] == (tmp_path / "keys/id").resolve()
    assert isinstance(loaded.credentials(), FileCredentials)
    assert list(loaded.select(["second"])) == ["second"]
    assert list(loaded.select()) == ["main", "second"]


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("[queues.main]\nkind='batch'\ntransport='local'\n", "queues.main.work_root", ""),
        ("[defaults]\nkind='batch'\n", "queues", "no [queues.<name>]"),
        ("[queue.main]\n", "queue", "unknown table"),
        (
            "[credentials]\npassword_file='x'\n[queues.a]\nkind='batch'\ntransport='local'\n"
            "work_root='/w'\n",
            "credentials.password_file",
            "unknown key",
        ),
        ("queues = 3\n", "queues", "must be a table"),
        ("[queues]\nmain = 3\n", "queues.main", "must be a table"),
    ],
)
def test_load_config_errors_name_the_field(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(_write(tmp_path, text))
    assert info.value.field == field
    assert message in str(info.value)


def test_load_config_reports_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_config(_write(tmp_path, "[queues\n"))
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_select_unknown_queue_names_it(tmp_path: Path) -> None:
    loaded = load_config(
        _write(tmp_path, "[queues.a]\nkind='batch'\ntransport='local'\nwork_root='/w'\n")
    )
    with pytest.raises(ConfigurationError, match="no queue 'b'") as info:
        loaded.select(["b"])
    assert info.value.field == "queues"
