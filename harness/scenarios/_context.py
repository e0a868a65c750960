"""What the DIRAC scenarios run against: a stack's client config, rendered as a DIRAC CS.

The context writes the CS file once (:func:`harness.dirac_cs.render_cs`) into its scratch
directory, which every scenario process uses as its working directory and removes on exit.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from harness.dirac_cs import StackAccess, render_cs

__all__ = ["ClusterLike", "ScenarioContext"]


class ClusterLike(Protocol):
    """The part of ``harness.cluster.Cluster`` (and the ``slurm_cluster`` fixture) we use."""

    @property
    def name(self) -> str: ...

    @property
    def client_config_path(self) -> Path: ...


class ScenarioContext:
    """The cluster, the CS rendered for it, a scratch directory and the per-scenario timeout."""

    def __init__(
        self,
        cluster: ClusterLike,
        *,
        timeout_s: float = 300.0,
        work_area: str = "dirac",
        scratch: Path | None = None,
    ) -> None:
        self.cluster = cluster
        self.timeout_s = timeout_s
        self._owned = scratch is None
        self.scratch = scratch or Path(tempfile.mkdtemp(prefix="intercede-scenarios-"))
        self.scratch.mkdir(parents=True, exist_ok=True)
        access = StackAccess.from_client_config(cluster.client_config_path)
        # A job name of this context's own: a CE counts (getCEStatus, available) only its own
        # pilots, and other tests' jobs share the cluster meanwhile.
        own = {"JobName": f"dirac-{uuid.uuid4().hex[:8]}"}
        self.cs_path = self.scratch / "dirac.cfg"
        self.cs_path.write_text(
            render_cs(access, stack=cluster.name, work_area=work_area, extra_ce=own) + "\n"
        )
        # The same site plus a BatchSystem = Host CE on the login node, for the scenarios
        # that make sense without a batch system (DiracScenario.with_host).
        self.cs_host_path = self.scratch / "dirac-host.cfg"
        self.cs_host_path.write_text(
            render_cs(access, stack=cluster.name, work_area=work_area, with_host=True, extra_ce=own)
            + "\n"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owned:
            shutil.rmtree(self.scratch, ignore_errors=True)
