"""``submit_extra`` may hold only what sbatch reads as options: a bare item would become the
batch script (with ours as its arguments), an option left without its value would swallow the
backend's own ``--array``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from intercede import ConfigurationError, parse_config
from intercede._sbatch_options import (
    LONG_WITH_VALUE,
    SHORT_FLAGS,
    SHORT_WITH_VALUE,
    submit_extra_problem,
)

DATA = Path(__file__).parent / "data" / "slurm"
VARIANTS = ("bookworm", "trixie")


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
    "extra",
    [
        ["/home/submit/evil.sh"],
        ["--qos=low", "/home/submit/evil.sh"],
        ["--exclusive", "/home/submit/evil.sh"],  # --exclusive's value is optional: never next
        ["-p", "main", "evil.sh"],
        ["--partition", "main", "evil.sh"],
        ["--part", "main"],  # an abbreviation must carry its value after '='
        ["-"],
        ["-v", "x"],
        ["-H", "x"],
        ["-pmain", "x"],
    ],
)
def test_a_bare_item_is_refused_without_echoing_it(
    ssh_config: dict[str, Any], extra: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, "submit_extra": extra})
    assert info.value.field == "submit_extra"
    assert "batch script" in str(info.value)
    assert "evil" not in str(info.value)


@pytest.mark.parametrize("extra", [["-p"], ["--qos=x", "--partition"], ["-vp"], ["-A"]])
def test_an_option_missing_its_value_at_the_end_is_refused(
    ssh_config: dict[str, Any], extra: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({**ssh_config, "submit_extra": extra})
    assert "needs a value" in str(info.value)
    assert "--array" in str(info.value)


@pytest.mark.parametrize(
    "extra",
    [
        ["-p", "main"],
        ["-pmain", "-A", "lhcb"],
        ["--partition", "main", "--qos", "short"],
        ["--comment", "two words"],
        ["--comment", "--array=1"],  # a value, whatever it looks like
        ["-vp", "main"],
        ["-k", "-H"],
        ["--exclusive", "--requeue"],
        ["--nice=10", "--mem", "100"],
        [],
    ],
)
def test_values_where_getopt_takes_them_are_allowed(extra: list[str]) -> None:
    assert submit_extra_problem(extra) is None


def test_reserved_options_still_refused_and_value_positions_are_skipped() -> None:
    assert "--array" in (submit_extra_problem(["--arr=1"]) or "")
    assert "-J" in (submit_extra_problem(["-vJx"]) or "")
    assert submit_extra_problem(["-p", "-J"]) is None  # "-J" is -p's value here


def _help_options(text: str) -> tuple[set[str], set[str], set[str]]:
    """(short with a value, short flags, long with a required value) as ``sbatch --help``
    prints them: ``  -p, --partition=partition`` or ``      --exclusive[=user|mcs]``."""
    short_value: set[str] = set()
    short_flag: set[str] = set()
    long_value: set[str] = set()
    for line in text.splitlines():
        match = re.match(r"\s+(?:-(\w), )?--([\w-]+)(\[?=)?", line)
        if match is None:
            continue
        short, name, value = match.groups()
        if short:
            (short_value if value == "=" else short_flag).add(short)
        if value == "=":
            long_value.add(name)
    return short_value, short_flag, long_value


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_tables_agree_with_sbatch_help_of_each_variant(variant: str) -> None:
    short_value, short_flag, long_value = _help_options(
        (DATA / variant / "sbatch_help.txt").read_text()
    )
    assert len(long_value) > 40, "the recorded help lists too few options: re-record it"
    assert short_value <= SHORT_WITH_VALUE
    assert short_flag - {"k"} <= SHORT_FLAGS
    assert long_value <= LONG_WITH_VALUE, sorted(long_value - LONG_WITH_VALUE)


def test_the_messages_say_what_sbatch_would_do() -> None:
    assert submit_extra_problem(["-p", "main", "-A"]) == (
        "item 2 (-A) needs a value and is the last item: "
        "sbatch would take the backend's own --array as its value"
    )
    assert submit_extra_problem(["x"]) == (
        "a bare item (not an option, and not the value of the option before it) ends "
        "sbatch's options: sbatch would run it as the batch script; write an option's value "
        "as --option=value"
    )
    assert submit_extra_problem(["--"]) == (
        "'--' ends sbatch's options: the backend's own would be taken as the script"
    )
    assert submit_extra_problem(["--ou=x"]) == (
        "'--ou' (sbatch --output) is not allowed: the backend places each job's log itself"
    )
    assert submit_extra_problem(["-vD", "/tmp"]) == (
        "'-D' (sbatch --chdir) is not allowed: each job runs in its own directory under work_root"
    )


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["-kp"], False),  # -k's optional value is attached: "p", nothing follows
        (["-k", "x"], True),  # -k takes no separate value: "x" is the script
        (["-Hp", "main"], False),
        (["-Hpmain", "x"], True),
        (["--partition=main", "x"], True),
        (["--time", "5", "--qos", "low"], False),
        (["--hold", "--time"], True),
    ],
)
def test_where_getopt_takes_a_value(extra: list[str], problem: bool) -> None:
    assert (submit_extra_problem(extra) is not None) is problem
