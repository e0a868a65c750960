"""Pure rendering of everything a stack needs: Slurm configs, client config, image identity.

Kept free of Docker and I/O (apart from reading the files under ``slurm-stack/``) so the parts
most likely to break silently, node and partition lines and the ``client.toml`` keys the
interCEde registry reads, are unit-tested on machines without a container engine.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import tomli_w

__all__ = [
    "DEFAULT_PARTITIONS",
    "DEFAULT_SCHEDULER_PARAMETERS",
    "HOST_QUEUE",
    "HOST_SLOTS",
    "REPORT_DIR_ENV",
    "REPO_ROOT",
    "STACK_DIR",
    "Partition",
    "StackSpec",
    "Variant",
    "cluster_name",
    "image_tag",
    "known_hosts_line",
    "load_variants",
    "render_cgroup_conf",
    "render_client_toml",
    "render_slurm_conf",
    "render_slurmdbd_conf",
    "report_dir",
    "stack_hash",
    "state_dir",
    "worker_names",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

HOST_QUEUE = "host"
"""The client config's queue that runs jobs on the login node itself (``scheduler = "host"``,
DIRAC's ``BatchSystem = Host``), next to one queue per partition."""
HOST_SLOTS = 2
"""How many of the host queue's jobs run at once on the login node."""
STACK_DIR = REPO_ROOT / "slurm-stack"

# Bursty submission: coalesce scheduling passes and back off while RPCs pile up, but keep the
# main scheduler on events (no "defer") so a single test job starts within a second or two.
DEFAULT_SCHEDULER_PARAMETERS = (
    "batch_sched_delay=3,sched_min_interval=200000,max_rpc_cnt=150,"
    "default_queue_depth=200,bf_interval=5,sched_interval=10"
)
DEFAULT_PARTITIONS = ("main", "second")


@dataclass(frozen=True)
class Variant:
    """One Debian suite and the exact Slurm/munge builds it provides."""

    name: str
    suite: str
    base_image: str
    slurm_version: str
    munge_version: str
    cgroup_plugin: str

    def build_args(self, base_image: str) -> dict[str, str]:
        return {
            "BASE_IMAGE": base_image,
            "SLURM_VERSION": self.slurm_version,
            "MUNGE_VERSION": self.munge_version,
        }


@dataclass(frozen=True)
class Partition:
    """A Slurm partition; ``nodes=None`` spans every worker so a 2-node job fits anywhere."""

    name: str
    default: bool = False
    nodes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StackSpec:
    """Everything that shapes one stack's topology and Slurm configuration."""

    name: str = "intercede"
    variant: str = "bookworm"
    workers: int = 2
    partitions: tuple[Partition, ...] = (
        Partition("main", default=True),
        Partition("second"),
    )
    cpus_per_worker: int = 2
    memory_mb: int = 1024
    slurmd_timeout: int = 30
    min_job_age: int = 300
    max_array_size: int = 1001
    max_job_count: int = 10000
    scheduler_parameters: str = DEFAULT_SCHEDULER_PARAMETERS
    submit_user: str = "submit"
    submit_uid: int = 2000
    home: str = "/home/submit"
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("a stack needs at least one worker")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,39}", self.name):
            raise ValueError(
                f"stack name {self.name!r}: use 1-40 lowercase letters, digits, '-', '_', '.'"
            )
        if not self.partitions:
            raise ValueError("a stack needs at least one partition")
        if any(p.name == HOST_QUEUE for p in self.partitions):
            raise ValueError(f"partition name {HOST_QUEUE!r} is the login node's host queue")
        if sum(p.default for p in self.partitions) > 1:
            raise ValueError("at most one partition may be the default")

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.partitions)

    @property
    def nodes(self) -> tuple[str, ...]:
        return ("database", "dbd", "controller", *worker_names(self.workers), "login")

    @property
    def work_root(self) -> str:
        return f"{self.home}/intercede"


def worker_names(count: int) -> tuple[str, ...]:
    return tuple(f"worker{i}" for i in range(1, count + 1))


