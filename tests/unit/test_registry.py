"""The registry and config loading: every error names the key a user has to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

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
        ({"transport": None}, "transport", "field required, one of ssh, local"),
        ({"ssh": 1}, "ssh", "unknown key"),
        ({"local": "x"}, "local", "unknown key"),
        ({"batch": True}, "batch", "unknown key"),
        ({"host": ""}, "host", "non-empty"),
        ({"host": "  "}, "host", "non-empty"),
        ({"host": "ce .example.org"}, "host", "without spaces"),
        ({"host": "submit@ce.example.org"}, "host", "'@'"),
        ({"user": ""}, "user", "non-empty"),
        ({"user": "sub mit"}, "user", "without spaces"),
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


def test_missing_kind_defaults_to_batch(ssh_config: dict[str, Any]) -> None:
    del ssh_config["kind"]
    parsed = parse_config(ssh_config)
    assert isinstance(parsed, SSHBatchConfig)
    assert parsed.kind == "batch"
    with pytest.raises(ConfigurationError) as info:  # a field error still names the field
        parse_config({**ssh_config, "port": "x"})
    assert info.value.field == "port"


def test_known_hosts_is_not_read_at_validation(ssh_config: dict[str, Any]) -> None:
    # The file lives on the host that connects, not necessarily on the one validating.
    parsed = parse_config({**ssh_config, "known_hosts": "/nonexistent/known_hosts"})
    assert isinstance(parsed, SSHBatchConfig)
    assert parsed.known_hosts == Path("/nonexistent/known_hosts")


@pytest.mark.parametrize(
    ("jump_host", "endpoint"),
    [
        ("bastion.example.org", ("submit", "bastion.example.org", 22)),
        ("hop@bastion.example.org", ("hop", "bastion.example.org", 22)),
        ("hop@bastion.example.org:2222", ("hop", "bastion.example.org", 2222)),
        ("bastion.example.org:2222", ("submit", "bastion.example.org", 2222)),
        ("[::1]", ("submit", "::1", 22)),
        ("[::1]:22", ("submit", "::1", 22)),
        ("hop@[2001:db8::1]:2200", ("hop", "2001:db8::1", 2200)),
        ("10.0.0.1:65535", ("submit", "10.0.0.1", 65535)),
    ],
)
def test_jump_host_forms(
    ssh_config: dict[str, Any], jump_host: str, endpoint: tuple[str, str, int]
) -> None:
    parsed = parse_config({**ssh_config, "jump_host": jump_host})
    assert isinstance(parsed, SSHBatchConfig)
    assert parsed.jump_endpoint == endpoint
    assert parsed.jump_host == jump_host


def test_no_jump_host_no_endpoint(ssh_config: dict[str, Any]) -> None:
    parsed = parse_config(ssh_config)
    assert isinstance(parsed, SSHBatchConfig)
    assert parsed.jump_endpoint is None


@pytest.mark.parametrize(
    ("jump_host", "message"),
    [
        ("", "expected [user@]host[:port]"),
        ("hop@", "expected a host name"),
        ("@bastion", "user name before '@'"),
        ("bastion:", "port must be"),
        ("bastion:ssh", "port must be"),
        ("bastion:0", "port must be"),
        ("bastion:70000", "port must be"),
        ("bastion:２２", "port must be"),
        ("::1", "IPv6 address in brackets"),
        ("hop@2001:db8::1:22", "IPv6 address in brackets"),
        ("[::1", "between '[' and ']'"),
        ("[]:22", "between '[' and ']'"),
        ("[::1]22", "':port' after ']'"),
        ("[::1]:", "port must be"),
        ("ssh -W %h:%p gw", "without spaces"),
    ],
)
def test_bad_jump_host_is_refused_at_validation(
    ssh_config: dict[str, Any], jump_host: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, "jump_host": jump_host})
    assert info.value.field == "jump_host"
    assert message in str(info.value)


def test_jump_host_error_never_echoes_the_value(ssh_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, "jump_host": "hop:TOPSECRET-7f3a@bastion:x"})
    assert info.value.field == "jump_host"
    assert "TOPSECRET-7f3a" not in str(info.value)


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--array=0-3"], "--array"),
        (["--array", "0-3"], "--array"),
        (["--arr=0-3"], "--arr"),
        (["-a", "0-3"], "-a"),
        (["-a0-3"], "-a"),
        (["--job-name=x"], "--job-name"),
        (["-J", "x"], "-J"),
        (["-vJx"], "-J"),
        (["-o", "/tmp/out"], "-o"),
        (["--output=/tmp/out"], "--output"),
        (["-e", "/tmp/err"], "-e"),
        (["--error=/tmp/err"], "--error"),
        (["--export=NONE"], "--export"),
        (["--parsable"], "--parsable"),
        (["-D", "/tmp"], "-D"),
        (["--chdir=/tmp"], "--chdir"),
        (["--wrap=hostname"], "--wrap"),
        (["--qos=short", "--"], "'--'"),
    ],
)
def test_submit_extra_refuses_options_the_backend_sets(
    ssh_config: dict[str, Any], extra: list[str], option: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, "submit_extra": extra})
    assert info.value.field == "submit_extra"
    assert f"{option}" in str(info.value)


@pytest.mark.parametrize(
    "extra",
    [
        ["--qos=short", "--comment", "two words"],
        ["--export-file=/etc/env"],  # not --export: a longer, different option
        ["--exclusive", "-v", "-Q"],
        ["-p", "main", "-A", "lhcb", "-t", "10"],
        ["--partition", "main", "-N2"],
    ],
)
def test_submit_extra_keeps_harmless_options(ssh_config: dict[str, Any], extra: list[str]) -> None:
    parsed = parse_config({**ssh_config, "submit_extra": extra})
    assert parsed.submit_extra == tuple(extra)


def test_submit_extra_error_never_echoes_the_value(ssh_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, "submit_extra": ["--export=TOKEN=TOPSECRET-7f3a"]})
    assert "--export" in str(info.value)
    assert "TOPSECRET-7f3a" not in str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        {"ssh_password": "TOPSECRET-7f3a"},
        {"port": "TOPSECRET-7f3a"},
        {"auth": "TOPSECRET-7f3a"},
        {"submit_extra": "TOPSECRET-7f3a"},
        {"preamble": ["TOPSECRET-7f3a"]},
        {"host": "TOPSECRET-7f3a x"},
    ],
)
def test_configuration_errors_never_echo_the_input(
    ssh_config: dict[str, Any], change: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, **change})
    assert "TOPSECRET-7f3a" not in str(info.value)
    assert info.value.field == next(iter(change))
    with pytest.raises(ValidationError) as direct:
        SSHBatchConfig.model_validate({**ssh_config, **change})
    assert "TOPSECRET-7f3a" not in str(direct.value)


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
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id").write_text("key")
    (tmp_path / "keys" / "id").chmod(0o600)
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


def test_load_config_resolves_known_hosts_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a relative path must not resolve against the cwd
    path = config_dir / "queues.toml"
    path.write_text(
        """
