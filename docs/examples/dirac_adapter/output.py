"""A job's streams and files, in the shapes DIRAC's ``getJobOutput``/``getJobLog`` return.

Reading two streams must not cost a transfer of the whole payload (up to the backend's
``output_max_bytes``/``output_max_files``): when the facade is ``Diagnosable`` and the backend
serves every wanted stream under a diagnostics name, the streams are read with
``get_diagnostics``; otherwise, or when a diagnostics answer is only a tail (``truncated``) or
a refusal, the job's output is collected into a temporary directory and the streams read there.

Placing output into a caller's directory relies only on ``JobOutput.root`` (the directory the
payload files were collected into) and the stream paths, never on a backend's layout.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from intercede import Diagnostics, JobHandle, JobOutput, OpOutcome, sync

__all__ = ["SLURM_STREAM_NAMES", "Stream", "collect", "place", "read_streams"]

Stream = Literal["stdout", "stderr", "log"]

SLURM_STREAM_NAMES: Mapping[Stream, str | None] = {
    "stdout": ":stdout",
    "stderr": ":stderr",
    "log": ":log",
}
"""The ``get_diagnostics`` name under which interCEde's Slurm backend serves each stream.

The backend keeps the streams outside the job's working directory (so a payload file called
``stderr`` cannot pass for the stream) and serves them under reserved names that no payload
path can take (a payload file literally named ``:stderr`` is read as ``./:stderr``).
"""


def read_streams(
    backend: sync.JobBackend,
    handle: JobHandle,
    wanted: Sequence[Stream],
    names: Mapping[Stream, str | None],
) -> dict[Stream, str | None] | OpOutcome:
    """The text of each wanted stream (``None``: the resource keeps no such stream), or the
    reason the job has none. Whole-operation failures raise ``InterCEdeError``."""
    if isinstance(backend, sync.Diagnosable) and all(stream in names for stream in wanted):
        texts = _diagnose(backend, handle, wanted, names)
        if texts is not None:
            return texts
    with tempfile.TemporaryDirectory(prefix="intercede-streams-") as tmp:
        got = collect(backend, handle, Path(tmp))
        if isinstance(got, OpOutcome):
            return got
        paths: dict[Stream, Path | None] = {
            "stdout": got.stdout,
            "stderr": got.stderr,
            "log": got.log,
        }
        return {stream: _read(paths[stream]) for stream in wanted}


def collect(backend: sync.JobBackend, handle: JobHandle, dest: Path) -> JobOutput | OpOutcome:
    """One job's output under ``dest``, or why it has none."""
    if not isinstance(backend, sync.OutputRetriever):
        return OpOutcome(ok=False, reason="this backend cannot return output")
    got = backend.get_output([handle], dest).get(handle.id)
    return got if got is not None else OpOutcome(ok=False, reason="no output returned")


def place(got: JobOutput, local_dir: Path, stem: str) -> tuple[str, str]:
    """Move the payload files (relative paths kept) and both streams, as ``<stem>.out`` and
    ``<stem>.err``, into ``local_dir``; the two stream paths.

    Every file is checked before anything moves: a payload file that would overwrite a stream
    raises ``FileExistsError`` (they stay separate, as in interCEde's own layout), and one
    outside ``got.root`` raises ``ValueError``.
    """
    streams = {Path(f"{stem}.out"), Path(f"{stem}.err")}
    moves: list[tuple[Path, Path]] = []
    for source in got.files:
        if not source.is_relative_to(got.root):
            raise ValueError(f"payload file {source.name} lies outside the job's output root")
        relative = source.relative_to(got.root)
        if relative in streams:
            raise FileExistsError(f"payload file {relative} collides with the job's stream name")
        moves.append((source, local_dir / relative))
    local_dir.mkdir(parents=True, exist_ok=True)
    for source, target in moves:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    paths = []
    for stream, name in ((got.stdout, f"{stem}.out"), (got.stderr, f"{stem}.err")):
        target = local_dir / name
        if stream is None:
            target.write_text("")
        else:
            shutil.move(stream, target)
        paths.append(str(target))
    return paths[0], paths[1]


def _diagnose(
    backend: sync.Diagnosable,
    handle: JobHandle,
    wanted: Sequence[Stream],
    names: Mapping[Stream, str | None],
) -> dict[Stream, str | None] | None:
    texts: dict[Stream, str | None] = {}
    for stream in wanted:
        got = backend.get_diagnostics([handle], names[stream]).get(handle.id)
        if not isinstance(got, Diagnostics) or got.truncated:
            return None  # a refusal or a tail is not the stream: collect it instead
        texts[stream] = got.content.decode(errors="replace")
    return texts


def _read(path: Path | None) -> str | None:
    return path.read_text(errors="replace") if path is not None else None
