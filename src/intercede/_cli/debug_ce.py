"""``intercede-debug-ce``: interCEde's ``dirac-admin-debug-ce`` (DC-37).

It drives real backends through the sync facade (``intercede.sync``) the way a DIRAC agent
thread would, one thread per queue, and answers one question an operator asks: "does this
CE work end to end right now?". Exit status: 0 every check passed, 1 a check failed, 2 the
configuration is invalid, the resource could not be reached or a queue's check stopped on an
unexpected error (nothing was learnt about it), 130 interrupted by Ctrl-C. Each queue is checked
on its own: one queue's failure, whatever it is, never loses another queue's report.

Ctrl-C stops every queue within about a second (the main thread interrupts each facade's call
in flight), then each queue kills and purges what it submitted and the partial report is
printed; a second Ctrl-C exits at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

import intercede
from intercede import sync
from intercede.config import LocalBatchConfig, SSHBatchConfig
from intercede.credentials import CredentialProvider
from intercede.errors import ConfigurationError, InterCEdeError
from intercede.models import JobHandle
from intercede.registry import load_config

from ._progress import make_progress
from ._queue_check import WHOLE_RESOURCE_ERRORS, FacadeFactory, Options, QueueStop, check_queue
from ._report import (
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    QueueReport,
    RunReport,
    now,
    render_json,
    render_text,
)

__all__ = ["DEBUG_ENV", "QueueTarget", "build_parser", "main", "run", "select_queues"]

PROG = "intercede-debug-ce"
DEBUG_ENV = "INTERCEDE_DEBUG"
_STOP_POLL_S = 0.2
"""How often the main thread re-interrupts queues after Ctrl-C until they clean up."""
_log = logging.getLogger("intercede.debug_ce")


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


def _log_level(text: str) -> tuple[str, int]:
    """``LEVEL`` (interCEde's loggers) or ``LOGGER=LEVEL`` (``asyncssh=DEBUG``, say)."""
    name, sep, level = text.rpartition("=")
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise argparse.ArgumentTypeError(
            f"unknown level {level!r}; one of DEBUG, INFO, WARNING, ERROR"
        )
    return (name if sep else "intercede"), number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Check Computing Elements end to end through interCEde's sync facade: load "
            "counts, submit stamped jobs, wait for them, fetch and check their output, kill a "
            "running job, purge. The equivalent of dirac-admin-debug-ce."
        ),
        epilog="Exit status: 0 all checks passed, 1 a check failed, 2 invalid configuration, "
        "unreachable resource or an unexpected error, 130 interrupted (Ctrl-C).",
    )
    parser.add_argument(
        "configs",
        nargs="+",
        type=Path,
        metavar="CONFIG",
        help="interCEde queue file(s) (TOML with [defaults], [queues.<name>], [credentials])",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {intercede.__version__}")
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="check only this queue (repeatable; default: every queue in every file)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration, connect and ask each queue for its load counts; "
        "submit nothing",
    )
    parser.add_argument(
        "--purge",
        nargs="+",
        default=[],
        metavar="REF",
        help="kill and purge these job references (as printed after --keep) on the one "
        "queue --queue names; run no checks",
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
        help="one deadline per queue for all its waits (default 1800)",
    )
    parser.add_argument(
        "--copies",
        type=_positive_int,
        default=1,
        metavar="N",
        help="copies of the script to submit per queue, each with its own stamp (default 1)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the jobs on the resource; the report prints the command removing them",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log interCEde's operations on stderr (-v INFO, -vv DEBUG)",
    )
    parser.add_argument(
        "--log-level",
        action="append",
        type=_log_level,
        default=[],
        metavar="[LOGGER=]LEVEL",
        help="log level of interCEde's loggers, or of LOGGER (asyncssh=INFO shows the SSH "
        "library's own log, which is off otherwise); repeatable",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=os.environ.get(DEBUG_ENV, "") not in ("", "0"),
        help="print the traceback of an unexpected error on stderr "
        f"(also {DEBUG_ENV}=1); without it, only its type and message",
    )
    return parser


def configure_logging(verbose: int, levels: Sequence[tuple[str, int]], stream: TextIO) -> None:
    """interCEde's loggers on ``stream`` at the asked level; asyncssh's (which logs whole
    remote scripts at INFO) stays at WARNING unless named explicitly."""
    chosen = dict(levels)
    if verbose and "intercede" not in chosen:
        chosen["intercede"] = logging.DEBUG if verbose > 1 else logging.INFO
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("asyncssh").setLevel(chosen.pop("asyncssh", logging.WARNING))
    if "asyncssh" in dict(levels):
        logging.getLogger("asyncssh").addHandler(handler)
    for name, level in chosen.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)


def select_queues(paths: Sequence[Path], names: Sequence[str]) -> list[QueueTarget]:
    """Every requested queue across the files; a name found in none is a configuration error.

    Labels are the queue names, qualified by the file only when two files share a name. Every
    file is read before anything is raised, so all their problems come out at once.
    """
    files, problems = [], []
    for path in paths:
        try:
            files.append(load_config(path))
        except ConfigurationError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigurationError("\n".join(problems))
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
            credentials=f.credentials_for(name),
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
    interrupt: threading.Event | None = None,
) -> RunReport:
    """Check every target concurrently (one thread per queue, like DIRAC) and report.

    Setting ``interrupt`` (a Ctrl-C handler does) stops every queue: the main thread keeps
    interrupting each queue's facade until that queue has started cleaning up."""
    report = RunReport(tool_version=intercede.__version__)
    started = time.monotonic()
    stopping = interrupt or threading.Event()
    progress = make_progress(stream or sys.stdout, [t.label for t in targets], json_mode=json_mode)
    workdir = Path(tempfile.mkdtemp(prefix="intercede-debug-ce-"))
    stops = [QueueStop() for _ in targets]
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
                    stop,
                )
                for t, stop in zip(targets, stops, strict=True)
            ]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=_STOP_POLL_S, return_when=FIRST_COMPLETED)
                if stopping.is_set():
                    report.interrupted = True
                    for stop in stops:
                        stop.request()
            queues: list[QueueReport] = [f.result() for f in futures]
    finally:
        progress.finish()
        shutil.rmtree(workdir, ignore_errors=True)
    report.queues = queues
    report.interrupted = report.interrupted or any(q.interrupted for q in queues)
    report.duration_s = time.monotonic() - started
    report.finished_at = now()
    return report


