"""The stack subcommands of ``python -m harness``: engine, up, down, status, logs, ssh.

Only ``engine`` and ``up`` may install or start a container engine; the others connect to one
that answers and say so when none does. ``up`` and ``down`` hold the stack's lock so they never
interleave with an e2e run or a pytest session on the same stack.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from harness._lock import stack_lock
from harness.cluster import Cluster, default_stack_name

__all__ = [
    "add_image_arg",
    "add_stack_args",
    "configure_engine",
    "configure_logs",
    "configure_ssh",
    "configure_up",
    "positive_int",
    "run_config_path",
    "run_down",
    "run_engine",
    "run_logs",
    "run_ssh",
    "run_status",
    "run_up",
    "stack_name",
]


def stack_name(text: str) -> str:
    """Refuse a name Docker or Slurm would choke on while parsing, naming the rule."""
    from harness.config import StackSpec

    try:
        StackSpec(name=text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name",
        type=stack_name,
        default=None,
        help="stack name (default: $INTERCEDE_STACK or 'intercede')",
    )


def add_image_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image",
        default=None,
        help="use this already-loaded stack image, skip the build "
        "(default: $INTERCEDE_STACK_IMAGE)",
    )


def configure_engine(p: argparse.ArgumentParser) -> None:
    """``engine`` takes no arguments."""


def configure_up(p: argparse.ArgumentParser) -> None:
    add_stack_args(p)
    p.add_argument(
        "--variant",
        default=os.environ.get("SLURM_VARIANT", "bookworm"),
        help="Slurm variant from slurm-stack/variants.toml (bookworm, trixie)",
    )
    p.add_argument("--workers", type=positive_int, default=2, help="number of slurmd nodes")
    p.add_argument(
        "--partitions",
        default="main,second",
        help="comma-separated partitions over all workers; the first is the default",
    )
    add_image_arg(p)


def configure_logs(p: argparse.ArgumentParser) -> None:
    add_stack_args(p)
    p.add_argument("node", nargs="?", default=None, help="one node (default: all)")
    p.add_argument("--tail", type=int, default=None, help="last N lines per node")
    p.add_argument(
        "--save",
        action="store_true",
        help="write every node's full log to the report folder (reports/logs/<stack>/, "
        "or $INTERCEDE_REPORT_DIR/logs/<stack>/) instead of printing it",
    )


def configure_ssh(p: argparse.ArgumentParser) -> None:
    add_stack_args(p)
    # Not dest "command": that is the subcommand's name in the top-level namespace.
    p.add_argument(
        "remote",
        nargs=argparse.REMAINDER,
        metavar="command",
        help="remote command (default: a shell)",
    )


def run_engine(args: argparse.Namespace) -> int:
    from harness.engine import ensure_engine

    info = ensure_engine()
    how = "started" if info.started_by_us else "found"
    print(f"engine {how}: {info.host} (version {info.version})")
    return 0


def run_up(args: argparse.Namespace) -> int:
    partitions = [p for p in args.partitions.split(",") if p]
    cluster = Cluster(
        args.name,
        variant=args.variant,
        workers=args.workers,
        partitions=partitions,
        image=args.image,
    )
    with stack_lock(cluster.name):
        reused = cluster.up()
    print(f"stack {cluster.name} {'reused' if reused else 'up'}: ssh port {cluster.ssh_port}")
    print(f"client config: {cluster.client_config_path}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    cluster = Cluster(args.name)
    with stack_lock(cluster.name):
        cluster.down()
    left = cluster.leftovers()
    if any(left.values()):
        print(f"left behind: {left}", file=sys.stderr)
        return 1
    print(f"stack {cluster.name} removed")
    return 0


def run_status(args: argparse.Namespace) -> int:
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


def run_logs(args: argparse.Namespace) -> int:
    cluster = Cluster(args.name)
    if args.save:
        print(f"container logs of stack {cluster.name} saved to {cluster.dump_logs()}")
        return 0
    for node, text in cluster.logs(args.node, tail=args.tail).items():
        print(f"===== {node} =====")
        print(text.rstrip())
    return 0


def run_ssh(args: argparse.Namespace) -> int:
    cluster = Cluster(args.name or default_stack_name())
    argv = cluster.ssh_argv(*args.remote, batch=bool(args.remote))
    if not args.remote:
        argv.insert(1, "-t")
    return subprocess.run(argv, check=False).returncode


def run_config_path(args: argparse.Namespace) -> int:
    """The client config of the stack (``$INTERCEDE_STACK`` by default), for scripts:
    ``intercede-debug-ce "$(python -m harness config-path)"``. Fails, saying why, when the
    stack was never brought up."""
    path = Cluster(args.name).client_config_path
    if not path.is_file():
        print(
            f"no client config at {path}: bring the stack up first (just stack-up)", file=sys.stderr
        )
        return 1
    print(path)
    return 0
