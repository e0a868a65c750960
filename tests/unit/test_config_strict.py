"""The config never coerces: ``true`` is not 1, ``"60"`` is not 60 seconds, a path is a
string; durations are finite and bounded; the job name cannot break squeue's lines."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from intercede import ConfigurationError, parse_config


@pytest.fixture
def ssh_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "transport": "ssh",
        "host": "ce.example.org",
        "user": "submit",
        "known_hosts": str(tmp_path / "known_hosts"),
        "work_root": "/scratch/intercede",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output_max_files", True),
        ("output_max_bytes", "1000"),
        ("max_array_size", 10.0),
        ("port", "22"),
        ("port", False),
        ("reconnect_attempts", "3"),
        ("command_timeout_s", "60"),
        ("transfer_timeout_s", True),
        ("connect_timeout_s", math.inf),
        ("keepalive_interval_s", math.nan),
        ("command_timeout_s", -1.0),
        ("command_timeout_s", 0),
        ("transfer_timeout_s", 1e300),
        ("credential_refresh_margin_s", math.inf),
        ("known_hosts", 42),
        ("known_hosts", ["a"]),
        ("known_hosts", ""),
        ("job_name", "pilots|x"),
        ("job_name", "pilots\n"),
        ("job_name", ""),
        ("queue", 3),
        ("queue", "main\x00"),
        ("account", "\x00"),
        ("preamble", "echo a\x00b"),
        ("submit_extra", ("--qos=lo\x00w",)),
        ("submit_extra", "--qos=low"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_field(
    ssh_config: dict[str, Any], field: str, value: object
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, field: value})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("command_timeout_s", 60),  # an integer number of seconds is a number
        ("command_timeout_s", 0.5),
        ("port", 2222),
        ("job_name", "pilots lhcb-2"),
        ("known_hosts", Path("/etc/ssh/known_hosts")),
    ],
)
def test_values_of_the_right_type_are_kept(
    ssh_config: dict[str, Any], field: str, value: object
) -> None:
    parsed = parse_config({**ssh_config, field: value})
    assert getattr(parsed, field) == value
