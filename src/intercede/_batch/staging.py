"""What crosses the wire at submit: one tar stream holding the whole batch.

One stream instead of one transfer per file (or per copy) keeps submit at one round trip for
any number of copies, and the stream holds the same files whatever that number: the
executable and the inputs are staged once per batch and copied into each copy's working
directory when it starts, and what differs per copy (its environment and its secrets) is one
line per copy in two per-submission files. No file is written per copy at submit: each copy's
directory is made by its job.

Also here: the path rules (containment) shared by staging and collection.
"""

from __future__ import annotations

import base64
import io
import json
import os
import posixpath
import shlex
import tarfile
import time
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from ..config import LocalBatchConfig, SSHBatchConfig
from ..errors import SpecificationRejectedError
from ..models import CopyVars, SubmissionSpec
from .layout import BATCH_SCRIPT, COPIES, MANIFEST, SECRETS

__all__ = [
    "MAX_ARG_STRLEN",
    "build_batch_archive",
    "check_sizes",
    "check_submittable",
    "copy_records",
    "escapes",
    "is_contained",
    "manifest_bytes",
    "matches_member",
]

_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600

MAX_ARG_STRLEN = 32 * 4096
"""Linux's limit on one argv or environment string, its NUL included (``MAX_ARG_STRLEN``):
``execve`` of the payload fails with E2BIG on a longer one, and the job always ends with
exit code 126. Such items are refused at submit, before anything is sent."""


def check_submittable(spec: SubmissionSpec, config: SSHBatchConfig | LocalBatchConfig) -> None:
    """Refuse at submit what this backend could not honour after the job ran.

    SSH + Slurm has no stager: it cannot fetch URL inputs or upload outputs to URLs, and it
    runs containers only through a configured launcher template.
    """
    if spec.container_image is not None and config.container_launcher is None:
        raise SpecificationRejectedError(
            "this backend has no container_launcher configured", field="container_image"
        )
    executable = Path(spec.executable)
    if "://" in spec.executable:
        raise SpecificationRejectedError(
            "must be a local file; this backend stages files itself", field="executable"
        )
    if not executable.is_file():
        raise SpecificationRejectedError(
            f"{spec.executable} is not a readable file", field="executable"
        )
    for i, ref in enumerate(spec.inputs):
        if ref.is_url:
            raise SpecificationRejectedError(
                "URL inputs need a stager this backend does not have; stage a local copy",
                field=f"inputs[{i}].source",
            )
        if not Path(ref.source).exists():
            raise SpecificationRejectedError(
                f"{ref.source} does not exist", field=f"inputs[{i}].source"
            )
    for i, member in enumerate(spec.outputs.members):
        if member.destination is not None:
            raise SpecificationRejectedError(
                "this backend cannot upload outputs; leave destination empty and collect "
                "with get_output",
                field=f"outputs.members[{i}].destination",
            )


def check_sizes(spec: SubmissionSpec, copies: Sequence[CopyVars]) -> None:
    """Refuse an argument or an environment entry the kernel would refuse to ``execve``."""

    def check(text: str, field: str) -> None:
        size = len(text.encode("utf-8", errors="surrogatepass")) + 1
        if size > MAX_ARG_STRLEN:
            raise SpecificationRejectedError(
                f"is {size} bytes; the kernel refuses to start a program with an argument or "
                f"environment entry over {MAX_ARG_STRLEN} bytes",
                field=field,
            )

    for i, argument in enumerate(spec.arguments):
        check(argument, f"arguments[{i}]")
    for name, value in spec.environment.items():
        check(f"{name}={value}", f"environment.{name}")
    for index, copy in enumerate(copies):
        for name, value in copy.environment.items():
            check(f"{name}={value}", f"copies[{index}].environment.{name}")


def manifest_bytes(spec: SubmissionSpec) -> bytes:
    """What ``get_output`` must collect, recorded at submit: the handle is all it gets later."""
    return json.dumps(
        {
            "members": [m.pattern for m in spec.outputs.members if m.destination is None],
            "include_unlisted": spec.outputs.include_unlisted,
        },
        separators=(",", ":"),
    ).encode()


def copy_records(copies: Sequence[CopyVars]) -> tuple[bytes, bytes | None]:
    """What differs between copies, as two per-submission files of one line per copy: line
    ``i`` is copy ``i``'s, read by its job for ``$i`` (``job_script``).

    ``copies``: base64 of the copy's ``export`` lines (base64 keeps a value with newlines on
    its line). ``secrets`` (``None`` when no copy has one): space-separated ``NAME:base64``
    pairs, which the job writes to ``<copy>/secrets/NAME`` (0600) when it starts; a value an
    earlier copy already has under the same name is ``NAME:@<that copy's index>`` (DIRAC hands
    every pilot of a submit the same proxy: it travels once, not once per pilot). The number
    of files does not grow with the number of copies; the copies all run as one user, so a
    file per copy would isolate nothing from them (``docs/security.md``).
    """
    env_lines: list[bytes] = []
    secret_lines: list[bytes] = []
    first: dict[tuple[str, bytes], int] = {}
    for index, copy in enumerate(copies):
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in copy.environment.items())
        env_lines.append(base64.b64encode(exports.encode()) + b"\n")
        pairs: list[bytes] = []
        for name, secret in copy.secrets.items():
            value = secret.get_secret_value()
            owner = first.setdefault((name, value), index)
            pairs.append(
                name.encode()
                + b":"
                + (base64.b64encode(value) if owner == index else b"@%d" % owner)
            )
        secret_lines.append(b" ".join(pairs) + b"\n")
    has_secrets = any(copy.secrets for copy in copies)
    return b"".join(env_lines), b"".join(secret_lines) if has_secrets else None


