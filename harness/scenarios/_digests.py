"""Integrity checks the DIRAC consumers run on fetched output: PushJobAgent's
``checksums.json`` (sha256 per file, DC-34) and RemoteRunner's ``md5sum *`` lines (DC-35).

Each returns the list of problems (empty = intact) instead of raising at the first, so a
report shows every corrupted or missing file at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

__all__ = ["file_digest", "tree_digests", "verify_md5_lines", "verify_sha256_manifest"]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative POSIX path (to compare two fetches)."""
    return {
        path.relative_to(root).as_posix(): file_digest(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _inside(root: Path, name: str) -> Path | None:
    candidate = (root / name).resolve()
    return candidate if candidate.is_relative_to(root.resolve()) else None


def verify_sha256_manifest(manifest: Mapping[str, object], root: Path) -> list[str]:
    """Every ``name: sha256`` entry matches the file under ``root``."""
    problems = []
    if not manifest:
        problems.append("the manifest lists no file")
    for name, expected in sorted(manifest.items()):
        path = _inside(root, name)
        if path is None:
            problems.append(f"{name}: escapes the output directory")
        elif not isinstance(expected, str):
            problems.append(f"{name}: checksum is not a string: {expected!r}")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif file_digest(path) != expected.lower():
            problems.append(f"{name}: sha256 mismatch")
    return problems


def verify_md5_lines(text: str, root: Path) -> list[str]:
    """Every ``<md5>  <name>`` line of ``md5sum`` output matches the file under ``root``."""
    problems = []
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        problems.append("the checksum file is empty")
    for number, line in enumerate(lines, 1):
        digest, sep, name = line.partition("  ")
        if not sep:  # md5sum's binary-mode marker is " *"
            digest, sep, name = line.partition(" *")
        if not sep or len(digest) != 32:
            problems.append(f"line {number}: not an md5sum line: {line!r}")
            continue
        path = _inside(root, name)
        if path is None:
            problems.append(f"{name}: escapes the output directory")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif file_digest(path, "md5") != digest.lower():
            problems.append(f"{name}: md5 mismatch")
    return problems
