"""``intercede-debug-ce``: interCEde's ``dirac-admin-debug-ce`` (DC-37).

It drives real backends through the sync facade (``intercede.sync``) the way a DIRAC agent
thread would, one thread per queue, and answers one question an operator asks: "does this
CE work end to end right now?". Exit status: 0 every check passed, 1 a check failed, 2 the
configuration is invalid, the resource could not be reached or a queue's check stopped on an
unexpected error (nothing was learnt about it). Each queue is checked on its own: one queue's
failure, whatever it is, never loses another queue's report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from intercede import sync
from intercede.config import LocalBatchConfig, SSHBatchConfig
from intercede.credentials import CredentialProvider
from intercede.errors import ConfigurationError
from intercede.registry import load_config

from ._progress import make_progress
from ._queue_check import FacadeFactory, Options, check_queue
from ._report import EXIT_ERROR, QueueReport, RunReport, render_json, render_text

__all__ = ["DEBUG_ENV", "QueueTarget", "build_parser", "main", "run", "select_queues"]

PROG = "intercede-debug-ce"
DEBUG_ENV = "INTERCEDE_DEBUG"


@dataclass(frozen=True)
class QueueTarget:
    label: str
    config_path: Path
    config: SSHBatchConfig | LocalBatchConfig
    credentials: CredentialProvider


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Check Computing Elements end to end through interCEde's sync facade: load "
            "counts, submit stamped jobs, poll them to completion, fetch and check their "
            "output, kill a running job, purge. The equivalent of dirac-admin-debug-ce."
        ),
        epilog="Exit status: 0 all checks passed, 1 a check failed, 2 invalid configuration, "
        "unreachable resource or an unexpected error.",
    )
    parser.add_argument(
        "configs",
        nargs="+",
        type=Path,
        metavar="CONFIG",
        help="interCEde queue file(s) (TOML with [defaults], [queues.<name>], [credentials])",
    )
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="check only this queue (repeatable; default: every queue in every file)",
    )
    parser.add_argument(
        "--script",
        type=Path,
        help="executable to submit (default: a probe printing hostname, date and "
        "$DIRAC_PILOT_STAMP); its stdout must echo $DIRAC_PILOT_STAMP",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=1800.0,
        metavar="SECONDS",
        help="bound on each wait for jobs to change state (default 1800)",
    )
    parser.add_argument(
        "--copies",
        type=_positive_int,
        default=1,
        metavar="N",
        help="copies of the script to submit per queue, each with its own stamp (default 1)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the jobs on the resource (skip purge)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=os.environ.get(DEBUG_ENV, "") not in ("", "0"),
        help="print the traceback of an unexpected error on stderr "
        f"(also {DEBUG_ENV}=1); without it, only its type and message",
    )
    return parser


def select_queues(paths: Sequence[Path], names: Sequence[str]) -> list[QueueTarget]:
    """Every requested queue across the files; a name found in none is a configuration error.

    Labels are the queue names, qualified by the file only when two files share a name.
    """
    files = [load_config(path) for path in paths]
    unknown = [name for name in names if not any(name in f.queues for f in files)]
    if unknown:
        known = sorted({q for f in files for q in f.queues})
        raise ConfigurationError(
            f"no queue {', '.join(map(repr, unknown))} in {', '.join(map(str, paths))}; "
            f"known: {', '.join(known)}",
            field="--queue",
        )
    chosen = [
        (f, name, config)
        for f in files
        for name, config in f.select([n for n in names if n in f.queues] or None).items()
        if not names or name in names
    ]
    seen: dict[str, int] = {}
    for _, name, _ in chosen:
        seen[name] = seen.get(name, 0) + 1
    return [
        QueueTarget(
            label=name if seen[name] == 1 else f"{f.path}:{name}",
            config_path=f.path,
            config=config,
            credentials=f.credentials(),
        )
        for f, name, config in chosen
    ]


def _default_factory(
    config: SSHBatchConfig | LocalBatchConfig, credentials: CredentialProvider
) -> sync.JobBackend:
    return sync.backend(config, credentials)


def run(
    targets: Sequence[QueueTarget],
    options: Options,
    *,
    factory: FacadeFactory = _default_factory,
    stream: TextIO | None = None,
    json_mode: bool = False,
) -> RunReport:
    """Check every target concurrently (one thread per queue, like DIRAC) and report."""
    started = time.monotonic()
    progress = make_progress(stream or sys.stdout, [t.label for t in targets], json_mode=json_mode)
    workdir = Path(tempfile.mkdtemp(prefix="intercede-debug-ce-"))
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            futures = [
                pool.submit(
                    check_queue,
                    t.label,
                    t.config_path,
                    t.config,
                    t.credentials,
                    options,
                    progress,
                    factory,
                    workdir,
                )
                for t in targets
            ]
            queues: list[QueueReport] = [f.result() for f in futures]
    finally:
        progress.finish()
        shutil.rmtree(workdir, ignore_errors=True)
    return RunReport(queues=queues, duration_s=time.monotonic() - started)


def main(
    argv: Sequence[str] | None = None,
    *,
    factory: FacadeFactory = _default_factory,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        if args.script is not None and not args.script.is_file():
            raise ConfigurationError(f"no such file: {args.script}", field="--script")
        targets = select_queues(args.configs, args.queue)
    except ConfigurationError as exc:
        report = RunReport(queues=[], error=f"invalid configuration: {exc}")
    else:
        options = Options(
            script=args.script.resolve() if args.script is not None else None,
            timeout_s=args.timeout,
            copies=args.copies,
            keep=args.keep,
            debug=args.debug,
        )
        report = run(targets, options, factory=factory, stream=out, json_mode=args.json)
    out.write(render_json(report) if args.json else render_text(report))
    out.flush()
    if report.exit_code == EXIT_ERROR:
        messages = [report.error] if report.error is not None else []
        messages += [f"queue {q.label}: {q.error}" for q in report.queues if q.error is not None]
        for message in messages:
            err.write(f"{PROG}: error: {message}\n")
        for queue in report.queues:
            if queue.traceback is not None:
                err.write(f"{PROG}: traceback for queue {queue.label}:\n{queue.traceback}")
        if not args.debug and any(
            q.error is not None and q.error.startswith("unexpected ") for q in report.queues
        ):
            err.write(f"{PROG}: rerun with --debug (or {DEBUG_ENV}=1) for the traceback\n")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
