"""Build a ``BatchBackend`` from validated config: the registry's ``batch`` target.

Construction does no I/O: the SSH connection opens on the first operation, inside the
caller's event loop (the sync facade's loop, for DIRAC).
"""

from __future__ import annotations

from ..config import LocalBatchConfig, SSHBatchConfig
from ..credentials import CredentialProvider, CredentialSet
from .backend import BatchBackend
from .host import HostScheduler
from .local import LocalTransport
from .scheduler import Scheduler
from .slurm import SlurmScheduler
from .ssh import SSHTransport
from .transport import Transport

__all__ = ["build"]


def build(
    config: SSHBatchConfig | LocalBatchConfig, credentials: CredentialProvider
) -> BatchBackend:
    scheduler = _scheduler(config)
    transport: Transport
    if isinstance(config, SSHBatchConfig):
        holder: list[BatchBackend] = []

        async def current_credentials(*, refresh: bool = False) -> CredentialSet:
            return await holder[0].credentials(refresh=refresh)

        transport = SSHTransport(config, current_credentials)
        backend = BatchBackend(transport, scheduler, config, credentials)
        holder.append(backend)
        return backend
    transport = LocalTransport(command_timeout_s=config.command_timeout_s)
    return BatchBackend(transport, scheduler, config, credentials)


def _scheduler(config: SSHBatchConfig | LocalBatchConfig) -> Scheduler:
    """The batch system ``config.scheduler`` names."""
    if config.scheduler == "slurm":
        return SlurmScheduler(max_array_size=config.max_array_size)
    if config.scheduler == "host":
        return HostScheduler()
    raise AssertionError(f"no scheduler {config.scheduler!r}")  # the config model refuses it
