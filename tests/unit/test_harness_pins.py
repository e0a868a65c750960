"""Stale Debian pins fail the build with the variant, both versions and the fix."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import STACK_DIR, load_variants
from harness.image import ImageError, build_stack_image
from harness.pins import (
    parse_candidates,
    pin_message,
    pin_problems,
    refresh_command,
    refresh_pins,
    unavailable_pins,
)

# Real apt output (bookworm base, pins bumped past what the archive has).
APT_FAILURE = """\
Package slurmd is not available, but is referred to by another package.
E: Version '22.05.8-4+deb12u9' for 'slurmd' was not found
E: Version '22.05.8-4+deb12u9' for 'slurmctld' was not found
E: Version '0.5.15-2+deb12u9' for 'munge' was not found
"""

POLICY = """\
slurmd:
  Installed: (none)
  Candidate: 22.05.8-4+deb12u4
  Version table:
     22.05.8-4+deb12u4 500
        500 http://packages.example/debian bookworm/main amd64 Packages
slurmctld:
  Installed: (none)
  Candidate: 22.05.8-4+deb12u4
munge:
  Installed: (none)
  Candidate: 0.5.15-2+deb12u1
slurm-client:
  Installed: (none)
  Candidate: (none)
"""


def test_apt_failures_and_candidates_are_parsed() -> None:
    assert unavailable_pins(APT_FAILURE) == {
        "slurmd": "22.05.8-4+deb12u9",
        "slurmctld": "22.05.8-4+deb12u9",
        "munge": "0.5.15-2+deb12u9",
    }
    assert unavailable_pins("E: Unable to locate package foo\n") == {}
    # As the engine streams it: coloured, and cut into chunks mid-message.
    streamed = "\x1b[91mE\x1b[0m\x1b[91m: \x1b[0m\x1b[91mVersion '1.0' for 'slurmd' was not found"
    assert unavailable_pins(streamed + "\x1b[0m\n") == {"slurmd": "1.0"}
    assert parse_candidates(POLICY) == {
        "slurmd": "22.05.8-4+deb12u4",
        "slurmctld": "22.05.8-4+deb12u4",
        "munge": "0.5.15-2+deb12u1",
    }


def test_message_names_variant_pin_available_version_and_command() -> None:
    variant = load_variants()["bookworm"]
    missing = {"slurmd": variant.slurm_version, "slurmctld": variant.slurm_version}
    message = pin_message(variant, pin_problems(variant, missing, parse_candidates(POLICY)))
    assert "variant bookworm" in message
    assert f"slurm_version = '{variant.slurm_version}' (slurmctld, slurmd)" in message
    assert "now available: 22.05.8-4+deb12u4" in message
    assert "python -m harness pins --variant bookworm --write" in message
    assert refresh_command("trixie") == "python -m harness pins --variant trixie --write"


def test_a_package_gone_from_the_suite_is_said_plainly() -> None:
    variant = load_variants()["trixie"]
    found = pin_problems(variant, {"munge": variant.munge_version}, {})
    assert [(p.field, p.available) for p in found] == [("munge_version", None)]
    assert "nothing (package gone from the suite)" in pin_message(variant, found)


def test_refresh_rewrites_only_that_variant_and_keeps_comments() -> None:
    text = (STACK_DIR / "variants.toml").read_text()
    new = refresh_pins(
        text, "bookworm", {"slurm_version": "22.05.8-4+deb12u4", "munge_version": "0.5.15-9"}
    )
    data = tomllib.loads(new)
    assert data["bookworm"]["slurm_version"] == "22.05.8-4+deb12u4"
    assert data["bookworm"]["munge_version"] == "0.5.15-9"
    assert data["trixie"] == tomllib.loads(text)["trixie"]
    assert [line for line in new.splitlines() if line.startswith("#")] == [
        line for line in text.splitlines() if line.startswith("#")
    ]
    with pytest.raises(ValueError, match=r"\[sid\] has no slurm_version"):
        refresh_pins(text, "sid", {"slurm_version": "1"})


class FakeAPI:
    def build(self, **kwargs: Any) -> Iterator[dict[str, str]]:
        yield {"stream": "Step 4/8 : RUN set -eux; apt-get update; apt-get install ...\n"}
        for line in APT_FAILURE.splitlines(keepends=True):
            yield {"stream": "\x1b[91mE\x1b[0m"}
            yield {"stream": "\x1b[91m" + line.removeprefix("E") + "\x1b[0m"}
        yield {"error": "The command '/bin/sh -c set -eux' returned a non-zero code: 100"}


class FakeContainers:
    def __init__(self) -> None:
        self.runs: list[str] = []

    def run(self, image: str, command: list[str], **kwargs: Any) -> bytes:
        self.runs.append(image)
        return POLICY.encode()


class FakeDocker:
    def __init__(self) -> None:
        self.api = FakeAPI()
        self.containers = FakeContainers()


def test_a_build_with_stale_pins_fails_with_the_fix(tmp_path: Path) -> None:
    variant = load_variants()["bookworm"]
    cli = FakeDocker()
    with pytest.raises(ImageError) as exc:
        build_stack_image(
            cli,  # type: ignore[arg-type]
            variant,
            "intercede-slurm:t",
            "intercede-base:bookworm",
            log=lambda _: None,
            log_file=tmp_path / "build.log",
        )
    text = str(exc.value)
    assert text.startswith("building intercede-slurm:t failed: variant bookworm")
    assert "now available: 22.05.8-4+deb12u4" in text
    assert "python -m harness pins --variant bookworm --write" in text
    assert cli.containers.runs == ["intercede-base:bookworm"]  # asked the base the build used