@contextmanager
def _sigint(err: TextIO) -> Iterator[threading.Event]:
    """First Ctrl-C: set the event (the run stops and cleans up). Second: exit 130 at once."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if event.is_set():
            os.write(err.fileno() if _has_fileno(err) else 2, b"interrupted again: exiting now\n")
            os._exit(EXIT_INTERRUPTED)
        event.set()
        message = (
            f"{PROG}: interrupted: stopping every queue and removing its jobs "
            "(Ctrl-C again to exit at once, leaving them)\n"
        )
        os.write(err.fileno() if _has_fileno(err) else 2, message.encode())

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def _has_fileno(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True


def check_only(targets: Sequence[QueueTarget], factory: FacadeFactory, out: TextIO) -> int:
    """``--check``: the config is valid (it loaded); connect and ask each queue's load."""
    code = EXIT_OK
    for target in targets:
        try:
            with factory(target.config, target.credentials) as ce:
                if isinstance(ce, sync.LoadReporter):
                    counts = ce.counts(timeout=target.config.command_timeout_s)
                    state = counts.queue_state or "state unknown"
                    line = f"running {counts.running}, waiting {counts.waiting}, queue {state}"
                    if counts.queue_state not in (None, "UP"):
                        code = max(code, EXIT_CHECK_FAILED)
                        line += " (starts no jobs)"
                else:
                    line = "connected (the backend reports no load counts)"
        except InterCEdeError as exc:
            code = EXIT_ERROR
            line = f"error: {type(exc).__name__}: {exc}"
        out.write(f"- {target.label}: {line}\n")
    return code


def purge_refs(
    target: QueueTarget, refs: Sequence[str], factory: FacadeFactory, out: TextIO
) -> int:
    """``--purge``: kill what still lives among ``refs``, then purge them all."""
    handles = []
    for ref in refs:
        try:
            handles.append(JobHandle.parse(ref))
        except ValueError:
            raise ConfigurationError(f"not a job reference: {ref!r}", field="--purge") from None
    with factory(target.config, target.credentials) as ce:
        if isinstance(ce, sync.Killable):
            ce.kill(handles, timeout=60)
            sync.wait_for_jobs(ce, handles, deadline_s=30, first_s=0.25, cap_s=1)
        if not isinstance(ce, sync.Purgeable):
            out.write(f"- {target.label}: the backend cannot purge jobs\n")
            return EXIT_CHECK_FAILED
        outcomes = ce.purge(handles, timeout=60)
    code = EXIT_OK
    for handle in handles:
        outcome = outcomes.get(handle.id)
        ok = outcome is not None and outcome.ok
        code = code if ok else EXIT_CHECK_FAILED
        why = "purged" if ok else (outcome.reason if outcome else "missing from the result")
        out.write(f"- {handle.id}: {why}\n")
    return code


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
    configure_logging(args.verbose, args.log_level, err)
    try:
        if args.script is not None and not args.script.is_file():
            raise ConfigurationError(f"no such file: {args.script}", field="--script")
        if args.purge and len(args.queue) != 1:
            raise ConfigurationError("--purge needs exactly one --queue", field="--queue")
        targets = select_queues(args.configs, args.queue)
        if args.purge:
            return purge_refs(targets[0], args.purge, factory, out)
    except ConfigurationError as exc:
        err.write(f"{PROG}: error: invalid configuration:\n")
        for line in str(exc).splitlines():
            err.write(f"  {line}\n")
        if args.json:
            out.write(render_json(RunReport(tool_version=intercede.__version__, error=str(exc))))
        return EXIT_ERROR
    except WHOLE_RESOURCE_ERRORS as exc:
        err.write(f"{PROG}: error: {type(exc).__name__}: {exc}\n")
        return EXIT_ERROR
    if args.check:
        return check_only(targets, factory, out)
    options = Options(
        script=args.script.resolve() if args.script is not None else None,
        timeout_s=args.timeout,
        copies=args.copies,
        keep=args.keep,
        debug=args.debug,
    )
    with _sigint(err) as interrupt:
        report = run(
            targets, options, factory=factory, stream=out, json_mode=args.json, interrupt=interrupt
        )
    out.write(render_json(report) if args.json else render_text(report))
    out.flush()
    if report.exit_code == EXIT_ERROR:
        for queue in report.queues:
            if queue.error is not None:
                err.write(f"{PROG}: error: queue {queue.queue}: {queue.error}\n")
            if queue.traceback is not None:
                err.write(f"{PROG}: traceback for queue {queue.queue}:\n{queue.traceback}")
        if not args.debug and any(
            q.error is not None and q.error.startswith("unexpected ") for q in report.queues
        ):
            err.write(f"{PROG}: rerun with --debug (or {DEBUG_ENV}=1) for the traceback\n")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
