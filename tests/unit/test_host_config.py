"""``scheduler = "host"``: its own setting (``slots``) and none of Slurm's, each refused
naming the key, for both transports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from intercede import ConfigurationError, parse_config


@pytest.fixture(params=["ssh", "local"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    base: dict[str, Any] = {"transport": request.param, "work_root": "/scratch/intercede"}
    if request.param == "ssh":
        base |= {"host": "ce.example.org", "user": "submit", "known_hosts": str(tmp_path)}
    return base


def test_host_with_slots(config: dict[str, Any]) -> None:
    parsed = parse_config({**config, "scheduler": "host", "slots": 4})
    assert (parsed.scheduler, parsed.slots) == ("host", 4)


def test_host_slots_default_to_the_hosts_processors(config: dict[str, Any]) -> None:
    assert parse_config({**config, "scheduler": "host"}).slots is None


@pytest.mark.parametrize("value", [0, -1, True, "4", 2.0, 100_001])
def test_bad_slots_are_refused(config: dict[str, Any], value: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**config, "scheduler": "host", "slots": value})
    assert info.value.field == "slots"


def test_slots_belong_to_the_host_scheduler(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**config, "slots": 4})
    assert info.value.field == "slots"
    assert "host" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("queue", "main"),
        ("account", "lhcb"),
        ("max_array_size", 10),
        ("submit_extra", ["--qos=low"]),
    ],
)
def test_slurm_settings_are_refused_for_the_host(
    config: dict[str, Any], field: str, value: object
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**config, "scheduler": "host", field: value})
    assert info.value.field == field


def test_an_unknown_scheduler_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**config, "scheduler": "pbs"})
    assert info.value.field == "scheduler"
