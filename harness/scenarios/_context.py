"""What a scenario runs against: the live cluster's client config, a command runner on its
nodes, and a local scratch directory; plus the facade builder every scenario shares.

Scenarios talk to the cluster ONLY through the sync facade, exactly as the DIRAC agent would;
``cluster.exec`` is used solely to look behind the facade's back (``scontrol show job``) for
things a consumer cannot see but a reviewer must (a secret leaking into the scheduler).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from intercede import sync
from intercede.config import LocalBatchConfig, SSHBatchConfig
from intercede.registry import ConfigFile, load_config

__all__ = ["ClusterLike", "MissingCapabilityError", "ScenarioContext", "missing"]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class ClusterLike(Protocol):
    """The part of ``harness.cluster.Cluster`` (and the ``slurm_cluster`` fixture) we use."""

    @property
    def client_config_path(self) -> Path: ...

    def exec(self, node: str, argv: Sequence[str], user: str | None = None) -> tuple[int, str]: ...


class MissingCapabilityError(RuntimeError):
    """The backend lacks an optional protocol a scenario's DIRAC consumer relies on."""


def missing(facade: object, protocol: str, what: str) -> MissingCapabilityError:
    """The error for a facade lacking an optional capability (raise it after an isinstance
    probe, which is also what narrows the facade's type for the checker)."""
    return MissingCapabilityError(
        f"the backend cannot {what} ({type(facade).__name__} is not intercede.sync.{protocol})"
    )


@dataclass
class ScenarioContext:
    cluster: ClusterLike
    local_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="scenario-")))
    work_root: str | None = None
    """Remote work root overriding the config's, so each test's jobs live apart."""
    timeout_s: float = 300.0
    """Bound on each wait for jobs to change state."""

    @property
    def config(self) -> ConfigFile:
        """Read afresh each time: a restarted login node publishes a new port, and the
        harness rewrites the file (a DIRAC agent re-reads its CS the same way)."""
        return load_config(self.cluster.client_config_path)

    @property
    def queues(self) -> list[str]:
        return list(self.config.queues)

    def queue_config(self, queue: str, **overrides: Any) -> SSHBatchConfig | LocalBatchConfig:
        base = self.config.select([queue])[queue]
        if self.work_root is not None:
            overrides.setdefault("work_root", self.work_root)
        return base.model_copy(update=overrides) if overrides else base

    def facade(self, queue: str, **overrides: Any) -> sync.Facade:
        """A fresh facade on ``queue`` (with config overrides such as ``job_name``)."""
        config = self.config
        base = config.select([queue])[queue]
        if self.work_root is not None:
            overrides.setdefault("work_root", self.work_root)
        chosen = base.model_copy(update=overrides) if overrides else base
        return sync.backend(chosen, config.credentials())

    def local_dir(self, *parts: str) -> Path:
        path = self.local_root.joinpath(*(_SAFE.sub("_", p) for p in parts))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def on_controller(self, argv: Sequence[str]) -> tuple[int, str]:
        return self.cluster.exec("controller", list(argv))
