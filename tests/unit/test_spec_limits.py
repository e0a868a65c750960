"""What cannot reach a job byte for byte is refused before anything is sent, naming the field:
a NUL or a lone surrogate in an environment value, an argument or environment entry longer
than the kernel lets ``execve`` pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from intercede import CopyVars, SpecificationRejectedError, SubmissionSpec
from intercede._batch.staging import MAX_ARG_STRLEN, check_sizes


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a\x00b", "the value of STAMP contains a NUL byte"),
        ("\x00", "NUL"),
        ("ok\ud800", "the value of STAMP is not valid UTF-8 text"),
    ],
)
def test_a_copy_environment_value_that_cannot_cross_execve_is_refused(value: str, why: str) -> None:
    with pytest.raises(ValidationError) as info:
        CopyVars(environment={"STAMP": value})
    error = info.value.errors()[0]
    assert error["loc"] == ("environment",)
    assert why in error["msg"]
    assert value not in str(info.value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a\x00b", "the value of VO contains a NUL byte"),
        ("\udcff", "the value of VO is not valid UTF-8"),
    ],
)
def test_a_spec_environment_value_that_cannot_cross_execve_is_refused(value: str, why: str) -> None:
    with pytest.raises(ValidationError) as info:
        SubmissionSpec(executable="/bin/true", environment={"VO": value})
    assert info.value.errors()[0]["loc"] == ("environment",)
    assert why in info.value.errors()[0]["msg"]


def test_text_that_survives_is_kept_exactly() -> None:
    value = "quotes ' \" $HOME `x` \n\t ünïcödé 🎉"
    assert CopyVars(environment={"A": value}).environment["A"] == value


@pytest.mark.parametrize(
    ("spec_kw", "copies", "field"),
    [
        ({"arguments": ("ok", "x" * MAX_ARG_STRLEN)}, [], "arguments[1]"),
        ({"environment": {"BIG": "x" * (MAX_ARG_STRLEN - 4)}}, [], "environment.BIG"),
        ({}, [CopyVars(), CopyVars(environment={"B": "é" * 65535})], "copies[1].environment.B"),
    ],
)
def test_items_over_the_kernel_limit_are_refused_naming_the_field(
    spec_kw: dict[str, object], copies: list[CopyVars], field: str
) -> None:
    spec = SubmissionSpec(executable="/bin/true", **spec_kw)  # type: ignore[arg-type]
    with pytest.raises(SpecificationRejectedError) as info:
        check_sizes(spec, copies)
    assert info.value.field == field
    assert str(MAX_ARG_STRLEN) in str(info.value)


def test_items_just_under_the_limit_pass() -> None:
    spec = SubmissionSpec(
        executable="/bin/true",
        arguments=("x" * (MAX_ARG_STRLEN - 1),),
        environment={"BIG": "x" * (MAX_ARG_STRLEN - 5)},
    )
    check_sizes(spec, [CopyVars(environment={"C": "y" * (MAX_ARG_STRLEN - 3)})])


def test_limit_is_the_kernels(tmp_path: Path) -> None:
    """The real ``execve`` agrees: one byte over fails with E2BIG, at the limit it runs."""
    import subprocess

    ok = subprocess.run(["/bin/true", "x" * (MAX_ARG_STRLEN - 1)], check=False)
    assert ok.returncode == 0
    with pytest.raises(OSError, match="Argument list too long"):
        subprocess.run(["/bin/true", "x" * MAX_ARG_STRLEN], check=False)