def build_batch_archive(spec: SubmissionSpec, copies: Sequence[CopyVars], *, script: str) -> bytes:
    """The batch as one uncompressed tar, members relative to the batch directory.

    Its members do not depend on the number of copies: the script, the manifest, the
    executable, the inputs and the two per-copy record files (``copy_records``); each copy's
    directory is made by its job when it starts. Integer mtimes keep the members in plain
    headers, and ``tar -p`` is avoided: the modes come from the archive and the remote
    ``umask 077``.
    """
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add_dir(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, _PRIVATE_DIR, now
            tar.addfile(info)

        def add_bytes(name: str, data: bytes, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))

        add_bytes(BATCH_SCRIPT, script.encode(), 0o700)
        add_bytes(MANIFEST, manifest_bytes(spec), _PRIVATE_FILE)
        add_dir("logs")
        add_dir("bin")
        executable = Path(spec.executable)
        add_bytes(f"bin/{executable.name}", executable.read_bytes(), 0o700)
        if spec.inputs:
            add_dir("inputs")
            for i, ref in enumerate(spec.inputs):
                _add_local(tar, Path(ref.source), f"inputs/{ref.name}", f"inputs[{i}].source")
        environments, secrets = copy_records(copies)
        add_bytes(COPIES, environments, _PRIVATE_FILE)
        if secrets is not None:
            add_bytes(SECRETS, secrets, _PRIVATE_FILE)
    return buffer.getvalue()


def _add_local(tar: tarfile.TarFile, source: Path, arcname: str, field: str) -> None:
    """A local input file or directory (recursively), links followed: the job gets content.
    A link back to a directory being walked (a cycle) is refused, naming the input."""
    try:
        if source.is_dir():
            _add_tree(tar, source, arcname, frozenset(), field)
        else:
            _add_file(tar, source, arcname)
    except OSError as exc:
        raise SpecificationRejectedError(
            f"cannot read {exc.filename or source}: {exc.strerror or type(exc).__name__}",
            field=field,
        ) from None


def _add_tree(
    tar: tarfile.TarFile,
    directory: Path,
    arcname: str,
    ancestors: frozenset[tuple[int, int]],
    field: str,
) -> None:
    stat = directory.stat()
    key = (stat.st_dev, stat.st_ino)
    if key in ancestors:
        raise SpecificationRejectedError(
            f"{directory} leads back to a directory that contains it (a symlink cycle)",
            field=field,
        )
    info = tarfile.TarInfo(arcname)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, _PRIVATE_DIR, int(stat.st_mtime)
    tar.addfile(info)
    inner = ancestors | {key}
    for name in sorted(os.listdir(directory)):
        path = directory / name
        if path.is_dir():
            _add_tree(tar, path, f"{arcname}/{name}", inner, field)
        else:
            _add_file(tar, path, f"{arcname}/{name}")


def _add_file(tar: tarfile.TarFile, source: Path, arcname: str) -> None:
    stat = source.stat()
    info = tarfile.TarInfo(arcname)
    info.size, info.mtime = stat.st_size, int(stat.st_mtime)
    info.mode = 0o700 if stat.st_mode & 0o111 else _PRIVATE_FILE
    with source.open("rb") as handle:
        tar.addfile(info, handle)


# --- containment --------------------------------------------------------------------------


def is_contained(relative: str) -> bool:
    """Whether a member name stays inside its directory: relative, no ``..``, no NUL."""
    if not relative or relative.startswith("/") or "\x00" in relative:
        return False
    return ".." not in PurePosixPath(relative).parts


def escapes(relative: str, link_target: str) -> bool:
    """Whether a symlink at ``relative`` pointing to ``link_target`` leaves the directory."""
    if not link_target or link_target.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), link_target))
    return resolved == ".." or resolved.startswith("../")


def matches_member(pattern: str, relative: str) -> bool:
    """Whether ``relative`` is selected by an output pattern: the pattern matches the path or
    one of its parent directories (a directory brings its whole tree). ``*`` stays within one
    path segment; ``**`` spans any number of them."""
    pattern_parts = [p for p in pattern.split("/") if p not in ("", ".")]
    parts = relative.split("/")
    return any(_match(pattern_parts, parts[:k]) for k in range(1, len(parts) + 1))


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and _match(pattern[1:], parts[1:])
