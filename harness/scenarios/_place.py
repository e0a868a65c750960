"""Putting a fetched job's output where a DIRAC consumer expects it, as the DIRAC-side adapter
does (``docs/examples/dirac_adapter/output.py``): payload files move from ``JobOutput.root``
into the caller's directory with their relative paths, and the two streams land beside them
as ``<stem>.out``/``<stem>.err``. Nothing here knows a backend's layout under ``dest``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from intercede.models import JobOutput

__all__ = ["Placed", "place_output"]

Placed = tuple[Path, Path]
"""The stdout and stderr paths in the caller's directory."""


def place_output(output: JobOutput, directory: Path, stem: str) -> Placed:
    """Move payload files and streams into ``directory``; refuse before moving anything when a
    payload file lies outside ``output.root`` or would overwrite a stream's name."""
    streams = {Path(f"{stem}.out"), Path(f"{stem}.err")}
    moves: list[tuple[Path, Path]] = []
    for source in output.files:
        if not source.is_relative_to(output.root):
            raise ValueError(f"payload file {source} lies outside the output root {output.root}")
        relative = source.relative_to(output.root)
        if relative in streams:
            raise FileExistsError(f"payload file {relative} collides with a stream's name")
        moves.append((source, directory / relative))
    directory.mkdir(parents=True, exist_ok=True)
    for source, target in moves:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    placed = []
    for stream, name in ((output.stdout, f"{stem}.out"), (output.stderr, f"{stem}.err")):
        target = directory / name
        if stream is None:
            target.write_text("")
        else:
            shutil.move(stream, target)
        placed.append(target)
    return placed[0], placed[1]
