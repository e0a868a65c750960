"""``python -m harness <command>``: one entry point for the stack, e2e and regression runs.

Every command is a row of :data:`COMMANDS`: a name, a one-line help and the module that
implements it. A module is imported only when its command is run, so ``status`` works while
the e2e code (which pulls in the interCEde CLI and the scenarios) is being edited, and
``--help`` lists every command without importing any of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A subcommand implemented by ``module``'s functions ``configure`` and ``run``."""

    name: str
    help: str
    module: str
    configure: str = "configure"
    run: str = "run"

    def load(self) -> tuple[Configure, Run]:
        mod = importlib.import_module(self.module)
        return (
            cast(Configure, getattr(mod, self.configure)),
            cast(Run, getattr(mod, self.run)),
        )


_STACK = "harness._stack_cli"

COMMANDS: tuple[Command, ...] = (
    Command("engine", "find or start a container engine", _STACK, "configure_engine", "run_engine"),
    Command(
        "up", "build if needed and start (or reuse) the stack", _STACK, "configure_up", "run_up"
    ),
    Command(
        "down",
        "remove the stack's containers, network and volumes",
        _STACK,
        "add_stack_args",
        "run_down",
    ),
    Command("status", "show containers and readiness", _STACK, "add_stack_args", "run_status"),
    Command("logs", "print container logs", _STACK, "configure_logs", "run_logs"),
    Command("ssh", "ssh to the login node as the submit user", _STACK, "configure_ssh", "run_ssh"),
    Command(
        "config-path",
        "print the path of a stack's interCEde client config (written by up)",
        _STACK,
        "add_stack_args",
        "run_config_path",
    ),
    Command(
        "e2e",
        "cluster up (or reuse), debug-CE spike on every partition, every DIRAC scenario",
        "harness.e2e",
        run="main",
    ),
    Command(
        "regress",
        "every scenario and the debug-CE spike on each Slurm variant; report under reports/",
        "harness.regress",
        run="main",
    ),
    Command(
        "pins",
        "show the Slurm/munge versions a variant's suite offers now; --write refreshes the pins",
        "harness.pins_cli",
    ),
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` set, one where just that command is configured.

    ``main`` passes the command it is about to run, so only that module is imported.
    """
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="One entry point for the interCEde Slurm stack, e2e and regression runs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if only is None or cmd.name == only:
            configure, run = cmd.load()
            configure(p)
            p.set_defaults(_run=run)
    return parser


def _chosen(argv: Sequence[str]) -> str | None:
    names = {cmd.name for cmd in COMMANDS}
    return argv[0] if argv and argv[0] in names else None


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen(args_in)
    # No known command (e.g. --help): list every command without importing any of them.
    parser = build_parser(only=chosen if chosen is not None else "")
    args = parser.parse_args(args_in)
    run: Run = args._run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from harness.cluster import StackError
        from harness.engine import EngineError
        from harness.image import ImageError

        if isinstance(exc, StackError | EngineError | ImageError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