def cluster_name(stack: str) -> str:
    """Slurm wants a short lowercase cluster name without punctuation other than '_'."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", stack.lower()).strip("_") or "intercede"
    if cleaned[0].isdigit():
        cleaned = "c" + cleaned
    return cleaned[:40]


def load_variants(path: Path | None = None) -> dict[str, Variant]:
    data = tomllib.loads((path or STACK_DIR / "variants.toml").read_text())
    return {
        name: Variant(
            name=name,
            suite=str(v["suite"]),
            base_image=str(v["base_image"]),
            slurm_version=str(v["slurm_version"]),
            munge_version=str(v["munge_version"]),
            cgroup_plugin=str(v.get("cgroup_plugin", "autodetect")),
        )
        for name, v in data.items()
    }


def _template(name: str, stack_dir: Path | None) -> Template:
    return Template((stack_dir or STACK_DIR).joinpath(name).read_text())


def render_slurm_conf(spec: StackSpec, stack_dir: Path | None = None) -> str:
    workers = worker_names(spec.workers)
    node_lines = "\n".join(
        f"NodeName={w} NodeAddr={w} CPUs={spec.cpus_per_worker} "
        f"RealMemory={spec.memory_mb} State=UNKNOWN"
        for w in workers
    )
    # With no explicit default the first partition is the default, as users expect.
    default_name = next((p.name for p in spec.partitions if p.default), spec.partitions[0].name)
    part_lines = []
    for p in spec.partitions:
        members = p.nodes if p.nodes is not None else workers
        unknown = set(members) - set(workers)
        if unknown:
            raise ValueError(f"partition {p.name} names unknown nodes {sorted(unknown)}")
        part_lines.append(
            f"PartitionName={p.name} Nodes={','.join(members)} "
            f"Default={'YES' if p.name == default_name else 'NO'} "
            "MaxTime=INFINITE State=UP OverSubscribe=NO"
        )
    return _template("slurm.conf.tmpl", stack_dir).substitute(
        stack=spec.name,
        cluster_name=cluster_name(spec.name),
        slurmd_timeout=spec.slurmd_timeout,
        min_job_age=spec.min_job_age,
        max_array_size=spec.max_array_size,
        max_job_count=spec.max_job_count,
        scheduler_parameters=spec.scheduler_parameters,
        nodes=node_lines,
        partitions="\n".join(part_lines),
    )


def render_slurmdbd_conf(spec: StackSpec, db_password: str, stack_dir: Path | None = None) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]+", db_password):
        # It lands unquoted in slurmdbd.conf and in SQL; keep it to safe characters.
        raise ValueError("database password must be alphanumeric")
    return _template("slurmdbd.conf.tmpl", stack_dir).substitute(
        stack=spec.name, db_password=db_password
    )


def render_cgroup_conf(spec: StackSpec, variant: Variant, stack_dir: Path | None = None) -> str:
    return _template("cgroup.conf.tmpl", stack_dir).substitute(
        stack=spec.name, cgroup_plugin=variant.cgroup_plugin
    )


def render_client_toml(
    spec: StackSpec,
    *,
    key_path: Path,
    known_hosts_path: Path,
    port: int,
    host: str = "127.0.0.1",
) -> str:
    """The file the interCEde registry loads; its keys are a contract, keep them exact."""
    data: dict[str, Any] = {
        "credentials": {"ssh_key_file": str(key_path)},
        "defaults": {
            "kind": "batch",
            "transport": "ssh",
            "scheduler": "slurm",
            "host": host,
            "port": port,
            "user": spec.submit_user,
            "known_hosts": str(known_hosts_path),
            "work_root": spec.work_root,
        },
        "queues": {
            **{q: {"queue": q} for q in spec.queues},
            HOST_QUEUE: {"scheduler": "host", "slots": HOST_SLOTS},
        },
    }
    header = f'# Generated by the interCEde harness for stack "{spec.name}"; do not edit.\n'
    return header + tomli_w.dumps(data)


def known_hosts_line(port: int, public_key: str, host: str = "127.0.0.1") -> str:
    """OpenSSH writes non-22 ports as ``[host]:port``; anything else fails verification."""
    fields = public_key.split()
    if len(fields) < 2:
        raise ValueError(f"not an OpenSSH public key: {public_key!r}")
    target = host if port == 22 else f"[{host}]:{port}"
    return f"{target} {fields[0]} {fields[1]}\n"


def stack_hash(variant: Variant, stack_dir: Path | None = None, extra: Sequence[str] = ()) -> str:
    """Content address of the stack image: any file or pin change means a rebuild."""
    root = stack_dir or STACK_DIR
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    for item in (variant.name, variant.suite, variant.slurm_version, variant.munge_version):
        h.update(item.encode() + b"\0")
    for item in extra:
        h.update(item.encode() + b"\0")
    return h.hexdigest()[:12]


def image_tag(variant: Variant, stack_dir: Path | None = None, extra: Sequence[str] = ()) -> str:
    return f"intercede-slurm:{variant.name}-{stack_hash(variant, stack_dir, extra)}"


REPORT_DIR_ENV = "INTERCEDE_REPORT_DIR"


def report_dir() -> Path:
    """The run's report folder: regression reports and, when a run fails, every container's log
    (``logs/<stack>/<node>.log``), which the workflows upload. ``$INTERCEDE_REPORT_DIR``, else
    the git-ignored ``reports/`` of the checkout."""
    return Path(os.environ.get(REPORT_DIR_ENV) or REPO_ROOT / "reports")


def state_dir(stack: str, root: Path | None = None) -> Path:
    """Host-side directory of generated client material; git-ignored (``/.intercede/``)."""
    return (root or REPO_ROOT) / ".intercede" / stack