[defaults]
transport = "ssh"
host = "ce.example.org"
user = "submit"
known_hosts = "ssh/known_hosts"
work_root = "/home/submit/w"

[queues.main]

[queues.pinned]
known_hosts = "/etc/ssh/ssh_known_hosts"
"""
    )
    loaded = load_config(path)
    main, pinned = loaded.queues["main"], loaded.queues["pinned"]
    assert isinstance(main, SSHBatchConfig)
    assert isinstance(pinned, SSHBatchConfig)
    assert main.kind == "batch"  # defaulted
    assert main.known_hosts == (config_dir / "ssh/known_hosts").resolve()
    assert pinned.known_hosts == Path("/etc/ssh/ssh_known_hosts")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_every_credentials_key_reaches_the_provider(tmp_path: Path) -> None:
    from intercede import CredentialRequirements, SSHPassword

    (tmp_path / "secrets").mkdir()
    keys = {
        "ssh_key_file": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        "ssh_key_passphrase_file": "phrase\n",
        "ssh_password_file": "pw\n",
        "token_file": "token\n",
        "proxy_file": "-----BEGIN CERTIFICATE-----\n",
    }
    for name, text in keys.items():
        (tmp_path / "secrets" / name).write_text(text)
        (tmp_path / "secrets" / name).chmod(0o600)
    table = "".join(f'{name} = "secrets/{name}"\n' for name in keys)
    loaded = load_config(
        _write(
            tmp_path,
            f"[credentials]\n{table}"
            "[queues.a]\ntransport='ssh'\nhost='h'\nuser='u'\nknown_hosts='kh'\n"
            "work_root='/w'\nauth='password'\n",
        )
    )
    assert set(loaded.credential_files) == set(keys)
    provider = loaded.credentials()
    kinds = ("ssh_private_key", "ssh_password", "bearer_token", "x509_proxy")
    found = await provider.get(CredentialRequirements(resource="u@h:22", kinds=kinds))
    assert found.kinds() == set(kinds)
    password = found.get(SSHPassword)
    assert password is not None
    assert password.value.get_secret_value() == "pw"


def test_queues_with_their_own_credentials_share_one_file(tmp_path: Path) -> None:
    for name in ("other_key", "main_key", "proxy.pem"):  # checked when the file loads
        (tmp_path / name).write_text("secret\n")
        (tmp_path / name).chmod(0o600)
    path = tmp_path / "queues.toml"
    path.write_text(
        '[defaults]\nkind = "batch"\ntransport = "local"\nwork_root = "/w"\n'
        '[queues.main]\nqueue = "main"\n'
        '[queues.other]\nqueue = "other"\n'
        '[queues.other.credentials]\nssh_key_file = "other_key"\n'
        '[credentials]\nssh_key_file = "main_key"\nproxy_file = "proxy.pem"\n'
        "reread_after_s = 30\n"
    )
    loaded = load_config(path)
    assert loaded.reread_after_s == 30
    assert loaded.queue_credentials == {"other": {"ssh_key_file": tmp_path / "other_key"}}
    main, other = loaded.credentials_for("main"), loaded.credentials_for("other")
    assert main._ssh_key_file == tmp_path / "main_key"
    assert other._ssh_key_file == tmp_path / "other_key"
    assert other._proxy_file == tmp_path / "proxy.pem"  # the rest comes from [credentials]
    assert other._reread_after.total_seconds() == 30
    with pytest.raises(ConfigurationError, match="no queue 'nope'"):
        loaded.credentials_for("nope")


def test_every_credentials_key_is_documented_with_its_format() -> None:
    from intercede.registry import CREDENTIAL_KEYS

    assert set(CREDENTIAL_KEYS) == {
        "ssh_key_file",
        "ssh_key_passphrase_file",
        "ssh_password_file",
        "token_file",
        "proxy_file",
        "reread_after_s",
    }
    assert all(len(text) > 20 for text in CREDENTIAL_KEYS.values())


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('[queues.main]\nknown_hosts = "~no-such-user-0/kh"\n', "queues.main.known_hosts"),
        ('[credentials]\nssh_key_file = "~no-such-user-0/key"\n', "credentials.ssh_key_file"),
    ],
)
def test_load_config_names_a_home_this_host_does_not_have(
    tmp_path: Path, table: str, field: str
) -> None:
    """``~user`` of an unknown user is the config's mistake, named, not a RuntimeError."""
    queue = 'transport = "ssh"\nhost = "h"\nuser = "u"\nwork_root = "/w"\n'
    if not table.startswith("[queues"):
        table += '[queues.main]\nknown_hosts = "kh"\n'
    text = table + queue
    with pytest.raises(ConfigurationError) as caught:
        load_config(_write(tmp_path, text))
    assert caught.value.field == field
