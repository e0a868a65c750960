"""The Slurm and munge pins of ``slurm-stack/variants.toml``.

Debian keeps only the newest version of a package in a suite, so a point release makes a
pinned build fail at ``apt-get install``. We keep the pins (a regression run must say which
Slurm it tested) but turn apt's terse "Version ... was not found" into a message naming the
variant, the pin, what the suite offers now and the one command that refreshes the pin; that
command asks the variant's own base image, so it sees exactly what a build would see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.config import Variant

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker

__all__ = [
    "MUNGE_PACKAGES",
    "SLURM_PACKAGES",
    "PinProblem",
    "available_versions",
    "parse_candidates",
    "pin_message",
    "pin_problems",
    "refresh_command",
    "refresh_pins",
    "unavailable_pins",
]

SLURM_PACKAGES = ("slurmctld", "slurmd", "slurmdbd", "slurm-client")
MUNGE_PACKAGES = ("munge",)
_NOT_FOUND = re.compile(r"Version '(?P<version>[^']+)' for '(?P<package>[^']+)' was not found")
# The engine colours the build's stderr and splits it at arbitrary points ("E", ": ", ...).
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CANDIDATE = re.compile(r"^(?P<package>\S+):\s*$|^\s+Candidate:\s*(?P<candidate>\S+)\s*$")


@dataclass(frozen=True)
class PinProblem:
    """One pin apt could not install, and what the suite offers instead (None: nothing)."""

    field: str
    pinned: str
    packages: tuple[str, ...]
    available: str | None


def _field(package: str) -> str | None:
    if package in SLURM_PACKAGES:
        return "slurm_version"
    if package in MUNGE_PACKAGES:
        return "munge_version"
    return None


def unavailable_pins(output: str) -> dict[str, str]:
    """``package -> pinned version`` for every "Version ... was not found" in apt's output.

    ``output`` is the build stream as received, concatenated: not split into lines first,
    since the engine's chunks cut apt's messages anywhere.
    """
    text = _ANSI.sub("", output)
    return {m["package"]: m["version"] for m in _NOT_FOUND.finditer(text)}


def parse_candidates(policy: str) -> dict[str, str]:
    """``package -> candidate version`` from ``apt-cache policy``; "(none)" is left out."""
    result: dict[str, str] = {}
    package: str | None = None
    for line in policy.splitlines():
        match = _CANDIDATE.match(line)
        if match is None:
            continue
        if match["package"]:
            package = match["package"]
        elif package is not None and match["candidate"] != "(none)":
            result[package] = match["candidate"]
    return result


def refresh_command(variant: str) -> str:
    return f"python -m harness pins --variant {variant} --write"


def pin_problems(
    variant: Variant, missing: Mapping[str, str], available: Mapping[str, str]
) -> list[PinProblem]:
    """Group apt's per-package complaints by the variants.toml field they come from."""
    by_field: dict[str, list[str]] = {}
    for package in sorted(missing):
        field = _field(package)
        if field is not None:
            by_field.setdefault(field, []).append(package)
    pinned = {"slurm_version": variant.slurm_version, "munge_version": variant.munge_version}
    out = []
    for field, packages in by_field.items():
        offered = next((available[p] for p in packages if p in available), None)
        out.append(PinProblem(field, pinned[field], tuple(packages), offered))
    return out


def pin_message(variant: Variant, found: list[PinProblem]) -> str:
    lines = [
        f"variant {variant.name}: the {variant.suite} archive no longer offers the pinned "
        "version (Debian keeps only the newest version of a package in a suite):"
    ]
    for p in found:
        now = p.available or "nothing (package gone from the suite)"
        lines.append(
            f"  {p.field} = {p.pinned!r} ({', '.join(p.packages)}): not installable; "
            f"now available: {now}"
        )
    lines.append(
        f"Refresh slurm-stack/variants.toml, review the diff, then rebuild:\n"
        f"  {refresh_command(variant.name)}"
    )
    return "\n".join(lines)


def available_versions(
    cli: docker.DockerClient,
    base: str,
    packages: Iterable[str] = (*SLURM_PACKAGES, *MUNGE_PACKAGES),
) -> dict[str, str]:
    """What ``apt-get install`` in ``base`` would pick now, asked of the base itself."""
    names = " ".join(packages)
    output = cli.containers.run(
        base,
        ["sh", "-c", f"apt-get update -qq >/dev/null 2>&1; apt-cache policy {names}"],
        remove=True,
        stdout=True,
        stderr=False,
    )
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    return parse_candidates(text)


def refresh_pins(text: str, variant: str, values: Mapping[str, str]) -> str:
    """Rewrite ``field = "..."`` lines inside ``[variant]`` only, keeping comments and order."""
    lines = text.splitlines(keepends=True)
    section: str | None = None
    seen: set[str] = set()
    for i, line in enumerate(lines):
        header = re.match(r"^\[(?P<name>[^\]]+)\]\s*$", line)
        if header:
            section = header["name"].strip()
            continue
        if section != variant:
            continue
        key = re.match(r'^(?P<key>[a-z_]+)\s*=\s*"[^"]*"(?P<rest>.*)$', line.rstrip("\n"))
        if key and key["key"] in values:
            lines[i] = f'{key["key"]} = "{values[key["key"]]}"{key["rest"]}\n'
            seen.add(key["key"])
    missing = set(values) - seen
    if missing:
        raise ValueError(f"variants.toml: [{variant}] has no {', '.join(sorted(missing))}")
    return "".join(lines)
