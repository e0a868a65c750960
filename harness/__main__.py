"""``python -m harness <command>``: one entry point for the stack, e2e and regression runs.

Subcommands come from a small registry so other modules (``harness.e2e``, ``harness.regress``)
add theirs without touching the parser code: append a :class:`Command` to :data:`COMMANDS`, or
list a module in :data:`PLUGIN_MODULES` that defines ``COMMAND`` (imported lazily; a missing
module is skipped so partial checkouts still work).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["COMMANDS", "PLUGIN_MODULES", "Command", "add_stack_args", "build_parser", "main"]

# Under ``python -m harness`` this module is ``__main__``; alias it so a plugin's
# ``from harness.__main__ import Command`` gets THIS Command class (else isinstance fails).
sys.modules.setdefault("harness.__main__", sys.modules[__name__])


@dataclass(frozen=True)
class Command:
    """A subcommand: name, one-line help, how to add its arguments, what to run."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_stack_args(p: argparse.ArgumentParser, *, topology: bool = False) -> None:
    """Arguments every stack command shares; ``topology`` adds those only ``up`` needs."""
    p.add_argument(
        "--name",
        default=None,
        help="stack name (default: $INTERCEDE_STACK or 'intercede')",
    )
    if topology:
        p.add_argument(
            "--variant",
            default=os.environ.get("SLURM_VARIANT", "bookworm"),
            help="Slurm variant from slurm-stack/variants.toml (bookworm, trixie)",
        )
        p.add_argument("--workers", type=int, default=2, help="number of slurmd nodes")
        p.add_argument(
            "--partitions",
            default="main,second",
            help="comma-separated partitions over all workers; the first is the default",
        )
        p.add_argument(
            "--image",
            default=None,
            help="use this already-loaded stack image, skip the build "
            "(default: $INTERCEDE_STACK_IMAGE)",
        )


def _cluster(args: argparse.Namespace) -> object:
    from harness.cluster import Cluster

    kwargs: dict[str, object] = {}
    if getattr(args, "variant", None):
        kwargs["variant"] = args.variant
    if getattr(args, "workers", None):
        kwargs["workers"] = args.workers
    if getattr(args, "partitions", None):
        kwargs["partitions"] = [p for p in args.partitions.split(",") if p]
    if getattr(args, "image", None):
        kwargs["image"] = args.image
    return Cluster(args.name, **kwargs)  # type: ignore[arg-type]


def _run_engine(args: argparse.Namespace) -> int:
    from harness.engine import ensure_engine

    info = ensure_engine()
    how = "started" if info.started_by_us else "found"
    print(f"engine {how}: {info.host} (version {info.version})")
    return 0


def _run_up(args: argparse.Namespace) -> int:
    from harness.cluster import Cluster

    cluster = _cluster(args)
    assert isinstance(cluster, Cluster)
    reused = cluster.up()
    print(f"stack {cluster.name} {'reused' if reused else 'up'}: ssh port {cluster.ssh_port}")
    print(f"client config: {cluster.client_config_path}")
    return 0


def _run_down(args: argparse.Namespace) -> int:
    from harness.cluster import Cluster

    cluster = Cluster(args.name)
    cluster.down()
    left = cluster.leftovers()
    if any(left.values()):
        print(f"left behind: {left}", file=sys.stderr)
        return 1
    print(f"stack {cluster.name} removed")
    return 0


def _run_status(args: argparse.Namespace) -> int:
    from harness.cluster import Cluster

    cluster = Cluster(args.name)
    rows = cluster.status()
    width = max(len(r.container) for r in rows)
    print(f"{'NODE':<11} {'CONTAINER':<{width}} {'STATE':<9} HEALTH")
    for r in rows:
        print(f"{r.node:<11} {r.container:<{width}} {r.state:<9} {r.health}")
    if all(r.state == "running" for r in rows):
        problem = cluster.readiness_problem()
        verdict = "ready" if problem is None else f"NOT ready: {problem.service}: {problem.detail}"
        print(f"\nstack {cluster.name}: {verdict}; ssh port {cluster.ssh_port}")
        print(f"client config: {cluster.client_config_path}")
        return 0 if problem is None else 1
    return 1


def _configure_logs(p: argparse.ArgumentParser) -> None:
    add_stack_args(p)
    p.add_argument("node", nargs="?", default=None, help="one node (default: all)")
    p.add_argument("--tail", type=int, default=None, help="last N lines per node")


def _run_logs(args: argparse.Namespace) -> int:
    from harness.cluster import Cluster

    for node, text in Cluster(args.name).logs(args.node, tail=args.tail).items():
        print(f"===== {node} =====")
        print(text.rstrip())
    return 0


def _configure_ssh(p: argparse.ArgumentParser) -> None:
    add_stack_args(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="remote command (default: shell)")


def _run_ssh(args: argparse.Namespace) -> int:
    from harness.cluster import Cluster

    cluster = Cluster(args.name)
    argv = cluster.ssh_argv(*args.command, batch=bool(args.command))
    if not args.command:
        argv.insert(1, "-t")
    return subprocess.run(argv, check=False).returncode


COMMANDS: list[Command] = [
    Command("engine", "find or start a container engine", lambda p: None, _run_engine),
    Command(
        "up",
        "build if needed and start (or reuse) the stack",
        lambda p: add_stack_args(p, topology=True),
        _run_up,
    ),
    Command(
        "down", "remove the stack's containers, network and volumes", add_stack_args, _run_down
    ),
    Command("status", "show containers and readiness", add_stack_args, _run_status),
    Command("logs", "print container logs", _configure_logs, _run_logs),
    Command("ssh", "ssh to the login node as the submit user", _configure_ssh, _run_ssh),
]

# Modules that contribute a ``COMMAND`` (a Command) when present, e.g. harness/e2e.py.
PLUGIN_MODULES: list[str] = ["harness.e2e", "harness.regress"]


def _plugin_commands() -> list[Command]:
    found = []
    for module in PLUGIN_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        command = getattr(mod, "COMMAND", None)
        # Duck-typed: under `python -m harness` this file is also importable as
        # harness.__main__, a second module with its own Command class.
        if command is not None and all(
            hasattr(command, a) for a in ("name", "help", "configure", "run")
        ):
            found.append(command)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    seen: set[str] = set()
    for cmd in [*COMMANDS, *_plugin_commands()]:
        if cmd.name in seen:
            continue
        seen.add(cmd.name)
        p = sub.add_parser(cmd.name, help=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args._run
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
