"""What a scenario runs against: the live cluster's client config, a command runner on its
nodes, and a local scratch directory; plus the facade builder and the status poller every
scenario shares.

Scenarios talk to the cluster ONLY through the sync facade, exactly as the DIRAC agent would;
``cluster.exec`` is used solely to look behind the facade's back (``scontrol``) for things a
consumer cannot see but a reviewer must (a secret leaking into the scheduler).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from intercede import sync
from intercede.config import LocalBatchConfig, SSHBatchConfig
from intercede.models import JobHandle, JobID, JobStatus
from intercede.registry import ConfigFile, load_config
from intercede.waiting import reached

__all__ = [
    "ClusterLike",
    "History",
    "MissingCapabilityError",
    "ScenarioContext",
    "Statuses",
    "missing",
    "record_history",
]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")

Statuses = Mapping[JobID, JobStatus]
History = dict[JobID, list[JobStatus]]
"""Per job, the statuses seen, consecutive duplicates collapsed (SiteDirector only records
changes, and a reviewer wants to see Waiting → Running → Done actually happen)."""


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


def record_history(history: History, statuses: Statuses) -> None:
    """Append each job's status unless it repeats the last one seen."""
    for job_id, status in statuses.items():
        seen = history.setdefault(job_id, [])
        if not seen or seen[-1] is not status:
            seen.append(status)


def _select(
    config: ConfigFile, queue: str, work_root: str | None, **overrides: Any
) -> SSHBatchConfig | LocalBatchConfig:
    base = config.select([queue])[queue]
    if work_root is not None:
        overrides.setdefault("work_root", work_root)
    return base.model_copy(update=overrides) if overrides else base


@dataclass
class ScenarioContext:
    """Use as a context manager (or call :meth:`close`) when ``local_root`` is not given: the
    scratch directory it then creates is removed on exit."""

    cluster: ClusterLike
    local_root: Path | None = None
    """Local scratch; ``None`` creates a temporary directory owned (and removed) by us."""
    work_root: str | None = None
    """Remote work root overriding the config's, so each test's jobs live apart."""
    timeout_s: float = 300.0
    """Bound on each wait for jobs to change state."""
    _owned: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.local_root is None:
            self._owned = tempfile.TemporaryDirectory(prefix="scenario-")
            self.local_root = Path(self._owned.name)

    def close(self) -> None:
        """Remove the scratch directory if we created it; idempotent."""
        if self._owned is not None:
            self._owned.cleanup()
            self._owned = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def config(self) -> ConfigFile:
        """Read afresh each time: a restarted login node publishes a new port, and the
        harness rewrites the file (a DIRAC agent re-reads its CS the same way)."""
        return load_config(self.cluster.client_config_path)

    @property
    def queues(self) -> list[str]:
        return list(self.config.queues)

    def queue_config(self, queue: str, **overrides: Any) -> SSHBatchConfig | LocalBatchConfig:
        return _select(self.config, queue, self.work_root, **overrides)

    def facade(self, queue: str, **overrides: Any) -> sync.Facade:
        """A fresh facade on ``queue`` (with config overrides such as ``job_name``)."""
        config = self.config  # one read: the queue and its credentials from the same file
        return sync.backend(
            _select(config, queue, self.work_root, **overrides), config.credentials()
        )

    def local_dir(self, *parts: str) -> Path:
        assert self.local_root is not None  # set in __post_init__
        path = self.local_root.joinpath(*(_SAFE.sub("_", p) for p in parts))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def on_controller(self, argv: Sequence[str]) -> tuple[int, str]:
        return self.cluster.exec("controller", list(argv))

    def poll(
        self,
        facade: sync.StatusReporter,
        handles: Sequence[JobHandle],
        until: Collection[JobStatus] | None = None,
        *,
        history: History | None = None,
        cap_s: float = 1.0,
    ) -> tuple[Statuses, bool]:
        """``intercede.sync.wait_for_jobs`` until every job is in ``until`` (default: final) or
        ``timeout_s``, with a short cap (scenarios want to see short-lived states); the last
        answer and whether every job got there."""
        statuses = sync.wait_for_jobs(
            facade,
            handles,
            deadline_s=self.timeout_s,
            until=until,
            first_s=0.25,
            cap_s=cap_s,
            on_poll=None if history is None else lambda seen: record_history(history, seen),
        )
        return statuses, reached(statuses, until)
